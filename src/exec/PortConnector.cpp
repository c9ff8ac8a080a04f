#include "exec/PortConnector.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "loop/WorkQueue.h"
#include "state/UniqueFd.h"

namespace monocri::exec {

using grpc::Status;
using grpc::StatusCode;
using state::UniqueFd;

namespace {

struct Attempt {
  Status status;
  UniqueFd socket;
};

// How long a connect may wait: a loopback connect completes or fails at once unless the
// listener's backlog is full or a firewall drops the SYN; the worker thread is not held longer.
constexpr int kConnectTimeoutMs = 5'000;

// connect(2) bounded by kConnectTimeoutMs; 0 or an errno.
int connectWithin(int fd, const sockaddr* address, socklen_t length) {
  if (connect(fd, address, length) == 0) return 0;
  if (errno != EINPROGRESS) return errno;
  pollfd watch{fd, POLLOUT, 0};
  const int ready = poll(&watch, 1, kConnectTimeoutMs);
  if (ready == 0) return ETIMEDOUT;
  if (ready < 0) return errno;
  int error = 0;
  socklen_t size = sizeof(error);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0) return errno;
  return error;
}

// localhost as kubelet's own port-forward means it: 127.0.0.1, then ::1.
Attempt connectLocal(uint16_t port) {
  Attempt attempt;
  std::string errors;
  for (int family : {AF_INET, AF_INET6}) {
    UniqueFd fd(socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) {
      errors += fmt::format("{}socket: {}", errors.empty() ? "" : "; ", std::strerror(errno));
      continue;
    }
    sockaddr_storage address{};
    socklen_t length = 0;
    if (family == AF_INET) {
      auto* in4 = reinterpret_cast<sockaddr_in*>(&address);
      in4->sin_family = AF_INET;
      in4->sin_port = htons(port);
      in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      length = sizeof(sockaddr_in);
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(port);
      in6->sin6_addr = in6addr_loopback;
      length = sizeof(sockaddr_in6);
    }
    if (const int error = connectWithin(fd.get(), reinterpret_cast<sockaddr*>(&address), length);
        error != 0) {
      errors += fmt::format("{}connect {}:{}: {}", errors.empty() ? "" : "; ",
                            family == AF_INET ? "127.0.0.1" : "[::1]", port, std::strerror(error));
      continue;
    }
    const int on = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    attempt.socket = std::move(fd);
    return attempt;
  }
  attempt.status = Status(StatusCode::kUnavailable, errors);
  return attempt;
}

}  // namespace

void connectInNamespace(loop::Loop& loop, std::string netnsPath, uint16_t port,
                        StreamBackend::Connected done) {
  auto attempt = std::make_shared<Attempt>();
  auto callback = std::make_shared<StreamBackend::Connected>(std::move(done));
  const int rc = loop::queueWork(
      loop, "port-forward connect",
      [attempt, netnsPath, port] {
        if (netnsPath.empty()) {
          *attempt = connectLocal(port);
          return;
        }
        UniqueFd own(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
        UniqueFd pod(open(netnsPath.c_str(), O_RDONLY | O_CLOEXEC));
        if (!own.valid() || !pod.valid()) {
          attempt->status = Status(
              StatusCode::kFailedPrecondition,
              fmt::format("the pod's network namespace {}: {}", netnsPath, std::strerror(errno)));
          return;
        }
        if (setns(pod.get(), CLONE_NEWNET) != 0) {
          attempt->status = Status(StatusCode::kInternal,
                                   fmt::format("entering the pod's network namespace {}: {}",
                                               netnsPath, std::strerror(errno)));
          return;
        }
        *attempt = connectLocal(port);
        if (setns(own.get(), CLONE_NEWNET) != 0) {
          // A pool thread left in a pod's namespace would make every later socket there.
          spdlog::critical(
              "port-forward: cannot return a worker thread to the daemon's network "
              "namespace: {}",
              std::strerror(errno));
          std::abort();
        }
      },
      [attempt, callback] { (*callback)(std::move(attempt->status), std::move(attempt->socket)); });
  if (rc != 0) {
    loop.defer([callback, rc] {
      (*callback)(
          Status(StatusCode::kInternal, fmt::format("port-forward worker: {}", uv_strerror(rc))),
          UniqueFd());
    });
  }
}

}  // namespace monocri::exec
