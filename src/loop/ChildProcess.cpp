#include "loop/ChildProcess.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

extern char** environ;

namespace monocri::loop {

int pidfdOpen(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

int pidfdSendSignal(int pidfd, int signal) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

std::string ChildExit::describe() const {
  if (signaled) return fmt::format("signal {} ({})", code, strsignal(code));
  return fmt::format("exit status {}", code);
}

std::unique_ptr<ChildProcess> ChildProcess::spawn(Loop& loop, const Options& options,
                                                  std::function<void(ChildExit)> onExit,
                                                  std::string& error) {
  if (options.argv.empty()) {
    error = "no program to run";
    return nullptr;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // Descriptors are first moved above every source and target number, then into place, so
  // that one mapping cannot overwrite the source of another.
  int kStaging = 3;
  for (const auto& [from, to] : options.fds)
    kStaging = std::max({kStaging, from + 1, to + 1});
  // glibc refuses (EBADF) a number at or above the descriptor limit: a mapping it dropped would
  // leave the child without its descriptor, so every refusal fails the spawn.
  int refused = 0;
  for (size_t i = 0; i < options.fds.size(); ++i) {
    if (int rc = posix_spawn_file_actions_adddup2(&actions, options.fds[i].first,
                                                  kStaging + static_cast<int>(i));
        rc != 0) {
      refused = rc;
    }
  }
  bool hasStdin = false, hasStdout = false, hasStderr = false;
  for (size_t i = 0; i < options.fds.size(); ++i) {
    const int target = options.fds[i].second;
    if (int rc = posix_spawn_file_actions_adddup2(&actions, kStaging + static_cast<int>(i), target);
        rc != 0) {
      refused = rc;
    }
    hasStdin |= target == 0;
    hasStdout |= target == 1;
    hasStderr |= target == 2;
  }
  if (refused != 0) {
    posix_spawn_file_actions_destroy(&actions);
    error = fmt::format(
        "cannot pass descriptors to {} (up to number {}): {}; raise the "
        "descriptor limit (LimitNOFILE)",
        options.argv[0], kStaging + static_cast<int>(options.fds.size()) - 1,
        std::strerror(refused));
    return nullptr;
  }
  if (!hasStdin) posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (!hasStdout) posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  if (!hasStderr && !options.inheritStderr) {
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  }
  int highest = 2;
  for (const auto& [from, to] : options.fds)
    highest = std::max(highest, to);
  posix_spawn_file_actions_addclosefrom_np(&actions, highest + 1);

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (options.newProcessGroup) {
    posix_spawnattr_setpgroup(&attributes, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&attributes, flags);

  std::vector<char*> argv;
  for (const auto& arg : options.argv)
    argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> env;
  for (const auto& entry : options.env)
    env.push_back(const_cast<char*>(entry.c_str()));
  env.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(),
                             options.env.empty() ? environ : env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0) {
    error = fmt::format("cannot run {}: {}", options.argv[0], std::strerror(rc));
    return nullptr;
  }
  // Only this process reaps its children by pid, so the pid cannot be recycled before this.
  const int pidfd = pidfdOpen(pid);
  if (pidfd < 0) {
    error = fmt::format("pidfd_open {}: {}", pid, std::strerror(errno));
    ::kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return nullptr;
  }
  fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  std::unique_ptr<ChildProcess> child(new ChildProcess(pid, pidfd));
  child->groupLeader_ = options.newProcessGroup;
  child->onExit_ = std::move(onExit);
  int pollError = 0;
  child->watch_ = Poll::create(loop, pidfd, &pollError);
  if (!child->watch_) {
    error = fmt::format("watching child {}: {}", pid, uv_strerror(pollError));
    return nullptr;  // the destructor kills and reaps it
  }
  child->watch_->start(UV_READABLE, [raw = child.get()](int, int) { raw->reap(); });
  return child;
}

void ChildProcess::reap() {
  siginfo_t info{};
  if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_), &info, WEXITED | WNOHANG) !=
          0 ||
      info.si_pid == 0) {
    return;  // not yet
  }
  exited_ = true;
  watch_.reset();
  ChildExit exit{info.si_code != CLD_EXITED, info.si_status};
  if (onExit_) {
    auto onExit = std::move(onExit_);
    onExit_ = nullptr;
    onExit(exit);
  }
}

int ChildProcess::kill(int signal) {
  if (exited_) return -ESRCH;
  return pidfdSendSignal(pidfd_, signal) == 0 ? 0 : -errno;
}

int ChildProcess::killProcessGroup(int signal) {
  if (exited_) return -ESRCH;
  if (!groupLeader_) return -EINVAL;
  return ::kill(-pid_, signal) == 0 ? 0 : -errno;
}

ChildProcess::~ChildProcess() {
  watch_.reset();
  if (!exited_) {
    pidfdSendSignal(pidfd_, SIGKILL);
    // libuv made the pidfd non-blocking, and waitid on a non-blocking pidfd answers EAGAIN
    // instead of waiting: the child would be left a zombie.
    fcntl(pidfd_, F_SETFL, fcntl(pidfd_, F_GETFL) & ~O_NONBLOCK);
    siginfo_t info{};
    waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_), &info, WEXITED);
  }
  ::close(pidfd_);
}

}  // namespace monocri::loop
