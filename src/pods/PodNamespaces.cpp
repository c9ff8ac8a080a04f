#include "pods/PodNamespaces.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

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

}  // namespace

PodNamespaces::PodNamespaces(loop::Loop& loop, std::string initBinary)
    : loop_(loop), initBinary_(std::move(initBinary)) {}

PodNamespaces::~PodNamespaces() = default;

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
  std::vector<std::string> args{"pin", request.dir};
  if (request.net) args.emplace_back("--net");
  if (request.ipc) args.emplace_back("--ipc");
  if (request.uts) args.emplace_back("--uts");
  if (!request.hostname.empty()) {
    args.emplace_back("--hostname");
    args.push_back(request.hostname);
  }
  for (const auto& sysctl : request.sysctls) {
    args.emplace_back("--sysctl");
    args.push_back(sysctl);
  }
  run(std::move(args), std::move(done));
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
