#include "monitor/keeper/KeeperTables.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>

namespace monocri::monitor {
namespace {

Owner owner(const std::string& name) {
  Owner out;
  EXPECT_TRUE(Owner::parse(name, out));
  return out;
}

bool isOpen(int fd) {
  return fcntl(fd, F_GETFD) >= 0;
}

int openNull() {
  return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

TEST(FixedSlots, AllocatesUpToItsCapacityAndReusesFreedSlots) {
  FixedSlots<HeldFd> slots;
  ASSERT_TRUE(slots.init(3));
  HeldFd* a = slots.allocate(true);
  HeldFd* b = slots.allocate(true);
  HeldFd* c = slots.allocate(true);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(slots.allocate(true), nullptr);
  EXPECT_EQ(slots.size(), 3u);
  slots.release(b);
  EXPECT_EQ(slots.allocate(true), b);  // the freed slot, not a new one
  slots.release(c);
  EXPECT_EQ(slots.end(), 2u);  // scans stop below the highest used slot
  slots.release(a);
  slots.release(b);
  EXPECT_EQ(slots.end(), 0u);
  EXPECT_EQ(slots.size(), 0u);
}

TEST(FixedSlots, UnsentSlotsAreFoundUntilMarkedAndAllBecomeUnsentAgain) {
  FixedSlots<PendingExit> slots;
  ASSERT_TRUE(slots.init(8));
  PendingExit* first = slots.allocate(false);
  PendingExit* known = slots.allocate(true);
  PendingExit* second = slots.allocate(false);
  EXPECT_EQ(slots.unsent(), 2u);
  EXPECT_EQ(slots.firstUnsent(), first);
  slots.markSent(first);
  EXPECT_EQ(slots.firstUnsent(), second);
  slots.markSent(second);
  EXPECT_EQ(slots.firstUnsent(), nullptr);
  slots.markAllUnsent();  // a new daemon
  EXPECT_EQ(slots.unsent(), 3u);
  EXPECT_EQ(slots.firstUnsent(), first);
  slots.release(first);
  EXPECT_EQ(slots.firstUnsent(), known);
  slots.markSent(known);
  // A slot freed below the cursor and reused is found again.
  PendingExit* again = slots.allocate(false);
  EXPECT_EQ(again, first);
  EXPECT_EQ(slots.firstUnsent(), again);
}

TEST(HeldFdTable, FullTableRefusesAndLeavesTheFdToTheCaller) {
  HeldFdTable table;
  ASSERT_TRUE(table.init(2));
  const int a = openNull(), b = openNull(), c = openNull();
  EXPECT_TRUE(table.add(owner("c1"), 1, a));
  EXPECT_TRUE(table.add(owner("c1"), 2, b));
  EXPECT_FALSE(table.add(owner("c2"), 1, c));
  EXPECT_TRUE(isOpen(c));
  ::close(c);
  EXPECT_EQ(table.size(), 2u);
}

TEST(HeldFdTable, ReleaseClosesEveryFdOfThatOwnerOnly) {
  HeldFdTable table;
  ASSERT_TRUE(table.init(8));
  const int a = openNull(), b = openNull(), other = openNull();
  ASSERT_TRUE(table.add(owner("c1"), 1, a));
  ASSERT_TRUE(table.add(owner("c2"), 1, other));
  ASSERT_TRUE(table.add(owner("c1"), 2, b));
  EXPECT_EQ(table.release(owner("c1")), 2u);
  EXPECT_FALSE(isOpen(a));
  EXPECT_FALSE(isOpen(b));
  EXPECT_TRUE(isOpen(other));
  EXPECT_EQ(table.release(owner("c1")), 0u);
  EXPECT_EQ(table.size(), 1u);
  table.closeAll();
  EXPECT_FALSE(isOpen(other));
}

TEST(HeldFdTable, ReleaseByTagClosesOnlyThatFd) {
  HeldFdTable table;
  ASSERT_TRUE(table.init(8));
  const int out = openNull(), in = openNull();
  ASSERT_TRUE(table.add(owner("c1"), 1, out));
  ASSERT_TRUE(table.add(owner("c1"), 3, in));
  EXPECT_EQ(table.release(owner("c1"), 3), 1u);  // stdin_once: the stdin write end only
  EXPECT_FALSE(isOpen(in));
  EXPECT_TRUE(isOpen(out));
  EXPECT_EQ(table.release(owner("c1"), 3), 0u);
  EXPECT_EQ(table.release(owner("c1")), 1u);
  EXPECT_FALSE(isOpen(out));
}

TEST(HeldFdTable, HeldFdsAreReplayedToEachNewDaemon) {
  HeldFdTable table;
  ASSERT_TRUE(table.init(4));
  ASSERT_TRUE(table.add(owner("c1"), 1, openNull()));
  ASSERT_TRUE(table.add(owner("c2"), 1, openNull()));
  EXPECT_EQ(table.slots().firstUnsent(), nullptr);  // the daemon gave them: it knows
  table.slots().markAllUnsent();
  std::set<std::string> replayed;
  while (HeldFd* held = table.slots().firstUnsent()) {
    replayed.insert(std::string(held->owner.view()));
    table.slots().markSent(held);
  }
  EXPECT_EQ(replayed, (std::set<std::string>{"c1", "c2"}));
}

TEST(TrackedPidTable, FullTableRefusesAndRetrackingUpdatesTheOwner) {
  TrackedPidTable table;
  ASSERT_TRUE(table.init(2));
  EXPECT_EQ(table.track(owner("c1"), 10), TrackedPidTable::Result::kAdded);
  EXPECT_EQ(table.track(owner("c2"), 11), TrackedPidTable::Result::kAdded);
  EXPECT_EQ(table.track(owner("c3"), 12), TrackedPidTable::Result::kFull);
  EXPECT_EQ(table.track(owner("exec1"), 10), TrackedPidTable::Result::kUpdated);
  Owner found;
  EXPECT_TRUE(table.take(10, found));
  EXPECT_EQ(found.view(), "exec1");
  EXPECT_FALSE(table.take(10, found));
  EXPECT_EQ(table.track(owner("c3"), 12), TrackedPidTable::Result::kAdded);
  EXPECT_FALSE(table.take(99, found));
}

TEST(UntrackedExitRing, TakeFindsAnExitOnceAndTheNewestOfAReusedPid) {
  UntrackedExitRing ring;
  ASSERT_TRUE(ring.init(4));
  UntrackedExit dropped{};
  EXPECT_FALSE(ring.push(100, 1 << 8, 1, dropped));
  EXPECT_FALSE(ring.push(100, 2 << 8, 2, dropped));
  EXPECT_EQ(ring.size(), 2u);
  UntrackedExit found{};
  ASSERT_TRUE(ring.take(100, found));
  EXPECT_EQ(found.waitStatus, 2 << 8);
  ASSERT_TRUE(ring.take(100, found));
  EXPECT_EQ(found.waitStatus, 1 << 8);
  EXPECT_FALSE(ring.take(100, found));
  EXPECT_EQ(ring.size(), 0u);
}

// The documented overflow policy: the oldest exit is dropped to make room, and reported.
TEST(UntrackedExitRing, OverflowDropsTheOldestExit) {
  UntrackedExitRing ring;
  ASSERT_TRUE(ring.init(3));
  UntrackedExit dropped{};
  for (pid_t pid = 1; pid <= 3; ++pid)
    EXPECT_FALSE(ring.push(pid, 0, pid, dropped));
  EXPECT_TRUE(ring.push(4, 0, 4, dropped));
  EXPECT_EQ(dropped.pid, 1);
  EXPECT_TRUE(ring.push(5, 0, 5, dropped));
  EXPECT_EQ(dropped.pid, 2);
  EXPECT_EQ(ring.droppedTotal(), 2u);
  EXPECT_EQ(ring.size(), 3u);
  UntrackedExit found{};
  EXPECT_FALSE(ring.take(1, found));
  EXPECT_FALSE(ring.take(2, found));
  for (pid_t pid = 3; pid <= 5; ++pid)
    EXPECT_TRUE(ring.take(pid, found)) << pid;
  // A slot emptied by take is not counted as dropped when it is written over.
  EXPECT_FALSE(ring.push(6, 0, 6, dropped));
  EXPECT_EQ(ring.droppedTotal(), 2u);
}

TEST(UntrackedExitRing, AZeroSizedRingKeepsNothing) {
  UntrackedExitRing ring;
  ASSERT_TRUE(ring.init(0));
  UntrackedExit dropped{};
  EXPECT_TRUE(ring.push(7, 0, 1, dropped));
  EXPECT_EQ(dropped.pid, 7);
  UntrackedExit found{};
  EXPECT_FALSE(ring.take(7, found));
}

TEST(PendingExitTable, FullTableRefusesAndAckRemovesExactlyThatExit) {
  PendingExitTable table;
  ASSERT_TRUE(table.init(2));
  ExitInfo a{owner("c1"), 10, 0, 1}, b{owner("c1"), 11, 0, 2}, c{owner("c2"), 10, 0, 3};
  EXPECT_TRUE(table.add(a, true));
  EXPECT_TRUE(table.add(b, false));
  EXPECT_FALSE(table.add(c, true));
  EXPECT_FALSE(table.remove(owner("c2"), 10));  // same pid, other owner
  EXPECT_TRUE(table.remove(owner("c1"), 10));
  EXPECT_EQ(table.find(owner("c1"), 10), nullptr);
  ASSERT_NE(table.find(owner("c1"), 11), nullptr);
  EXPECT_FALSE(table.find(owner("c1"), 11)->onDisk);
  EXPECT_TRUE(table.add(c, true));
  EXPECT_EQ(table.size(), 2u);
}

long residentKiB() {
  long pages = 0, resident = 0;
  FILE* statm = std::fopen("/proc/self/statm", "r");
  if (!statm) return -1;
  if (std::fscanf(statm, "%ld %ld", &pages, &resident) != 2) resident = -1;
  std::fclose(statm);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

TEST(FixedSlots, ABigTableCostsOnlyThePagesInUse) {
  const long before = residentKiB();
  // 1 M slots of ~90 bytes: ~90 MB of address space, of which a page or two is ever touched.
  PendingExitTable table;
  ASSERT_TRUE(table.init(1 << 20));
  ExitInfo exit{owner("c1"), 10, 0, 1};
  for (int i = 0; i < 10'000; ++i) {
    ASSERT_TRUE(table.add(exit, true));
    ASSERT_TRUE(table.remove(exit.owner, exit.pid));
  }
  EXPECT_EQ(table.slots().end(), 0u);
  EXPECT_LT(residentKiB() - before, 1024);
}

}  // namespace
}  // namespace monocri::monitor
