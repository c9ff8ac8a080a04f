#include "monitor/OutputPipe.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace monocri::monitor {

std::unique_ptr<OutputPipe> OutputPipe::open(loop::Loop& loop, state::UniqueFd pipe, int spoolFd,
                                             uint64_t spoolEnd, std::string_view label,
                                             std::string& error) {
  std::unique_ptr<OutputPipe> self(new OutputPipe(loop, std::move(pipe), spoolFd, spoolEnd, label));
  int rc = 0;
  self->poll_ = loop::Poll::create(loop, self->pipe_.get(), &rc);
  if (!self->poll_) {
    error = std::string("watching the container's ") + std::string(label) + ": " + uv_strerror(rc);
    return nullptr;
  }
  // A running container does not keep a stopping daemon alive: its output waits in the pipe
  // (held by the keeper) for the next daemon.
  self->poll_->unref();
  return self;
}

OutputPipe::~OutputPipe() = default;

void OutputPipe::start(DataCallback onData, EndCallback onEnd) {
  onData_ = std::move(onData);
  onEnd_ = std::move(onEnd);
  resume();
}

void OutputPipe::pause() {
  paused_ = true;
  if (!ended_) poll_->stop();
}

void OutputPipe::resume() {
  paused_ = false;
  if (ended_) return;
  if (const int rc = poll_->start(UV_READABLE | UV_DISCONNECT, [this](int, int) { onReadable(); });
      rc != 0) {
    spdlog::warn("container {}: cannot watch it: {}", label_, uv_strerror(rc));
    end();
  }
}

void OutputPipe::onReadable() {
  const uv_buf_t buffer = loop_.readBuffer();
  const ssize_t n =
      spoolFd_ >= 0 ? spliceChunk(buffer.base, buffer.len) : readChunk(buffer.base, buffer.len);
  if (n > 0) {
    onData_(std::string_view(buffer.base, static_cast<size_t>(n)));
  } else if (n == 0) {
    end();
  }
}

ssize_t OutputPipe::spliceChunk(char* buffer, size_t size) {
  loff_t at = static_cast<loff_t>(spoolEnd_);
  ssize_t moved;
  do {
    moved = ::splice(pipe_.get(), nullptr, spoolFd_, &at, size, SPLICE_F_NONBLOCK);
  } while (moved < 0 && errno == EINTR);
  if (moved == 0) return 0;
  if (moved < 0) {
    if (errno == EAGAIN) return -1;
    // The spool's disk is full, or it cannot be spliced into: output goes on without it (a
    // daemon crash from here on may lose what was in memory), rather than stopping.
    spdlog::warn("container {}: moving output into its spool: {}; reading it directly from now on",
                 label_, std::strerror(errno));
    spoolFd_ = -1;
    return readChunk(buffer, size);
  }
  // Read back what was just stored (from the page cache).
  size_t got = 0;
  while (got < static_cast<size_t>(moved)) {
    const ssize_t n = ::pread(spoolFd_, buffer + got, static_cast<size_t>(moved) - got,
                              static_cast<off_t>(spoolEnd_ + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      spdlog::error("container {}: reading its spool back: {}", label_,
                    n < 0 ? std::strerror(errno) : "short file");
      break;
    }
    got += static_cast<size_t>(n);
  }
  spoolEnd_ += static_cast<uint64_t>(moved);
  return static_cast<ssize_t>(got);
}

ssize_t OutputPipe::readChunk(char* buffer, size_t size) {
  ssize_t n;
  do {
    n = ::read(pipe_.get(), buffer, size);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return n;
  if (errno == EAGAIN) return -1;
  spdlog::warn("reading the container's {}: {}", label_, std::strerror(errno));
  return 0;  // taken as its end
}

void OutputPipe::end() {
  if (ended_) return;
  ended_ = true;
  poll_->stop();
  if (onEnd_) onEnd_();
}

}  // namespace monocri::monitor
