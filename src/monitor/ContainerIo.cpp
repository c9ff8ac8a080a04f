#include "monitor/ContainerIo.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace monocri::monitor {

using state::UniqueFd;

std::unique_ptr<ContainerIo> ContainerIo::create(loop::Loop& loop,
                                                 std::unique_ptr<logging::LogWriter> writer,
                                                 std::string& error) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    error = fmt::format("pipe for the container's stdout: {}", std::strerror(errno));
    return nullptr;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    error = fmt::format("pipe for the container's stderr: {}", std::strerror(errno));
    ::close(out[0]);
    ::close(out[1]);
    return nullptr;
  }
  UniqueFd outRead(out[0]), errRead(err[0]);
  std::unique_ptr<ContainerIo> io(new ContainerIo(loop, std::move(writer)));
  io->stdoutWrite_.reset(out[1]);
  io->stderrWrite_.reset(err[1]);
  if (!io->adoptReadEnds(outRead.release(), errRead.release(), error).isOk()) return nullptr;
  return io;
}

std::unique_ptr<ContainerIo> ContainerIo::adopt(loop::Loop& loop,
                                                std::unique_ptr<logging::LogWriter> writer,
                                                UniqueFd stdoutRead, UniqueFd stderrRead,
                                                std::string& error) {
  std::unique_ptr<ContainerIo> io(new ContainerIo(loop, std::move(writer)));
  if (!io->adoptReadEnds(stdoutRead.release(), stderrRead.release(), error).isOk()) {
    return nullptr;
  }
  return io;
}

grpc::Status ContainerIo::adoptReadEnds(int stdoutFd, int stderrFd, std::string& error) {
  int rc = 0;
  stdout_ = loop::PipeStream::adopt(loop_, stdoutFd, &rc);
  if (!stdout_) {
    ::close(stderrFd);
    error = fmt::format("reading the container's stdout: {}", uv_strerror(rc));
    return grpc::Status(grpc::StatusCode::kInternal, error);
  }
  stderr_ = loop::PipeStream::adopt(loop_, stderrFd, &rc);
  if (!stderr_) {
    error = fmt::format("reading the container's stderr: {}", uv_strerror(rc));
    return grpc::Status(grpc::StatusCode::kInternal, error);
  }
  stdout_->setLabel("container stdout");
  stderr_->setLabel("container stderr");
  return grpc::Status::ok();
}

ContainerIo::~ContainerIo() = default;

void ContainerIo::closeContainerEnds() {
  stdoutWrite_.reset();
  stderrWrite_.reset();
}

int ContainerIo::stdoutReadFd() const {
  return stdout_ ? stdout_->fd() : -1;
}
int ContainerIo::stderrReadFd() const {
  return stderr_ ? stderr_->fd() : -1;
}

void ContainerIo::start(std::function<void()> drained) {
  drained_ = std::move(drained);
  openStreams_ = 2;
  for (auto [stream, which] : {std::pair{stdout_.get(), logging::LogStream::kStdout},
                               {stderr_.get(), logging::LogStream::kStderr}}) {
    const int rc = stream->startReading(
        [this, which](std::string_view bytes) {
          if (writer_) writer_->write(which, bytes);
        },
        [this](int) { streamEnded(); });
    if (rc != 0) streamEnded();
  }
}

void ContainerIo::streamEnded() {
  if (openStreams_ == 0) return;
  if (--openStreams_ == 0 && drained_) {
    auto drained = std::move(drained_);
    drained_ = nullptr;
    drained();
  }
}

}  // namespace monocri::monitor
