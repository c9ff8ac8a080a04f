#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <thread>

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
