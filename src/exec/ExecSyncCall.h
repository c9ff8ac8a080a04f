// ExecSync: a command run to its end in a running container through the OCI runtime's `exec`,
// on the loop. Its stdout and stderr are captured up to kMaxOutputBytes each (beyond, read and
// dropped, so that the process never blocks on a full pipe and the daemon never holds more),
// then cut to fit together in one response kubelet accepts (16 MiB); a cut capture ends with a
// marker saying how many bytes were dropped. At the call's timeout the
// process is killed and the call fails with DEADLINE_EXCEEDED, which kubelet reads as a probe
// timeout. The runtime starts the process detached, with the pipes as its own stdio, so its exit
// comes through the exit monitor (the keeper reaps it) like a container's; then its pipes are
// read for kDrainMs more and closed: a background child still holding them
// (`sh -c 'sleep 300 & echo hi'`) does not hold the call, as it does in runc's foreground exec.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "cri-bridge/grpc/Http2Limits.h"
#include "loop/Loop.h"
#include "loop/Timer.h"
#include "monitor/ExitMonitor.h"
#include "monitor/OutputPipe.h"
#include "oci/runtime-client/OciRuntimeClient.h"

namespace monocri::exec {

struct ExecSyncRequest {
  std::string containerId;
  std::string owner;  // the exit monitor's name for the process (at most 64 bytes)
  // The process JSON the runtime runs (written by the caller) and where the runtime writes the
  // process's pid; the caller removes both once the call is done.
  std::string processFile, pidFile;
  int64_t timeoutSeconds = 0;  // 0: none
};

struct ExecSyncResult {
  int exitCode = 0;
  std::string stdoutBytes, stderrBytes;
};

class ExecSyncCall {
 public:
  static constexpr size_t kMaxOutputBytes = 16 * 1024 * 1024;
  // Output bytes of one response: kubelet's message limit less room for the markers and the
  // message's own fields.
  static constexpr size_t kMaxResponseOutputBytes = grpc::kMaxMessageBytes - 64 * 1024;
  static constexpr uint64_t kDrainMs = 200;

  using Done = std::function<void(grpc::Status, ExecSyncResult)>;

  // `done` runs once on the loop, never from within start().
  static std::unique_ptr<ExecSyncCall> start(loop::Loop& loop, oci::OciRuntimeClient& runtime,
                                             monitor::ExitMonitor& exits, ExecSyncRequest request,
                                             Done done);
  // A call still running is abandoned: its pipes close, `done` does not run (the runtime client
  // reaps the runtime; the process, like any exec's, is the container's).
  ~ExecSyncCall();
  ExecSyncCall(const ExecSyncCall&) = delete;
  ExecSyncCall& operator=(const ExecSyncCall&) = delete;

  bool finished() const { return finished_; }

 private:
  struct Capture {
    std::unique_ptr<monitor::OutputPipe> pipe;
    std::string bytes;
    uint64_t dropped = 0;
    bool ended = false;
  };

  ExecSyncCall(loop::Loop& loop, monitor::ExitMonitor& exits, ExecSyncRequest request, Done done);
  grpc::Status openCapture(Capture& capture, logging::LogStream stream, state::UniqueFd& writeEnd);
  static void fitIntoOneResponse(Capture& a, Capture& b);
  void onData(Capture& capture, std::string_view bytes);
  void onPipeEnded(Capture& capture);
  void onTimeout();
  void killProcess();
  void onRuntimeDone(grpc::Status status, pid_t pid);
  void onProcessExit(const monitor::ExitInfo& exit);
  // After the process (or the runtime that could not start it) ended: the pipes are read for
  // kDrainMs more unless they end before.
  void drainThenFinish();
  void finish();

  loop::Loop& loop_;
  monitor::ExitMonitor& exits_;
  ExecSyncRequest request_;
  Done done_;
  Capture stdout_, stderr_;
  loop::HandlePtr<loop::Timer> timeout_, drain_;
  bool timedOut_ = false;
  bool processEnded_ = false;
  pid_t pid_ = 0;
  bool finished_ = false;
  grpc::Status runtimeStatus_;
  ExecSyncResult result_;
  loop::LifetimeGuard lifetime_;
};

}  // namespace monocri::exec
