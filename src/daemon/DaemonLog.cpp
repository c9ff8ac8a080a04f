#include "daemon/DaemonLog.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace monocri::daemon {

void setupDaemonLog(const std::string& level) {
  // Plain stderr (no colour codes): journald and log collectors read it.
  auto logger = spdlog::stderr_logger_mt("monocri");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(level));
  // Each event reaches stderr as it happens, whatever its level.
  spdlog::flush_on(spdlog::level::trace);
}

}  // namespace monocri::daemon
