#include "oci/runtime/RuntimeLog.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "oci/runtime/ContainerState.h"
#include "oci/runtime/RuntimeError.h"

namespace monocri::runtime {

namespace {

int logFd = STDERR_FILENO;
LogFormat logFormat = LogFormat::kText;

}  // namespace

void RuntimeLog::open(const std::string& path, LogFormat format) {
  logFormat = format;
  if (path.empty()) return;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throwErrno(fmt::format("opening the log file {}", path));
  logFd = fd;
}

int RuntimeLog::fd() {
  return logFd;
}

void RuntimeLog::write(std::string_view level, std::string_view message) {
  std::string line;
  if (logFormat == LogFormat::kJson) {
    nlohmann::json record{{"level", level}, {"msg", message}, {"time", nowRfc3339()}};
    line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = fmt::format(
        "time=\"{}\" level={} msg={}", nowRfc3339(), level,
        nlohmann::json(message).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  line += '\n';
  // One write: lines of concurrent runtimes sharing a log file do not interleave (O_APPEND).
  [[maybe_unused]] ssize_t written = ::write(logFd, line.data(), line.size());
}

}  // namespace monocri::runtime
