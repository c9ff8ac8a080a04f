// A libuv fs event watch (inotify) on a directory: the callback runs on the loop when an entry
// in it is created, written, renamed or removed.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "loop/Handle.h"

namespace monocri::loop {

class FsWatch : public Handle<FsWatch, uv_fs_event_t> {
 public:
  static HandlePtr<FsWatch> create(Loop& loop, std::string_view label = "fs watch");

  // Watches `path`; returns 0 or a libuv error (the path is missing, inotify limits).
  int start(const std::string& path, std::function<void()> changed);

 private:
  friend class Handle<FsWatch, uv_fs_event_t>;
  FsWatch(Loop& loop, std::string_view label) : Handle(loop), label_(label) {}
  ~FsWatch() = default;
  static void onEvent(uv_fs_event_t* handle, const char* name, int events, int status);

  std::string_view label_;
  std::function<void()> changed_;
};

}  // namespace monocri::loop
