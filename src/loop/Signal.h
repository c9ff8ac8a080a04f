// A signal watched on the loop (SIGTERM, SIGINT, SIGHUP...), delivered as an ordinary callback.
#pragma once

#include <functional>

#include "loop/Handle.h"

namespace monocri::loop {

class Signal : public Handle<Signal, uv_signal_t> {
 public:
  static HandlePtr<Signal> create(Loop& loop);
  // Returns 0 or a libuv error code.
  int start(int signum, std::function<void(int signum)> callback);

 private:
  friend class Handle<Signal, uv_signal_t>;
  explicit Signal(Loop& loop) : Handle(loop) {}
  ~Signal() = default;

  std::function<void(int)> callback_;
};

}  // namespace monocri::loop
