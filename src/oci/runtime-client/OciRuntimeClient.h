// The OCI runtime's command line (runc's, which crun shares), called from the loop: every call
// is a child process watched asynchronously, with a deadline, its output bounded, and its
// failure turned into a gRPC status that carries the runtime's own reason, the verb and the
// container id.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "loop/Loop.h"
#include "oci/OciRuntimeBinary.h"
#include "oci/runtime-client/OciState.h"
#include "oci/runtime-client/RuntimeCall.h"

namespace monocri::oci {

struct RuntimeCreateOptions {
  std::string id;
  std::string bundle;   // directory holding config.json
  std::string pidFile;  // where the runtime writes the container's pid (required)
  // tty containers: the socket the runtime sends the pty master to (see ConsoleSocket).
  std::string consoleSocket;
  // Descriptors of the caller's that become the runtime's 0, 1, 2 and therefore the container's
  // (-1: /dev/null). Copied into the runtime; the caller keeps and closes its own.
  int stdinFd = -1;
  int stdoutFd = -1;
  int stderrFd = -1;
};

struct RuntimeExecOptions {
  std::string id;
  std::string processFile;  // the OCI spec's "process" object as JSON: args, env, user...
  std::string pidFile;      // where the runtime writes the exec'd process's pid
  // As RuntimeCreateOptions': the runtime's stdio and so the process's (-1: /dev/null).
  int stdinFd = -1;
  int stdoutFd = -1;
  int stderrFd = -1;
  // A process with a terminal: where the runtime sends its pty master (see ConsoleSocket).
  std::string consoleSocket;
};

struct RuntimeDeadlines {
  uint64_t createMs = 240'000;  // image rootfs on a slow disk, many containers at once
  uint64_t otherMs = 30'000;
};

class OciRuntimeClient {
 public:
  // `root`: the runtime's --root, its state directory (e.g. <run_root>/runc).
  OciRuntimeClient(loop::Loop& loop, OciRuntimeBinary& binary, std::string root,
                   RuntimeDeadlines deadlines = {});
  // Runtimes still running are killed and reaped; their callbacks never run.
  ~OciRuntimeClient();
  OciRuntimeClient(const OciRuntimeClient&) = delete;
  OciRuntimeClient& operator=(const OciRuntimeClient&) = delete;

  // `runtime create`, then the pid file is read (pid > 0). A create that fails leaves no
  // container behind: after a deadline or an unreadable pid file the container is force-deleted
  // before the error is answered.
  void create(const RuntimeCreateOptions& options,
              std::function<void(grpc::Status, pid_t pid)> done);
  void start(const std::string& id, std::function<void(grpc::Status)> done);
  // `signal` is a number (1-64); `all`: every process of the container (runc kill --all).
  void kill(const std::string& id, int signal, bool all, std::function<void(grpc::Status)> done);
  // `runtime delete [--force]`: the container's state and cgroups go. With force a running
  // container is killed first, and a container that does not exist is fine.
  void remove(const std::string& id, bool force, std::function<void(grpc::Status)> done);
  void state(const std::string& id, std::function<void(grpc::Status, OciState)> done);
  // `runtime exec --detach --process FILE --pid-file FILE ID`: the runtime starts the process
  // with the given stdio as its own (no copying runtime in between, which would wait for every
  // holder of the pipes to close them) and exits; the process is then the subreaper's, its pid
  // in the pid file, which is read: `done` gets it (> 0), or the status says why the process
  // could not be started.
  void exec(const RuntimeExecOptions& options, std::function<void(grpc::Status, pid_t pid)> done);
  // `runtime update --resources -`: `linuxResources` is the OCI spec's linux.resources object.
  void update(const std::string& id, const nlohmann::json& linuxResources,
              std::function<void(grpc::Status)> done);

  // Nanoseconds spent waiting for runtime processes, summed over calls (calls at once overlap,
  // so this can exceed wall time): what the start-latency benchmark subtracts.
  uint64_t runtimeNanos() const { return runtimeNanos_; }
  uint64_t callsFinished() const { return callsFinished_; }
  size_t callsInFlight() const { return calls_.size(); }
  const std::string& root() const { return root_; }

  // Runtime stdout read for `state`; more is a broken runtime.
  static constexpr size_t kMaxStateOutputBytes = kMaxOciStateBytes;

 private:
  using Finished = std::function<void(RuntimeOutcome)>;
  // Answers on the next loop turn (never from within the caller's call), unless this is gone.
  void answerLater(std::function<void()> answer) {
    loop_.defer(lifetime_.watch(), std::move(answer));
  }
  // Runs `runtime <global flags> args...`; `finished` runs on the loop from a clean stack.
  void run(std::vector<std::string> args, RuntimeInvocation invocation, Finished finished);
  grpc::Status failure(const std::string& verb, const std::string& id,
                       const RuntimeOutcome& outcome) const;
  // Reads a runtime's pid file on a worker; `done` gets the pid (> 0) or why there is none.
  void readPidFile(const std::string& path, std::function<void(std::string error, pid_t)> done);
  void createSucceeded(const RuntimeCreateOptions& options,
                       std::function<void(grpc::Status, pid_t)> done);
  // Force-deletes a container a failed create may have left, then answers `error`.
  void cleanUpFailedCreate(const std::string& id, grpc::Status error,
                           std::function<void(grpc::Status, pid_t)> done);

  loop::Loop& loop_;
  OciRuntimeBinary& binary_;
  std::string root_;
  RuntimeDeadlines deadlines_;
  std::string runtimeName_;  // for messages: "runc"
  uint64_t nextCall_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<RuntimeCall>> calls_;
  uint64_t runtimeNanos_ = 0;
  uint64_t callsFinished_ = 0;
  loop::LifetimeGuard lifetime_;
};

// Container ids the runtime's command line takes safely: runc's rule (letters, digits, "_+-.",
// no leading '-' that would read as a flag), at most 1024 bytes.
bool isValidContainerId(std::string_view id);

}  // namespace monocri::oci
