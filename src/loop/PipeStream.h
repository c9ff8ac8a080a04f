// A connected unix socket on the loop: reads into the loop's shared buffer, queued writes.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "loop/Handle.h"

namespace monocri::loop {

class PipeStream : public Handle<PipeStream, uv_pipe_t> {
 public:
  static HandlePtr<PipeStream> create(Loop& loop);
  // Wraps an already connected socket (socketpair, inherited fd); the stream then owns `fd`.
  // Returns null with `error` set if libuv refuses it.
  static HandlePtr<PipeStream> adopt(Loop& loop, int fd, int* error = nullptr);

  // Client side: connects to the socket at `path`; `done` gets 0 or a libuv error.
  void connect(const std::string& path, std::function<void(int status)> done);

  // `onData` sees bytes that are only valid during the call. `onEnd` runs once, with UV_EOF
  // at an orderly end or a libuv error; reading has stopped by then.
  using DataCallback = std::function<void(std::string_view data)>;
  using EndCallback = std::function<void(int status)>;
  int startReading(DataCallback onData, EndCallback onEnd);
  // Pauses and resumes reading with the callbacks given to startReading.
  void stopReading();
  int resumeReading();
  bool reading() const { return reading_; }

  // Queues `data` for writing; `done` (optional) gets 0 or a libuv error.
  int write(std::string data, std::function<void(int status)> done = nullptr);
  // Bytes handed to write() whose completion has not run yet: the memory writes hold.
  size_t writeQueueBytes() const { return queuedBytes_; }
  // Lets queued writes finish, then shuts down the write side.
  int shutdown(std::function<void(int status)> done = nullptr);

  int fd() const;
  // What the stall detector calls this stream's read callbacks (a literal or long-lived string).
  void setLabel(std::string_view label) { label_ = label; }

 private:
  friend class Handle<PipeStream, uv_pipe_t>;
  explicit PipeStream(Loop& loop) : Handle(loop) {}
  ~PipeStream() = default;
  uv_stream_t* asStream() { return reinterpret_cast<uv_stream_t*>(&handle_); }
  friend class PipeServer;

  struct WriteRequest;
  DataCallback onData_;
  EndCallback onEnd_;
  bool reading_ = false;
  size_t queuedBytes_ = 0;
  std::string_view label_ = "stream read";
};

}  // namespace monocri::loop
