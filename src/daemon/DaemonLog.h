// The daemon's own log: one line per event on stderr, UTC timestamps, a level.
#pragma once

#include <string>

namespace monocri::daemon {

// Sets up spdlog's default logger. `level` is trace, debug, info, warn or error.
void setupDaemonLog(const std::string& level);

}  // namespace monocri::daemon
