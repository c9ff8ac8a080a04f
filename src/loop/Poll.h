// Readiness of a file descriptor the loop does not own (a socket libcurl opened, say).
#pragma once

#include <functional>

#include "loop/Handle.h"

namespace monocri::loop {

class Poll : public Handle<Poll, uv_poll_t> {
 public:
  // Watches `fd` (owned by the caller, which must close it only after this handle). Null with
  // `error` set if libuv refuses the descriptor.
  static HandlePtr<Poll> create(Loop& loop, int fd, int* error = nullptr);

  // `events`: UV_READABLE | UV_WRITABLE. The callback gets the status and the ready events.
  int start(int events, std::function<void(int status, int events)> callback);
  void stop();

 private:
  friend class Handle<Poll, uv_poll_t>;
  explicit Poll(Loop& loop) : Handle(loop) {}
  ~Poll() = default;

  std::function<void(int, int)> callback_;
};

}  // namespace monocri::loop
