#include "loop/AsyncSignal.h"

namespace monocri::loop {

HandlePtr<AsyncSignal> AsyncSignal::create(Loop& loop, std::string_view label,
                                           std::function<void()> callback, int* error) {
  HandlePtr<AsyncSignal> signal(new AsyncSignal(loop, label, std::move(callback)));
  if (const int rc = uv_async_init(loop.raw(), &signal->handle_, onSignal); rc != 0) {
    if (error != nullptr) *error = rc;
    return nullptr;
  }
  signal->markInitialized();
  return signal;
}

void AsyncSignal::send() {
  uv_async_send(&handle_);
}

void AsyncSignal::onSignal(uv_async_t* handle) {
  AsyncSignal* self = fromHandle(handle);
  if (self->closing()) return;
  Loop::Activity activity(self->loop_, self->label_);
  self->callback_();
}

}  // namespace monocri::loop
