#include "monitor/keeper/KeeperTables.h"

#include <unistd.h>

namespace monocri::monitor {

bool HeldFdTable::add(const Owner& owner, uint32_t tag, int fd) {
  HeldFd* entry = slots_.allocate(/*sent=*/true);  // it came from the daemon: it knows
  if (!entry) return false;
  entry->owner = owner;
  entry->tag = tag;
  entry->fd = fd;
  return true;
}

size_t HeldFdTable::release(const Owner& owner, uint32_t tag) {
  size_t closed = 0;
  for (size_t i = 0; i < slots_.end(); ++i) {
    HeldFd* entry = slots_.at(i);
    if (!entry || !(entry->owner == owner) || (tag != 0 && entry->tag != tag)) continue;
    ::close(entry->fd);
    slots_.release(entry);
    ++closed;
  }
  return closed;
}

void HeldFdTable::closeAll() {
  for (size_t i = 0; i < slots_.end(); ++i) {
    if (HeldFd* entry = slots_.at(i)) {
      ::close(entry->fd);
      slots_.release(entry);
    }
  }
}

TrackedPidTable::Result TrackedPidTable::track(const Owner& owner, pid_t pid) {
  for (size_t i = 0; i < slots_.end(); ++i) {
    TrackedPid* entry = slots_.at(i);
    if (entry && entry->pid == pid) {
      entry->owner = owner;
      return Result::kUpdated;
    }
  }
  TrackedPid* entry = slots_.allocate(/*sent=*/true);
  if (!entry) return Result::kFull;
  entry->owner = owner;
  entry->pid = pid;
  return Result::kAdded;
}

bool TrackedPidTable::take(pid_t pid, Owner& owner) {
  for (size_t i = 0; i < slots_.end(); ++i) {
    TrackedPid* entry = slots_.at(i);
    if (entry && entry->pid == pid) {
      owner = entry->owner;
      slots_.release(entry);
      return true;
    }
  }
  return false;
}

bool UntrackedExitRing::init(size_t capacity) {
  entries_ =
      static_cast<UntrackedExit*>(std::calloc(capacity == 0 ? 1 : capacity, sizeof *entries_));
  capacity_ = entries_ ? capacity : 0;
  return entries_ != nullptr;
}

bool UntrackedExitRing::push(pid_t pid, int32_t waitStatus, int64_t timeNs,
                             UntrackedExit& dropped) {
  if (capacity_ == 0) {
    dropped = {true, pid, waitStatus, timeNs};
    ++dropped_;
    return true;
  }
  UntrackedExit& slot = entries_[next_];
  const bool overwrote = slot.valid;
  if (overwrote) {
    dropped = slot;
    ++dropped_;
  } else {
    ++size_;
  }
  slot = {true, pid, waitStatus, timeNs};
  next_ = (next_ + 1) % capacity_;
  if (filled_ < capacity_) ++filled_;
  return overwrote;
}

bool UntrackedExitRing::take(pid_t pid, UntrackedExit& out) {
  // Newest first: should a pid have been reused, the latest exit is the claimed process's.
  for (size_t back = 1; back <= filled_; ++back) {
    UntrackedExit& slot = entries_[(next_ + capacity_ - back) % capacity_];
    if (slot.valid && slot.pid == pid) {
      out = slot;
      slot.valid = false;
      --size_;
      return true;
    }
  }
  return false;
}

bool PendingExitTable::add(const ExitInfo& exit, bool onDisk) {
  PendingExit* entry = slots_.allocate(/*sent=*/false);
  if (!entry) return false;
  entry->exit = exit;
  entry->onDisk = onDisk;
  return true;
}

PendingExit* PendingExitTable::find(const Owner& owner, pid_t pid) {
  for (size_t i = 0; i < slots_.end(); ++i) {
    PendingExit* entry = slots_.at(i);
    if (entry && entry->exit.pid == pid && entry->exit.owner == owner) return entry;
  }
  return nullptr;
}

bool PendingExitTable::remove(const Owner& owner, pid_t pid) {
  PendingExit* entry = find(owner, pid);
  if (!entry) return false;
  slots_.release(entry);
  return true;
}

}  // namespace monocri::monitor
