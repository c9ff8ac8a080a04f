#include "oci/runtime/Hooks.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "oci/runtime/ProcessExit.h"
#include "oci/runtime/RuntimeError.h"

namespace monocri::runtime {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The first bytes of a hook's stdout and stderr kept for its error message; the rest is read
// and dropped so that a chatty hook never blocks on a full pipe.
constexpr size_t kMaxHookOutput = 4096;
// The largest timeout accepted (seconds): the spec's int, and no overflow in milliseconds.
constexpr uint64_t kMaxHookTimeout = std::numeric_limits<int32_t>::max();

struct Hook {
  std::string path;
  std::vector<std::string> args;  // argv, argv[0] included
  std::vector<std::string> env;
  std::optional<int64_t> timeout;  // seconds
};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// A forked hook not yet reaped when its runner unwinds is killed and reaped.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    wait();
  }
  // The wait status; the child is reaped.
  int wait() {
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_;
};

// SIGPIPE blocked in this thread while the state is written to a hook that may not read it; a
// SIGPIPE raised meanwhile is consumed before the old mask comes back.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipeSet_);
    sigaddset(&pipeSet_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    wasPending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipeSet_, &oldMask_);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;
  ~SigpipeBlock() {
    sigset_t pending;
    sigpending(&pending);
    if (!wasPending_ && sigismember(&pending, SIGPIPE) == 1) {
      timespec zero{};
      sigtimedwait(&pipeSet_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &oldMask_, nullptr);
  }

 private:
  sigset_t pipeSet_;
  sigset_t oldMask_;
  bool wasPending_ = false;
};

// Quoted in messages: printable ASCII, control characters and spaces run together as one space.
std::string cleanText(const std::string& text) {
  std::string out;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += byte < 0x80 ? c : '?';
    }
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string checkedString(const json& value, const std::string& field) {
  if (!value.is_string()) fail("{}: expected a string", field);
  const auto& text = value.get_ref<const std::string&>();
  if (text.find('\0') != std::string::npos) fail("{}: contains a NUL byte", field);
  return text;
}

std::vector<std::string> stringArray(const json& entry, const char* key, const std::string& field,
                                     bool environment) {
  std::vector<std::string> out;
  auto it = entry.find(key);
  if (it == entry.end() || it->is_null()) return out;
  if (!it->is_array()) fail("{}.{}: expected an array of strings", field, key);
  for (size_t i = 0; i < it->size(); ++i) {
    std::string name = fmt::format("{}.{}[{}]", field, key, i);
    out.push_back(checkedString((*it)[i], name));
    if (environment && out.back().find('=') == std::string::npos) {
      fail("{}: expected KEY=VALUE", name);
    }
  }
  return out;
}

std::vector<Hook> parseStage(const json& hooks, const std::string& stage) {
  std::vector<Hook> out;
  if (hooks.is_null()) return out;
  if (!hooks.is_object()) fail("hooks: expected an object");
  auto list = hooks.find(stage);
  if (list == hooks.end() || list->is_null()) return out;
  if (!list->is_array()) fail("hooks.{}: expected an array", stage);
  for (size_t i = 0; i < list->size(); ++i) {
    const json& entry = (*list)[i];
    std::string field = fmt::format("hooks.{}[{}]", stage, i);
    if (!entry.is_object()) fail("{}: expected an object", field);
    Hook hook;
    auto path = entry.find("path");
    if (path == entry.end() || path->is_null()) fail("{}.path: missing", field);
    hook.path = checkedString(*path, field + ".path");
    if (hook.path.empty()) fail("{}.path: empty", field);
    if (hook.path[0] != '/') {
      fail("{}.path: {} is not an absolute path", field, cleanText(hook.path.substr(0, 256)));
    }
    hook.args = stringArray(entry, "args", field, false);
    if (hook.args.empty()) hook.args.push_back(hook.path);
    hook.env = stringArray(entry, "env", field, true);
    auto timeout = entry.find("timeout");
    if (timeout != entry.end() && !timeout->is_null()) {
      if (!timeout->is_number_integer()) fail("{}.timeout: expected an integer", field);
      // Parsed JSON holds a positive integer as unsigned, a built one may hold it as signed.
      if (!timeout->is_number_unsigned() && timeout->get<int64_t>() <= 0) {
        fail("{}.timeout: must be greater than zero", field);
      }
      uint64_t seconds = timeout->get<uint64_t>();
      if (seconds == 0) fail("{}.timeout: must be greater than zero", field);
      if (seconds > kMaxHookTimeout) fail("{}.timeout: above {} seconds", field, kMaxHookTimeout);
      hook.timeout = static_cast<int64_t>(seconds);
    }
    out.push_back(std::move(hook));
  }
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// In the forked child: only async-signal-safe calls, then execve. A failed exec's errno goes
// back through `errorPipe` (close-on-exec, so a successful exec closes it empty).
[[noreturn]] void execHook(const char* path, char* const* argv, char* const* envp, int stdinRead,
                           int outputWrite, int errorPipe) {
  // Above 2 first: a pipe end may itself be 0, 1 or 2 if our caller closed its stdio.
  int in = fcntl(stdinRead, F_DUPFD_CLOEXEC, 3);
  int out = fcntl(outputWrite, F_DUPFD_CLOEXEC, 3);
  if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) {
    int error = errno;
    (void)!write(errorPipe, &error, sizeof(error));
    _exit(127);
  }
  // Only 0, 1 and 2 reach the hook, whatever the rest of the process left inheritable.
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < 1024; ++fd)
      fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  struct sigaction defaults {};
  defaults.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig)
    sigaction(sig, &defaults, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(path, argv, envp);
  int error = errno;
  (void)!write(errorPipe, &error, sizeof(error));
  _exit(127);
}

void pidfdKill(int pidfd) {
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
}

void setNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throwErrno("fcntl O_NONBLOCK");
}

// Reads what `fd` holds now, keeping the first kMaxHookOutput bytes. False at end of file.
bool drainOutput(int fd, std::string& output) {
  char buffer[4096];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      size_t room = kMaxHookOutput - std::min(kMaxHookOutput, output.size());
      output.append(buffer, std::min(room, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    return false;  // end of file, or an error: either way nothing more to read
  }
}

void runHook(Hook& hook, const std::string& stage, const std::string& stateJson) {
  std::vector<char*> argv = pointers(hook.args);
  std::vector<char*> envp = pointers(hook.env);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throwErrno("pipe2 for a hook's stdin");
  Fd stdinRead(fds[0]), stdinWrite(fds[1]);
  if (pipe2(fds, O_CLOEXEC) != 0) throwErrno("pipe2 for a hook's output");
  Fd outputRead(fds[0]), outputWrite(fds[1]);
  if (pipe2(fds, O_CLOEXEC) != 0) throwErrno("pipe2 for a hook's exec status");
  Fd errorRead(fds[0]), errorWrite(fds[1]);

  SigpipeBlock sigpipeBlock;
  Clock::time_point start = Clock::now();
  pid_t pid = fork();
  if (pid < 0) throwErrno(fmt::format("fork for {} hook {}", stage, hook.path));
  if (pid == 0) {
    execHook(hook.path.c_str(), argv.data(), envp.data(), stdinRead.get(), outputWrite.get(),
             errorWrite.get());
  }
  ChildGuard child(pid);
  Fd pidfd(pidfdOpen(pid));
  if (!pidfd) throwErrno("pidfd_open");
  stdinRead.reset();
  outputWrite.reset();
  errorWrite.reset();

  int execError = 0;
  ssize_t n;
  do {
    n = read(errorRead.get(), &execError, sizeof(execError));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(execError)) {
    child.wait();
    fail("{} hook {} failed: exec: {}", stage, hook.path, std::strerror(execError));
  }
  errorRead.reset();

  setNonBlocking(stdinWrite.get());
  setNonBlocking(outputRead.get());
  std::optional<Clock::time_point> deadline;
  if (hook.timeout) deadline = start + std::chrono::seconds(*hook.timeout);

  size_t written = 0;
  if (stateJson.empty()) stdinWrite.reset();
  std::string output;
  for (bool exited = false; !exited;) {
    pollfd polls[3];
    nfds_t count = 0;
    polls[count++] = {pidfd.get(), POLLIN, 0};
    int stdinSlot = -1, outputSlot = -1;
    if (stdinWrite) {
      stdinSlot = static_cast<int>(count);
      polls[count++] = {stdinWrite.get(), POLLOUT, 0};
    }
    if (outputRead) {
      outputSlot = static_cast<int>(count);
      polls[count++] = {outputRead.get(), POLLIN, 0};
    }
    int waitMs = -1;
    if (deadline) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left.count() <= 0) {
        pidfdKill(pidfd.get());
        child.wait();
        fail("hook {} {} timed out after {}s", stage, hook.path, *hook.timeout);
      }
      waitMs = static_cast<int>(std::min<int64_t>(left.count(), std::numeric_limits<int>::max()));
    }
    int ready = poll(polls, count, waitMs);
    if (ready < 0) {
      if (errno == EINTR) continue;
      throwErrno(fmt::format("poll for {} hook {}", stage, hook.path));
    }
    if (ready == 0) continue;
    if (stdinSlot >= 0 && polls[stdinSlot].revents != 0) {
      for (;;) {
        ssize_t sent =
            write(stdinWrite.get(), stateJson.data() + written, stateJson.size() - written);
        if (sent > 0) {
          written += static_cast<size_t>(sent);
          if (written == stateJson.size()) break;
          continue;
        }
        if (sent < 0 && errno == EINTR) continue;
        if (sent < 0 && errno == EAGAIN) break;
        written = stateJson.size();  // EPIPE: the hook does not read its stdin; that is allowed
        break;
      }
      if (written == stateJson.size()) stdinWrite.reset();
    }
    if (outputSlot >= 0 && polls[outputSlot].revents != 0) {
      if (!drainOutput(outputRead.get(), output)) outputRead.reset();
    }
    if (polls[0].revents != 0) exited = true;
  }
  // The hook has exited; what it wrote is in the pipe. A descendant it left behind may keep the
  // pipe open, so what is there now is read and no end of file awaited.
  stdinWrite.reset();
  if (outputRead) drainOutput(outputRead.get(), output);
  int status = child.wait();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  std::string text = cleanText(output);
  if (text.empty()) fail("{} hook {} failed: {}", stage, hook.path, describeWaitStatus(status));
  fail("{} hook {} failed: {}: {}", stage, hook.path, describeWaitStatus(status), text);
}

}  // namespace

void runHooks(const json& hooks, const std::string& stage, const std::string& stateJson) {
  std::vector<Hook> list;
  try {
    list = parseStage(hooks, stage);
  } catch (const json::exception& e) {
    fail("hooks.{}: {}", stage, e.what());  // every access is checked; this is the net under it
  }
  for (auto& hook : list)
    runHook(hook, stage, stateJson);
}

}  // namespace monocri::runtime
