#include "pods/PodNamespaces.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "loop/WorkQueue.h"
#include "state/StateFiles.h"
#include "state/UniqueFd.h"

namespace monocri::pods {

using grpc::Status;
using grpc::StatusCode;
using state::UniqueFd;

namespace {

// What monocri-pod-init said on stderr: one line, bounded.
std::string readMessage(int fd) {
  char buffer[1024];
  ssize_t n = pread(fd, buffer, sizeof(buffer) - 1, 0);
  if (n <= 0) return {};
  std::string message(buffer, static_cast<size_t>(n));
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r'))
    message.pop_back();
  return message;
}

// Everything the pinning child does, decided before it is cloned: it shares the worker's memory
// (CLONE_VM) and must not allocate, so every path is built here and it only reads them. It
// reports a failure in `failedStep`/`failedPath`/`failedErrno`, which the worker reads after.
struct PinPlan {
  pid_t daemonPid = getpid();
  bool lowPriority = false;  // a pooled namespace, made ahead of need: it yields the CPU
  std::string netnsFrom;     // a pinned network namespace entered instead of making one
  int unshareFlags = 0;
  std::string hostname;
  bool loopbackUp = false;
  std::vector<std::pair<std::string, std::string>> sysctls;  // /proc/sys/... path, value
  std::vector<std::pair<std::string, std::string>> pins;     // /proc/self/ns/X, DIR/X
  const char* failedStep = nullptr;
  const std::string* failedPath = nullptr;
  int failedErrno = 0;
};

int failIn(PinPlan& plan, const char* step, const std::string* path = nullptr) {
  plan.failedStep = step;
  plan.failedPath = path;
  plan.failedErrno = errno;
  return 1;
}

bool writeAll(int fd, const std::string& data) {
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    written += static_cast<size_t>(n);
  }
  return true;
}

// Pins the namespace file `source` at `target` (a new file, then a bind mount onto it). Only
// syscalls, for the child too. Returns null, or the step that failed with errno set (the file
// made is removed again).
const char* pinAt(const char* source, const char* target) {
  const int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
  if (fd < 0) return "create the namespace file";
  const bool bound = mount(source, target, nullptr, MS_BIND, nullptr) == 0;
  const int bindErrno = errno;
  close(fd);
  if (bound) return nullptr;
  unlink(target);
  errno = bindErrno;
  return "bind the namespace onto";
}

// The child: new namespaces, set up, each pinned by a bind mount of /proc/self/ns/<ns> (the
// child's own, as CRI-O's pinns does), then it exits and the mounts keep them alive. Only plain
// syscalls; its signals stay blocked (the worker blocked them all before the clone).
int pinInChild(void* arg) {
  PinPlan& plan = *static_cast<PinPlan*>(arg);
  // Dies with the daemon: an orphan finishing its pins after a restarted daemon cleaned up
  // would leave namespaces nobody knows.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != plan.daemonPid) return 1;
  if (plan.lowPriority) {
    // Not SCHED_IDLE: the child holds the rtnl lock for part of its work, and a starved holder
    // would stall every netlink user on a busy node (CNI plugins among them).
    setpriority(PRIO_PROCESS, 0, 10);  // best effort: at the normal priority it works as well
  }
  if (!plan.netnsFrom.empty()) {
    const int fd = open(plan.netnsFrom.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      failIn(plan, "enter the pod's network namespace", &plan.netnsFrom);
      if (fd >= 0) close(fd);
      return 1;
    }
    close(fd);
  }
  if (plan.unshareFlags != 0 && unshare(plan.unshareFlags) != 0) {
    return failIn(plan, "unshare the pod's namespaces");
  }
  if (!plan.hostname.empty() && sethostname(plan.hostname.data(), plan.hostname.size()) != 0) {
    return failIn(plan, "set the hostname", &plan.hostname);
  }
  if (plan.loopbackUp) {
    const int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return failIn(plan, "open a socket for the loopback interface");
    ifreq request{};
    std::memcpy(request.ifr_name, "lo", 3);
    int rc = ioctl(sock, SIOCGIFFLAGS, &request);
    if (rc == 0) {
      request.ifr_flags |= IFF_UP | IFF_RUNNING;
      rc = ioctl(sock, SIOCSIFFLAGS, &request);
    }
    if (rc != 0) return failIn(plan, "bring the loopback interface up");
    close(sock);
  }
  for (const auto& [path, value] : plan.sysctls) {
    const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return failIn(plan, "open the sysctl", &path);
    const bool written = writeAll(fd, value);
    if (!written) return failIn(plan, "write the sysctl", &path);
    close(fd);
  }
  size_t made = 0;
  for (const auto& [source, target] : plan.pins) {
    if (const char* failed = pinAt(source.c_str(), target.c_str()); failed != nullptr) {
      failIn(plan, failed, &target);
      for (size_t i = 0; i < made; ++i) {  // all or nothing
        umount2(plan.pins[i].second.c_str(), MNT_DETACH);
        unlink(plan.pins[i].second.c_str());
      }
      return 1;
    }
    ++made;
  }
  return 0;
}

// Runs on a worker thread: clones the pinning child and waits for it. CLONE_VFORK suspends this
// worker (never the loop) until the child exits; the child runs on a stack of its own.
Status pinOnWorker(PinPlan& plan) {
  constexpr size_t kStackBytes = 64 * 1024;
  auto stack = std::make_unique<char[]>(kStackBytes);
  char* stackTop = stack.get() + kStackBytes;  // the stack grows down; new[] aligns to 16
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  const pid_t pid = clone(pinInChild, stackTop, CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
  const int cloneErrno = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0) {
    return Status(StatusCode::kInternal, fmt::format("clone the process that makes the pod's "
                                                     "namespaces: {}",
                                                     std::strerror(cloneErrno)));
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (plan.failedStep != nullptr) {
    return Status(StatusCode::kInternal,
                  plan.failedPath
                      ? fmt::format("{} {}: {}", plan.failedStep, *plan.failedPath,
                                    std::strerror(plan.failedErrno))
                      : fmt::format("{}: {}", plan.failedStep, std::strerror(plan.failedErrno)));
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return Status(StatusCode::kInternal,
                  "the process that makes the pod's namespaces ended before it was done");
  }
  return Status::ok();
}

}  // namespace

PodNamespaces::PodNamespaces(loop::Loop& loop, std::string initBinary, PoolOptions pool)
    : loop_(loop), initBinary_(std::move(initBinary)), pool_(std::move(pool)) {}

PodNamespaces::~PodNamespaces() {
  for (const auto& path : poolReady_) {
    if (Status s = unpin(path); !s.isOk()) spdlog::warn("{}", s.message());
  }
}

std::string PodNamespaces::startPool() {
  if (pool_.dir.empty()) return {};  // no pool at all
  if (std::string error = state::makeDirectories(pool_.dir, 0700); !error.empty()) return error;
  // An earlier daemon's ready namespaces: nobody else knows them, and they are cheap to remake.
  // One that cannot go is named in the log; the pool's own names never meet it (they start
  // with this daemon's pid).
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(pool_.dir, ec)) {
    if (Status s = unpin(entry.path()); !s.isOk()) spdlog::warn("{}", s.message());
  }
  if (ec) spdlog::warn("list {}: {}", pool_.dir, ec.message());
  poolStarted_ = true;
  refillPool();
  return {};
}

nlohmann::json PodNamespaces::poolInfo() const {
  nlohmann::json info{{"size", pool_.size},
                      {"ready", poolReady_.size()},
                      {"made", poolMade_},
                      {"taken", poolTaken_},
                      {"missed", poolMissed_}};
  if (!poolError_.empty()) info["error"] = poolError_;
  return info;
}

bool PodNamespaces::takePooledNetns(const std::string& target) {
  if (pool_.size == 0) return false;
  if (poolReady_.empty()) {
    ++poolMissed_;
    return false;
  }
  const std::string pooled = std::move(poolReady_.front());
  poolReady_.pop_front();
  // A bind of the pool's pin: the same namespace, now held by the pod's file.
  const char* failed = pinAt(pooled.c_str(), target.c_str());
  const int pinErrno = errno;
  if (Status s = unpin(pooled); !s.isOk()) spdlog::warn("{}", s.message());
  if (failed != nullptr) {
    spdlog::warn("{} {} (the pooled network namespace {}): {}; the pod makes its own", failed,
                 target, pooled, std::strerror(pinErrno));
    return false;
  }
  ++poolTaken_;
  return true;
}

void PodNamespaces::refillPool() {
  if (!poolStarted_ || poolRefilling_ || !poolError_.empty() || poolReady_.size() >= pool_.size) {
    return;
  }
  auto plan = std::make_shared<PinPlan>();
  plan->lowPriority = true;
  plan->unshareFlags = CLONE_NEWNET;
  plan->loopbackUp = true;
  std::string path = fmt::format("{}/{}-{}", pool_.dir, getpid(), poolSequence_++);
  plan->pins.emplace_back("/proc/self/ns/net", path);
  auto result = std::make_shared<Status>();
  poolRefilling_ = true;
  const int rc = loop::queueWork(
      loop_, "make a network namespace for the pool",
      [plan, result] { *result = pinOnWorker(*plan); },
      [this, path, result, alive = lifetime_.watch()] {
        if (alive.expired()) {  // the daemon is stopping: this one would outlive it
          (void)unpin(path);
          return;
        }
        poolRefilling_ = false;
        if (!result->isOk()) {
          poolError_ = result->message();
          spdlog::warn("the pool of network namespaces stopped, each pod makes its own: {}",
                       poolError_);
          return;
        }
        ++poolMade_;
        poolReady_.push_back(path);
        refillPool();
      });
  if (rc != 0) {
    poolRefilling_ = false;
    poolError_ = fmt::format("queue a worker job: {}", uv_strerror(rc));
  }
}

void PodNamespaces::run(std::vector<std::string> args, std::function<void(Status)> done) {
  UniqueFd errors(memfd_create("pod-init-stderr", MFD_CLOEXEC));
  if (!errors.valid()) {
    done(Status(StatusCode::kInternal, fmt::format("memfd_create: {}", std::strerror(errno))));
    return;
  }
  loop::ChildProcess::Options options;
  options.argv.push_back(initBinary_);
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.fds.emplace_back(errors.get(), 2);
  options.inheritStderr = false;
  const uint64_t id = nextId_++;
  std::string error;
  auto onExit = [this, id, done, errorsFd = errors.get(),
                 alive = lifetime_.watch()](loop::ChildExit exit) mutable {
    if (alive.expired()) return;
    Status status;
    if (exit.signaled || exit.code != 0) {
      std::string message = readMessage(errorsFd);
      if (message.empty()) message = fmt::format("monocri-pod-init ended with {}", exit.describe());
      status = Status(StatusCode::kInternal, message);
    }
    ::close(errorsFd);
    // The ChildProcess is on the stack of this callback: free it after.
    loop_.defer(lifetime_.watch(), [this, id] {
      std::erase_if(running_, [id](const auto& entry) { return entry.first == id; });
    });
    done(status);
  };
  auto child = loop::ChildProcess::spawn(loop_, options, std::move(onExit), error);
  if (!child) {
    done(Status(StatusCode::kFailedPrecondition, error));
    return;
  }
  errors.release();  // closed by onExit
  running_.emplace_back(id, std::move(child));
}

void PodNamespaces::pin(const PinRequest& request, std::function<void(Status)> done) {
  auto plan = std::make_shared<PinPlan>();
  plan->unshareFlags = (request.net ? CLONE_NEWNET : 0) | (request.ipc ? CLONE_NEWIPC : 0) |
                       (request.uts ? CLONE_NEWUTS : 0);
  plan->hostname = request.uts ? request.hostname : std::string();
  plan->loopbackUp = request.net;
  if (!request.net) plan->netnsFrom = request.enterNet;
  for (const auto& sysctl : request.sysctls) {
    // Resolved by the child in its own namespaces: /proc/sys/net and kernel.shm*/msg*/sem are
    // the writer's. The pod manager has checked that each one is namespaced.
    const size_t eq = sysctl.find('=');
    std::string key = sysctl.substr(0, eq);
    if (eq == std::string::npos || key.empty() || key.find("..") != std::string::npos ||
        key.find('/') != std::string::npos) {
      done(Status(StatusCode::kInvalidArgument,
                  fmt::format("sysctl '{}' is not KEY=VALUE with a dotted key", sysctl)));
      return;
    }
    std::replace(key.begin(), key.end(), '.', '/');
    plan->sysctls.emplace_back("/proc/sys/" + key, sysctl.substr(eq + 1));
  }
  for (const auto& [wanted, name] :
       {std::pair{request.net, "net"}, {request.ipc, "ipc"}, {request.uts, "uts"}}) {
    if (wanted) {
      plan->pins.emplace_back(std::string("/proc/self/ns/") + name, request.dir + "/" + name);
    }
  }
  auto result = std::make_shared<Status>();
  const int rc = loop::queueWork(
      loop_, "pin pod namespaces", [plan, result] { *result = pinOnWorker(*plan); },
      [result, done, alive = lifetime_.watch()] {
        if (!alive.expired()) done(*result);
      });
  if (rc != 0) {
    done(Status(StatusCode::kInternal,
                fmt::format("queue the pinning of the pod's namespaces: {}", uv_strerror(rc))));
  }
}

void PodNamespaces::startPidNamespace(const std::string& pidFile,
                                      std::function<void(Status, pid_t)> done) {
  run({"pidns", pidFile}, [pidFile, done = std::move(done)](Status status) {
    if (!status.isOk()) return done(status, 0);
    std::string text;
    if (std::string error = state::readFile(pidFile, 32, text); !error.empty()) {
      return done(Status(StatusCode::kInternal, error), 0);
    }
    pid_t pid = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
    if (ec != std::errc() || pid <= 1) {
      return done(Status(StatusCode::kInternal,
                         fmt::format("monocri-pod-init wrote no pid to {}", pidFile)),
                  0);
    }
    done(Status::ok(), pid);
  });
}

Status PodNamespaces::unpin(const std::string& path) {
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return Status(StatusCode::kInternal,
                  fmt::format("unmount the pinned namespace {}: {}", path, std::strerror(errno)));
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status(StatusCode::kInternal,
                  fmt::format("remove the pinned namespace {}: {}", path, std::strerror(errno)));
  }
  return Status::ok();
}

}  // namespace monocri::pods
