// The exits of processes the runtime starts or manages: pidfds (raw system calls: glibc 2.36's
// <sys/pidfd.h> lacks extern "C"), waiting for a process that is not our child, and a wait status
// in words for error messages.
#pragma once

#include <sys/types.h>

#include <string>

namespace monocri::runtime {

int pidfdOpen(pid_t pid);
// Waits up to `timeoutMs` for `pid` (our child or not) to exit; true once it has (or is gone).
bool waitForExit(pid_t pid, int timeoutMs);
// "exit status 3", "killed by signal SIGKILL".
std::string describeWaitStatus(int status);

}  // namespace monocri::runtime
