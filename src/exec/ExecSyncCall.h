// ExecSync: a command run to its end in a running container (an ExecProcess without stdin or
// terminal), its output collected. stdout and stderr are captured up to kMaxOutputBytes each
// (beyond, read and dropped, so that the process never blocks on a full pipe and the daemon
// never holds more), then cut to fit together in one response kubelet accepts (16 MiB); a cut
// capture ends with a marker saying how many bytes were dropped. At the call's timeout the
// process is killed and the call fails with DEADLINE_EXCEEDED, which kubelet reads as a probe
// timeout. ExecProcess drains the pipes for a bounded time after the exit, so a background
// child holding them (`sh -c 'sleep 300 & echo hi'`) does not hold the call, as it does in
// runc's foreground exec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "cri-bridge/grpc/Http2Limits.h"
#include "exec/ExecProcess.h"
#include "loop/Loop.h"
#include "loop/Timer.h"

namespace monocri::exec {

struct ExecSyncRequest {
  // The process as the runtime runs it (no terminal, no stdin); its files are removed once the
  // runtime answered.
  ExecProcessRequest process;
  int64_t timeoutSeconds = 0;  // 0: none
};

struct ExecSyncResult {
  int exitCode = 0;
  std::string stdoutBytes, stderrBytes;
};

class ExecSyncCall final : private ExecProcess::Handler {
 public:
  static constexpr size_t kMaxOutputBytes = 16 * 1024 * 1024;
  // Output bytes of one response: kubelet's message limit less room for the markers and the
  // message's own fields.
  static constexpr size_t kMaxResponseOutputBytes = grpc::kMaxMessageBytes - 64 * 1024;

  using Done = std::function<void(grpc::Status, ExecSyncResult)>;

  // `done` runs once on the loop, never from within start().
  static std::unique_ptr<ExecSyncCall> start(loop::Loop& loop, oci::OciRuntimeClient& runtime,
                                             monitor::ExitMonitor& exits, ExecSyncRequest request,
                                             Done done);
  // A call still running is abandoned: its pipes close, `done` does not run (the process, like
  // any exec's, is the container's).
  ~ExecSyncCall() override;
  ExecSyncCall(const ExecSyncCall&) = delete;
  ExecSyncCall& operator=(const ExecSyncCall&) = delete;

 private:
  struct Capture {
    std::string bytes;
    uint64_t dropped = 0;
  };

  ExecSyncCall(int64_t timeoutSeconds, Done done)
      : timeoutSeconds_(timeoutSeconds), done_(std::move(done)) {}
  static void fitIntoOneResponse(Capture& a, Capture& b);
  void onOutput(logging::LogStream stream, std::string_view bytes) override;
  void onEnded(grpc::Status status, int exitCode) override;

  int64_t timeoutSeconds_;
  Done done_;
  Capture stdout_, stderr_;
  loop::HandlePtr<loop::Timer> timeout_;
  bool timedOut_ = false;
  std::unique_ptr<ExecProcess> process_;
};

}  // namespace monocri::exec
