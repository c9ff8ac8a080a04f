#include "monitor/KeeperLink.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace monocri::monitor {

namespace {

// Records read per loop turn: a keeper replaying thousands of them must not stall the loop.
constexpr int kMaxRecordsPerTurn = 256;
// Records waiting for room on the socket. The keeper reads as fast as it can; a backlog this
// long means it is stuck, and holding more would only grow the daemon.
constexpr size_t kMaxQueuedRecords = 65536;
// Replayed records before READY: far more than the keeper's tables can hold.
constexpr size_t kMaxReplayed = 1 << 20;
// After ETOOMANYREFS (too many descriptors in flight), sending is retried after this long.
constexpr uint64_t kSendRetryMs = 10;

void closeAll(std::span<const int> fds) {
  for (int fd : fds)
    ::close(fd);
}

}  // namespace

std::string KeeperLink::Refusal::describe() const {
  if (request == RecordType::kNone) {
    return fmt::format("a record the keeper could not read was refused: {}",
                       refusalReasonText(reason));
  }
  std::string text = fmt::format("{} of {}", recordTypeName(request), owner);
  if (pid > 0) text += fmt::format(" (pid {})", pid);
  return text + " refused: " + refusalReasonText(reason);
}

// ---- RecordReader ----

KeeperLink::RecordReader::~RecordReader() {
  for (const auto& held : held_)
    ::close(held.fd);
}

KeeperLink::RecordReader::Outcome KeeperLink::RecordReader::skip(const char* why,
                                                                 std::span<const int> fds) {
  closeAll(fds);
  ++skipped_;
  spdlog::warn("skipping a record from the keeper: {}", why);
  return Outcome::kSkipped;
}

KeeperLink::RecordReader::Outcome KeeperLink::RecordReader::read(std::span<const uint8_t> datagram,
                                                                 std::span<const int> fds,
                                                                 bool truncated) {
  if (truncated) return skip("longer than a keeper record", fds);
  KeeperRecord record;
  if (const char* problem = decodeRecord(datagram.data(), datagram.size(), fds.size(),
                                         RecordSource::kKeeper, record)) {
    return skip(problem, fds);
  }
  switch (record.type) {
    case RecordType::kHeld:
      if (ready_) return skip("HELD after READY", fds);
      if (held_.size() >= kMaxReplayed) return skip("too many HELD records", fds);
      held_.push_back({std::string(record.owner.view()), record.tag, fds[0]});
      return Outcome::kReplayed;
    case RecordType::kExit: {
      Exit exit{std::string(record.owner.view()), record.pid, record.waitStatus, record.timeNs};
      if (ready_) {
        lastExit_ = std::move(exit);
        return Outcome::kExit;
      }
      if (replayedExits_.size() >= kMaxReplayed) return skip("too many replayed exits", fds);
      replayedExits_.push_back(std::move(exit));
      return Outcome::kReplayed;
    }
    case RecordType::kReady:
      if (ready_) return skip("a second READY", fds);
      if (record.heldCount != held_.size() || record.exitCount != replayedExits_.size()) {
        spdlog::error(
            "the keeper says it replayed {} held descriptors and {} exits, {} and {} arrived",
            record.heldCount, record.exitCount, held_.size(), replayedExits_.size());
      }
      ready_ = true;
      return Outcome::kReady;
    case RecordType::kRefused:
      lastRefusal_ = {record.refusedType, std::string(record.owner.view()), record.pid,
                      record.reason};
      return Outcome::kRefused;
    default:
      return skip("a record the daemon sends, not the keeper", fds);  // decodeRecord stops these
  }
}

// ---- KeeperLink ----

std::unique_ptr<KeeperLink> KeeperLink::adopt(loop::Loop& loop, int fd, std::string& error) {
  state::UniqueFd owned(fd);
  int type = 0;
  socklen_t length = sizeof type;
  if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0 ||
      type != SOCK_SEQPACKET) {
    error = fmt::format("keeper socket (fd {}) is not a SOCK_SEQPACKET socket", fd);
    return nullptr;
  }
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
      fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    error = fmt::format("keeper socket (fd {}): fcntl: {}", fd, std::strerror(errno));
    return nullptr;
  }
  std::unique_ptr<KeeperLink> link(new KeeperLink(loop, owned.release()));
  int pollError = 0;
  link->poll_ = loop::Poll::create(loop, fd, &pollError);
  if (!link->poll_) {
    error = fmt::format("watching the keeper socket: {}", uv_strerror(pollError));
    return nullptr;
  }
  // The link alone does not keep the daemon running: at shutdown the loop ends once the
  // server and the work in flight are done (unacknowledged exits are replayed next start).
  link->poll_->unref();
  link->watch();
  return link;
}

KeeperLink::~KeeperLink() {
  poll_.reset();  // before fd_ closes
}

void KeeperLink::onReady(std::function<void(std::vector<HeldFd>, std::vector<Exit>)> ready) {
  ready_ = std::move(ready);
  if (readyPending_) {
    loop_.defer(guard_.watch(), [this] {
      if (readyPending_ && ready_) deliverReady();
    });
  }
}

void KeeperLink::onExit(std::function<void(const Exit&)> exited) {
  exited_ = std::move(exited);
  if (!earlyExits_.empty()) {
    loop_.defer(guard_.watch(), [this] {
      auto alive = guard_.watch();
      auto exits = std::exchange(earlyExits_, {});
      for (const auto& exit : exits) {
        if (alive.expired() || !exited_) return;
        exited_(exit);
      }
    });
  }
}

void KeeperLink::onLost(std::function<void()> lost) {
  lostCallback_ = std::move(lost);
}

void KeeperLink::onRefused(std::function<void(const Refusal&)> refused) {
  refused_ = std::move(refused);
}

void KeeperLink::deliverReady() {
  readyPending_ = false;
  auto ready = ready_;  // the callback may replace itself
  ready(reader_.takeHeld(), reader_.takeReplayedExits());
}

void KeeperLink::hold(const std::string& owner, uint32_t tag, int fd) {
  KeeperRecord record;
  record.type = RecordType::kHold;
  record.tag = tag;
  if (!Owner::parse(owner, record.owner) || tag > kMaxTag || fd < 0) {
    spdlog::error("keeper: not holding fd {} for '{}' tag {}: invalid owner, tag or fd", fd, owner,
                  tag);
    return;
  }
  send(record, fd);
}

void KeeperLink::release(const std::string& owner, uint32_t tag) {
  KeeperRecord record;
  record.type = RecordType::kRelease;
  record.tag = tag;
  if (!Owner::parse(owner, record.owner)) {
    spdlog::error("keeper: cannot release '{}': invalid owner", owner);
    return;
  }
  send(record, -1);
}

void KeeperLink::track(const std::string& owner, pid_t pid) {
  KeeperRecord record;
  record.type = RecordType::kTrack;
  record.pid = pid;
  if (!Owner::parse(owner, record.owner) || pid <= 0) {
    spdlog::error("keeper: cannot track pid {} for '{}': invalid owner or pid", pid, owner);
    return;
  }
  send(record, -1);
}

void KeeperLink::acknowledge(const std::string& owner, pid_t pid) {
  KeeperRecord record;
  record.type = RecordType::kAck;
  record.pid = pid;
  if (!Owner::parse(owner, record.owner) || pid <= 0) {
    spdlog::error("keeper: cannot acknowledge pid {} of '{}': invalid owner or pid", pid, owner);
    return;
  }
  send(record, -1);
}

void KeeperLink::send(const KeeperRecord& record, int fd) {
  if (lost_) {
    spdlog::warn("keeper link lost: {} of {} not sent", recordTypeName(record.type),
                 record.owner.view());
    return;
  }
  Outgoing out;
  encodeRecord(record, out.bytes.data());
  if (queue_.empty() && !(retry_ && retry_->active())) {
    const SendResult result = sendNow(out.bytes.data(), fd);
    if (result != SendResult::kBlocked) return;  // sent, or the link is lost (logged)
  }
  if (queue_.size() >= kMaxQueuedRecords) {
    spdlog::error("keeper socket backlog full ({} records): {} of {} dropped", queue_.size(),
                  recordTypeName(record.type), record.owner.view());
    return;
  }
  if (fd >= 0) {
    // The caller may close its fd before the socket has room: wait with a duplicate.
    out.fd.reset(fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (!out.fd.valid()) {
      spdlog::error("keeper: duplicating fd {} of {}: {}", fd, record.owner.view(),
                    std::strerror(errno));
      return;
    }
  }
  queue_.push_back(std::move(out));
  watch();
}

KeeperLink::SendResult KeeperLink::sendNow(const uint8_t* bytes, int fd) {
  const int error = sendRecordMessage(fd_.get(), bytes, fd);
  if (error == 0) return SendResult::kSent;
  if (error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS) return SendResult::kBlocked;
  if (error == ETOOMANYREFS) {
    if (!retry_) retry_ = loop::Timer::create(loop_, "keeper send retry");
    retry_->start(kSendRetryMs, 0, [this] { drainQueue(); });
    return SendResult::kBlocked;
  }
  lose(error == EMSGSIZE ? "short send" : std::strerror(error));
  return SendResult::kFailed;
}

void KeeperLink::drainQueue() {
  while (!queue_.empty() && !lost_) {
    const SendResult result = sendNow(queue_.front().bytes.data(), queue_.front().fd.get());
    if (result == SendResult::kFailed) return;
    if (result == SendResult::kBlocked) break;
    queue_.pop_front();
  }
  if (!lost_) watch();
}

void KeeperLink::watch() {
  if (!poll_) return;
  const bool writable = !queue_.empty() && !(retry_ && retry_->active());
  poll_->start(UV_READABLE | (writable ? UV_WRITABLE : 0),
               [this](int status, int events) { onEvents(status, events); });
}

void KeeperLink::onEvents(int status, int events) {
  if (status < 0) {
    lose(uv_strerror(status));
    return;
  }
  auto alive = guard_.watch();
  if (events & UV_WRITABLE) drainQueue();
  if (alive.expired() || lost_) return;
  if (events & (UV_READABLE | UV_DISCONNECT)) receive();
}

void KeeperLink::receive() {
  auto alive = guard_.watch();
  for (int i = 0; i < kMaxRecordsPerTurn && !lost_; ++i) {
    uint8_t data[kRecordSize + 1];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRecord)];
    iovec io{data, sizeof data};
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd_.get(), &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      lose(std::strerror(errno));
      return;
    }
    std::vector<int> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t k = 0; k < count; ++k) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof fd);
        fds.push_back(fd);
      }
    }
    if (n == 0 && fds.empty()) {
      pollfd probe{fd_.get(), POLLIN, 0};
      if (::poll(&probe, 1, 0) == 1 && (probe.revents & POLLHUP)) {
        lose("the keeper closed its end");
        return;
      }
    }
    const bool truncated = (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    switch (reader_.read({data, static_cast<size_t>(n)}, fds, truncated)) {
      case RecordReader::Outcome::kReady:
        if (ready_) {
          deliverReady();
        } else {
          readyPending_ = true;
        }
        break;
      case RecordReader::Outcome::kExit:
        if (exited_) {
          exited_(reader_.lastExit());
        } else {
          earlyExits_.push_back(reader_.lastExit());
        }
        break;
      case RecordReader::Outcome::kRefused:
        spdlog::warn("keeper: {}", reader_.lastRefusal().describe());
        if (refused_) refused_(reader_.lastRefusal());
        break;
      case RecordReader::Outcome::kReplayed:
      case RecordReader::Outcome::kSkipped:
        break;
    }
    if (alive.expired()) return;  // a callback destroyed the link
  }
}

void KeeperLink::lose(const char* why) {
  if (lost_) return;
  lost_ = true;
  spdlog::error("keeper link lost: {}", why);
  poll_.reset();
  retry_.reset();
  fd_.reset();
  queue_.clear();
  if (lostCallback_) {
    auto lost = lostCallback_;
    lost();
  }
}

}  // namespace monocri::monitor
