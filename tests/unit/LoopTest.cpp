#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>

#include "loop/ChildProcess.h"
#include "loop/Loop.h"
#include "loop/Timer.h"
#include "loop/WorkQueue.h"

namespace monocri::loop {
namespace {

TEST(Loop, TimerFiresAndRunEndsWhenNothingIsLeft) {
  Loop loop;
  int fired = 0;
  auto timer = Timer::create(loop);
  timer->start(1, 0, [&] { ++fired; });
  loop.run();
  EXPECT_EQ(fired, 1);
}

TEST(Loop, RepeatingTimerStopsItselfAndCanReplaceItsCallback) {
  Loop loop;
  int first = 0, second = 0;
  auto timer = Timer::create(loop);
  timer->start(1, 1, [&] {
    if (++first == 3) {
      timer->start(1, 0, [&] { ++second; });
    }
  });
  loop.run();
  EXPECT_EQ(first, 3);
  EXPECT_EQ(second, 1);
}

TEST(Loop, DroppingAHandleStopsItsCallbacks) {
  Loop loop;
  int fired = 0;
  auto timer = Timer::create(loop);
  timer->start(5, 0, [&] { ++fired; });
  timer.reset();  // closes; freed in the close callback
  loop.run();
  EXPECT_EQ(fired, 0);
}

TEST(Loop, DeferredWorkRunsInOrderBeforeTheLoopBlocks) {
  Loop loop;
  std::vector<int> order;
  auto timer = Timer::create(loop);
  // A timer far in the future keeps the loop alive: deferred work must not wait for it.
  timer->start(60'000, 0, [] {});
  loop.defer([&] {
    order.push_back(1);
    loop.defer([&] { order.push_back(3); });
  });
  loop.defer([&] {
    order.push_back(2);
    loop.defer([&] { timer->stop(); });
  });
  const uint64_t start = uv_hrtime();
  loop.run();
  EXPECT_LT(uv_hrtime() - start, 5'000'000'000ull);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(Loop, GuardedDeferSkipsWhenTheObjectIsGone) {
  Loop loop;
  bool ran = false;
  {
    LifetimeGuard guard;
    loop.defer(guard.watch(), [&] { ran = true; });
  }
  loop.run();
  EXPECT_FALSE(ran);
}

TEST(LoopStallDetector, ReportsASlowTurnWithItsLabel) {
  Loop loop;
  loop.setStallThresholdMs(20);
  std::vector<StallReport> reports;
  loop.setStallReporter([&](const StallReport& r) { reports.push_back(r); });
  auto fast = Timer::create(loop, "fast timer");
  auto slow = Timer::create(loop, "slow timer");
  fast->start(1, 0, [] {});
  slow->start(30, 0, [&] {
    Loop::Activity inner(loop, "grpc /runtime.v1.RuntimeService/Slow");
    usleep(60'000);
  });
  loop.run();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_GE(reports[0].turnBusyNs, 60'000'000u);
  EXPECT_GE(reports[0].longestNs, 60'000'000u);
  // The innermost label says what was running.
  EXPECT_EQ(reports[0].longestLabel, "grpc /runtime.v1.RuntimeService/Slow");
  EXPECT_EQ(loop.stallsReported(), 1u);
}

TEST(LoopStallDetector, ManySmallCallbacksInOneTurnAddUp) {
  Loop loop;
  loop.setStallThresholdMs(20);
  std::vector<StallReport> reports;
  loop.setStallReporter([&](const StallReport& r) { reports.push_back(r); });
  std::vector<HandlePtr<Timer>> timers;
  for (int i = 0; i < 5; ++i) {
    timers.push_back(Timer::create(loop, "timer"));
    timers.back()->start(10, 0, [] { usleep(6'000); });  // same due time: one turn
  }
  loop.run();
  ASSERT_GE(reports.size(), 1u);
  EXPECT_GE(reports[0].callbacks, 2u);
  EXPECT_GE(reports[0].turnBusyNs, 20'000'000u);
}

TEST(LoopStallDetector, QuietLoopReportsNothing) {
  Loop loop;
  loop.setStallThresholdMs(50);
  int reports = 0;
  loop.setStallReporter([&](const StallReport&) { ++reports; });
  auto timer = Timer::create(loop);
  int ticks = 0;
  timer->start(1, 1, [&] {
    if (++ticks == 20) timer->stop();
  });
  loop.run();
  EXPECT_EQ(reports, 0);
}

TEST(WorkQueue, WorkRunsOffTheLoopThreadAndDoneOnIt) {
  Loop loop;
  const auto loopThread = std::this_thread::get_id();
  std::thread::id workThread, doneThread;
  int result = 0;
  ASSERT_EQ(queueWork(
                loop, "test work",
                [&workThread, &result] {
                  workThread = std::this_thread::get_id();
                  result = 42;
                },
                [&] { doneThread = std::this_thread::get_id(); }),
            0);
  loop.run();
  EXPECT_NE(workThread, loopThread);
  EXPECT_EQ(doneThread, loopThread);
  EXPECT_EQ(result, 42);
}

}  // namespace
}  // namespace monocri::loop

namespace {

// Reads everything from `fd` until its writers are gone.
std::string drain(int fd) {
  std::string out;
  char buffer[256];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;)
    out.append(buffer, static_cast<size_t>(n));
  return out;
}

}  // namespace

TEST(ChildProcess, GetsExactlyTheDescriptorsMapped) {
  monocri::loop::Loop loop;
  int out[2], extra[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(extra, O_CLOEXEC), 0);
  monocri::loop::ChildProcess::Options options;
  options.argv = {"/bin/sh", "-c", "echo via-3 >&3; ls /proc/self/fd | sort -n | tr '\\n' ' '"};
  options.fds = {{out[1], 1}, {extra[1], 3}};
  std::string error;
  std::optional<monocri::loop::ChildExit> exit;
  auto child = monocri::loop::ChildProcess::spawn(
      loop, options, [&](monocri::loop::ChildExit e) { exit = e; }, error);
  ASSERT_TRUE(child) << error;
  ::close(out[1]);
  ::close(extra[1]);
  loop.run();
  ASSERT_TRUE(exit && !exit->signaled && exit->code == 0);
  EXPECT_EQ(drain(extra[0]), "via-3\n");
  // 0, 1, 2, 3 and the descriptor ls itself opens on /proc/self/fd: nothing else leaked.
  EXPECT_EQ(drain(out[0]), "0 1 2 3 4 ");
  ::close(out[0]);
  ::close(extra[0]);
}

TEST(ChildProcess, ADescriptorAboveTheLimitFailsTheSpawnInsteadOfVanishing) {
  monocri::loop::Loop loop;
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  // A source descriptor near the soft limit: its staging copy would land past it.
  const int high = ::fcntl(1, F_DUPFD_CLOEXEC, 200);
  ASSERT_GE(high, 200);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(high) + 2;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  monocri::loop::ChildProcess::Options options;
  options.argv = {"/bin/true"};
  options.fds = {{high, 3}, {high, 4}, {high, 5}};
  std::string error;
  auto child = monocri::loop::ChildProcess::spawn(loop, options, nullptr, error);
  setrlimit(RLIMIT_NOFILE, &saved);
  ::close(high);
  EXPECT_FALSE(child);
  EXPECT_NE(error.find("descriptor limit"), std::string::npos) << error;
}
