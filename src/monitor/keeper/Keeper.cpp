#include "monitor/keeper/Keeper.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "monitor/keeper/ExitRecordFile.h"
#include "monitor/keeper/KeeperProtocol.h"
#include "monitor/keeper/KeeperTables.h"

extern char** environ;

namespace monocri::monitor {

namespace {

// Refusals waiting for room on the socket; more are dropped (and logged): a daemon that lets
// this many pile up is not reading its socket.
constexpr size_t kRefusalQueueSize = 64;
// Descriptors the keeper needs besides the held ones (sockets, records being written...).
constexpr size_t kFdReserve = 64;
// When the kernel refuses to pass more descriptors in flight (ETOOMANYREFS), sending is retried
// after this long: the daemon frees them by reading.
constexpr uint64_t kSendRetryMs = 10;
constexpr char kKeeperFdAssignment[] = "MONOCRI_KEEPER_FD=3";
static_assert(kDaemonKeeperFd == 3, "kKeeperFdAssignment spells the number out");

// Not strerror(): for an unknown number it may format into allocated memory.
const char* errorText(int error) {
  const char* text = strerrordesc_np(error);
  return text ? text : "unknown error";
}

int64_t clockNs(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

uint64_t monotonicMs() {
  return static_cast<uint64_t>(clockNs(CLOCK_MONOTONIC) / 1'000'000);
}

// One line on stderr in the daemon's log format: "<UTC time> <level> keeper: <text>".
__attribute__((format(printf, 2, 3))) void logLine(const char* level, const char* format, ...) {
  char line[640];
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  int used = std::snprintf(
      line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %s keeper: ", utc.tm_year + 1900,
      utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, now.tv_nsec / 1000, level);
  if (used < 0) return;
  va_list args;
  va_start(args, format);
  const int text =
      std::vsnprintf(line + used, sizeof line - static_cast<size_t>(used) - 1, format, args);
  va_end(args);
  if (text > 0) used += text;
  if (static_cast<size_t>(used) > sizeof line - 2) used = sizeof line - 2;  // truncated
  line[used++] = '\n';
  for (size_t done = 0; done < static_cast<size_t>(used);) {
    const ssize_t n = ::write(STDERR_FILENO, line + done, static_cast<size_t>(used) - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// "exited with status 3", "was killed by signal 9 (KILL)".
void describeWaitStatus(int status, char (&out)[64]) {
  if (WIFEXITED(status)) {
    std::snprintf(out, sizeof out, "exited with status %d", WEXITSTATUS(status));
  } else {
    const char* name = sigabbrev_np(WTERMSIG(status));
    std::snprintf(out, sizeof out, "was killed by signal %d (%s)%s", WTERMSIG(status),
                  name ? name : "?", WCOREDUMP(status) ? ", core dumped" : "");
  }
}

// What waitpid(2) would have reported, from what waitid(2) reports.
int32_t toWaitStatus(const siginfo_t& info) {
  switch (info.si_code) {
    case CLD_EXITED:
      return (info.si_status & 0xff) << 8;
    case CLD_DUMPED:
      return (info.si_status & 0x7f) | 0x80;
    default:
      return info.si_status & 0x7f;  // CLD_KILLED
  }
}

void closeAll(const int* fds, size_t count) {
  for (size_t i = 0; i < count; ++i)
    ::close(fds[i]);
}

// mkdir -p, then mode 0700 on the last component.
bool makeExitDir(const std::string& path) {
  std::string prefix;  // allocation is fine here: this runs at start
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    prefix = path.substr(0, slash);
    const mode_t mode = slash == std::string::npos ? 0700 : 0755;
    if (!prefix.empty() && ::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      logLine("error", "cannot create %s: %s", prefix.c_str(), errorText(errno));
      return false;
    }
    if (slash == std::string::npos) break;
  }
  return true;
}

class Keeper {
 public:
  explicit Keeper(const KeeperOptions& options) : options_(options) {}
  ~Keeper();
  Keeper(const Keeper&) = delete;
  Keeper& operator=(const Keeper&) = delete;

  int run();

 private:
  enum class DaemonState { kRunning, kWaitingToRestart, kFinished };
  enum class SendResult { kSent, kBlocked, kBroken };

  bool setUp();
  void raiseDescriptorLimit();
  bool startDaemon();
  void scheduleRestart(const char* what);
  void finish(int exitCode);
  int pollTimeoutMs() const;

  void readSignals();
  void reapChildren();
  void onDaemonExit(int32_t waitStatus);
  void onProcessExit(pid_t pid, int32_t waitStatus, int64_t timeNs);
  void attribute(const ExitInfo& exit);
  bool writeExitRecord(const ExitInfo& exit);
  void scanExitDir(bool atStart);
  void loadExitRecord(const char* name);

  void readRequests();
  void handleRequest(const uint8_t* data, size_t size, const int* fds, size_t fdCount,
                     bool fdsLost);
  void refuse(const KeeperRecord& request, RefusalReason reason);
  void flush();
  SendResult send(const KeeperRecord& record, int fd);
  void closeSocket();

  const KeeperOptions& options_;
  char** daemonArgv_ = nullptr;
  char** daemonEnv_ = nullptr;
  // What the daemon gets back: the keeper changes these for itself only.
  sigset_t savedMask_{};
  struct sigaction savedPipeAction_ {};
  rlimit savedFileLimit_{};
  int signalFd_ = -1;
  int exitDirFd_ = -1;

  HeldFdTable held_;
  TrackedPidTable tracked_;
  PendingExitTable pending_;
  UntrackedExitRing untracked_;
  // Records on disk that did not fit in pending_: read back when an ACK makes room, or when the
  // next daemon starts.
  size_t diskOnlyExits_ = 0;

  DaemonState state_ = DaemonState::kWaitingToRestart;
  pid_t daemonPid_ = -1;
  uint64_t daemonStartedMs_ = 0;
  uint64_t restartAtMs_ = 0;
  uint64_t restartDelayMs_ = 0;
  bool stopRequested_ = false;
  bool restartRequested_ = false;  // SIGHUP: the daemon's exit is followed by a new daemon
  int exitCode_ = 0;

  // The link to the daemon of the moment.
  int socket_ = -1;
  bool sendBroken_ = false;
  bool wantWrite_ = false;
  uint64_t retrySendAtMs_ = 0;
  bool readySent_ = false;
  uint32_t heldSent_ = 0;
  uint32_t exitsSent_ = 0;
  KeeperRecord refusals_[kRefusalQueueSize];
  size_t refusalHead_ = 0;
  size_t refusalCount_ = 0;

  alignas(8) char direntBuffer_[4096];
};

Keeper::~Keeper() {
  closeSocket();
  held_.closeAll();
  if (signalFd_ >= 0) ::close(signalFd_);
  if (exitDirFd_ >= 0) ::close(exitDirFd_);
  std::free(daemonArgv_);
  std::free(daemonEnv_);
}

bool Keeper::setUp() {
  if (options_.daemonArgv.empty() || options_.exitDir.empty()) {
    logLine("error", "no daemon to run or no exit record directory given");
    return false;
  }
  // gmtime_r reads the time zone once, allocating: let that happen now, not mid-run.
  logLine("info", "starting (pid %d), exit records in %s", static_cast<int>(getpid()),
          options_.exitDir.c_str());

  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP})
    sigaddset(&handled, sig);
  sigprocmask(SIG_BLOCK, &handled, &savedMask_);
  signalFd_ = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signalFd_ < 0) {
    logLine("error", "signalfd: %s", errorText(errno));
    return false;
  }
  // A closed stderr must not kill the keeper; sends use MSG_NOSIGNAL.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &savedPipeAction_);

  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    logLine("error", "prctl(PR_SET_CHILD_SUBREAPER): %s", errorText(errno));
    return false;
  }
  raiseDescriptorLimit();

  if (!makeExitDir(options_.exitDir)) return false;
  exitDirFd_ = ::open(options_.exitDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (exitDirFd_ < 0 || fchmod(exitDirFd_, 0700) != 0) {
    logLine("error", "cannot open %s: %s", options_.exitDir.c_str(), errorText(errno));
    return false;
  }

  if (!held_.init(options_.maxHeldFds) || !tracked_.init(options_.maxTracked) ||
      !pending_.init(options_.maxPendingExits) || !untracked_.init(options_.maxUntrackedExits)) {
    logLine("error", "cannot allocate the keeper's tables");
    return false;
  }

  // The daemon's argv and environment, built once: plus MONOCRI_KEEPER_FD, minus any older one.
  const size_t argc = options_.daemonArgv.size();
  size_t envc = 0;
  while (environ && environ[envc])
    ++envc;
  daemonArgv_ = static_cast<char**>(std::calloc(argc + 1, sizeof(char*)));
  daemonEnv_ = static_cast<char**>(std::calloc(envc + 2, sizeof(char*)));
  if (!daemonArgv_ || !daemonEnv_) {
    logLine("error", "cannot allocate the daemon's arguments");
    return false;
  }
  for (size_t i = 0; i < argc; ++i) {
    daemonArgv_[i] = const_cast<char*>(options_.daemonArgv[i].c_str());
  }
  size_t kept = 0;
  const size_t prefix = std::strlen(kKeeperFdVariable);
  for (size_t i = 0; i < envc; ++i) {
    if (std::strncmp(environ[i], kKeeperFdVariable, prefix) == 0 && environ[i][prefix] == '=') {
      continue;
    }
    daemonEnv_[kept++] = environ[i];
  }
  daemonEnv_[kept] = const_cast<char*>(kKeeperFdAssignment);

  scanExitDir(/*atStart=*/true);
  return true;
}

void Keeper::raiseDescriptorLimit() {
  const rlim_t wanted = static_cast<rlim_t>(options_.maxHeldFds + kFdReserve);
  if (getrlimit(RLIMIT_NOFILE, &savedFileLimit_) != 0) return;
  rlimit limit = savedFileLimit_;
  if (limit.rlim_cur >= wanted) return;
  limit.rlim_cur =
      limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= wanted ? wanted : limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < wanted) {
    logLine("warning", "the descriptor limit (%llu) is below the %zu held descriptors asked for",
            static_cast<unsigned long long>(limit.rlim_cur), options_.maxHeldFds);
  }
}

int Keeper::run() {
  if (!setUp()) return 1;
  restartDelayMs_ = options_.restartDelayMinMs;
  if (!startDaemon()) scheduleRestart("could not be started");

  while (state_ != DaemonState::kFinished) {
    pollfd fds[2] = {{signalFd_, POLLIN, 0}, {socket_, 0, 0}};
    nfds_t count = 1;
    if (socket_ >= 0) {
      fds[1].events = static_cast<short>(POLLIN | (wantWrite_ ? POLLOUT : 0));
      count = 2;
    }
    if (::poll(fds, count, pollTimeoutMs()) < 0 && errno != EINTR) {
      logLine("error", "poll: %s", errorText(errno));
      finish(1);
      break;
    }
    readSignals();
    if (socket_ >= 0 && count == 2 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      readRequests();
    }
    if (retrySendAtMs_ != 0 && monotonicMs() >= retrySendAtMs_) retrySendAtMs_ = 0;
    flush();
    if (state_ == DaemonState::kWaitingToRestart && monotonicMs() >= restartAtMs_) {
      if (!startDaemon()) scheduleRestart("could not be started");
    }
  }
  if (tracked_.size() > 0) {
    logLine("warning", "%zu tracked processes are left to init: their exits will not be recorded",
            tracked_.size());
  }
  return exitCode_;
}

int Keeper::pollTimeoutMs() const {
  uint64_t wakeAt = 0;
  if (state_ == DaemonState::kWaitingToRestart) wakeAt = restartAtMs_;
  if (retrySendAtMs_ != 0 && (wakeAt == 0 || retrySendAtMs_ < wakeAt)) wakeAt = retrySendAtMs_;
  if (wakeAt == 0) return -1;
  const uint64_t now = monotonicMs();
  return wakeAt <= now ? 0 : static_cast<int>(wakeAt - now);
}

bool Keeper::startDaemon() {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    logLine("error", "socketpair: %s", errorText(errno));
    return false;
  }
  fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK);
  const pid_t pid = fork();
  if (pid < 0) {
    logLine("error", "fork: %s", errorText(errno));
    ::close(pair[0]);
    ::close(pair[1]);
    return false;
  }
  if (pid == 0) {
    // The daemon, before exec: async-signal-safe calls only.
    sigprocmask(SIG_SETMASK, &savedMask_, nullptr);
    sigaction(SIGPIPE, &savedPipeAction_, nullptr);
    if (savedFileLimit_.rlim_cur != 0) setrlimit(RLIMIT_NOFILE, &savedFileLimit_);
    // Its own process group: a terminal's ^C reaches the keeper, which forwards it once.
    setpgid(0, 0);
    if (pair[1] == kDaemonKeeperFd) {
      fcntl(pair[1], F_SETFD, 0);
    } else if (dup2(pair[1], kDaemonKeeperFd) < 0) {
      _exit(127);
    }
    execve(daemonArgv_[0], daemonArgv_, daemonEnv_);
    const char* why = errorText(errno);
    const char* parts[] = {"monocri keeper: cannot run ", daemonArgv_[0], ": ", why, "\n"};
    for (const char* part : parts)
      (void)!::write(STDERR_FILENO, part, std::strlen(part));
    _exit(127);
  }
  ::close(pair[1]);
  socket_ = pair[0];
  daemonPid_ = pid;
  daemonStartedMs_ = monotonicMs();
  state_ = DaemonState::kRunning;
  sendBroken_ = false;
  wantWrite_ = false;
  retrySendAtMs_ = 0;
  readySent_ = false;
  heldSent_ = 0;
  exitsSent_ = 0;
  refusalHead_ = refusalCount_ = 0;
  if (diskOnlyExits_ > 0) scanExitDir(/*atStart=*/false);
  // The new daemon knows nothing: everything is replayed to it, then READY.
  held_.slots().markAllUnsent();
  pending_.slots().markAllUnsent();
  flush();
  return true;
}

void Keeper::scheduleRestart(const char* what) {
  const uint64_t now = monotonicMs();
  if (daemonStartedMs_ != 0 && now - daemonStartedMs_ >= options_.restartDelayResetAfterMs) {
    restartDelayMs_ = options_.restartDelayMinMs;
  }
  if (daemonStartedMs_ == 0) {
    logLine("warning", "the daemon %s; trying again in %" PRIu64 " ms", what, restartDelayMs_);
  } else {
    logLine("warning", "the daemon %s after %" PRIu64 " ms; restarting it in %" PRIu64 " ms", what,
            now - daemonStartedMs_, restartDelayMs_);
  }
  state_ = DaemonState::kWaitingToRestart;
  restartAtMs_ = now + restartDelayMs_;
  restartDelayMs_ = restartDelayMs_ * 2 > options_.restartDelayMaxMs ? options_.restartDelayMaxMs
                                                                     : restartDelayMs_ * 2;
  daemonStartedMs_ = 0;
}

void Keeper::finish(int exitCode) {
  state_ = DaemonState::kFinished;
  exitCode_ = exitCode;
}

void Keeper::readSignals() {
  signalfd_siginfo info{};
  bool childExited = false;
  while (::read(signalFd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    const int sig = static_cast<int>(info.ssi_signo);
    if (sig == SIGCHLD) {
      childExited = true;
    } else if (sig == SIGHUP) {
      // A restart of the daemon that loses nothing: the keeper, its held descriptors and its
      // exits stay; the new daemon (from the binary on disk: an upgrade) takes them over.
      if (daemonPid_ > 0) {
        restartRequested_ = true;
        ::kill(daemonPid_, SIGTERM);
      } else if (state_ == DaemonState::kWaitingToRestart) {
        restartAtMs_ = monotonicMs();
      }
    } else if (daemonPid_ > 0) {
      // SIGTERM and SIGINT stop the daemon for good.
      stopRequested_ = true;
      ::kill(daemonPid_, sig);
    } else {
      logLine("info", "signal %d with no daemon running: stopping", sig);
      finish(0);
    }
  }
  if (childExited) reapChildren();
}

void Keeper::reapChildren() {
  for (;;) {
    siginfo_t info{};
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG) != 0 || info.si_pid == 0) return;
    const int32_t status = toWaitStatus(info);
    if (info.si_pid == daemonPid_) {
      onDaemonExit(status);
    } else {
      onProcessExit(info.si_pid, status, clockNs(CLOCK_REALTIME));
    }
  }
}

void Keeper::onDaemonExit(int32_t waitStatus) {
  const pid_t pid = daemonPid_;
  daemonPid_ = -1;
  // What it sent before dying (a HOLD, a TRACK) still waits in the socket: take it first.
  readRequests();
  closeSocket();
  char what[64];
  describeWaitStatus(waitStatus, what);
  if (stopRequested_) {
    logLine("info", "the daemon (pid %d) %s after being asked to stop", static_cast<int>(pid),
            what);
    finish(WIFEXITED(waitStatus) ? WEXITSTATUS(waitStatus) : 128 + WTERMSIG(waitStatus));
  } else if (restartRequested_) {
    restartRequested_ = false;
    logLine("info", "the daemon (pid %d) %s as asked (SIGHUP): starting a new one",
            static_cast<int>(pid), what);
    restartDelayMs_ = options_.restartDelayMinMs;
    daemonStartedMs_ = 0;
    state_ = DaemonState::kWaitingToRestart;
    restartAtMs_ = monotonicMs();
  } else if (WIFEXITED(waitStatus) && WEXITSTATUS(waitStatus) == 0) {
    logLine("info", "the daemon (pid %d) exited with status 0: stopping", static_cast<int>(pid));
    finish(0);
  } else if (WIFEXITED(waitStatus) && WEXITSTATUS(waitStatus) == kConfigurationErrorExit) {
    logLine("error",
            "the daemon (pid %d) exited with status 2 (configuration error): not restarting",
            static_cast<int>(pid));
    finish(kConfigurationErrorExit);
  } else {
    char line[96];
    std::snprintf(line, sizeof line, "(pid %d) %s", static_cast<int>(pid), what);
    scheduleRestart(line);
  }
}

void Keeper::onProcessExit(pid_t pid, int32_t waitStatus, int64_t timeNs) {
  ExitInfo exit;
  if (tracked_.take(pid, exit.owner)) {
    exit.pid = pid;
    exit.waitStatus = waitStatus;
    exit.timeNs = timeNs;
    attribute(exit);
    return;
  }
  UntrackedExit dropped{};
  if (untracked_.push(pid, waitStatus, timeNs, dropped)) {
    logLine("warning", "untracked-exit ring full (%zu): dropped the exit of pid %d",
            options_.maxUntrackedExits, static_cast<int>(dropped.pid));
  }
}

void Keeper::attribute(const ExitInfo& exit) {
  const bool onDisk = writeExitRecord(exit);
  if (pending_.add(exit, onDisk)) return;
  if (onDisk) {
    ++diskOnlyExits_;
    logLine("warning",
            "pending-exit table full (%zu unacknowledged): the exit of %.*s pid %d waits on disk "
            "until an acknowledgement makes room",
            pending_.size(), static_cast<int>(exit.owner.length), exit.owner.bytes,
            static_cast<int>(exit.pid));
  } else {
    logLine("error", "the exit of %.*s pid %d is lost: no room in the table nor on disk",
            static_cast<int>(exit.owner.length), exit.owner.bytes, static_cast<int>(exit.pid));
  }
}

bool Keeper::writeExitRecord(const ExitInfo& exit) {
  char name[kMaxExitRecordNameBytes], temp[kMaxExitRecordNameBytes];
  exitRecordName(exit.owner, exit.pid, name);
  exitRecordTempName(exit.owner, exit.pid, temp);
  char text[kMaxExitRecordBytes];
  const size_t size = formatExitRecord(exit, text);
  const int fd =
      ::openat(exitDirFd_, temp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  const char* failed = nullptr;
  int error = 0;
  if (fd < 0) {
    failed = "create";
    error = errno;
  } else {
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd, text + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    if (done != size) {
      failed = "write";
      error = errno;
    } else if (::fsync(fd) != 0) {
      failed = "fsync";
      error = errno;
    }
    ::close(fd);
    if (!failed && ::renameat(exitDirFd_, temp, exitDirFd_, name) != 0) {
      failed = "rename";
      error = errno;
    }
  }
  if (failed) {
    ::unlinkat(exitDirFd_, temp, 0);
    logLine("error", "exit record %s/%s: %s: %s (the exit is kept in memory only)",
            options_.exitDir.c_str(), name, failed, errorText(error));
    return false;
  }
  ::fsync(exitDirFd_);  // the rename is durable before the daemon hears of the exit
  return true;
}

void Keeper::scanExitDir(bool atStart) {
  diskOnlyExits_ = 0;
  if (::lseek(exitDirFd_, 0, SEEK_SET) != 0) return;
  for (;;) {
    const ssize_t n = getdents64(exitDirFd_, direntBuffer_, sizeof direntBuffer_);
    if (n < 0) {
      logLine("error", "reading %s: %s", options_.exitDir.c_str(), errorText(errno));
      return;
    }
    if (n == 0) return;
    for (ssize_t at = 0; at < n;) {
      const auto* entry = reinterpret_cast<const dirent64*>(direntBuffer_ + at);
      at += entry->d_reclen;
      const char* name = entry->d_name;
      if (name[0] != '.') {
        loadExitRecord(name);
      } else if (atStart && std::strlen(name) > 4 &&
                 std::strcmp(name + std::strlen(name) - 4, ".tmp") == 0) {
        ::unlinkat(exitDirFd_, name, 0);  // a write the last keeper did not finish
      }
    }
  }
}

void Keeper::loadExitRecord(const char* name) {
  const int fd = ::openat(exitDirFd_, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  char text[kMaxExitRecordBytes + 1];
  ssize_t size = -1;
  struct stat st {};
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) size = ::read(fd, text, sizeof text);
  if (fd >= 0) ::close(fd);
  ExitInfo exit;
  const char* problem =
      size < 0 ? "not a readable file" : parseExitRecord(text, static_cast<size_t>(size), exit);
  char expected[kMaxExitRecordNameBytes];
  if (!problem) {
    exitRecordName(exit.owner, exit.pid, expected);
    if (std::strcmp(expected, name) != 0) problem = "its name does not match its contents";
  }
  if (problem) {
    logLine("warning", "skipping %s/%s: %s", options_.exitDir.c_str(), name, problem);
    return;
  }
  if (pending_.find(exit.owner, exit.pid)) return;
  if (!pending_.add(exit, /*onDisk=*/true)) ++diskOnlyExits_;
}

void Keeper::readRequests() {
  while (socket_ >= 0) {
    uint8_t data[kRecordSize + 1];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRecord)];
    iovec io{data, sizeof data};
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(socket_, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) closeSocket();
      return;
    }
    int fds[kMaxFdsPerRecord];
    size_t fdCount = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count && fdCount < kMaxFdsPerRecord; ++i) {
        std::memcpy(&fds[fdCount++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      }
    }
    if (n == 0 && fdCount == 0) {
      pollfd probe{socket_, POLLIN, 0};
      if (::poll(&probe, 1, 0) == 1 && (probe.revents & POLLHUP)) {
        // The daemon's end is closed: it is dying (its SIGCHLD follows), or it lives on without
        // a keeper until it dies. Either way exits wait in their records for the next daemon.
        closeSocket();
        return;
      }
    }
    const bool truncated = (message.msg_flags & MSG_TRUNC) != 0;
    handleRequest(data, truncated ? sizeof data : static_cast<size_t>(n), fds, fdCount,
                  (message.msg_flags & MSG_CTRUNC) != 0);
  }
}

void Keeper::handleRequest(const uint8_t* data, size_t size, const int* fds, size_t fdCount,
                           bool fdsLost) {
  KeeperRecord request;
  if (const char* problem = decodeRecord(data, size, fdCount, RecordSource::kDaemon, request)) {
    closeAll(fds, fdCount);
    const bool noDescriptor = fdsLost && fdCount == 0 && request.type == RecordType::kHold;
    logLine("warning", "refusing a record from the daemon: %s%s", problem,
            noDescriptor ? " (the keeper is out of descriptors)" : "");
    refuse(request, noDescriptor ? RefusalReason::kNoDescriptor : RefusalReason::kMalformed);
    return;
  }
  switch (request.type) {
    case RecordType::kHold: {
      // One descriptor per (owner, tag): a repeated HOLD replaces the older one.
      FixedSlots<HeldFd>& slots = held_.slots();
      for (size_t i = 0; i < slots.end(); ++i) {
        HeldFd* entry = slots.at(i);
        if (entry && entry->tag == request.tag && entry->owner == request.owner) {
          ::close(entry->fd);
          slots.release(entry);
          break;
        }
      }
      if (!held_.add(request.owner, request.tag, fds[0])) {
        ::close(fds[0]);
        refuse(request, RefusalReason::kTableFull);
      }
      break;
    }
    case RecordType::kRelease:
      held_.release(request.owner, request.tag);
      break;
    case RecordType::kTrack: {
      UntrackedExit early{};
      if (untracked_.take(request.pid, early)) {  // it exited before the daemon knew its pid
        attribute({request.owner, request.pid, early.waitStatus, early.timeNs});
      } else if (::kill(request.pid, 0) != 0 && errno == ESRCH) {
        refuse(request, RefusalReason::kUnknownProcess);
      } else if (tracked_.track(request.owner, request.pid) == TrackedPidTable::Result::kFull) {
        refuse(request, RefusalReason::kTableFull);
      }
      break;
    }
    case RecordType::kAck: {
      pending_.remove(request.owner, request.pid);
      char name[kMaxExitRecordNameBytes];
      exitRecordName(request.owner, request.pid, name);
      if (::unlinkat(exitDirFd_, name, 0) != 0 && errno != ENOENT) {
        logLine("error", "removing exit record %s/%s: %s", options_.exitDir.c_str(), name,
                errorText(errno));
      }
      // A slot is free: exits that found the table full come in from their records.
      if (diskOnlyExits_ > 0) scanExitDir(/*atStart=*/false);
      break;
    }
    default:
      break;  // decodeRecord lets no other type through
  }
}

void Keeper::refuse(const KeeperRecord& request, RefusalReason reason) {
  if (reason != RefusalReason::kMalformed) {
    logLine("warning", "%s of %.*s refused: %s", recordTypeName(request.type),
            static_cast<int>(request.owner.length), request.owner.bytes, refusalReasonText(reason));
  }
  if (socket_ < 0 || sendBroken_) return;
  if (refusalCount_ == kRefusalQueueSize) {
    logLine("warning", "the daemon does not read its refusals: one more dropped");
    return;
  }
  KeeperRecord& refusal = refusals_[(refusalHead_ + refusalCount_++) % kRefusalQueueSize];
  refusal = KeeperRecord{};
  refusal.type = RecordType::kRefused;
  refusal.refusedType = request.type;
  refusal.reason = reason;
  refusal.owner = request.owner;
  refusal.pid = request.pid > 0 ? request.pid : 0;
}

void Keeper::flush() {
  if (socket_ < 0 || sendBroken_ || retrySendAtMs_ != 0) return;
  wantWrite_ = false;
  for (;;) {
    SendResult result;
    if (refusalCount_ > 0) {
      result = send(refusals_[refusalHead_], -1);
      if (result == SendResult::kSent) {
        refusalHead_ = (refusalHead_ + 1) % kRefusalQueueSize;
        --refusalCount_;
      }
    } else if (HeldFd* held = readySent_ ? nullptr : held_.slots().firstUnsent()) {
      KeeperRecord record;
      record.type = RecordType::kHeld;
      record.owner = held->owner;
      record.tag = held->tag;
      result = send(record, held->fd);
      if (result == SendResult::kSent) {
        held_.slots().markSent(held);
        ++heldSent_;
      }
    } else if (PendingExit* pending = pending_.slots().firstUnsent()) {
      KeeperRecord record;
      record.type = RecordType::kExit;
      record.owner = pending->exit.owner;
      record.pid = pending->exit.pid;
      record.waitStatus = pending->exit.waitStatus;
      record.timeNs = pending->exit.timeNs;
      result = send(record, -1);
      if (result == SendResult::kSent) {
        pending_.slots().markSent(pending);
        if (!readySent_) ++exitsSent_;
      }
    } else if (!readySent_) {
      KeeperRecord record;
      record.type = RecordType::kReady;
      record.heldCount = heldSent_;
      record.exitCount = exitsSent_;
      result = send(record, -1);
      if (result == SendResult::kSent) readySent_ = true;
    } else {
      return;
    }
    if (result == SendResult::kBlocked) {
      wantWrite_ = retrySendAtMs_ == 0;
      return;
    }
    if (result == SendResult::kBroken) {
      sendBroken_ = true;  // reading goes on until the socket closes or the daemon exits
      return;
    }
  }
}

Keeper::SendResult Keeper::send(const KeeperRecord& record, int fd) {
  uint8_t data[kRecordSize];
  encodeRecord(record, data);
  const int error = sendRecordMessage(socket_, data, fd);
  if (error == 0) return SendResult::kSent;
  if (error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS) return SendResult::kBlocked;
  if (error == ETOOMANYREFS) {
    retrySendAtMs_ = monotonicMs() + kSendRetryMs;
    return SendResult::kBlocked;
  }
  if (error != EPIPE && error != ECONNRESET) {
    logLine("warning", "sending to the daemon: %s", errorText(error));
  }
  return SendResult::kBroken;
}

void Keeper::closeSocket() {
  if (socket_ >= 0) ::close(socket_);
  socket_ = -1;
  wantWrite_ = false;
  refusalHead_ = refusalCount_ = 0;
}

}  // namespace

int runKeeper(const KeeperOptions& options) {
  // One keeper per process, for the life of the process: its tables live on the heap, sized
  // by the options, and the object itself on it too (the refusal queue and read buffer).
  auto* keeper = new (std::nothrow) Keeper(options);
  if (!keeper) return 1;
  const int code = keeper->run();
  delete keeper;
  return code;
}

int takeKeeperFd() {
  const char* value = std::getenv(kKeeperFdVariable);
  if (!value) return -1;
  int fd = 0;
  bool valid = *value != '\0' && std::strlen(value) <= 6;
  for (const char* c = value; valid && *c; ++c) {
    valid = *c >= '0' && *c <= '9';
    fd = fd * 10 + (*c - '0');
  }
  unsetenv(kKeeperFdVariable);
  if (!valid || fd <= STDERR_FILENO) return -1;
  int type = 0;
  socklen_t length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0 || type != SOCK_SEQPACKET) {
    return -1;
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

}  // namespace monocri::monitor
