#include "loop/Timer.h"

namespace monocri::loop {

HandlePtr<Timer> Timer::create(Loop& loop, std::string_view label) {
  HandlePtr<Timer> timer(new Timer(loop, label));
  uv_timer_init(loop.raw(), &timer->handle_);  // cannot fail
  timer->markInitialized();
  return timer;
}

void Timer::start(uint64_t timeoutMs, uint64_t repeatMs, std::function<void()> callback) {
  callback_ = std::move(callback);
  uv_timer_start(&handle_, onTimer, timeoutMs, repeatMs);
}

void Timer::stop() {
  uv_timer_stop(&handle_);
}

bool Timer::active() const {
  return uv_is_active(reinterpret_cast<const uv_handle_t*>(&handle_));
}

void Timer::onTimer(uv_timer_t* handle) {
  Timer* self = fromHandle(handle);
  Loop::Activity activity(self->loop_, self->label_);
  // The callback may restart this timer with a new callback: keep whichever is newer.
  auto callback = std::move(self->callback_);
  self->callback_ = nullptr;
  callback();
  if (!self->callback_) self->callback_ = std::move(callback);
}

}  // namespace monocri::loop
