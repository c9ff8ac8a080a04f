#include "oci/runtime-client/RuntimeCall.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "loop/Poll.h"
#include "state/UniqueFd.h"

namespace monocri::oci {

using state::UniqueFd;

// A pipe whose write end goes to the runtime and whose read end is read on the loop. The end is
// not awaited through EOF: a process the runtime started may hold a copy of the write end (runc's
// init does, until the container starts), so once the runtime has exited, what it wrote is all in
// the pipe already and is drained at once.
class RuntimeCall::OutputPipe {
 public:
  using BytesCallback = std::function<void(std::string_view)>;

  static std::unique_ptr<OutputPipe> open(loop::Loop& loop, BytesCallback onBytes,
                                          std::string& error) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      error = fmt::format("pipe2: {}", std::strerror(errno));
      return nullptr;
    }
    std::unique_ptr<OutputPipe> pipe(new OutputPipe(loop, std::move(onBytes)));
    pipe->read_.reset(fds[0]);
    pipe->write_.reset(fds[1]);
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) {
      error = fmt::format("fcntl O_NONBLOCK: {}", std::strerror(errno));
      return nullptr;
    }
    int pollError = 0;
    pipe->watch_ = loop::Poll::create(loop, fds[0], &pollError);
    if (!pipe->watch_) {
      error = fmt::format("watching a pipe: {}", uv_strerror(pollError));
      return nullptr;
    }
    pipe->watch_->start(UV_READABLE, [raw = pipe.get()](int, int) { raw->read(kReadsPerTurn); });
    return pipe;
  }

  ~OutputPipe() { watch_.reset(); }  // before read_ closes the descriptor it watches

  int writeEnd() const { return write_.get(); }
  void closeWriteEnd() { write_.reset(); }

  // Reads what the pipe holds now, then stops.
  void drain() {
    read(kReadsWhenDraining);
    watch_.reset();
  }

 private:
  // Bounds the work per readiness callback (fairness to other handles) and per drain (a
  // descendant of the runtime could keep writing forever).
  static constexpr int kReadsPerTurn = 16;
  static constexpr int kReadsWhenDraining = 64;

  OutputPipe(loop::Loop& loop, BytesCallback onBytes) : loop_(loop), onBytes_(std::move(onBytes)) {}

  void read(int maxReads) {
    for (int i = 0; i < maxReads && read_.valid() && watch_; ++i) {
      uv_buf_t buffer = loop_.readBuffer();
      const ssize_t n = ::read(read_.get(), buffer.base, buffer.len);
      if (n > 0) {
        onBytes_(std::string_view(buffer.base, static_cast<size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      watch_.reset();  // end of the pipe, or an error: nothing more will come
      return;
    }
  }

  loop::Loop& loop_;
  BytesCallback onBytes_;
  UniqueFd read_, write_;
  loop::HandlePtr<loop::Poll> watch_;
};

UniqueFd bufferInMemory(std::string_view bytes, std::string& error) {
  UniqueFd file(memfd_create("oci-runtime-input", MFD_CLOEXEC));
  if (!file.valid()) {
    error = fmt::format("memfd_create: {}", std::strerror(errno));
    return file;
  }
  while (!bytes.empty()) {
    const ssize_t n = ::write(file.get(), bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = fmt::format("writing to a memfd: {}", std::strerror(n < 0 ? errno : EIO));
      return UniqueFd();
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  if (lseek(file.get(), 0, SEEK_SET) != 0) {
    error = fmt::format("lseek on a memfd: {}", std::strerror(errno));
    return UniqueFd();
  }
  return file;
}

RuntimeCall::RuntimeCall(std::function<void(RuntimeOutcome)> done) : done_(std::move(done)) {}

RuntimeCall::~RuntimeCall() {
  if (child_ && !child_->exited()) kill();
  child_.reset();  // reaps it
}

std::unique_ptr<RuntimeCall> RuntimeCall::start(loop::Loop& loop, RuntimeInvocation invocation,
                                                std::function<void(RuntimeOutcome)> done) {
  std::unique_ptr<RuntimeCall> call(new RuntimeCall(std::move(done)));
  RuntimeCall* raw = call.get();
  raw->outcome_.deadlineMs = invocation.deadlineMs;
  raw->outcome_.stdoutLimit = invocation.stdoutLimit;

  auto notStarted = [&](std::string why) {
    raw->outcome_.end = RuntimeOutcome::End::kNotStarted;
    raw->outcome_.startError = std::move(why);
    raw->stdout_.reset();
    raw->stderr_.reset();
    raw->log_.reset();
    loop.defer(raw->lifetime_.watch(), [raw] { raw->finish(); });
    return std::move(call);
  };

  loop::ChildProcess::Options options;
  options.argv = std::move(invocation.argv);
  options.inheritStderr = false;
  options.newProcessGroup = true;
  std::string error;
  if (invocation.stdinFd >= 0) options.fds.emplace_back(invocation.stdinFd, 0);
  if (invocation.stdoutFd == RuntimeInvocation::kCapture) {
    raw->stdout_ = OutputPipe::open(
        loop, [raw](std::string_view bytes) { raw->onStdout(bytes); }, error);
    if (!raw->stdout_) return notStarted(error);
    options.fds.emplace_back(raw->stdout_->writeEnd(), 1);
  } else if (invocation.stdoutFd >= 0) {
    options.fds.emplace_back(invocation.stdoutFd, 1);
  }
  if (invocation.stderrFd == RuntimeInvocation::kCapture) {
    raw->stderr_ = OutputPipe::open(
        loop, [raw](std::string_view bytes) { raw->onStderr(bytes); }, error);
    if (!raw->stderr_) return notStarted(error);
    options.fds.emplace_back(raw->stderr_->writeEnd(), 2);
  } else if (invocation.stderrFd >= 0) {
    options.fds.emplace_back(invocation.stderrFd, 2);
  }
  if (invocation.runtimeLog) {
    raw->log_ = OutputPipe::open(
        loop, [raw](std::string_view bytes) { raw->logScanner_.feed(bytes); }, error);
    if (!raw->log_) return notStarted(error);
    options.fds.emplace_back(raw->log_->writeEnd(), kRuntimeLogFd);
  }
  options.env = std::move(invocation.env);

  raw->startNs_ = uv_hrtime();
  raw->child_ = loop::ChildProcess::spawn(
      loop, options, [raw](loop::ChildExit exit) { raw->onExit(exit); }, error);
  // The child has its copies (or never will): the write ends must not stay open here, or a
  // reader could never see the end of its pipe.
  for (auto* pipe : {raw->stdout_.get(), raw->stderr_.get(), raw->log_.get()}) {
    if (pipe) pipe->closeWriteEnd();
  }
  if (!raw->child_) return notStarted(error);
  raw->deadline_ = loop::Timer::create(loop, "OCI runtime deadline");
  raw->deadline_->start(invocation.deadlineMs, 0, [raw] { raw->onDeadline(); });
  return call;
}

void RuntimeCall::onStdout(std::string_view bytes) {
  if (outcome_.stdoutBytes.size() + bytes.size() <= outcome_.stdoutLimit) {
    outcome_.stdoutBytes.append(bytes);
    return;
  }
  if (outcome_.end == RuntimeOutcome::End::kExited) {
    outcome_.end = RuntimeOutcome::End::kOutputTooLarge;
    kill();
  }
}

void RuntimeCall::onStderr(std::string_view bytes) {
  std::string& tail = outcome_.stderrTail;
  if (bytes.size() >= kStderrTailBytes) {
    tail.assign(bytes.substr(bytes.size() - kStderrTailBytes));
    return;
  }
  const size_t keep = std::min(tail.size(), kStderrTailBytes - bytes.size());
  tail.erase(0, tail.size() - keep);
  tail.append(bytes);
}

void RuntimeCall::onDeadline() {
  if (outcome_.end == RuntimeOutcome::End::kExited) outcome_.end = RuntimeOutcome::End::kTimedOut;
  kill();
}

void RuntimeCall::kill() {
  // The group reaches helpers the runtime started; the pidfd reaches the runtime even if it
  // left its group.
  child_->killProcessGroup(SIGKILL);
  child_->kill(SIGKILL);
}

void RuntimeCall::onExit(loop::ChildExit exit) {
  outcome_.exit = exit;
  outcome_.elapsedNs = uv_hrtime() - startNs_;
  deadline_.reset();
  for (auto* pipe : {stdout_.get(), stderr_.get(), log_.get()}) {
    if (pipe) pipe->drain();
  }
  logScanner_.finish();
  outcome_.logError = logScanner_.lastError();
  finish();
}

void RuntimeCall::finish() {
  finished_ = true;
  stdout_.reset();
  stderr_.reset();
  log_.reset();
  // Last: `done` may free this call.
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(outcome_));
}

}  // namespace monocri::oci
