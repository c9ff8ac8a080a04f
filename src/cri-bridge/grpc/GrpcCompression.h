// Message compression named by grpc-encoding. monocri accepts gzip-compressed requests and
// always answers uncompressed (identity), as grpc-go servers do by default.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace monocri::grpc {

// What the server advertises in grpc-accept-encoding.
inline constexpr std::string_view kAcceptedEncodings = "identity,gzip";

bool isSupportedEncoding(std::string_view encoding);

// Inflates a gzip stream. Refuses (nullopt, with `tooLarge` set) output over `maxBytes`, so a
// small hostile message cannot expand into unbounded memory; nullopt alone means corrupt input.
std::optional<std::string> gunzip(std::string_view compressed, size_t maxBytes, bool& tooLarge);

// Compresses with gzip (used by tests and clients that opt in).
std::string gzip(std::string_view data);

}  // namespace monocri::grpc
