#include "oci/runtime-client/OciRuntimeClient.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>

#include "loop/WorkQueue.h"
#include "oci/runtime-client/RuntimeLogScanner.h"
#include "state/StateFiles.h"
#include "state/UniqueFd.h"

namespace monocri::oci {

namespace {

using grpc::Status;
using grpc::StatusCode;
using state::UniqueFd;

constexpr size_t kMaxContainerIdBytes = 1024;
// A pid file holds a decimal pid and maybe a newline.
constexpr size_t kMaxPidFileBytes = 32;

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// The gRPC code of a runtime's refusal, from its reason. The texts are runc's and crun's (both
// checked against the real binaries); anything else is UNKNOWN with the reason in the message.
StatusCode classifyRefusal(std::string_view verb, std::string_view id, std::string_view root,
                           std::string_view reason) {
  if (contains(reason, "already exists")) return StatusCode::kAlreadyExists;
  // For create, "does not exist" is about the bundle (a rootfs, a binary), not the container.
  if (verb != "create") {
    if (contains(reason, "container does not exist")) return StatusCode::kNotFound;  // runc
    // crun names the container's state directory, which is missing.
    if (contains(reason, "No such file or directory") &&
        contains(reason, fmt::format("{}/{}", root, id))) {
      return StatusCode::kNotFound;
    }
  }
  for (std::string_view wrongState :
       {"not running", "not stopped", "cannot start", "has stopped", "is paused", "not paused",
        "is not created", "that is not stopped"}) {
    if (contains(reason, wrongState)) return StatusCode::kFailedPrecondition;
  }
  return StatusCode::kUnknown;
}

// A decimal pid as runc and crun write it (digits, maybe a newline), 1 to kMaxPid.
pid_t parsePidFile(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.remove_suffix(1);
  if (text.empty() || text.size() > 10) return 0;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    value = value * 10 + (c - '0');
  }
  return value > 0 && value <= kMaxPid ? static_cast<pid_t>(value) : 0;
}

std::string invalidIdMessage(std::string_view id) {
  return fmt::format(
      "container id \"{}\" is not one the OCI runtime accepts (letters, digits, "
      "\"_+-.\", not starting with '-')",
      cleanRuntimeText(id, 128));
}

std::string lastBytes(const std::string& text, size_t n) {
  return text.size() <= n ? text : text.substr(text.size() - n);
}

}  // namespace

bool isValidContainerId(std::string_view id) {
  if (id.empty() || id.size() > kMaxContainerIdBytes || id == "." || id == ".." ||
      id.front() == '-') {
    return false;
  }
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '+' || c == '-' ||
           c == '.';
  });
}

OciRuntimeClient::OciRuntimeClient(loop::Loop& loop, OciRuntimeBinary& binary, std::string root,
                                   RuntimeDeadlines deadlines)
    : loop_(loop), binary_(binary), root_(std::move(root)), deadlines_(deadlines) {
  const std::string& name = binary_.name();
  const size_t slash = name.rfind('/');
  runtimeName_ = slash == std::string::npos ? name : name.substr(slash + 1);
}

OciRuntimeClient::~OciRuntimeClient() = default;

void OciRuntimeClient::run(std::vector<std::string> args, RuntimeInvocation invocation,
                           Finished finished) {
  std::string why;
  const auto executable = binary_.resolve(&why);
  if (!executable) {
    RuntimeOutcome outcome;
    outcome.end = RuntimeOutcome::End::kNotStarted;
    outcome.startError = why;
    answerLater([finished = std::move(finished), outcome]() mutable { finished(outcome); });
    return;
  }
  invocation.argv = {*executable,    "--root", root_, "--log", std::string(kRuntimeLogPath),
                     "--log-format", "json"};
  invocation.argv.insert(invocation.argv.end(), std::make_move_iterator(args.begin()),
                         std::make_move_iterator(args.end()));
  const uint64_t callId = nextCall_++;
  auto call = RuntimeCall::start(
      loop_, std::move(invocation),
      [this, callId, finished = std::move(finished)](RuntimeOutcome outcome) mutable {
        // Answered from a clean stack: the call (whose callback this is) is freed first, and
        // `finished` may start new calls or free this client.
        loop_.defer(lifetime_.watch(), [this, callId, finished = std::move(finished),
                                        outcome = std::move(outcome)]() mutable {
          calls_.erase(callId);
          runtimeNanos_ += outcome.elapsedNs;
          ++callsFinished_;
          finished(std::move(outcome));
        });
      });
  calls_.emplace(callId, std::move(call));
}

Status OciRuntimeClient::failure(const std::string& verb, const std::string& id,
                                 const RuntimeOutcome& outcome) const {
  const std::string call = fmt::format("{} {} {}", runtimeName_, verb, id);
  switch (outcome.end) {
    case RuntimeOutcome::End::kNotStarted:
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("{}: cannot run the OCI runtime: {}", call, outcome.startError));
    case RuntimeOutcome::End::kTimedOut:
      return Status(StatusCode::kDeadlineExceeded,
                    fmt::format("{} did not finish within {} s; its processes were killed", call,
                                outcome.deadlineMs / 1000.0));
    case RuntimeOutcome::End::kOutputTooLarge:
      return Status(StatusCode::kInternal,
                    fmt::format("{} printed more output than the {} bytes accepted; it was killed",
                                call, outcome.stdoutLimit));
    case RuntimeOutcome::End::kExited:
      break;
  }
  std::string reason = outcome.logError;
  if (reason.empty())
    reason = cleanRuntimeText(lastBytes(outcome.stderrTail, kMaxRuntimeMessageBytes));
  if (reason.empty()) {
    reason = fmt::format("it ended with {} without saying why", outcome.exit.describe());
  } else {
    // runc starts some reasons with "runc create failed: ": said once is enough.
    const std::string echo = fmt::format("{} {} failed: ", runtimeName_, verb);
    if (reason.starts_with(echo) && reason.size() > echo.size()) reason.erase(0, echo.size());
  }
  return Status(classifyRefusal(verb, id, root_, reason),
                fmt::format("{} failed: {}", call, reason));
}

void OciRuntimeClient::create(const RuntimeCreateOptions& options,
                              std::function<void(Status, pid_t)> done) {
  std::string invalid;
  if (!isValidContainerId(options.id)) {
    invalid = invalidIdMessage(options.id);
  } else if (options.bundle.empty() || options.pidFile.empty()) {
    invalid = fmt::format("create {}: a bundle and a pid file are required", options.id);
  }
  if (!invalid.empty()) {
    answerLater([done = std::move(done), invalid] {
      done(Status(StatusCode::kInvalidArgument, invalid), 0);
    });
    return;
  }
  std::vector<std::string> args{"create", "--bundle", options.bundle, "--pid-file",
                                options.pidFile};
  if (!options.consoleSocket.empty()) {
    args.emplace_back("--console-socket");
    args.push_back(options.consoleSocket);
  }
  args.push_back(options.id);
  // Pass-through: the runtime's stdio becomes the container's.
  RuntimeInvocation invocation;
  invocation.stdinFd = options.stdinFd >= 0 ? options.stdinFd : RuntimeInvocation::kNull;
  invocation.stdoutFd = options.stdoutFd >= 0 ? options.stdoutFd : RuntimeInvocation::kNull;
  invocation.stderrFd = options.stderrFd >= 0 ? options.stderrFd : RuntimeInvocation::kNull;
  invocation.deadlineMs = deadlines_.createMs;
  run(std::move(args), std::move(invocation),
      [this, options, done = std::move(done)](RuntimeOutcome outcome) mutable {
        if (outcome.succeeded()) {
          createSucceeded(options, std::move(done));
        } else if (outcome.end == RuntimeOutcome::End::kTimedOut) {
          // Killed midway: whatever it made is ours to remove.
          cleanUpFailedCreate(options.id, failure("create", options.id, outcome), std::move(done));
        } else {
          // The runtime undoes a create it refused (and must not touch a container that exists).
          done(failure("create", options.id, outcome), 0);
        }
      });
}

void OciRuntimeClient::readPidFile(const std::string& path,
                                   std::function<void(std::string error, pid_t pid)> done) {
  // A few bytes in the bundle, under the run root (tmpfs): read on the loop, at once. A worker
  // would add two thread hand-offs to every create and exec for no blocking saved.
  std::string text;
  std::string error = state::readFile(path, kMaxPidFileBytes, text);
  pid_t pid = 0;
  if (error.empty()) {
    pid = parsePidFile(text);
    if (pid == 0) {
      error =
          fmt::format("pid file {} does not hold a pid: \"{}\"", path, cleanRuntimeText(text, 32));
    }
  }
  done(std::move(error), pid);
}

void OciRuntimeClient::createSucceeded(const RuntimeCreateOptions& options,
                                       std::function<void(Status, pid_t)> done) {
  readPidFile(options.pidFile, [this, id = options.id, done = std::move(done)](std::string error,
                                                                               pid_t pid) mutable {
    if (pid > 0) return done(Status::ok(), pid);
    cleanUpFailedCreate(id,
                        Status(StatusCode::kInternal,
                               fmt::format("{} create {} succeeded but its pid is unknown: {}",
                                           runtimeName_, id, error)),
                        std::move(done));
  });
}

void OciRuntimeClient::cleanUpFailedCreate(const std::string& id, Status error,
                                           std::function<void(Status, pid_t)> done) {
  remove(id, /*force=*/true,
         [error = std::move(error), done = std::move(done)](Status removed) mutable {
           if (!removed.isOk()) {
             error = Status(error.code(),
                            fmt::format("{}; removing what it may have left failed too: {}",
                                        error.message(), removed.message()));
           }
           done(error, 0);
         });
}

void OciRuntimeClient::start(const std::string& id, std::function<void(Status)> done) {
  if (!isValidContainerId(id)) {
    answerLater([done = std::move(done), message = invalidIdMessage(id)] {
      done(Status(StatusCode::kInvalidArgument, message));
    });
    return;
  }
  RuntimeInvocation invocation;
  invocation.deadlineMs = deadlines_.otherMs;
  run({"start", id}, std::move(invocation),
      [this, id, done = std::move(done)](RuntimeOutcome outcome) {
        done(outcome.succeeded() ? Status::ok() : failure("start", id, outcome));
      });
}

void OciRuntimeClient::exec(const RuntimeExecOptions& options,
                            std::function<void(Status, pid_t)> done) {
  if (!isValidContainerId(options.id)) {
    answerLater([done = std::move(done), message = invalidIdMessage(options.id)] {
      done(Status(StatusCode::kInvalidArgument, message), 0);
    });
    return;
  }
  RuntimeInvocation invocation;
  invocation.deadlineMs = deadlines_.otherMs;
  invocation.stdinFd = options.stdinFd >= 0 ? options.stdinFd : RuntimeInvocation::kNull;
  invocation.stdoutFd = options.stdoutFd >= 0 ? options.stdoutFd : RuntimeInvocation::kNull;
  invocation.stderrFd = options.stderrFd >= 0 ? options.stderrFd : RuntimeInvocation::kNull;
  std::vector<std::string> args{"exec",       "--detach",     "--process", options.processFile,
                                "--pid-file", options.pidFile};
  if (!options.consoleSocket.empty()) {
    args.push_back("--console-socket");
    args.push_back(options.consoleSocket);
  }
  args.push_back(options.id);
  run(std::move(args), std::move(invocation),
      [this, id = options.id, pidFile = options.pidFile,
       done = std::move(done)](RuntimeOutcome outcome) mutable {
        if (!outcome.succeeded()) return done(failure("exec", id, outcome), 0);
        readPidFile(pidFile, [this, id, done = std::move(done)](std::string error, pid_t pid) {
          if (pid > 0) return done(Status::ok(), pid);
          done(Status(StatusCode::kInternal,
                      fmt::format("{} exec {} started a process but its pid is unknown: {}",
                                  runtimeName_, id, error)),
               0);
        });
      });
}

void OciRuntimeClient::kill(const std::string& id, int signal, bool all,
                            std::function<void(Status)> done) {
  std::string invalid;
  if (!isValidContainerId(id)) {
    invalid = invalidIdMessage(id);
  } else if (signal < 1 || signal > 64) {
    invalid = fmt::format("kill {}: signal {} is not one of 1-64", id, signal);
  }
  if (!invalid.empty()) {
    answerLater(
        [done = std::move(done), invalid] { done(Status(StatusCode::kInvalidArgument, invalid)); });
    return;
  }
  std::vector<std::string> args{"kill"};
  if (all) args.emplace_back("--all");
  args.push_back(id);
  args.push_back(std::to_string(signal));
  RuntimeInvocation invocation;
  invocation.deadlineMs = deadlines_.otherMs;
  run(std::move(args), std::move(invocation),
      [this, id, done = std::move(done)](RuntimeOutcome outcome) {
        done(outcome.succeeded() ? Status::ok() : failure("kill", id, outcome));
      });
}

void OciRuntimeClient::remove(const std::string& id, bool force, std::function<void(Status)> done) {
  if (!isValidContainerId(id)) {
    answerLater([done = std::move(done), message = invalidIdMessage(id)] {
      done(Status(StatusCode::kInvalidArgument, message));
    });
    return;
  }
  std::vector<std::string> args{"delete"};
  if (force) args.emplace_back("--force");
  args.push_back(id);
  RuntimeInvocation invocation;
  invocation.deadlineMs = deadlines_.otherMs;
  run(std::move(args), std::move(invocation),
      [this, id, done = std::move(done)](RuntimeOutcome outcome) {
        done(outcome.succeeded() ? Status::ok() : failure("delete", id, outcome));
      });
}

void OciRuntimeClient::state(const std::string& id, std::function<void(Status, OciState)> done) {
  if (!isValidContainerId(id)) {
    answerLater([done = std::move(done), message = invalidIdMessage(id)] {
      done(Status(StatusCode::kInvalidArgument, message), OciState{});
    });
    return;
  }
  RuntimeInvocation invocation;
  invocation.deadlineMs = deadlines_.otherMs;
  invocation.stdoutLimit = kMaxStateOutputBytes;
  run({"state", id}, std::move(invocation),
      [this, id, done = std::move(done)](RuntimeOutcome outcome) {
        if (!outcome.succeeded()) {
          done(failure("state", id, outcome), OciState{});
          return;
        }
        OciState state;
        Status parsed = parseOciState(outcome.stdoutBytes, state);
        if (parsed.isOk() && state.id != id) {
          parsed = Status(StatusCode::kInternal, fmt::format("it describes container \"{}\"",
                                                             cleanRuntimeText(state.id, 128)));
        }
        if (!parsed.isOk()) {
          done(Status(StatusCode::kInternal,
                      fmt::format("{} state {}: {}", runtimeName_, id, parsed.message())),
               OciState{});
          return;
        }
        done(Status::ok(), std::move(state));
      });
}

void OciRuntimeClient::update(const std::string& id, const nlohmann::json& linuxResources,
                              std::function<void(Status)> done) {
  std::string invalid;
  if (!isValidContainerId(id)) {
    invalid = invalidIdMessage(id);
  } else if (!linuxResources.is_object()) {
    invalid = fmt::format("update {}: the resources must be a JSON object", id);
  }
  if (!invalid.empty()) {
    answerLater(
        [done = std::move(done), invalid] { done(Status(StatusCode::kInvalidArgument, invalid)); });
    return;
  }
  // The resources go in on stdin, from memory: no temp file, and no pipe write to wait for.
  std::string error;
  UniqueFd input = bufferInMemory(
      linuxResources.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), error);
  if (!input.valid()) {
    answerLater([done = std::move(done), message = fmt::format("update {}: {}", id, error)] {
      done(Status(StatusCode::kInternal, message));
    });
    return;
  }
  RuntimeInvocation invocation;
  invocation.deadlineMs = deadlines_.otherMs;
  invocation.stdinFd = input.get();  // the child gets its own copy at once
  run({"update", "--resources", "-", id}, std::move(invocation),
      [this, id, done = std::move(done)](RuntimeOutcome outcome) {
        done(outcome.succeeded() ? Status::ok() : failure("update", id, outcome));
      });
}

}  // namespace monocri::oci
