// The one event loop of the daemon: a libuv loop on one thread that owns all state.
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace monocri::loop {

// What the stall detector saw in one loop turn that took too long.
struct StallReport {
  uint64_t turnBusyNs = 0;        // time spent in the turn's callbacks
  unsigned callbacks = 0;         // top-level callbacks in the turn
  uint64_t longestNs = 0;         // the longest of them
  std::string_view longestLabel;  // what it was (the most specific label set within it)
};

// Held by an object that deferred callbacks refer to: they check it before touching the
// object, which may have been destroyed in between.
class LifetimeGuard {
 public:
  using Watch = std::weak_ptr<const char>;
  Watch watch() const { return token_; }

 private:
  std::shared_ptr<const char> token_ = std::make_shared<const char>(0);
};

// Whether `bytes` lie in the `size` bytes at `buffer` (compared as addresses: they may belong to
// unrelated objects).
inline bool liesWithin(std::string_view bytes, const char* buffer, size_t size) {
  const auto begin = reinterpret_cast<uintptr_t>(buffer);
  const auto at = reinterpret_cast<uintptr_t>(bytes.data());
  return buffer != nullptr && at >= begin && at - begin <= size &&
         bytes.size() <= size - (at - begin);
}

class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* raw() { return &loop_; }

  // Runs until no active handle remains or stop() is called.
  void run();
  void stop() { uv_stop(&loop_); }
  uint64_t nowMs() const { return uv_now(&loop_); }
  // Counts the loop's turns (each ends right before the loop blocks or polls again): readers
  // that bound their work per turn know when a new one began.
  uint64_t turnNumber() const { return turnNumber_; }

  // Runs `fn` on this loop after the current callback returns, before the loop blocks again.
  // Used to free objects whose methods are on the stack and to batch writes.
  void defer(std::function<void()> fn);
  // Same, skipped if the guarded object is gone by then.
  void defer(LifetimeGuard::Watch guard, std::function<void()> fn) {
    defer([guard = std::move(guard), fn = std::move(fn)] {
      if (!guard.expired()) fn();
    });
  }

  // The shared read buffer: a read callback consumes its bytes before it returns (or takes the
  // buffer), so every stream on the loop can read into the same memory.
  uv_buf_t readBuffer();
  bool inReadBuffer(std::string_view bytes) const {
    return liesWithin(bytes, readBuffer_.get(), kReadBufferBytes);
  }
  // Hands the read buffer, with the bytes just read into it, to a caller that keeps them past
  // the callback (a log batch written from where its contents were read, not copied); the next
  // read goes to another buffer. Loop thread only, like giveBackReadBuffer.
  std::unique_ptr<char[]> takeReadBuffer();
  // A taken buffer, done with: kept for the next take or freed.
  void giveBackReadBuffer(std::unique_ptr<char[]> buffer);

  // A flooding container's pipe is read in chunks this big: each chunk costs a loop wake-up, a
  // batch and a hand-over to the log write thread, whatever its size.
  static constexpr size_t kReadBufferBytes = 256 * 1024;

  // Stall detection: every callback a wrapper dispatches is timed; a turn whose callbacks took
  // longer than the threshold in total is reported with the slowest of them.
  void setStallThresholdMs(uint64_t ms) { stallThresholdNs_ = ms * 1'000'000; }
  void setStallReporter(std::function<void(const StallReport&)> reporter) {
    stallReporter_ = std::move(reporter);
  }
  uint64_t stallsReported() const { return stallsReported_; }

  // Brackets one callback dispatched by the loop. Nested activities refine the label that the
  // outermost one is reported under (e.g. "stream read" → "grpc /runtime.v1.RuntimeService/X").
  // The label must outlive the callback: a literal or a string owned by a long-lived registry.
  class Activity {
   public:
    Activity(Loop& loop, std::string_view label);
    ~Activity();
    Activity(const Activity&) = delete;
    Activity& operator=(const Activity&) = delete;

   private:
    Loop& loop_;
    uint64_t startNs_ = 0;
  };

 private:
  static void onPrepare(uv_prepare_t* handle);
  static void onIdle(uv_idle_t* handle);
  void endTurn();
  void runDeferred();

  uv_loop_t loop_{};
  uv_prepare_t turnEnd_{};  // runs right before the loop blocks: the end of a turn
  uv_idle_t deferWake_{};   // active while deferred work waits, so the loop does not block
  std::deque<std::function<void()>> deferred_;

  std::unique_ptr<char[]> readBuffer_;
  std::vector<std::unique_ptr<char[]>> spareReadBuffers_;

  uint64_t stallThresholdNs_ = 50'000'000;
  std::function<void(const StallReport&)> stallReporter_;
  uint64_t stallsReported_ = 0;
  int activityDepth_ = 0;
  std::string_view currentLabel_;
  uint64_t turnBusyNs_ = 0;
  uint64_t turnNumber_ = 0;
  unsigned turnCallbacks_ = 0;
  uint64_t turnLongestNs_ = 0;
  // A copy: the owner of the label may be gone by the end of the turn.
  std::array<char, 96> turnLongestLabel_{};
  size_t turnLongestLabelSize_ = 0;
};

}  // namespace monocri::loop
