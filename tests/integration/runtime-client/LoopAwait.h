// Test helper: start an asynchronous call, run the loop until its callback ran, return what
// the callback got. A call that never answers fails the test after a time limit instead of
// hanging it.
#pragma once

#include <optional>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "loop/Loop.h"
#include "loop/Timer.h"

namespace monocri::testing {

template <typename... Args, typename Start>
std::tuple<Args...> await(loop::Loop& loop, Start&& start, uint64_t limitMs = 120'000) {
  std::optional<std::tuple<Args...>> result;
  bool expired = false;
  auto limit = loop::Timer::create(loop, "test time limit");
  limit->start(limitMs, 0, [&] {
    expired = true;
    loop.stop();
  });
  start([&](Args... args) {
    result.emplace(std::move(args)...);
    loop.stop();
  });
  while (!result && !expired)
    loop.run();
  limit.reset();
  if (!result) throw std::runtime_error("the call did not answer within the test's time limit");
  return std::move(*result);
}

// Runs the loop until `condition()` holds (checked every millisecond) or `limitMs` passes.
template <typename Condition>
bool runUntil(loop::Loop& loop, Condition&& condition, uint64_t limitMs = 30'000) {
  const uint64_t start = loop.nowMs();
  auto check = loop::Timer::create(loop, "test condition");
  check->start(1, 1, [&] {
    if (condition() || loop.nowMs() - start > limitMs) loop.stop();
  });
  loop.run();
  check.reset();
  return condition();
}

}  // namespace monocri::testing
