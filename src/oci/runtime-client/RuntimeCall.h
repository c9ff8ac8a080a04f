// One run of the OCI runtime binary (or of another helper that speaks through stdio and its exit
// status, such as a CNI plugin), on the loop: started in a process group of its own, its
// stdout and stderr read through pipes (bounded), its JSON log read through a third pipe and
// scanned for the error, and a deadline after which the whole group is killed. Nothing here
// blocks: the exit arrives through a pidfd, output through readiness callbacks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "loop/ChildProcess.h"
#include "loop/Loop.h"
#include "loop/Timer.h"
#include "oci/runtime-client/RuntimeLogScanner.h"
#include "state/UniqueFd.h"

namespace monocri::oci {

// Where the runtime writes its log: the write end of the log pipe, at this descriptor number in
// the child. A path rather than a descriptor because that is what `--log` takes; runc and crun
// open it like any file.
inline constexpr int kRuntimeLogFd = 3;
inline constexpr std::string_view kRuntimeLogPath = "/proc/self/fd/3";

struct RuntimeInvocation {
  // The whole command line; argv[0] is the executable's path.
  std::vector<std::string> argv;
  // The runtime's stdio: a descriptor of the caller's (the child gets a copy; the caller keeps
  // its own), kNull for /dev/null, or kCapture for a pipe read into the outcome (stdout, stderr).
  static constexpr int kNull = -1;
  static constexpr int kCapture = -2;
  int stdinFd = kNull;
  int stdoutFd = kCapture;
  int stderrFd = kCapture;
  // More stdout than this is a broken runtime: it is killed and the call fails.
  size_t stdoutLimit = 64 * 1024;
  uint64_t deadlineMs = 30'000;
  // The runtime's JSON log pipe at kRuntimeLogFd; a helper without one (a CNI plugin) runs
  // without it.
  bool runtimeLog = true;
  std::vector<std::string> env;  // empty: the daemon's environment
};

struct RuntimeOutcome {
  enum class End {
    kExited,          // see `exit`
    kNotStarted,      // see `startError`
    kTimedOut,        // the deadline passed: the group was killed
    kOutputTooLarge,  // stdout passed stdoutLimit: the group was killed
  };
  End end = End::kExited;
  loop::ChildExit exit;
  std::string startError;
  std::string stdoutBytes;
  std::string stderrTail;   // the last bytes the runtime wrote to a captured stderr
  std::string logError;     // the last error of its JSON log, cleaned
  uint64_t elapsedNs = 0;   // from start to the exit seen by the loop
  uint64_t deadlineMs = 0;  // the invocation's, for messages
  size_t stdoutLimit = 0;   // likewise

  bool succeeded() const { return end == End::kExited && !exit.signaled && exit.code == 0; }
};

// A file in memory holding `bytes`, positioned at its start: a helper's stdin, with no pipe to
// feed and no temp file.
state::UniqueFd bufferInMemory(std::string_view bytes, std::string& error);

class RuntimeCall {
 public:
  // Starts the runtime. `done` runs once on the loop, never from within start() (a runtime that
  // cannot be started is reported on the next loop turn).
  static std::unique_ptr<RuntimeCall> start(loop::Loop& loop, RuntimeInvocation invocation,
                                            std::function<void(RuntimeOutcome)> done);
  // A runtime still running is killed with its group and reaped; `done` does not run.
  ~RuntimeCall();
  RuntimeCall(const RuntimeCall&) = delete;
  RuntimeCall& operator=(const RuntimeCall&) = delete;

  bool finished() const { return finished_; }

  // Bytes of a captured stderr that are kept (the tail: a runtime's reason comes last).
  static constexpr size_t kStderrTailBytes = 8 * 1024;

 private:
  class OutputPipe;
  explicit RuntimeCall(std::function<void(RuntimeOutcome)> done);
  void onStdout(std::string_view bytes);
  void onStderr(std::string_view bytes);
  void onExit(loop::ChildExit exit);
  void onDeadline();
  void kill();
  void finish();

  std::function<void(RuntimeOutcome)> done_;
  RuntimeOutcome outcome_;
  uint64_t startNs_ = 0;
  bool finished_ = false;
  RuntimeLogScanner logScanner_;
  std::unique_ptr<OutputPipe> stdout_, stderr_, log_;
  std::unique_ptr<loop::ChildProcess> child_;
  loop::HandlePtr<loop::Timer> deadline_;
  loop::LifetimeGuard lifetime_;
};

}  // namespace monocri::oci
