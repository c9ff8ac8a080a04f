// OpenSSL's error queue as a message for a user: the reasons, once each, the queue emptied.
#pragma once

#include <fmt/format.h>
#include <openssl/err.h>

#include <cstring>
#include <string>
#include <string_view>

namespace monocri::exec {

// "bad base64 decode; PEM lib", "No such file or directory"; `ifNone` when the queue was empty.
inline std::string openSslErrors(std::string_view ifNone = "unknown error") {
  std::string out;
  while (const unsigned long code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    std::string text = ERR_SYSTEM_ERROR(code) ? std::strerror(ERR_GET_REASON(code))
                       : reason != nullptr    ? reason
                                              : fmt::format("error {:#x}", code);
    if (text == "system lib") continue;  // said better by the errno entry
    if (out.find(text) == std::string::npos) out += (out.empty() ? "" : "; ") + text;
  }
  return out.empty() ? std::string(ifNone) : out;
}

}  // namespace monocri::exec
