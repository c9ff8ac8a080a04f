// Port-forward's connection into a pod: a TCP socket made inside the pod's network namespace
// by a worker thread (setns for that thread alone, then back), connected to the pod's
// localhost:PORT, and handed to the loop, which never leaves its own namespace.
#pragma once

#include <cstdint>
#include <string>

#include "exec/RemoteCommand.h"
#include "loop/Loop.h"

namespace monocri::exec {

// `netnsPath` empty: the daemon's own namespace (a host-network pod). `done` runs on the loop.
void connectInNamespace(loop::Loop& loop, std::string netnsPath, uint16_t port,
                        StreamBackend::Connected done);

}  // namespace monocri::exec
