// A libuv timer. Its callback runs on the loop, timed by the stall detector.
#pragma once

#include <functional>
#include <string_view>

#include "loop/Handle.h"

namespace monocri::loop {

class Timer : public Handle<Timer, uv_timer_t> {
 public:
  static HandlePtr<Timer> create(Loop& loop, std::string_view label = "timer");

  // Fires once after `timeoutMs`, then every `repeatMs` if non-zero. Restarting replaces both.
  void start(uint64_t timeoutMs, uint64_t repeatMs, std::function<void()> callback);
  void stop();
  bool active() const;

 private:
  friend class Handle<Timer, uv_timer_t>;
  Timer(Loop& loop, std::string_view label) : Handle(loop), label_(label) {}
  ~Timer() = default;
  static void onTimer(uv_timer_t* handle);

  std::string_view label_;
  std::function<void()> callback_;
};

}  // namespace monocri::loop
