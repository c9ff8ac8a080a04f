#include "oci/runtime/SyncChannel.h"

#include <sys/socket.h>
#include <unistd.h>

#include "oci/runtime/RuntimeError.h"

namespace monocri::runtime {

namespace {

constexpr uint32_t kMaxPayload = 16 * 1024 * 1024;

bool readAll(int fd, void* data, size_t size, bool eofAllowed) {
  auto* bytes = static_cast<char*>(data);
  size_t done = 0;
  while (done < size) {
    ssize_t n = read(fd, bytes + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno("reading from the container process");
    if (n == 0) {
      if (done == 0 && eofAllowed) return false;
      fail("the container process closed its channel in the middle of a message");
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

void sendSync(int fd, SyncType type, std::string_view payload) {
  uint32_t header[2] = {static_cast<uint32_t>(type), static_cast<uint32_t>(payload.size())};
  iovec parts[2] = {{header, sizeof header}, {const_cast<char*>(payload.data()), payload.size()}};
  msghdr message{};
  message.msg_iov = parts;
  message.msg_iovlen = 2;
  size_t total = sizeof header + payload.size(), sent = 0;
  while (sent < total) {
    ssize_t n = sendmsg(fd, &message, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno("writing to the container process's channel");
    sent += static_cast<size_t>(n);
    // Advance the iovecs past what went.
    size_t skip = static_cast<size_t>(n);
    while (skip > 0 && message.msg_iovlen > 0) {
      if (skip >= message.msg_iov->iov_len) {
        skip -= message.msg_iov->iov_len;
        ++message.msg_iov;
        --message.msg_iovlen;
      } else {
        message.msg_iov->iov_base = static_cast<char*>(message.msg_iov->iov_base) + skip;
        message.msg_iov->iov_len -= skip;
        skip = 0;
      }
    }
  }
}

bool receiveSync(int fd, SyncMessage& message) {
  uint32_t header[2];
  if (!readAll(fd, header, sizeof header, true)) return false;
  if (header[0] < static_cast<uint32_t>(SyncType::kGo) ||
      header[0] > static_cast<uint32_t>(SyncType::kInitPid) || header[1] > kMaxPayload)
    fail("a broken message from the container process (type {}, {} bytes)", header[0], header[1]);
  message.type = static_cast<SyncType>(header[0]);
  message.payload.resize(header[1]);
  readAll(fd, message.payload.data(), header[1], false);
  return true;
}

}  // namespace monocri::runtime
