// Values from requests and images quoted in error messages: escaped (control bytes and quotes
// visible) and cut, so that a hostile megabyte-long name makes a readable message.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace monocri::oci {

inline std::string quotedValue(std::string_view text) {
  constexpr size_t kShown = 200;
  if (text.size() <= kShown) return fmt::format("{:?}", text);
  return fmt::format("{:?}...", text.substr(0, kShown));
}

}  // namespace monocri::oci
