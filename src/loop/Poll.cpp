#include "loop/Poll.h"

namespace monocri::loop {

HandlePtr<Poll> Poll::create(Loop& loop, int fd, int* error) {
  HandlePtr<Poll> poll(new Poll(loop));
  if (int rc = uv_poll_init_socket(loop.raw(), &poll->handle_, fd); rc != 0) {
    if (error) *error = rc;
    return nullptr;  // never initialized: freed at once
  }
  poll->markInitialized();
  return poll;
}

int Poll::start(int events, std::function<void(int, int)> callback) {
  callback_ = std::move(callback);
  return uv_poll_start(&handle_, events, [](uv_poll_t* handle, int status, int ready) {
    Poll* self = fromHandle(handle);
    if (self->closing()) return;
    Loop::Activity activity(self->loop_, "poll");
    // The callback may restart this handle with a new callback: keep whichever is newer.
    auto callback = std::move(self->callback_);
    self->callback_ = nullptr;
    callback(status, ready);
    if (!self->callback_) self->callback_ = std::move(callback);
  });
}

void Poll::stop() {
  uv_poll_stop(&handle_);
}

}  // namespace monocri::loop
