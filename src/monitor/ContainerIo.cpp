#include "monitor/ContainerIo.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace monocri::monitor {

using logging::LogStream;
using state::UniqueFd;

namespace {

bool makePipe(UniqueFd& readEnd, UniqueFd& writeEnd, const char* what, std::string& error) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    error = fmt::format("pipe for the container's {}: {}", what, std::strerror(errno));
    return false;
  }
  readEnd.reset(fds[0]);
  writeEnd.reset(fds[1]);
  return true;
}

// Output pipes hold up to 1 MiB (the unprivileged ceiling, fs.pipe-max-size): a flooding
// container then wakes the loop for big chunks, not for every 64 KiB. Pages are only taken while
// they hold output. Best effort: the default 64 KiB works too.
constexpr int kOutputPipeBytes = 1 << 20;

constexpr LogStream kStreams[2] = {LogStream::kStdout, LogStream::kStderr};

}  // namespace

std::unique_ptr<ContainerIo> ContainerIo::create(loop::Loop& loop,
                                                 std::unique_ptr<logging::LogWriter> writer,
                                                 ContainerIoMode mode, std::string& error) {
  std::unique_ptr<ContainerIo> io(new ContainerIo(loop, std::move(writer), mode));
  if (mode.tty) return io;  // everything comes with the terminal
  UniqueFd outRead, errRead;
  if (!makePipe(outRead, io->stdoutWrite_, "stdout", error) ||
      !makePipe(errRead, io->stderrWrite_, "stderr", error)) {
    return nullptr;
  }
  (void)::fcntl(outRead.get(), F_SETPIPE_SZ, kOutputPipeBytes);
  (void)::fcntl(errRead.get(), F_SETPIPE_SZ, kOutputPipeBytes);
  if (mode.stdin && !makePipe(io->stdinRead_, io->stdinWrite_, "stdin", error)) return nullptr;
  if (!io->adoptOutput(std::move(outRead), std::move(errRead), error).isOk()) return nullptr;
  return io;
}

std::unique_ptr<ContainerIo> ContainerIo::adopt(loop::Loop& loop,
                                                std::unique_ptr<logging::LogWriter> writer,
                                                ContainerIoFds fds, std::string& error) {
  ContainerIoMode mode;
  mode.tty = fds.terminal.valid();
  mode.stdin = fds.stdinWrite.valid() || mode.tty;
  std::unique_ptr<ContainerIo> io(new ContainerIo(loop, std::move(writer), mode));
  if (mode.tty) {
    if (!io->attachTerminal(std::move(fds.terminal), error).isOk()) return nullptr;
    return io;
  }
  if (!fds.stdoutRead.valid() || !fds.stderrRead.valid()) {
    error = "the container's stdout or stderr pipe was not given back";
    return nullptr;
  }
  io->stdinWrite_ = std::move(fds.stdinWrite);
  if (!io->adoptOutput(std::move(fds.stdoutRead), std::move(fds.stderrRead), error).isOk()) {
    return nullptr;
  }
  return io;
}

grpc::Status ContainerIo::adoptOutput(UniqueFd stdoutFd, UniqueFd stderrFd, std::string& error) {
  std::shared_ptr<logging::LogJournal> journal = writer_ ? writer_->journal() : nullptr;
  UniqueFd fds[2] = {std::move(stdoutFd), std::move(stderrFd)};
  for (LogStream stream : kStreams) {
    const size_t s = static_cast<size_t>(stream);
    // Reading takes up where the journal stands: its offsets are what left the pipe.
    const uint64_t seen = writer_ && journal ? writer_->streamOffset(s) : 0;
    pipes_[s] = OutputPipe::open(loop_, std::move(fds[s]), journal, stream, seen, error);
    if (!pipes_[s]) return grpc::Status(grpc::StatusCode::kInternal, error);
  }
  return grpc::Status::ok();
}

grpc::Status ContainerIo::attachTerminal(UniqueFd master, std::string& error) {
  if (!mode_.tty || terminal_) {
    error = "a terminal for a container that has no tty, or has one already";
    return grpc::Status(grpc::StatusCode::kInternal, error);
  }
  int rc = 0;
  terminal_ = loop::PipeStream::adopt(loop_, master.get(), &rc);
  if (!terminal_) {
    error = fmt::format("reading the container's terminal: {}", uv_strerror(rc));
    return grpc::Status(grpc::StatusCode::kInternal, error);
  }
  master.release();
  terminal_->setLabel("container terminal");
  // A running container does not keep a stopping daemon alive.
  terminal_->unref();
  return grpc::Status::ok();
}

ContainerIo::~ContainerIo() = default;

void ContainerIo::closeContainerEnds() {
  stdoutWrite_.reset();
  stderrWrite_.reset();
  stdinRead_.reset();
}

std::vector<std::pair<HeldStream, int>> ContainerIo::heldFds() const {
  std::vector<std::pair<HeldStream, int>> held;
  if (mode_.tty) {
    if (terminal_) held.emplace_back(HeldStream::kTerminal, terminal_->fd());
    return held;
  }
  if (pipes_[0]) held.emplace_back(HeldStream::kStdout, pipes_[0]->fd());
  if (pipes_[1]) held.emplace_back(HeldStream::kStderr, pipes_[1]->fd());
  if (const logging::LogJournal* journal = writer_ ? writer_->journal().get() : nullptr) {
    held.emplace_back(HeldStream::kStdoutJournal, journal->heldPipeFd(LogStream::kStdout));
    held.emplace_back(HeldStream::kStderrJournal, journal->heldPipeFd(LogStream::kStderr));
  }
  if (stdinWrite_.valid()) held.emplace_back(HeldStream::kStdin, stdinWrite_.get());
  return held;
}

int ContainerIo::stdinFd() const {
  if (!mode_.stdin) return -1;
  if (mode_.tty) return terminal_ ? terminal_->fd() : -1;
  return stdinWrite_.get();
}

void ContainerIo::writeStdin(std::string bytes, std::function<void()> written) {
  auto done = [written = std::move(written)](int) {
    if (written) written();
  };
  if (!mode_.stdin || stdinClosed_) return done(0);
  if (mode_.tty) {
    if (!terminal_) return done(0);
    terminal_->write(std::move(bytes), std::move(done));
    return;
  }
  if (!stdinStream_) {
    // A descriptor of our own over the same pipe: stdinWrite_ stays blocking for nobody, and
    // the keeper holds that one.
    const int fd = stdinWrite_.valid() ? fcntl(stdinWrite_.get(), F_DUPFD_CLOEXEC, 3) : -1;
    if (fd < 0) return done(0);
    int rc = 0;
    stdinStream_ = loop::PipeStream::adopt(loop_, fd, &rc);
    if (!stdinStream_) {
      ::close(fd);
      return done(0);
    }
    stdinStream_->unref();
  }
  stdinStream_->write(std::move(bytes), std::move(done));
}

size_t ContainerIo::stdinQueuedBytes() const {
  if (mode_.tty) return terminal_ ? terminal_->writeQueueBytes() : 0;
  return stdinStream_ ? stdinStream_->writeQueueBytes() : 0;
}

void ContainerIo::closeStdin() {
  if (stdinClosed_) return;
  stdinClosed_ = true;
  if (stdinStream_) {
    // What attachers queued goes first; then the pipe's last writer of ours is gone.
    loop::PipeStream* stream = stdinStream_.get();
    stream->shutdown([this, alive = lifetime_.watch()](int) {
      if (!alive.expired()) stdinStream_.reset();
    });
  }
  if (mode_.tty) {
    // The terminal is also the output: end of input is what a user types for it (VEOF, ^D),
    // after what attachers typed before.
    if (terminal_) terminal_->write("\x04");
    return;
  }
  stdinWrite_.reset();
}

void ContainerIo::start(std::function<void()> drained) {
  started_ = true;
  drained_ = std::move(drained);
  if (writer_) {
    writer_->setBacklogListener([this] {
      writerBacklogged_ = false;
      updateReading();
    });
  }
  auto onData = [this](LogStream which, std::string_view bytes) {
    if (writer_) {
      writer_->write(which, bytes);
      // The disk is slower than the container: it waits in its pipe, not in our memory.
      if (writer_->backlogged() && !writerBacklogged_) {
        writerBacklogged_ = true;
        updateReading();
      }
    }
    chargeTurn(bytes.size());
    // A tap's callback may remove taps (its own included): walk by key.
    for (uint64_t id = 0;;) {
      auto it = taps_.upper_bound(id);
      if (it == taps_.end()) break;
      id = it->first;
      it->second.onData(which, bytes);
    }
  };
  if (terminal_) {
    openStreams_ = 1;
    ended_[1] = true;
    const int rc = terminal_->startReading(
        [onData](std::string_view bytes) { onData(LogStream::kStdout, bytes); },
        [this](int) { streamEnded(LogStream::kStdout); });
    if (rc != 0) streamEnded(LogStream::kStdout);
  } else {
    openStreams_ = (pipes_[0] ? 1 : 0) + (pipes_[1] ? 1 : 0);
    for (LogStream stream : kStreams) {
      OutputPipe* pipe = pipes_[static_cast<size_t>(stream)].get();
      if (pipe == nullptr) {
        ended_[static_cast<size_t>(stream)] = true;
        continue;
      }
      pipe->start([onData, stream](std::string_view bytes) { onData(stream, bytes); },
                  [this, stream] { streamEnded(stream); });
    }
  }
  if (openStreams_ == 0) outputEnded();
}

void ContainerIo::chargeTurn(size_t bytes) {
  if (loop_.turnNumber() != turn_) {
    turn_ = loop_.turnNumber();
    turnBytes_ = 0;
  }
  turnBytes_ += bytes;
  if (turnBytes_ < kMaxBytesPerTurn || turnSpent_) return;
  // The loop would go on reading this container while it has data; stop, and ask again once
  // the loop has polled everything else.
  turnSpent_ = true;
  updateReading();
  loop_.defer(lifetime_.watch(), [this] {
    turnSpent_ = false;
    updateReading();
  });
}

void ContainerIo::updateReading() {
  const bool paused = turnSpent_ || writerBacklogged_;
  if (terminal_ && !ended_[0]) {
    if (paused) {
      terminal_->stopReading();
    } else if (terminal_->resumeReading() != 0) {
      streamEnded(LogStream::kStdout);
    }
    return;
  }
  for (auto& pipe : pipes_) {
    if (!pipe || pipe->ended()) continue;
    if (paused) {
      pipe->pause();
    } else {
      pipe->resume();
    }
  }
}

void ContainerIo::streamEnded(LogStream which) {
  bool& ended = ended_[static_cast<size_t>(which)];
  if (ended) return;
  ended = true;
  if (--openStreams_ == 0) outputEnded();
}

void ContainerIo::outputEnded() {
  auto taps = std::move(taps_);
  taps_.clear();
  if (drained_) {
    auto drained = std::move(drained_);
    drained_ = nullptr;
    drained();
  }
  for (auto& [id, tap] : taps)
    tap.onEnd();
}

uint64_t ContainerIo::addTap(TapData onData, std::function<void()> onEnd) {
  const uint64_t id = nextTap_++;
  if (started_ && openStreams_ == 0) {
    loop_.defer(lifetime_.watch(), std::move(onEnd));
    return id;
  }
  taps_.emplace(id, Tap{std::move(onData), std::move(onEnd)});
  return id;
}

void ContainerIo::removeTap(uint64_t id) {
  taps_.erase(id);
}

}  // namespace monocri::monitor
