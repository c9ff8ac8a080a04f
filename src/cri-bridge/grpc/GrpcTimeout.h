// The grpc-timeout request header: how long the client will wait for the call.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace monocri::grpc {

// Grammar (gRPC over HTTP/2): TimeoutValue TimeoutUnit, where TimeoutValue is 1 to 8 ASCII
// digits and TimeoutUnit one of H (hours), M (minutes), S, m, u, n. Anything else is malformed.
// Large values saturate at the longest duration representable.
std::optional<std::chrono::nanoseconds> parseGrpcTimeout(std::string_view value);

// The shortest grpc-timeout value that is not shorter than `timeout` (at least "1n").
std::string formatGrpcTimeout(std::chrono::nanoseconds timeout);

}  // namespace monocri::grpc
