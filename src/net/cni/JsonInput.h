// Internal to src/net/cni: JSON from outside the daemon (config files, plugin output, cache
// files), bounded in size and nesting before nlohmann's parser sees it, and the address checks
// the parsers share.
#pragma once

#include <arpa/inet.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <string>
#include <string_view>
#include <vector>

namespace monocri::net::cni::detail {

// The versions whose configs and results the daemon reads: the result format is the same from
// 0.3.0 on (0.3.x adds a "version" to each address, which is ignored).
constexpr std::array<std::string_view, 4> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};

inline bool supportedVersion(std::string_view version) {
  return std::find(kSupportedVersions.begin(), kSupportedVersions.end(), version) !=
         kSupportedVersions.end();
}

// Deeper than any CNI document needs (a conflist with an ipam range set is 5 levels), shallow
// enough that nothing recursive over the parsed value (dump, comparison, copy) can exhaust the
// stack.
constexpr int kMaxJsonDepth = 64;

// The deepest nesting of arrays and objects in `bytes`, counting only brackets outside strings.
// Exact for valid JSON; for invalid JSON any answer is fine, as the parser rejects it anyway.
// Stops counting once past `limit`.
inline int jsonDepth(std::string_view bytes, int limit) {
  int depth = 0, deepest = 0;
  bool inString = false;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (inString) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is, does not end the string
      } else if (c == '"') {
        inString = false;
      }
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
      if (deepest > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// `what` is the name of the document in the error ("/etc/cni/net.d/10-a.conflist", "the
// plugin's output"). Returns "" or why the bytes are not acceptable JSON.
inline std::string parseJson(std::string_view bytes, size_t maxBytes, int maxDepth,
                             std::string_view what, nlohmann::json& out) {
  out = nullptr;
  if (bytes.size() > maxBytes) {
    return fmt::format("{}: {} bytes, more than the {} accepted", what, bytes.size(), maxBytes);
  }
  if (jsonDepth(bytes, maxDepth) > maxDepth) {
    return fmt::format("{}: JSON nested deeper than {} levels", what, maxDepth);
  }
  nlohmann::json parsed = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr,
                                                /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return fmt::format("{}: not valid JSON", what);
  out = std::move(parsed);
  return "";
}

// The nesting of an already parsed value (for JSON handed over in memory, e.g. a cache record's
// config), bounded by `limit` as jsonDepth is. Iterates, so it is safe on any depth.
inline int valueDepth(const nlohmann::json& value, int limit) {
  struct Frame {
    const nlohmann::json* value;
    int depth;
  };
  std::vector<Frame> stack{{&value, 0}};
  int deepest = 0;
  while (!stack.empty()) {
    const Frame frame = stack.back();
    stack.pop_back();
    if (!frame.value->is_structured()) continue;
    const int depth = frame.depth + 1;
    if (depth > deepest) deepest = depth;
    if (deepest > limit) return deepest;
    for (const auto& child : *frame.value)
      stack.push_back({&child, depth});
  }
  return deepest;
}

// A string from outside, fit for an error message: at most `max` bytes, JSON-quoted (so control
// characters and invalid UTF-8 cannot garble a log line).
inline std::string shown(std::string_view text, size_t max = 64) {
  std::string cut(text.substr(0, max));
  std::string quoted =
      nlohmann::json(cut).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > max) quoted += "...";
  return quoted;
}

// The JSON type of a value, for messages: "a number", "an array".
inline std::string_view typeName(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::binary:
      return "binary data";
    case nlohmann::json::value_t::discarded:
      return "nothing";
    default:
      return "a number";
  }
}

inline bool isIpAddress(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
  const std::string copy(text);
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, copy.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, copy.c_str(), buffer) == 1;
}

inline bool isIpv4Address(std::string_view text) {
  if (text.empty() || text.size() >= INET_ADDRSTRLEN) return false;
  const std::string copy(text);
  unsigned char buffer[sizeof(struct in_addr)];
  return inet_pton(AF_INET, copy.c_str(), buffer) == 1;
}

// "10.88.0.2/16", "fd00::2/64": an address, '/', a prefix length within the family's bits.
inline bool isCidr(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return false;
  const std::string_view address = text.substr(0, slash), prefix = text.substr(slash + 1);
  if (prefix.empty() || prefix.size() > 3) return false;
  unsigned bits = 0;
  const auto [end, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), bits);
  if (ec != std::errc() || end != prefix.data() + prefix.size()) return false;
  if (isIpv4Address(address)) return bits <= 32;
  return isIpAddress(address) && bits <= 128;
}

}  // namespace monocri::net::cni::detail
