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

// "what: strerror(errno)", for a failed system call.
[[noreturn]] inline void throwErrno(const std::string& what, int error = errno) {
  throw RuntimeError(fmt::format("{}: {}", what, std::strerror(error)));
}

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw RuntimeError(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace monocri::runtime
