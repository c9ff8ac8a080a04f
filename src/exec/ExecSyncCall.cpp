#include "exec/ExecSyncCall.h"

#include <fmt/format.h>

namespace monocri::exec {

using grpc::Status;
using grpc::StatusCode;

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

ExecSyncCall::~ExecSyncCall() = default;

std::unique_ptr<ExecSyncCall> ExecSyncCall::start(loop::Loop& loop, oci::OciRuntimeClient& runtime,
                                                  monitor::ExitMonitor& exits,
                                                  ExecSyncRequest request, Done done) {
  std::unique_ptr<ExecSyncCall> call(new ExecSyncCall(request.timeoutSeconds, std::move(done)));
  ExecSyncCall* raw = call.get();
  request.process.tty = false;
  request.process.stdin = false;
  raw->process_ = ExecProcess::start(loop, runtime, exits, std::move(request.process), *raw);
  if (request.timeoutSeconds > 0) {
    raw->timeout_ = loop::Timer::create(loop, "ExecSync timeout");
    raw->timeout_->start(static_cast<uint64_t>(request.timeoutSeconds) * 1000, 0, [raw] {
      raw->timedOut_ = true;
      raw->process_->kill();
    });
  }
  return call;
}

void ExecSyncCall::onOutput(logging::LogStream stream, std::string_view bytes) {
  Capture& capture = stream == logging::LogStream::kStdout ? stdout_ : stderr_;
  const size_t room = kMaxOutputBytes - capture.bytes.size();
  if (bytes.size() > room) {
    capture.dropped += bytes.size() - room;
    bytes = bytes.substr(0, room);
  }
  capture.bytes.append(bytes);
}

void ExecSyncCall::onEnded(Status status, int exitCode) {
  if (timeout_) timeout_->stop();
  fitIntoOneResponse(stdout_, stderr_);
  for (Capture* capture : {&stdout_, &stderr_}) {
    if (capture->dropped > 0) {
      capture->bytes += fmt::format(
          "\n[monocri: output truncated: {} more bytes were dropped "
          "after the first {}]\n",
          capture->dropped, capture->bytes.size());
    }
  }
  ExecSyncResult result;
  result.exitCode = exitCode;
  result.stdoutBytes = std::move(stdout_.bytes);
  result.stderrBytes = std::move(stderr_.bytes);
  if (timedOut_) {
    status = Status(
        StatusCode::kDeadlineExceeded,
        fmt::format("command timed out after {} s; its process was killed", timeoutSeconds_));
  }
  // ExecProcess calls this from a clean stack: the owner may free this call in `done`.
  done_(std::move(status), std::move(result));
}

}  // namespace monocri::exec
