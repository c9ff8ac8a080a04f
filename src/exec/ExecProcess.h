// A streaming exec: a process the OCI runtime starts in a running container (`exec --detach`),
// its stdio on the loop for a remote client. Without a terminal its stdout and stderr are pipes
// read by the loop and its stdin (when asked for) a pipe the loop writes; with one, the runtime
// sends the pty master over a console socket and everything goes through it. Its exit comes
// through the exit monitor (the keeper reaps it) like a container's. After the exit the output
// is drained until it has been quiet for kDrainMs (kDrainCapMs at most), then the pipes are
// closed, so that a background child holding them (`sh -c 'sleep 300 & echo hi'`) does not hold
// the session, and output still on its way when the process exited is not cut off.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "logging/LogRecord.h"
#include "loop/Loop.h"
#include "loop/PipeStream.h"
#include "loop/Timer.h"
#include "monitor/ExitMonitor.h"
#include "monitor/OutputPipe.h"
#include "oci/runtime-client/ConsoleSocket.h"
#include "oci/runtime-client/OciRuntimeClient.h"

namespace monocri::exec {

struct ExecProcessRequest {
  std::string containerId;
  std::string owner;  // the exit monitor's name for the process (at most 64 bytes)
  // The process JSON (written by the caller, `terminal` set as `tty`) and the pid file; the
  // caller removes both once the process ended.
  std::string processFile, pidFile;
  bool tty = false;
  bool stdin = false;
  std::string consoleSocket;  // with a tty: where the runtime sends the pty master
  // Removes the process and pid files: run once the runtime answered (it reads the one and
  // writes the other until then), even if this process was abandoned meanwhile.
  std::function<void()> removeFiles;
};

class ExecProcess {
 public:
  static constexpr uint64_t kDrainMs = 200;
  static constexpr uint64_t kDrainCapMs = 2000;

  class Handler {
   public:
    virtual ~Handler() = default;
    // Output (a terminal's is stdout), valid during the call.
    virtual void onOutput(logging::LogStream stream, std::string_view bytes) = 0;
    // Once, after the last output: the exit code, or why the process could not run.
    virtual void onEnded(grpc::Status status, int exitCode) = 0;
  };

  // `handler` outlives this object; its callbacks never run from within start().
  static std::unique_ptr<ExecProcess> start(loop::Loop& loop, oci::OciRuntimeClient& runtime,
                                            monitor::ExitMonitor& exits, ExecProcessRequest request,
                                            Handler& handler);
  // A process still running is left to run (as upstream runtimes do for a client that went
  // away); its stdio is closed, so it sees end of input and a broken pipe on output. A terminal
  // closed under it hangs up its session.
  ~ExecProcess();
  ExecProcess(const ExecProcess&) = delete;
  ExecProcess& operator=(const ExecProcess&) = delete;

  // Input for the process (ignored without stdin). What is queued and not yet written counts in
  // inputQueuedBytes(); `written` runs when this piece went out (or could not).
  void writeInput(std::string bytes, std::function<void()> written = nullptr);
  size_t inputQueuedBytes() const;
  // End of input: the stdin pipe is closed once what is queued is written. A terminal has no
  // end of input of its own; it is left open.
  void closeInput();
  // A terminal's new size (TIOCSWINSZ); remembered until the terminal came.
  void resize(uint16_t width, uint16_t height);
  // Back-pressure from a slow client: output stays in the kernel's buffers, the process blocks.
  void pauseOutput();
  void resumeOutput();

  // SIGKILL to the process (ExecSync's timeout). Before the runtime told its pid, it is killed
  // on arrival.
  void kill();

  pid_t pid() const { return pid_; }
  bool ended() const { return ended_; }

 private:
  ExecProcess(loop::Loop& loop, monitor::ExitMonitor& exits, ExecProcessRequest request,
              Handler& handler);
  grpc::Status openOutput(logging::LogStream stream, state::UniqueFd& writeEnd);
  grpc::Status openInput(state::UniqueFd& readEnd);
  void onTerminal(state::UniqueFd master, std::string error);
  void applySize();
  void onRuntimeDone(grpc::Status status, pid_t pid);
  void onProcessExit(const monitor::ExitInfo& exit);
  void onOutputEnded();
  bool outputEnded() const;
  void drainThenEnd();
  void startDrainClock();
  void stopDrainClock();
  void outputDuringDrain();
  void end();

  loop::Loop& loop_;
  monitor::ExitMonitor& exits_;
  ExecProcessRequest request_;
  Handler& handler_;
  std::array<std::unique_ptr<monitor::OutputPipe>, 2> pipes_;  // by logging::LogStream
  std::array<bool, 2> pipeEnded_{};
  loop::HandlePtr<loop::PipeStream> input_;     // the stdin pipe's write end
  loop::HandlePtr<loop::PipeStream> terminal_;  // the pty master: output and input
  bool terminalEnded_ = false;
  std::unique_ptr<oci::ConsoleSocket> console_;
  std::string pendingInput_;  // input that came before the terminal
  std::vector<std::function<void()>> pendingWritten_;
  bool inputClosed_ = false;
  uint16_t width_ = 0, height_ = 0;
  bool outputPaused_ = false;
  loop::HandlePtr<loop::Timer> drain_;
  // Drain time left before the output counts as quiet, and in all; both run only while the
  // client takes output.
  uint64_t drainQuietLeftMs_ = 0, drainCapLeftMs_ = 0, drainStartedMs_ = 0;
  grpc::Status runtimeStatus_;
  bool processEnded_ = false;
  int exitCode_ = 0;
  pid_t pid_ = 0;
  bool killRequested_ = false;
  bool ended_ = false;
  loop::LifetimeGuard lifetime_;
};

}  // namespace monocri::exec
