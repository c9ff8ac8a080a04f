// Errors of monocri-runtime: one exception type whose message says what failed and on which
// path or setting, written to the --log file as runc writes its own ("level":"error").
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace monocri::runtime {

class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "what: strerror(errno)", with the reason in lower case as runc (Go) writes it: callers that
// match runc's messages ("no such file or directory") read ours the same.
[[noreturn]] inline void throwErrno(const std::string& what, int error = errno) {
  std::string reason = std::strerror(error);
  if (!reason.empty() && reason[0] >= 'A' && reason[0] <= 'Z' &&
      (reason.size() < 2 || reason[1] < 'A' || reason[1] > 'Z'))
    reason[0] = static_cast<char>(reason[0] - 'A' + 'a');
  throw RuntimeError(fmt::format("{}: {}", what, reason));
}

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw RuntimeError(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace monocri::runtime
