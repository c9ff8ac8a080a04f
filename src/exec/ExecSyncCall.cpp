#include "exec/ExecSyncCall.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "loop/ChildProcess.h"
#include "state/UniqueFd.h"

namespace monocri::exec {

using grpc::Status;
using grpc::StatusCode;
using state::UniqueFd;

// Both captures must fit in one response kubelet accepts (grpc::kMaxMessageBytes, its own
// limit): each keeps at least half of the room, and what one does not use the other may.
void ExecSyncCall::fitIntoOneResponse(Capture& a, Capture& b) {
  constexpr size_t kRoom = kMaxResponseOutputBytes;
  if (a.bytes.size() + b.bytes.size() <= kRoom) return;
  size_t keepA = kRoom / 2, keepB = kRoom - kRoom / 2;
  if (a.bytes.size() < keepA) {
    keepA = a.bytes.size();
    keepB = kRoom - keepA;
  } else if (b.bytes.size() < keepB) {
    keepB = b.bytes.size();
    keepA = kRoom - keepB;
  }
  for (auto [capture, keep] : {std::pair{&a, keepA}, {&b, keepB}}) {
    if (capture->bytes.size() > keep) {
      capture->dropped += capture->bytes.size() - keep;
      capture->bytes.resize(keep);
    }
  }
}

ExecSyncCall::ExecSyncCall(loop::Loop& loop, monitor::ExitMonitor& exits, ExecSyncRequest request,
                           Done done)
    : loop_(loop), exits_(exits), request_(std::move(request)), done_(std::move(done)) {}

ExecSyncCall::~ExecSyncCall() = default;

std::unique_ptr<ExecSyncCall> ExecSyncCall::start(loop::Loop& loop, oci::OciRuntimeClient& runtime,
                                                  monitor::ExitMonitor& exits,
                                                  ExecSyncRequest request, Done done) {
  std::unique_ptr<ExecSyncCall> call(
      new ExecSyncCall(loop, exits, std::move(request), std::move(done)));
  ExecSyncCall* raw = call.get();
  UniqueFd stdoutWrite, stderrWrite;
  Status opened = raw->openCapture(raw->stdout_, logging::LogStream::kStdout, stdoutWrite);
  if (opened.isOk())
    opened = raw->openCapture(raw->stderr_, logging::LogStream::kStderr, stderrWrite);
  if (!opened.isOk()) {
    loop.defer(raw->lifetime_.watch(), [raw, opened] {
      raw->stdout_.pipe.reset();
      raw->stderr_.pipe.reset();
      raw->finished_ = true;
      raw->done_(opened, {});
    });
    return call;
  }

  oci::RuntimeExecOptions options;
  options.id = raw->request_.containerId;
  options.processFile = raw->request_.processFile;
  options.pidFile = raw->request_.pidFile;
  options.stdoutFd = stdoutWrite.get();
  options.stderrFd = stderrWrite.get();
  runtime.exec(options, [raw, alive = raw->lifetime_.watch()](Status status, pid_t pid) {
    if (!alive.expired()) raw->onRuntimeDone(std::move(status), pid);
  });
  // The runtime has its copies of the write ends (or never will): ours must go, or the pipes
  // would never end.
  stdoutWrite.reset();
  stderrWrite.reset();
  if (const int64_t timeout = raw->request_.timeoutSeconds; timeout > 0) {
    raw->timeout_ = loop::Timer::create(loop, "ExecSync timeout");
    raw->timeout_->start(static_cast<uint64_t>(timeout) * 1000, 0, [raw] { raw->onTimeout(); });
  }
  return call;
}

Status ExecSyncCall::openCapture(Capture& capture, logging::LogStream stream, UniqueFd& writeEnd) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return Status(StatusCode::kInternal, fmt::format("pipe2: {}", std::strerror(errno)));
  }
  UniqueFd readEnd(fds[0]);
  writeEnd.reset(fds[1]);
  // Only the daemon's end is non-blocking: the process writes as to any pipe.
  if (fcntl(readEnd.get(), F_SETFL, O_NONBLOCK) != 0) {
    return Status(StatusCode::kInternal, fmt::format("fcntl: {}", std::strerror(errno)));
  }
  std::string error;
  capture.pipe = monitor::OutputPipe::open(loop_, std::move(readEnd), nullptr, stream, 0, error);
  if (!capture.pipe) return Status(StatusCode::kInternal, error);
  capture.pipe->start([this, &capture](std::string_view bytes) { onData(capture, bytes); },
                      [this, &capture] { onPipeEnded(capture); });
  return Status::ok();
}

void ExecSyncCall::onData(Capture& capture, std::string_view bytes) {
  const size_t room = kMaxOutputBytes - capture.bytes.size();
  if (bytes.size() > room) {
    capture.dropped += bytes.size() - room;
    bytes = bytes.substr(0, room);
  }
  capture.bytes.append(bytes);
}

void ExecSyncCall::onPipeEnded(Capture& capture) {
  capture.ended = true;
  if (processEnded_ && stdout_.ended && stderr_.ended) finish();
}

void ExecSyncCall::onTimeout() {
  timedOut_ = true;
  killProcess();
}

// SIGKILL to the exec'd process through a pidfd. Before the runtime has told its pid there is
// nothing to kill yet: onRuntimeDone kills it on arrival.
void ExecSyncCall::killProcess() {
  if (processEnded_ || pid_ == 0) return;
  UniqueFd pidfd(loop::pidfdOpen(pid_));
  if (pidfd.valid()) loop::pidfdSendSignal(pidfd.get(), SIGKILL);
}

void ExecSyncCall::onRuntimeDone(Status status, pid_t pid) {
  if (!status.isOk()) {
    runtimeStatus_ = std::move(status);
    processEnded_ = true;  // it never ran
    if (timeout_) timeout_->stop();
    return drainThenFinish();
  }
  pid_ = pid;
  // The keeper (or, without one, the daemon) reaps it; an exit before this is remembered.
  exits_.track(request_.owner, pid_,
               [this, alive = lifetime_.watch(), &exits = exits_, owner = request_.owner,
                pid = pid_](const monitor::ExitInfo& exit) {
                 exits.acknowledge(owner, pid);
                 if (!alive.expired()) onProcessExit(exit);
               });
  if (timedOut_) killProcess();  // the timeout came while the runtime was starting it
}

void ExecSyncCall::onProcessExit(const monitor::ExitInfo& exit) {
  processEnded_ = true;
  if (timeout_) timeout_->stop();
  result_.exitCode = exit.exitCode();
  drainThenFinish();
}

void ExecSyncCall::drainThenFinish() {
  if (stdout_.ended && stderr_.ended) return finish();
  // A child of the process may still hold the pipes. What is in them now (and comes within
  // kDrainMs) is read, then they are closed.
  drain_ = loop::Timer::create(loop_, "ExecSync drain");
  drain_->start(kDrainMs, 0, [this] { finish(); });
}

void ExecSyncCall::finish() {
  if (finished_) return;
  finished_ = true;
  if (drain_) drain_->stop();
  stdout_.pipe.reset();
  stderr_.pipe.reset();
  fitIntoOneResponse(stdout_, stderr_);
  for (Capture* capture : {&stdout_, &stderr_}) {
    if (capture->dropped > 0) {
      capture->bytes += fmt::format(
          "\n[monocri: output truncated: {} more bytes were dropped "
          "after the first {}]\n",
          capture->dropped, capture->bytes.size());
    }
  }
  result_.stdoutBytes = std::move(stdout_.bytes);
  result_.stderrBytes = std::move(stderr_.bytes);
  Status status = runtimeStatus_;
  if (timedOut_) {
    status = Status(StatusCode::kDeadlineExceeded,
                    fmt::format("command timed out after {} s; its process was killed",
                                request_.timeoutSeconds));
  }
  // Answered from a clean stack: the owner may free this call in `done`.
  loop_.defer(lifetime_.watch(), [this, status] { done_(status, std::move(result_)); });
}

}  // namespace monocri::exec
