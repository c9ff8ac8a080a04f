#include "exec/ExecProcess.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "loop/ChildProcess.h"
#include "state/UniqueFd.h"

namespace monocri::exec {

using grpc::Status;
using grpc::StatusCode;
using logging::LogStream;
using state::UniqueFd;

namespace {

Status systemError(const char* what) {
  return Status(StatusCode::kInternal, fmt::format("{}: {}", what, std::strerror(errno)));
}

}  // namespace

ExecProcess::ExecProcess(loop::Loop& loop, monitor::ExitMonitor& exits, ExecProcessRequest request,
                         Handler& handler)
    : loop_(loop), exits_(exits), request_(std::move(request)), handler_(handler) {}

ExecProcess::~ExecProcess() = default;

std::unique_ptr<ExecProcess> ExecProcess::start(loop::Loop& loop, oci::OciRuntimeClient& runtime,
                                                monitor::ExitMonitor& exits,
                                                ExecProcessRequest request, Handler& handler) {
  std::unique_ptr<ExecProcess> process(new ExecProcess(loop, exits, std::move(request), handler));
  ExecProcess* raw = process.get();
  oci::RuntimeExecOptions options;
  options.id = raw->request_.containerId;
  options.processFile = raw->request_.processFile;
  options.pidFile = raw->request_.pidFile;
  UniqueFd stdoutWrite, stderrWrite, stdinRead;
  Status opened;
  if (raw->request_.tty) {
    std::string error;
    raw->console_ = oci::ConsoleSocket::listen(loop, raw->request_.consoleSocket, error);
    if (!raw->console_) {
      opened = Status(StatusCode::kInternal, error);
    } else {
      raw->console_->receive([raw](UniqueFd master, std::string error) {
        raw->onTerminal(std::move(master), std::move(error));
      });
      options.consoleSocket = raw->request_.consoleSocket;
    }
  } else {
    opened = raw->openOutput(LogStream::kStdout, stdoutWrite);
    if (opened.isOk()) opened = raw->openOutput(LogStream::kStderr, stderrWrite);
    if (opened.isOk() && raw->request_.stdin) opened = raw->openInput(stdinRead);
    options.stdoutFd = stdoutWrite.get();
    options.stderrFd = stderrWrite.get();
    options.stdinFd = stdinRead.get();
  }
  auto removeFiles = std::exchange(raw->request_.removeFiles, nullptr);
  if (!opened.isOk()) {
    if (removeFiles) removeFiles();
    loop.defer(raw->lifetime_.watch(), [raw, opened] {
      raw->runtimeStatus_ = opened;
      raw->processEnded_ = true;
      raw->end();
    });
    return process;
  }
  runtime.exec(options, [raw, alive = raw->lifetime_.watch(), &exits, owner = raw->request_.owner,
                         removeFiles = std::move(removeFiles)](Status status, pid_t pid) {
    if (removeFiles) removeFiles();
    if (!alive.expired()) return raw->onRuntimeDone(std::move(status), pid);
    // Abandoned while the runtime started it: its exit is still claimed, or the keeper would
    // keep it among the untracked ones (and a daemon without a keeper, a zombie).
    if (status.isOk() && pid > 0) {
      exits.track(owner, pid, [&exits, owner, pid](const monitor::ExitInfo&) {
        exits.acknowledge(owner, pid);
      });
    }
  });
  // The runtime has its copies (or never will): ours must go, or the pipes would never end.
  return process;
}

Status ExecProcess::openOutput(LogStream stream, UniqueFd& writeEnd) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return systemError("pipe2");
  UniqueFd readEnd(fds[0]);
  writeEnd.reset(fds[1]);
  if (fcntl(readEnd.get(), F_SETFL, O_NONBLOCK) != 0) return systemError("fcntl");
  std::string error;
  auto& pipe = pipes_[static_cast<size_t>(stream)];
  pipe = monitor::OutputPipe::open(loop_, std::move(readEnd), nullptr, stream, 0, error);
  if (!pipe) return Status(StatusCode::kInternal, error);
  pipe->start(
      [this, stream](std::string_view bytes) {
        outputDuringDrain();
        handler_.onOutput(stream, bytes);
      },
      [this, stream] {
        pipeEnded_[static_cast<size_t>(stream)] = true;
        onOutputEnded();
      });
  if (outputPaused_) pipe->pause();
  return Status::ok();
}

Status ExecProcess::openInput(UniqueFd& readEnd) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return systemError("pipe2");
  readEnd.reset(fds[0]);
  UniqueFd writeEnd(fds[1]);
  int rc = 0;
  input_ = loop::PipeStream::adopt(loop_, writeEnd.get(), &rc);
  if (!input_) {
    return Status(StatusCode::kInternal, fmt::format("exec stdin pipe: {}", uv_strerror(rc)));
  }
  writeEnd.release();
  return Status::ok();
}

void ExecProcess::onTerminal(UniqueFd master, std::string error) {
  console_.reset();
  if (!master.valid()) {
    // The runtime fails too (it could not hand over the terminal) and says why.
    runtimeStatus_ = Status(StatusCode::kInternal, "exec terminal: " + error);
    return;
  }
  int rc = 0;
  terminal_ = loop::PipeStream::adopt(loop_, master.get(), &rc);
  if (!terminal_) {
    runtimeStatus_ =
        Status(StatusCode::kInternal, fmt::format("exec terminal: {}", uv_strerror(rc)));
    return;
  }
  master.release();
  terminal_->setLabel("exec terminal");
  applySize();
  terminal_->startReading(
      [this](std::string_view bytes) {
        outputDuringDrain();
        handler_.onOutput(LogStream::kStdout, bytes);
      },
      // EIO once the last process holding the terminal's other side is gone.
      [this](int) {
        terminalEnded_ = true;
        onOutputEnded();
      });
  if (outputPaused_) terminal_->stopReading();
  if (!pendingInput_.empty()) {
    terminal_->write(std::move(pendingInput_), [written = std::move(pendingWritten_)](int) {
      for (const auto& callback : written)
        if (callback) callback();
    });
  }
  pendingInput_.clear();
  pendingWritten_.clear();
}

void ExecProcess::applySize() {
  if (!terminal_ || width_ == 0 || height_ == 0) return;
  winsize size{};
  size.ws_col = width_;
  size.ws_row = height_;
  ioctl(terminal_->fd(), TIOCSWINSZ, &size);  // the process may be gone: nothing to resize
}

void ExecProcess::resize(uint16_t width, uint16_t height) {
  width_ = width;
  height_ = height;
  applySize();
}

void ExecProcess::writeInput(std::string bytes, std::function<void()> written) {
  auto whenDone = [](std::function<void()> callback) {
    return [callback = std::move(callback)](int) {
      if (callback) callback();
    };
  };
  if (request_.tty) {
    if (terminal_ && !terminalEnded_) {
      terminal_->write(std::move(bytes), whenDone(std::move(written)));
      return;
    }
    if (!terminalEnded_ && !ended_) {
      // Before the terminal came: sent with it, and `written` runs then.
      pendingInput_ += bytes;
      pendingWritten_.push_back(std::move(written));
      return;
    }
  } else if (input_ && !inputClosed_) {
    input_->write(std::move(bytes), whenDone(std::move(written)));
    return;
  }
  if (written) loop_.defer(lifetime_.watch(), std::move(written));
}

size_t ExecProcess::inputQueuedBytes() const {
  if (terminal_) return terminal_->writeQueueBytes() + pendingInput_.size();
  if (input_) return input_->writeQueueBytes();
  return pendingInput_.size();
}

void ExecProcess::closeInput() {
  if (request_.tty || inputClosed_) return;
  inputClosed_ = true;
  if (!input_) return;
  // The pipe is closed once what was queued is written; a process that stopped reading does
  // not hold it past the session.
  loop::PipeStream* input = input_.get();
  input->shutdown([this, alive = lifetime_.watch()](int) {
    if (!alive.expired()) input_.reset();
  });
}

void ExecProcess::pauseOutput() {
  if (outputPaused_) return;
  outputPaused_ = true;
  if (drain_ && !ended_) stopDrainClock();
  for (auto& pipe : pipes_)
    if (pipe) pipe->pause();
  if (terminal_ && !terminalEnded_) terminal_->stopReading();
}

void ExecProcess::resumeOutput() {
  if (!outputPaused_) return;
  outputPaused_ = false;
  if (drain_ && !ended_) startDrainClock();
  for (auto& pipe : pipes_)
    if (pipe) pipe->resume();
  if (terminal_ && !terminalEnded_) terminal_->resumeReading();
}

void ExecProcess::onRuntimeDone(Status status, pid_t pid) {
  if (!status.isOk()) {
    if (runtimeStatus_.isOk()) runtimeStatus_ = std::move(status);
    processEnded_ = true;  // it never ran
    console_.reset();
    return drainThenEnd();
  }
  pid_ = pid;
  exits_.track(request_.owner, pid_,
               [this, alive = lifetime_.watch(), &exits = exits_, owner = request_.owner,
                pid = pid_](const monitor::ExitInfo& exit) {
                 exits.acknowledge(owner, pid);
                 if (!alive.expired()) onProcessExit(exit);
               });
  if (killRequested_) kill();  // asked for while the runtime was starting it
}

void ExecProcess::kill() {
  killRequested_ = true;
  if (processEnded_ || pid_ == 0) return;
  UniqueFd pidfd(loop::pidfdOpen(pid_));
  if (pidfd.valid()) loop::pidfdSendSignal(pidfd.get(), SIGKILL);
}

void ExecProcess::onProcessExit(const monitor::ExitInfo& exit) {
  processEnded_ = true;
  exitCode_ = exit.exitCode();
  drainThenEnd();
}

bool ExecProcess::outputEnded() const {
  if (request_.tty) return terminalEnded_ || !terminal_;
  for (size_t i = 0; i < pipes_.size(); ++i)
    if (pipes_[i] && !pipeEnded_[i]) return false;
  return true;
}

void ExecProcess::onOutputEnded() {
  if (processEnded_ && outputEnded()) end();
}

void ExecProcess::drainThenEnd() {
  if (outputEnded()) return end();
  // A child of the process may still hold the pipes, or the kernel may not have handed over
  // all the terminal's output yet. Output is read until none came for kDrainMs (kDrainCapMs at
  // most: a child that keeps writing does not hold the session), then the pipes are closed.
  // The drain's time runs only while the client takes output: a slow one still gets what the
  // process wrote, at its own pace.
  drain_ = loop::Timer::create(loop_, "exec drain");
  drainQuietLeftMs_ = kDrainMs;
  drainCapLeftMs_ = kDrainCapMs;
  if (!outputPaused_) startDrainClock();
}

void ExecProcess::startDrainClock() {
  drainStartedMs_ = loop_.nowMs();
  drain_->start(std::min(drainQuietLeftMs_, drainCapLeftMs_), 0, [this] { end(); });
}

void ExecProcess::stopDrainClock() {
  drain_->stop();
  const uint64_t spent = loop_.nowMs() - drainStartedMs_;
  drainQuietLeftMs_ -= std::min(spent, drainQuietLeftMs_);
  drainCapLeftMs_ -= std::min(spent, drainCapLeftMs_);
}

void ExecProcess::outputDuringDrain() {
  if (!drain_ || ended_ || outputPaused_) return;
  stopDrainClock();
  drainQuietLeftMs_ = kDrainMs;
  startDrainClock();
}

void ExecProcess::end() {
  if (ended_) return;
  ended_ = true;
  if (drain_) drain_->stop();
  for (auto& pipe : pipes_)
    pipe.reset();
  if (terminal_) terminal_->stopReading();
  // From a clean stack: the handler may free this object.
  loop_.defer(lifetime_.watch(), [this] { handler_.onEnded(runtimeStatus_, exitCode_); });
}

}  // namespace monocri::exec
