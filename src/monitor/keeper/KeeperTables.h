// The keeper's state: fixed tables sized once at start and never grown, so that no request
// and no exit can make the keeper allocate. Memory comes from calloc: the kernel hands out a
// page only when a slot on it is first used, so a big table costs what is in use, not its size.
//
// Every table answers "full" instead of growing; what the keeper does then is the caller's
// policy (Keeper.cpp: a REFUSED record to the daemon, a line on stderr).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "monitor/keeper/ExitRecordFile.h"
#include "monitor/keeper/KeeperProtocol.h"

namespace monocri::monitor {

// Slots of `Entry` (which has `bool used` and `bool sent`). A slot's `sent` says whether the
// daemon of the moment has been told about it: all slots become unsent when a new daemon
// starts, and the keeper sends the unsent ones until its socket is full.
template <typename Entry>
class FixedSlots {
  static_assert(std::is_trivially_copyable_v<Entry> && std::is_trivially_destructible_v<Entry>,
                "slots live in zeroed memory");

 public:
  FixedSlots() = default;
  ~FixedSlots() { std::free(entries_); }
  FixedSlots(const FixedSlots&) = delete;
  FixedSlots& operator=(const FixedSlots&) = delete;

  // False if the memory could not be had. Call once.
  bool init(size_t capacity) {
    entries_ = static_cast<Entry*>(std::calloc(capacity == 0 ? 1 : capacity, sizeof(Entry)));
    capacity_ = entries_ ? capacity : 0;
    return entries_ != nullptr;
  }
  size_t capacity() const { return capacity_; }
  size_t size() const { return used_; }
  size_t unsent() const { return unsent_; }

  // A free slot, zeroed and marked used, or null when every slot is used.
  Entry* allocate(bool sent) {
    for (size_t i = freeHint_; i < capacity_; ++i) {
      if (entries_[i].used) continue;
      Entry* entry = &entries_[i];
      *entry = Entry{};
      entry->used = true;
      entry->sent = sent;
      ++used_;
      if (!sent) noteUnsent(i);
      freeHint_ = i + 1;
      if (i >= end_) end_ = i + 1;
      return entry;
    }
    freeHint_ = capacity_;
    return nullptr;
  }

  void release(Entry* entry) {
    const size_t i = static_cast<size_t>(entry - entries_);
    if (!entry->sent) --unsent_;
    *entry = Entry{};
    --used_;
    if (i < freeHint_) freeHint_ = i;
    while (end_ > 0 && !entries_[end_ - 1].used)
      --end_;  // keep scans short
  }

  // Used slots all sit below end(): iterate i in [0, end()) and skip nulls.
  size_t end() const { return end_; }
  Entry* at(size_t i) { return entries_[i].used ? &entries_[i] : nullptr; }

  Entry* firstUnsent() {
    if (unsent_ == 0) return nullptr;
    for (size_t i = unsentHint_; i < end_; ++i) {
      if (entries_[i].used && !entries_[i].sent) {
        unsentHint_ = i;
        return &entries_[i];
      }
    }
    return nullptr;  // unreachable while the counts are right
  }
  void markSent(Entry* entry) {
    if (entry->sent) return;
    entry->sent = true;
    --unsent_;
  }
  void markAllUnsent() {
    for (size_t i = 0; i < end_; ++i)
      entries_[i].sent = false;
    unsent_ = used_;
    unsentHint_ = 0;
  }

 private:
  void noteUnsent(size_t i) {
    ++unsent_;
    if (i < unsentHint_) unsentHint_ = i;
  }

  Entry* entries_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
  size_t end_ = 0;       // one past the highest used slot
  size_t freeHint_ = 0;  // no free slot below this
  size_t unsent_ = 0;
  size_t unsentHint_ = 0;  // no unsent slot below this
};

// Duplicates of containers' stdio descriptors, kept so that a pipe never loses its last reader
// while the daemon is down.
struct HeldFd {
  bool used;
  bool sent;
  Owner owner;
  uint32_t tag;
  int fd;
};

class HeldFdTable {
 public:
  HeldFdTable() = default;
  ~HeldFdTable() { closeAll(); }
  HeldFdTable(const HeldFdTable&) = delete;
  HeldFdTable& operator=(const HeldFdTable&) = delete;

  bool init(size_t capacity) { return slots_.init(capacity); }
  // Takes `fd` over. False when the table is full: `fd` is still the caller's.
  bool add(const Owner& owner, uint32_t tag, int fd);
  // Closes the descriptors `owner` has here (tag 0: all of them, else those with `tag`);
  // returns how many.
  size_t release(const Owner& owner, uint32_t tag = 0);
  void closeAll();
  FixedSlots<HeldFd>& slots() { return slots_; }
  size_t size() const { return slots_.size(); }

 private:
  FixedSlots<HeldFd> slots_;
};

// Which owner each pid's exit belongs to, until it exits.
struct TrackedPid {
  bool used;
  bool sent;  // unused: tracking is never replayed
  Owner owner;
  pid_t pid;
};

class TrackedPidTable {
 public:
  enum class Result { kAdded, kUpdated, kFull };

  bool init(size_t capacity) { return slots_.init(capacity); }
  // A pid tracked again takes the newer owner.
  Result track(const Owner& owner, pid_t pid);
  // The owner of `pid`, forgotten now that it exited; false if it was not tracked.
  bool take(pid_t pid, Owner& owner);
  size_t size() const { return slots_.size(); }

 private:
  FixedSlots<TrackedPid> slots_;
};

// Exits of pids no TRACK has claimed yet: a container's init can exit before the daemon reads
// its pid from the OCI runtime's pid file, and orphans of helpers end up here too.
//
// Overflow policy: when the ring is full, the oldest exit is dropped to make room for the new
// one (a later TRACK of the dropped pid is answered REFUSED kUnknownProcess if the process is
// gone). Old exits are the least likely to be claimed: the daemon tracks a container's pid
// within moments of the runtime's reply.
struct UntrackedExit {
  bool valid;
  pid_t pid;
  int32_t waitStatus;
  int64_t timeNs;
};

class UntrackedExitRing {
 public:
  UntrackedExitRing() = default;
  ~UntrackedExitRing() { std::free(entries_); }
  UntrackedExitRing(const UntrackedExitRing&) = delete;
  UntrackedExitRing& operator=(const UntrackedExitRing&) = delete;

  bool init(size_t capacity);
  // Keeps the exit; true if the oldest one had to be dropped for it (copied to `dropped`).
  bool push(pid_t pid, int32_t waitStatus, int64_t timeNs, UntrackedExit& dropped);
  // The newest exit of `pid`, removed from the ring.
  bool take(pid_t pid, UntrackedExit& out);
  size_t size() const { return size_; }
  uint64_t droppedTotal() const { return dropped_; }

 private:
  UntrackedExit* entries_ = nullptr;
  size_t capacity_ = 0;
  size_t next_ = 0;    // where the next exit goes (the oldest slot once full)
  size_t filled_ = 0;  // slots ever written, up to capacity_
  size_t size_ = 0;    // valid exits
  uint64_t dropped_ = 0;
};

// Exits attributed to an owner and not yet acknowledged by the daemon: sent to each new daemon
// until an ACK removes them. `onDisk` says whether the exit record file was written.
struct PendingExit {
  bool used;
  bool sent;
  bool onDisk;
  ExitInfo exit;
};

class PendingExitTable {
 public:
  bool init(size_t capacity) { return slots_.init(capacity); }
  // False when full.
  bool add(const ExitInfo& exit, bool onDisk);
  PendingExit* find(const Owner& owner, pid_t pid);
  bool remove(const Owner& owner, pid_t pid);
  FixedSlots<PendingExit>& slots() { return slots_; }
  size_t size() const { return slots_.size(); }

 private:
  FixedSlots<PendingExit> slots_;
};

}  // namespace monocri::monitor
