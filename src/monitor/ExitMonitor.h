// Exits of container processes. With the keeper (the normal case) they come through its link:
// the keeper is the subreaper that reaps them and has written each exit to disk first. Without
// a keeper (monocri --no-keeper) the daemon is the subreaper itself and reaps the pids it
// tracks through pidfds; an exit is then lost if the daemon dies.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "loop/Loop.h"
#include "loop/Poll.h"

namespace monocri::monitor {

class KeeperLink;

struct ExitInfo {
  pid_t pid = 0;
  int waitStatus = 0;  // as waitpid(2) reports it
  int64_t timeNs = 0;  // CLOCK_REALTIME when it was reaped
  // The CRI's exit code: the status, or 128 + the signal that killed it.
  int exitCode() const;
  bool signaled() const;
};

class ExitMonitor {
 public:
  // `keeper` null: the daemon becomes the subreaper of what it starts.
  ExitMonitor(loop::Loop& loop, KeeperLink* keeper);
  ~ExitMonitor();

  // Reports the exit of `pid` (owned by `owner`, a container or exec id) once, through `exited`.
  // The owner persists it and then calls acknowledge(): until then a keeper reports it again
  // after a daemon restart.
  void track(const std::string& owner, pid_t pid, std::function<void(const ExitInfo&)> exited);
  // After a daemon restart: waits for the exit of a pid tracked by the daemon before. The keeper
  // still knows it (its exit comes at READY or later); without a keeper the pid is no longer
  // ours to reap and its exit status is reported unknown (255).
  void expect(const std::string& owner, pid_t pid, std::function<void(const ExitInfo&)> exited);
  void acknowledge(const std::string& owner, pid_t pid);
  // The keeper holds a duplicate of `fd` (a container's stdio) for `owner` until release():
  // nothing without a keeper.
  void hold(const std::string& owner, uint32_t tag, int fd);
  // Tag 0: every descriptor held for `owner`, else only the one held with `tag`.
  void release(const std::string& owner, uint32_t tag = 0);
  // Exits that arrived for owners nobody tracks (yet): the keeper's replay after a restart.
  void setUnclaimedHandler(std::function<void(const std::string& owner, const ExitInfo&)> handler) {
    unclaimed_ = std::move(handler);
  }
  bool hasKeeper() const { return keeper_ != nullptr; }
  // Called with each exit from the keeper link.
  void deliver(const std::string& owner, const ExitInfo& exit);

 private:
  struct Watch;
  void reapLocal(const std::string& owner, pid_t pid);
  void watchLocal(const std::string& owner, pid_t pid);

  loop::Loop& loop_;
  KeeperLink* keeper_;
  std::map<std::pair<std::string, pid_t>, std::function<void(const ExitInfo&)>> waiting_;
  std::map<std::pair<std::string, pid_t>, std::unique_ptr<Watch>> local_;
  std::function<void(const std::string&, const ExitInfo&)> unclaimed_;
};

}  // namespace monocri::monitor
