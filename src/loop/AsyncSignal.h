// Wakes the loop from another thread: send() may be called from any thread, and the callback
// runs on the loop. Sends that come before the loop got round to the callback are merged into
// one call (libuv's uv_async_t), so the callback must take everything that is waiting.
#pragma once

#include <functional>
#include <string_view>

#include "loop/Handle.h"

namespace monocri::loop {

class AsyncSignal : public Handle<AsyncSignal, uv_async_t> {
 public:
  // Null with *error set (a libuv error code) if the handle cannot be made.
  static HandlePtr<AsyncSignal> create(Loop& loop, std::string_view label,
                                       std::function<void()> callback, int* error = nullptr);
  // Thread-safe. After close() no callback runs; a send racing with the close is harmless as
  // long as the handle's memory is still there, which is the owner's to guarantee (stop the
  // sending thread first).
  void send();

 private:
  friend class Handle<AsyncSignal, uv_async_t>;
  AsyncSignal(Loop& loop, std::string_view label, std::function<void()> callback)
      : Handle(loop), label_(label), callback_(std::move(callback)) {}
  ~AsyncSignal() = default;
  static void onSignal(uv_async_t* handle);

  std::string_view label_;
  std::function<void()> callback_;
};

}  // namespace monocri::loop
