// Blocking or CPU-heavy work on libuv's worker pool, with its result posted back to the loop.
#pragma once

#include <functional>
#include <string_view>

#include "loop/Loop.h"

namespace monocri::loop {

// Runs `work` on a worker thread, then `done` on the loop thread. `work` touches only what its
// closure owns (copies, never loop state); `done` hands the result to the loop's owners.
// Returns 0 or a libuv error (then neither callback runs).
int queueWork(Loop& loop, std::string_view label, std::function<void()> work,
              std::function<void()> done);

}  // namespace monocri::loop
