#include "monitor/OutputPipe.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace monocri::monitor {

using logging::PipePeek;

OutputPipe::OutputPipe(loop::Loop& loop, state::UniqueFd pipe,
                       std::shared_ptr<logging::LogJournal> journal, logging::LogStream stream,
                       uint64_t seen)
    : loop_(loop),
      pipe_(std::move(pipe)),
      journal_(std::move(journal)),
      stream_(stream),
      seen_(seen) {}

std::unique_ptr<OutputPipe> OutputPipe::open(loop::Loop& loop, state::UniqueFd pipe,
                                             std::shared_ptr<logging::LogJournal> journal,
                                             logging::LogStream stream, uint64_t seen,
                                             std::string& error) {
  std::unique_ptr<OutputPipe> self(
      new OutputPipe(loop, std::move(pipe), std::move(journal), stream, seen));
  const std::string label = "watching the container's " + std::string(logStreamName(stream));
  int watched = self->pipe_.get();
  if (self->journal_) {
    self->journal_->adoptContainerPipe(stream, std::move(self->pipe_));
    self->edges_.reset(::epoll_create1(EPOLL_CLOEXEC));
    epoll_event event{};
    event.events = EPOLLIN | EPOLLET;
    if (!self->edges_.valid() ||
        ::epoll_ctl(self->edges_.get(), EPOLL_CTL_ADD, self->fd(), &event) != 0) {
      error = label + ": " + std::strerror(errno);
      return nullptr;
    }
    watched = self->edges_.get();
  }
  int rc = 0;
  self->poll_ = loop::Poll::create(loop, watched, &rc);
  if (!self->poll_) {
    error = label + ": " + uv_strerror(rc);
    return nullptr;
  }
  // A running container does not keep a stopping daemon alive: its output waits in the pipe
  // (held by the keeper) for the next daemon.
  self->poll_->unref();
  return self;
}

OutputPipe::~OutputPipe() = default;

int OutputPipe::fd() const {
  return journal_ ? journal_->containerPipeFd(stream_) : pipe_.get();
}

void OutputPipe::start(DataCallback onData, EndCallback onEnd) {
  onData_ = std::move(onData);
  onEnd_ = std::move(onEnd);
  started_ = true;
  if (journal_) {
    if (const int rc = poll_->start(UV_READABLE, [this](int, int) { onEdge(); }); rc != 0) {
      spdlog::warn("container {}: cannot watch it: {}", logStreamName(stream_), uv_strerror(rc));
      end();
      return;
    }
    // What is there already raised no edge for this set: look now.
    if (!paused_) schedulePeek();
    return;
  }
  resume();
}

void OutputPipe::pause() {
  paused_ = true;
  if (!ended_ && !journal_) poll_->stop();
}

void OutputPipe::resume() {
  paused_ = false;
  if (ended_ || !started_) return;
  if (journal_) {
    schedulePeek();
    return;
  }
  if (const int rc = poll_->start(UV_READABLE | UV_DISCONNECT, [this](int, int) { onReadable(); });
      rc != 0) {
    spdlog::warn("container {}: cannot watch it: {}", logStreamName(stream_), uv_strerror(rc));
    end();
  }
}

void OutputPipe::onReadable() {
  const uv_buf_t buffer = loop_.readBuffer();
  const ssize_t n = readChunk(buffer.base, buffer.len);
  if (n > 0) {
    onData_(std::string_view(buffer.base, static_cast<size_t>(n)));
  } else if (n == 0) {
    end();
  }
}

void OutputPipe::onEdge() {
  epoll_event events[1];
  int n;
  do {
    n = ::epoll_wait(edges_.get(), events, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n > 0 && (events[0].events & (EPOLLHUP | EPOLLERR)) != 0) hangUp_ = true;
  if (!paused_) peekChunk();
}

void OutputPipe::schedulePeek() {
  if (peekScheduled_) return;
  peekScheduled_ = true;
  loop_.defer(lifetime_.watch(), [this] {
    peekScheduled_ = false;
    if (!paused_) peekChunk();
  });
}

void OutputPipe::peekChunk() {
  if (ended_) return;
  const uv_buf_t buffer = loop_.readBuffer();
  size_t got = 0;
  switch (journal_->peek(stream_, seen_, buffer.base, buffer.len, got)) {
    case PipePeek::kData:
      seen_ += got;
      onData_(std::string_view(buffer.base, got));
      // Edge-triggered: nothing says there is more; look again on the next turn.
      if (!paused_ && !ended_) schedulePeek();
      return;
    case PipePeek::kAllSeen:
      // What is left waits for the journal; without writers nothing new comes.
      if (hangUp_) end();
      return;
    case PipePeek::kEmpty:
      return;
    case PipePeek::kEnd:
      end();
      return;
    case PipePeek::kFailed:
      spdlog::warn("looking at the container's {}: {}", logStreamName(stream_),
                   std::strerror(errno));
      end();
      return;
  }
}

ssize_t OutputPipe::readChunk(char* buffer, size_t size) {
  ssize_t n;
  do {
    n = ::read(pipe_.get(), buffer, size);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return n;
  if (errno == EAGAIN) return -1;
  spdlog::warn("reading the container's {}: {}", logStreamName(stream_), std::strerror(errno));
  return 0;  // taken as its end
}

void OutputPipe::end() {
  if (ended_) return;
  ended_ = true;
  poll_->stop();
  if (onEnd_) onEnd_();
}

}  // namespace monocri::monitor
