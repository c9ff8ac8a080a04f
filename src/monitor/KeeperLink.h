// The daemon's end of the keeper socket, on the loop (DESIGN.md, "Processes and exits: a keeper
// under the loop"; the records are in keeper/KeeperProtocol.h).
//
// After adopt(), the keeper first replays what it holds for this daemon (every held stdio
// descriptor, every exit not yet acknowledged), then READY: onReady gets all of it at once.
// Later exits arrive one by one through onExit. Each exit is reported until the daemon
// acknowledges it, so it comes again after a restart if the daemon died before persisting it:
// handling an exit must be idempotent.
//
// Sends never block the loop: the socket is non-blocking, records that meet a full socket wait
// in a queue (a descriptor being held is duplicated for that wait). Received records are
// validated, never trusted: a bad one is logged and skipped, and a descriptor that came where
// none belongs is closed.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "loop/Handle.h"
#include "loop/Loop.h"
#include "loop/Poll.h"
#include "loop/Timer.h"
#include "monitor/keeper/KeeperProtocol.h"
#include "state/UniqueFd.h"

namespace monocri::monitor {

class KeeperLink {
 public:
  struct HeldFd {
    std::string owner;
    uint32_t tag = 0;
    int fd = -1;  // the daemon now owns it
  };
  struct Exit {
    std::string owner;
    pid_t pid = 0;
    int waitStatus = 0;  // as waitpid(2) reports it: WIFEXITED, WEXITSTATUS, WTERMSIG...
    int64_t timeNs = 0;  // when the keeper reaped it, CLOCK_REALTIME
  };
  // A request the keeper could not honour (its table was full, the pid was unknown...).
  struct Refusal {
    RecordType request = RecordType::kNone;  // kNone: the keeper could not read the request
    std::string owner;
    pid_t pid = 0;
    RefusalReason reason = RefusalReason::kNone;
    std::string describe() const;  // "TRACK of abc (pid 12) refused: the keeper's table is full"
  };

  // Takes over `fd` (from takeKeeperFd()): it must be a SOCK_SEQPACKET socket. Null with
  // `error` set otherwise (the fd is closed then too).
  static std::unique_ptr<KeeperLink> adopt(loop::Loop& loop, int fd, std::string& error);
  ~KeeperLink();
  KeeperLink(const KeeperLink&) = delete;
  KeeperLink& operator=(const KeeperLink&) = delete;

  // Called once, when READY arrives, with what the keeper held and the pending exits. Set it
  // right after adopt(); should READY come first, it is delivered when the callback is set.
  void onReady(std::function<void(std::vector<HeldFd>, std::vector<Exit>)> ready);
  // Exits after READY. Exits that arrive before this is set wait for it.
  void onExit(std::function<void(const Exit&)> exited);
  // The keeper is gone (end of file or a socket error): no more records either way.
  void onLost(std::function<void()> lost);
  // Optional: refusals are logged in any case.
  void onRefused(std::function<void(const Refusal&)> refused);

  // Gives the keeper a duplicate of `fd` to hold for `owner`: the caller keeps its own. One
  // descriptor per (owner, tag): holding another with the same tag replaces it.
  void hold(const std::string& owner, uint32_t tag, int fd);
  // The keeper closes the descriptor it holds for `owner` with `tag` (0: all of them).
  void release(const std::string& owner, uint32_t tag = 0);
  // Exits of `pid` belong to `owner` (a pid that already exited is reported at once).
  void track(const std::string& owner, pid_t pid);
  // The daemon has persisted that exit: the keeper forgets it and removes its record.
  void acknowledge(const std::string& owner, pid_t pid);

  bool ready() const { return reader_.ready(); }
  bool lost() const { return lost_; }
  // Records waiting for room on the socket.
  size_t queuedRecords() const { return queue_.size(); }
  // Records received and skipped because they failed validation.
  uint64_t skippedRecords() const { return reader_.skipped(); }

  // What the daemon makes of the keeper's records, one datagram at a time, apart from the socket
  // (so that it can be fuzzed).
  class RecordReader {
   public:
    enum class Outcome { kReplayed, kReady, kExit, kRefused, kSkipped };

    RecordReader() = default;
    ~RecordReader();  // closes descriptors nobody took
    RecordReader(const RecordReader&) = delete;
    RecordReader& operator=(const RecordReader&) = delete;

    // One datagram (`truncated`: it was longer than what was read) and the descriptors that
    // came with it, which the reader owns from now on: kept for takeHeld() or closed.
    Outcome read(std::span<const uint8_t> datagram, std::span<const int> fds, bool truncated);

    bool ready() const { return ready_; }
    uint64_t skipped() const { return skipped_; }
    // After kReady: the replay (the caller owns the descriptors from then on).
    std::vector<HeldFd> takeHeld() { return std::exchange(held_, {}); }
    std::vector<Exit> takeReplayedExits() { return std::exchange(replayedExits_, {}); }
    // After kExit, kRefused.
    const Exit& lastExit() const { return lastExit_; }
    const Refusal& lastRefusal() const { return lastRefusal_; }

   private:
    Outcome skip(const char* why, std::span<const int> fds);

    bool ready_ = false;
    uint64_t skipped_ = 0;
    std::vector<HeldFd> held_;
    std::vector<Exit> replayedExits_;
    Exit lastExit_;
    Refusal lastRefusal_;
  };

 private:
  struct Outgoing {
    std::array<uint8_t, kRecordSize> bytes;
    state::UniqueFd fd;  // a duplicate, for HOLD
  };
  enum class SendResult { kSent, kBlocked, kFailed };

  KeeperLink(loop::Loop& loop, int fd) : loop_(loop), fd_(fd) {}
  void send(const KeeperRecord& record, int fd);
  SendResult sendNow(const uint8_t* bytes, int fd);
  void onEvents(int status, int events);
  void receive();
  void drainQueue();
  void watch();
  void lose(const char* why);
  void deliverReady();

  loop::Loop& loop_;
  state::UniqueFd fd_;
  loop::HandlePtr<loop::Poll> poll_;
  loop::HandlePtr<loop::Timer> retry_;  // after ETOOMANYREFS: too many descriptors in flight
  RecordReader reader_;
  std::deque<Outgoing> queue_;
  bool lost_ = false;
  bool readyPending_ = false;  // READY came before onReady was set
  std::vector<Exit> earlyExits_;
  std::function<void(std::vector<HeldFd>, std::vector<Exit>)> ready_;
  std::function<void(const Exit&)> exited_;
  std::function<void()> lostCallback_;
  std::function<void(const Refusal&)> refused_;
  loop::LifetimeGuard guard_;
};

}  // namespace monocri::monitor
