#include "loop/Signal.h"

namespace monocri::loop {

HandlePtr<Signal> Signal::create(Loop& loop) {
  HandlePtr<Signal> signal(new Signal(loop));
  uv_signal_init(loop.raw(), &signal->handle_);
  signal->markInitialized();
  return signal;
}

int Signal::start(int signum, std::function<void(int)> callback) {
  callback_ = std::move(callback);
  return uv_signal_start(
      &handle_,
      [](uv_signal_t* handle, int sig) {
        Signal* self = fromHandle(handle);
        Loop::Activity activity(self->loop_, "signal");
        self->callback_(sig);
      },
      signum);
}

}  // namespace monocri::loop
