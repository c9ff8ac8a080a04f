// A child process the daemon starts itself (a helper, later runc and CNI plugins), watched
// through a pidfd: its exit is a readable pidfd on the loop, reaped with waitid(P_PIDFD).
// Never waitpid(-1): other children (containers) are not the daemon's to reap.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "loop/Handle.h"
#include "loop/Poll.h"

namespace monocri::loop {

// pidfd_open(2) and pidfd_send_signal(2), which glibc 2.36 does not wrap: -1 with errno set on
// failure. A signal through a pidfd cannot reach a recycled pid.
int pidfdOpen(pid_t pid);
int pidfdSendSignal(int pidfd, int signal);

struct ChildExit {
  bool signaled = false;
  int code = 0;                  // exit status, or the signal number
  std::string describe() const;  // "exit status 3", "signal 9 (Killed)"
};

class ChildProcess {
 public:
  struct Options {
    std::vector<std::string> argv;  // argv[0] is the executable's path
    // Descriptors the child gets, as (fd in the daemon, fd number in the child); all other
    // descriptors are closed in the child. Unset 0, 1, 2 become /dev/null, except stderr when
    // inheritStderr (the daemon's log).
    std::vector<std::pair<int, int>> fds;
    bool inheritStderr = true;
    // The child leads a process group of its own, so that killProcessGroup() reaches whatever
    // it started too (an OCI runtime's helpers).
    bool newProcessGroup = false;
    // The child's environment, "NAME=value" each; empty: the daemon's own.
    std::vector<std::string> env;
  };

  // Starts the child. On failure returns null and sets `error`.
  static std::unique_ptr<ChildProcess> spawn(Loop& loop, const Options& options,
                                             std::function<void(ChildExit)> onExit,
                                             std::string& error);
  ~ChildProcess();  // stops watching; a running child is killed (SIGKILL) and reaped
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool exited() const { return exited_; }
  // Sends `signal` through the pidfd: never to a recycled pid.
  int kill(int signal);
  // Sends `signal` to the child's process group (spawned with newProcessGroup). Only while the
  // child is unreaped: its pid, hence the group id, cannot have been reused.
  int killProcessGroup(int signal);

 private:
  ChildProcess(pid_t pid, int pidfd) : pid_(pid), pidfd_(pidfd) {}
  void reap();

  pid_t pid_;
  int pidfd_;
  bool exited_ = false;
  bool groupLeader_ = false;
  HandlePtr<Poll> watch_;
  std::function<void(ChildExit)> onExit_;
};

}  // namespace monocri::loop
