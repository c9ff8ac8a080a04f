// Lifetime of libuv handles, once for all wrappers (the pattern of Node's HandleWrap).
//
// A handle lives in a heap object that only its uv_close callback frees: libuv may still touch
// the handle after uv_close() returns, so no destructor ever closes a handle synchronously.
// Owners hold a HandlePtr; dropping it requests the close. close() is idempotent, and no
// callback of the wrapper runs after it.
#pragma once

#include <uv.h>

#include <memory>

#include "loop/Loop.h"

namespace monocri::loop {

template <typename Derived, typename UvHandle>
class Handle {
 public:
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  void close() {
    if (state_ == State::kClosing) return;
    if (state_ == State::kUninitialized) {  // libuv never saw it: free directly
      delete static_cast<Derived*>(this);
      return;
    }
    state_ = State::kClosing;
    uv_close(asHandle(),
             [](uv_handle_t* h) { delete static_cast<Derived*>(static_cast<Handle*>(h->data)); });
  }
  bool closing() const { return state_ == State::kClosing; }
  Loop& loop() const { return loop_; }

  // An unreferenced handle does not keep the loop running.
  void unref() { uv_unref(asHandle()); }
  void ref() { uv_ref(asHandle()); }

 protected:
  explicit Handle(Loop& loop) : loop_(loop) { handle_.data = static_cast<Handle*>(this); }
  ~Handle() = default;

  // Call after the uv_*_init of handle_ succeeded.
  void markInitialized() {
    handle_.data = static_cast<Handle*>(this);
    state_ = State::kOpen;
  }
  uv_handle_t* asHandle() { return reinterpret_cast<uv_handle_t*>(&handle_); }
  static Derived* fromHandle(const void* uvHandle) {
    auto* h = reinterpret_cast<const uv_handle_t*>(uvHandle);
    return static_cast<Derived*>(static_cast<Handle*>(h->data));
  }

  Loop& loop_;
  UvHandle handle_{};

 private:
  enum class State { kUninitialized, kOpen, kClosing };
  State state_ = State::kUninitialized;
};

struct HandleCloser {
  template <typename T>
  void operator()(T* handle) const {
    handle->close();
  }
};

template <typename T>
using HandlePtr = std::unique_ptr<T, HandleCloser>;

}  // namespace monocri::loop
