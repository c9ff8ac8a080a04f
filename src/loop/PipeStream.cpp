#include "loop/PipeStream.h"

namespace monocri::loop {

struct PipeStream::WriteRequest {
  uv_write_t req{};
  std::string data;
  std::function<void(int)> done;
};

HandlePtr<PipeStream> PipeStream::create(Loop& loop) {
  HandlePtr<PipeStream> stream(new PipeStream(loop));
  uv_pipe_init(loop.raw(), &stream->handle_, 0);
  stream->markInitialized();
  return stream;
}

HandlePtr<PipeStream> PipeStream::adopt(Loop& loop, int fd, int* error) {
  HandlePtr<PipeStream> stream = create(loop);
  if (int rc = uv_pipe_open(&stream->handle_, fd); rc != 0) {
    if (error) *error = rc;
    return nullptr;
  }
  return stream;
}

void PipeStream::connect(const std::string& path, std::function<void(int)> done) {
  struct ConnectRequest {
    uv_connect_t req{};
    std::function<void(int)> done;
  };
  auto* request = new ConnectRequest{{}, std::move(done)};
  request->req.data = request;
  uv_pipe_connect(&request->req, &handle_, path.c_str(), [](uv_connect_t* req, int status) {
    std::unique_ptr<ConnectRequest> request(static_cast<ConnectRequest*>(req->data));
    PipeStream* self = fromHandle(req->handle);
    if (self->closing()) return;  // the owner is gone
    Loop::Activity activity(self->loop_, "stream connect");
    request->done(status);
  });
}

int PipeStream::startReading(DataCallback onData, EndCallback onEnd) {
  onData_ = std::move(onData);
  onEnd_ = std::move(onEnd);
  return resumeReading();
}

int PipeStream::resumeReading() {
  if (reading_) return 0;
  int rc = uv_read_start(
      asStream(),
      [](uv_handle_t* handle, size_t, uv_buf_t* buf) {
        *buf = fromHandle(handle)->loop_.readBuffer();
      },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
        PipeStream* self = fromHandle(stream);
        if (nread == 0 || self->closing()) return;
        Loop::Activity activity(self->loop_, self->label_);
        if (nread > 0) {
          self->onData_(std::string_view(buf->base, static_cast<size_t>(nread)));
          return;
        }
        self->stopReading();
        self->onEnd_(static_cast<int>(nread));
      });
  reading_ = rc == 0;
  return rc;
}

void PipeStream::stopReading() {
  if (!reading_) return;
  uv_read_stop(asStream());
  reading_ = false;
}

int PipeStream::write(std::string data, std::function<void(int)> done) {
  auto* request = new WriteRequest{{}, std::move(data), std::move(done)};
  request->req.data = request;
  uv_buf_t buf = uv_buf_init(request->data.data(), static_cast<unsigned>(request->data.size()));
  queuedBytes_ += request->data.size();
  int rc = uv_write(&request->req, asStream(), &buf, 1, [](uv_write_t* req, int status) {
    std::unique_ptr<WriteRequest> request(static_cast<WriteRequest*>(req->data));
    PipeStream* self = fromHandle(req->handle);
    self->queuedBytes_ -= request->data.size();
    if (self->closing() || !request->done) return;
    Loop::Activity activity(self->loop_, "stream write done");
    request->done(status);
  });
  if (rc != 0) {
    queuedBytes_ -= request->data.size();
    delete request;
  }
  return rc;
}

int PipeStream::shutdown(std::function<void(int)> done) {
  struct ShutdownRequest {
    uv_shutdown_t req{};
    std::function<void(int)> done;
  };
  auto* request = new ShutdownRequest{{}, std::move(done)};
  request->req.data = request;
  int rc = uv_shutdown(&request->req, asStream(), [](uv_shutdown_t* req, int status) {
    std::unique_ptr<ShutdownRequest> request(static_cast<ShutdownRequest*>(req->data));
    PipeStream* self = fromHandle(req->handle);
    if (self->closing() || !request->done) return;
    Loop::Activity activity(self->loop_, "stream shutdown");
    request->done(status);
  });
  if (rc != 0) delete request;
  return rc;
}

int PipeStream::fd() const {
  uv_os_fd_t fd = -1;
  uv_fileno(reinterpret_cast<const uv_handle_t*>(&handle_), &fd);
  return fd;
}

}  // namespace monocri::loop
