#include "monitor/ExitMonitor.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "loop/ChildProcess.h"
#include "loop/Handle.h"
#include "monitor/KeeperLink.h"
#include "state/UniqueFd.h"

namespace monocri::monitor {

int ExitInfo::exitCode() const {
  if (WIFEXITED(waitStatus)) return WEXITSTATUS(waitStatus);
  if (WIFSIGNALED(waitStatus)) return 128 + WTERMSIG(waitStatus);
  return 255;
}

bool ExitInfo::signaled() const {
  return WIFSIGNALED(waitStatus);
}

struct ExitMonitor::Watch {
  state::UniqueFd pidfd;
  loop::HandlePtr<loop::Poll> poll;
};

ExitMonitor::ExitMonitor(loop::Loop& loop, KeeperLink* keeper) : loop_(loop), keeper_(keeper) {
  if (!keeper_ && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    spdlog::warn(
        "cannot become the subreaper of containers ({}): their exit codes will be "
        "unknown",
        std::strerror(errno));
  }
}

ExitMonitor::~ExitMonitor() = default;

void ExitMonitor::track(const std::string& owner, pid_t pid,
                        std::function<void(const ExitInfo&)> exited) {
  waiting_[std::make_pair(owner, pid)] = std::move(exited);
  if (keeper_) {
    keeper_->track(owner, pid);
    return;
  }
  watchLocal(owner, pid);
}

void ExitMonitor::expect(const std::string& owner, pid_t pid,
                         std::function<void(const ExitInfo&)> exited) {
  waiting_[std::make_pair(owner, pid)] = std::move(exited);
  if (!keeper_) watchLocal(owner, pid);
}

void ExitMonitor::watchLocal(const std::string& owner, pid_t pid) {
  const auto key = std::make_pair(owner, pid);
  auto watch = std::make_unique<Watch>();
  watch->pidfd.reset(loop::pidfdOpen(pid));
  if (!watch->pidfd.valid()) {
    // Gone already (reaped by whoever was its parent while no daemon ran): status unknown.
    spdlog::warn("container {}: pid {} is gone and its exit status unknown", owner, pid);
    ExitInfo exit;
    exit.pid = pid;
    exit.waitStatus = 255 << 8;
    exit.timeNs = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    loop_.defer([this, owner, exit] { deliver(owner, exit); });
    return;
  }
  int error = 0;
  watch->poll = loop::Poll::create(loop_, watch->pidfd.get(), &error);
  if (!watch->poll) return;
  watch->poll->unref();  // a running container does not keep a stopping daemon alive
  watch->poll->start(UV_READABLE, [this, owner, pid](int, int) { reapLocal(owner, pid); });
  local_[key] = std::move(watch);
}

void ExitMonitor::reapLocal(const std::string& owner, pid_t pid) {
  auto it = local_.find({owner, pid});
  if (it == local_.end()) return;
  siginfo_t info{};
  // Re-parented to the daemon (the subreaper) when the runtime exited, so it is ours to reap.
  if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(it->second->pidfd.get()), &info,
             WEXITED | WNOHANG) != 0 ||
      info.si_pid == 0) {
    if (errno != ECHILD) return;
    spdlog::warn("container {}: pid {} was reaped by another process: exit status unknown", owner,
                 pid);
    info.si_code = CLD_EXITED;
    info.si_status = 255;
  }
  ExitInfo exit;
  exit.pid = pid;
  if (info.si_code == CLD_EXITED) {
    exit.waitStatus = (info.si_status & 0xff) << 8;
  } else {
    exit.waitStatus = info.si_status & 0x7f;
  }
  exit.timeNs = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  // The poll callback is running: free the watch after it.
  loop_.defer([this, owner, pid] { local_.erase({owner, pid}); });
  deliver(owner, exit);
}

void ExitMonitor::deliver(const std::string& owner, const ExitInfo& exit) {
  auto it = waiting_.find({owner, exit.pid});
  if (it == waiting_.end()) {
    if (unclaimed_) unclaimed_(owner, exit);
    return;
  }
  auto exited = std::move(it->second);
  waiting_.erase(it);
  exited(exit);
}

void ExitMonitor::acknowledge(const std::string& owner, pid_t pid) {
  if (keeper_) keeper_->acknowledge(owner, pid);
}

}  // namespace monocri::monitor

namespace monocri::monitor {

void ExitMonitor::hold(const std::string& owner, uint32_t tag, int fd) {
  if (keeper_ && fd >= 0) keeper_->hold(owner, tag, fd);
}

void ExitMonitor::release(const std::string& owner, uint32_t tag) {
  if (keeper_) keeper_->release(owner, tag);
}

}  // namespace monocri::monitor
