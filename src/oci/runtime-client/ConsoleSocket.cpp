#include "oci/runtime-client/ConsoleSocket.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace monocri::oci {

using state::UniqueFd;

namespace {

// runc and crun send one descriptor; room for a few more lets extra ones be received (and
// closed) instead of being cut, which the kernel would report as MSG_CTRUNC.
constexpr size_t kMaxDescriptors = 8;
// runc sends the terminal's name as the payload; nothing sends more before the descriptor.
constexpr size_t kMaxBytesBeforeDescriptor = 4096;

}  // namespace

std::unique_ptr<ConsoleSocket> ConsoleSocket::listen(loop::Loop& loop, const std::string& path,
                                                     std::string& error) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    error = fmt::format("console socket path {} is {} bytes; a unix socket address holds 1 to {}",
                        path, path.size(), sizeof(address.sun_path) - 1);
    return nullptr;
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  std::unique_ptr<ConsoleSocket> socket(new ConsoleSocket(loop, path));
  socket->listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket->listener_.valid()) {
    error = fmt::format("console socket {}: socket: {}", path, std::strerror(errno));
    return nullptr;
  }
  if (bind(socket->listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    error = fmt::format("console socket {}: bind: {}", path, std::strerror(errno));
    return nullptr;
  }
  socket->bound_ = true;
  // Before listen(): nobody can connect yet, so nobody but root ever can.
  if (chmod(path.c_str(), 0600) != 0 || ::listen(socket->listener_.get(), 1) != 0) {
    error = fmt::format("console socket {}: {}", path, std::strerror(errno));
    return nullptr;  // the destructor removes the file
  }
  return socket;
}

ConsoleSocket::~ConsoleSocket() {
  stop();
}

void ConsoleSocket::receive(Received done) {
  done_ = std::move(done);
  int pollError = 0;
  listenerWatch_ = loop::Poll::create(loop_, listener_.get(), &pollError);
  if (!listenerWatch_) {
    loop_.defer(lifetime_.watch(), [this, pollError] {
      answer(UniqueFd(),
             fmt::format("console socket {}: watching it: {}", path_, uv_strerror(pollError)));
    });
    return;
  }
  listenerWatch_->start(UV_READABLE, [this](int, int) { onConnectable(); });
}

void ConsoleSocket::onConnectable() {
  UniqueFd connection(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!connection.valid()) {
    if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
    answer(UniqueFd(), fmt::format("console socket {}: accept: {}", path_, std::strerror(errno)));
    return;
  }
  // One runtime, one terminal: nobody else gets to connect.
  listenerWatch_.reset();
  listener_.reset();
  connection_ = std::move(connection);
  int pollError = 0;
  connectionWatch_ = loop::Poll::create(loop_, connection_.get(), &pollError);
  if (!connectionWatch_) {
    answer(UniqueFd(), fmt::format("console socket {}: watching the runtime's connection: {}",
                                   path_, uv_strerror(pollError)));
    return;
  }
  connectionWatch_->start(UV_READABLE, [this](int, int) { onReadable(); });
}

void ConsoleSocket::onReadable() {
  char data[512];
  iovec vector{data, sizeof(data)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxDescriptors)];
  msghdr message{};
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  const ssize_t n = recvmsg(connection_.get(), &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    answer(UniqueFd(), fmt::format("console socket {}: recvmsg: {}", path_, std::strerror(errno)));
    return;
  }
  // Take ownership of every descriptor first, so that none leaks whatever happens next.
  std::vector<UniqueFd> received;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS ||
        header->cmsg_len < CMSG_LEN(0)) {
      continue;
    }
    const size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
      received.emplace_back(fd);
    }
  }
  if (message.msg_flags & MSG_CTRUNC) {
    answer(UniqueFd(), fmt::format("console socket {}: the runtime sent more than {} descriptors",
                                   path_, kMaxDescriptors));
    return;
  }
  if (received.empty()) {
    bytesBeforeDescriptor_ += static_cast<size_t>(n);
    if (n == 0) {
      answer(UniqueFd(), fmt::format("console socket {}: the runtime closed it without sending "
                                     "the terminal",
                                     path_));
    } else if (bytesBeforeDescriptor_ > kMaxBytesBeforeDescriptor) {
      answer(UniqueFd(), fmt::format("console socket {}: the runtime sent {} bytes and no terminal",
                                     path_, bytesBeforeDescriptor_));
    }
    return;  // the descriptor may come with the next message
  }
  if (received.size() != 1) {
    answer(UniqueFd(), fmt::format("console socket {}: the runtime sent {} descriptors, not one "
                                   "terminal",
                                   path_, received.size()));
    return;
  }
  if (!isatty(received.front().get())) {
    answer(
        UniqueFd(),
        fmt::format("console socket {}: the descriptor the runtime sent is not a terminal", path_));
    return;
  }
  answer(std::move(received.front()), "");
}

void ConsoleSocket::stop() {
  listenerWatch_.reset();
  connectionWatch_.reset();
  listener_.reset();
  connection_.reset();
  if (bound_) {
    ::unlink(path_.c_str());
    bound_ = false;
  }
}

void ConsoleSocket::answer(UniqueFd master, std::string error) {
  stop();
  auto done = std::move(done_);
  done_ = nullptr;
  // Last: `done` may free this object.
  if (done) done(std::move(master), std::move(error));
}

}  // namespace monocri::oci
