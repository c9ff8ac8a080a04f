#include "monitor/ContainerIo.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace monocri::monitor {

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
  int rc = 0;
  stdout_ = loop::PipeStream::adopt(loop_, stdoutFd.get(), &rc);
  if (!stdout_) {
    error = fmt::format("reading the container's stdout: {}", uv_strerror(rc));
    return grpc::Status(grpc::StatusCode::kInternal, error);
  }
  stdoutFd.release();  // the stream owns it now
  stderr_ = loop::PipeStream::adopt(loop_, stderrFd.get(), &rc);
  if (!stderr_) {
    error = fmt::format("reading the container's stderr: {}", uv_strerror(rc));
    return grpc::Status(grpc::StatusCode::kInternal, error);
  }
  stderrFd.release();
  stdout_->setLabel("container stdout");
  stderr_->setLabel("container stderr");
  // A running container does not keep a stopping daemon alive: its output waits in the pipe
  // (held by the keeper) for the next daemon.
  stdout_->unref();
  stderr_->unref();
  return grpc::Status::ok();
}

grpc::Status ContainerIo::attachTerminal(UniqueFd master, std::string& error) {
  if (!mode_.tty || stdout_) {
    error = "a terminal for a container that has no tty, or has one already";
    return grpc::Status(grpc::StatusCode::kInternal, error);
  }
  int rc = 0;
  stdout_ = loop::PipeStream::adopt(loop_, master.get(), &rc);
  if (!stdout_) {
    error = fmt::format("reading the container's terminal: {}", uv_strerror(rc));
    return grpc::Status(grpc::StatusCode::kInternal, error);
  }
  master.release();
  stdout_->setLabel("container terminal");
  stdout_->unref();
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
    if (stdout_) held.emplace_back(HeldStream::kTerminal, stdout_->fd());
    return held;
  }
  if (stdout_) held.emplace_back(HeldStream::kStdout, stdout_->fd());
  if (stderr_) held.emplace_back(HeldStream::kStderr, stderr_->fd());
  if (stdinWrite_.valid()) held.emplace_back(HeldStream::kStdin, stdinWrite_.get());
  return held;
}

int ContainerIo::stdinFd() const {
  if (!mode_.stdin) return -1;
  if (mode_.tty) return stdout_ ? stdout_->fd() : -1;
  return stdinWrite_.get();
}

void ContainerIo::closeStdin() {
  if (mode_.tty) {
    // The terminal is also the output: end of input is what a user types for it (VEOF, ^D).
    // Best effort: a terminal whose input queue is full has a reader that is not reading.
    const int fd = stdinFd();
    [[maybe_unused]] const ssize_t written = fd >= 0 ? ::write(fd, "\x04", 1) : 0;
    return;
  }
  stdinWrite_.reset();
}

void ContainerIo::start(std::function<void()> drained) {
  drained_ = std::move(drained);
  openStreams_ = (stdout_ ? 1 : 0) + (stderr_ ? 1 : 0);
  if (writer_) {
    writer_->setBacklogListener([this] {
      writerBacklogged_ = false;
      updateReading();
    });
  }
  for (auto [stream, which] : {std::pair{stdout_.get(), logging::LogStream::kStdout},
                               {stderr_.get(), logging::LogStream::kStderr}}) {
    if (stream == nullptr) continue;
    const int rc = stream->startReading(
        [this, which](std::string_view bytes) {
          if (writer_) {
            writer_->write(which, bytes);
            // The disk is slower than the container: it waits in its pipe, not in our memory.
            if (writer_->backlogged() && !writerBacklogged_) {
              writerBacklogged_ = true;
              updateReading();
            }
          }
          chargeTurn(bytes.size());
        },
        [this, which](int) { streamEnded(which); });
    if (rc != 0) streamEnded(which);
  }
  if (openStreams_ == 0 && drained_) {
    auto done = std::move(drained_);
    drained_ = nullptr;
    done();
  }
}

void ContainerIo::chargeTurn(size_t bytes) {
  if (loop_.turnNumber() != turn_) {
    turn_ = loop_.turnNumber();
    turnBytes_ = 0;
  }
  turnBytes_ += bytes;
  if (turnBytes_ < kMaxBytesPerTurn || turnSpent_) return;
  // libuv would go on reading this pipe while it has data; stop, and ask again once the loop
  // has polled everything else.
  turnSpent_ = true;
  updateReading();
  loop_.defer(lifetime_.watch(), [this] {
    turnSpent_ = false;
    updateReading();
  });
}

void ContainerIo::updateReading() {
  const bool paused = turnSpent_ || writerBacklogged_;
  for (auto [stream, which] : {std::pair{stdout_.get(), logging::LogStream::kStdout},
                               {stderr_.get(), logging::LogStream::kStderr}}) {
    if (stream == nullptr || ended_[static_cast<size_t>(which)]) continue;
    if (paused) {
      stream->stopReading();
    } else if (const int rc = stream->resumeReading(); rc != 0) {
      streamEnded(which);
    }
  }
}

void ContainerIo::streamEnded(logging::LogStream which) {
  bool& ended = ended_[static_cast<size_t>(which)];
  if (ended) return;
  ended = true;
  if (--openStreams_ == 0 && drained_) {
    auto drained = std::move(drained_);
    drained_ = nullptr;
    drained();
  }
}

}  // namespace monocri::monitor
