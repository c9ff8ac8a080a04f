#include "oci/runtime/ProcessExit.h"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "state/UniqueFd.h"

namespace monocri::runtime {

int pidfdOpen(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

bool waitForExit(pid_t pid, int timeoutMs) {
  state::UniqueFd pidfd(pidfdOpen(pid));
  if (!pidfd) return errno == ESRCH;
  pollfd entry{pidfd.get(), POLLIN, 0};
  for (;;) {
    int ready = poll(&entry, 1, timeoutMs);
    if (ready < 0 && errno == EINTR) continue;
    return ready > 0;
  }
}

std::string describeWaitStatus(int status) {
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    if (name != nullptr) return fmt::format("killed by signal SIG{}", name);
    return fmt::format("killed by signal {}", WTERMSIG(status));
  }
  return fmt::format("wait status {:#x}", status);
}

}  // namespace monocri::runtime
