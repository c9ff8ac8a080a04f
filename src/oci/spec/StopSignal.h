// Stop signals: the CRI's Signal enum, an image's StopSignal ("SIGTERM", "TERM", "15",
// "SIGRTMIN+3"), and their numbers on Linux.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api.pb.h"

namespace monocri::oci {

// The canonical name ("SIGTERM", "SIGRTMIN+3", "SIGRTMAX-1") of a signal written as a name with
// or without "SIG", or as a number; nullopt when it names no signal.
std::optional<std::string> canonicalSignalName(std::string_view text);

// The number of a signal written in any form canonicalSignalName accepts (SIGRTMIN is 34, as
// glibc, runc and Docker count).
std::optional<int> signalNumber(std::string_view text);

// The canonical name of a CRI Signal; "" for SIGNAL_RUNTIME_DEFAULT or an unknown value.
std::string criSignalName(runtime::v1::Signal signal);

// The CRI stop_signal unless it is RUNTIME_DEFAULT, else the image's StopSignal, else SIGTERM.
// An image value that names no signal is replaced by SIGTERM, with a warning.
std::string resolveStopSignal(runtime::v1::Signal criSignal, const nlohmann::json& imageConfig,
                              std::vector<std::string>& warnings);

}  // namespace monocri::oci
