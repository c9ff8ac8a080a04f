#include "loop/FsWatch.h"

namespace monocri::loop {

HandlePtr<FsWatch> FsWatch::create(Loop& loop, std::string_view label) {
  HandlePtr<FsWatch> watch(new FsWatch(loop, label));
  uv_fs_event_init(loop.raw(), &watch->handle_);  // cannot fail on Linux
  watch->markInitialized();
  return watch;
}

int FsWatch::start(const std::string& path, std::function<void()> changed) {
  changed_ = std::move(changed);
  return uv_fs_event_start(&handle_, onEvent, path.c_str(), 0);
}

void FsWatch::onEvent(uv_fs_event_t* handle, const char*, int, int) {
  FsWatch* self = fromHandle(handle);
  Loop::Activity activity(self->loop_, self->label_);
  if (self->changed_) self->changed_();
}

}  // namespace monocri::loop
