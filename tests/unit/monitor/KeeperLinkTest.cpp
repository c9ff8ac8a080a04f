// The daemon's link against a scripted keeper: the test holds the other end of the socketpair.
#include "monitor/KeeperLink.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <functional>

#include "loop/Timer.h"
#include "monitor/keeper/Keeper.h"

namespace monocri::monitor {
namespace {

KeeperRecord record(RecordType type, const std::string& owner = "") {
  KeeperRecord out;
  out.type = type;
  if (!owner.empty()) {
    EXPECT_TRUE(Owner::parse(owner, out.owner));
  }
  return out;
}

// Sends raw bytes with an optional descriptor, as the keeper would.
void sendRaw(int socket, const void* data, size_t size, int fd = -1) {
  iovec io{const_cast<void*>(data), size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  if (fd >= 0) {
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ASSERT_EQ(::sendmsg(socket, &message, MSG_NOSIGNAL), static_cast<ssize_t>(size))
      << std::strerror(errno);
}

void sendRecord(int socket, const KeeperRecord& r, int fd = -1) {
  std::array<uint8_t, kRecordSize> bytes;
  encodeRecord(r, bytes.data());
  sendRaw(socket, bytes.data(), bytes.size(), fd);
}

// Reads one record the daemon sent; `fd` gets its descriptor or -1.
bool receiveRecord(int socket, KeeperRecord& out, int& fd) {
  uint8_t data[kRecordSize + 1];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  iovec io{data, sizeof data};
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(socket, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n <= 0) return false;
  fd = -1;
  size_t fds = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
    if (c->cmsg_type == SCM_RIGHTS) {
      std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
      fds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    }
  }
  return decodeRecord(data, static_cast<size_t>(n), fds, RecordSource::kDaemon, out) == nullptr;
}

// Runs the loop until `done` holds (checked every millisecond) or 5 s passed.
bool runUntil(loop::Loop& loop, const std::function<bool()>& done) {
  auto timer = loop::Timer::create(loop);
  const uint64_t deadline = loop.nowMs() + 5000;
  bool met = false;
  timer->start(0, 1, [&] {
    met = done();
    if (met || loop.nowMs() > deadline) loop.stop();
  });
  loop.run();
  return met;
}

// A pipe whose write end tells whether any read end is still open (EPIPE once none is).
struct Pipe {
  int read = -1, write = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    read = fds[0];
    write = fds[1];
  }
  ~Pipe() {
    if (read >= 0) ::close(read);
    if (write >= 0) ::close(write);
  }
  void closeRead() {
    ::close(read);
    read = -1;
  }
  bool hasReader() const { return ::write(write, "x", 1) == 1 || errno != EPIPE; }
};

class KeeperLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    keeper_ = pair[0];
    std::string error;
    link_ = KeeperLink::adopt(loop_, pair[1], error);
    ASSERT_NE(link_, nullptr) << error;
  }
  void TearDown() override {
    link_.reset();
    if (keeper_ >= 0) ::close(keeper_);
  }

  loop::Loop loop_;
  std::unique_ptr<KeeperLink> link_;
  int keeper_ = -1;
};

TEST_F(KeeperLinkTest, ReplayArrivesWholeAtReadyAndLaterExitsOneByOne) {
  Pipe stdoutPipe;
  auto held = record(RecordType::kHeld, "c1");
  held.tag = 1;
  sendRecord(keeper_, held, stdoutPipe.read);
  auto replayed = record(RecordType::kExit, "c2");
  replayed.pid = 42;
  replayed.waitStatus = 7 << 8;
  replayed.timeNs = 123;
  sendRecord(keeper_, replayed);
  auto ready = record(RecordType::kReady);
  ready.heldCount = 1;
  ready.exitCount = 1;
  sendRecord(keeper_, ready);
  auto live = record(RecordType::kExit, "c1");
  live.pid = 43;
  live.waitStatus = SIGKILL;
  sendRecord(keeper_, live);
  stdoutPipe.closeRead();  // from now on only the link's copy reads the pipe

  std::vector<KeeperLink::HeldFd> gotHeld;
  std::vector<KeeperLink::Exit> gotReplay, gotLive;
  int readyCalls = 0;
  link_->onReady([&](std::vector<KeeperLink::HeldFd> h, std::vector<KeeperLink::Exit> e) {
    ++readyCalls;
    EXPECT_TRUE(gotLive.empty()) << "live exits come after READY";
    gotHeld = std::move(h);
    gotReplay = std::move(e);
  });
  link_->onExit([&](const KeeperLink::Exit& exit) { gotLive.push_back(exit); });
  ASSERT_TRUE(runUntil(loop_, [&] { return !gotLive.empty(); }));

  EXPECT_EQ(readyCalls, 1);
  EXPECT_TRUE(link_->ready());
  ASSERT_EQ(gotHeld.size(), 1u);
  EXPECT_EQ(gotHeld[0].owner, "c1");
  EXPECT_EQ(gotHeld[0].tag, 1u);
  // The descriptor is a working read end of the same pipe.
  ASSERT_EQ(::write(stdoutPipe.write, "hello", 5), 5);
  char buffer[8] = {};
  EXPECT_EQ(::read(gotHeld[0].fd, buffer, sizeof buffer), 5);
  EXPECT_STREQ(buffer, "hello");
  EXPECT_NE(fcntl(gotHeld[0].fd, F_GETFD) & FD_CLOEXEC, 0);
  ::close(gotHeld[0].fd);

  ASSERT_EQ(gotReplay.size(), 1u);
  EXPECT_EQ(gotReplay[0].owner, "c2");
  EXPECT_EQ(gotReplay[0].pid, 42);
  EXPECT_EQ(gotReplay[0].waitStatus, 7 << 8);
  EXPECT_EQ(gotReplay[0].timeNs, 123);
  ASSERT_EQ(gotLive.size(), 1u);
  EXPECT_EQ(gotLive[0].pid, 43);
  EXPECT_TRUE(WIFSIGNALED(gotLive[0].waitStatus));
}

TEST_F(KeeperLinkTest, BadRecordsAreSkippedAndTheirDescriptorsClosed) {
  Pipe onGarbage, onExit, afterReady;
  const char garbage[] = "not a record";
  sendRaw(keeper_, garbage, sizeof garbage, onGarbage.read);
  auto exit = record(RecordType::kExit, "c1");
  exit.pid = 5;
  sendRecord(keeper_, exit, onExit.read);         // an EXIT takes no descriptor
  auto track = record(RecordType::kTrack, "c1");  // the daemon's type, not the keeper's
  track.pid = 5;
  sendRecord(keeper_, track);
  sendRecord(keeper_, record(RecordType::kReady));
  auto held = record(RecordType::kHeld, "c1");
  sendRecord(keeper_, held, afterReady.read);       // HELD belongs before READY
  sendRecord(keeper_, record(RecordType::kReady));  // twice
  onGarbage.closeRead();
  onExit.closeRead();
  afterReady.closeRead();

  size_t replayedExits = 99;
  link_->onReady([&](std::vector<KeeperLink::HeldFd> h, std::vector<KeeperLink::Exit> e) {
    EXPECT_TRUE(h.empty());
    replayedExits = e.size();
  });
  ASSERT_TRUE(runUntil(loop_, [&] { return link_->skippedRecords() == 5; }));
  EXPECT_EQ(replayedExits, 0u);
  EXPECT_FALSE(onGarbage.hasReader());
  EXPECT_FALSE(onExit.hasReader());
  EXPECT_FALSE(afterReady.hasReader());
  EXPECT_FALSE(link_->lost());
}

TEST_F(KeeperLinkTest, RequestsReachTheKeeperAndHoldSendsADuplicate) {
  Pipe pipe;
  link_->hold("c1", 2, pipe.read);
  link_->track("c1", 77);
  link_->acknowledge("c1", 76);
  link_->release("c1");
  // Refused locally: never sent.
  link_->track("../etc", 1);
  link_->track("c1", 0);
  link_->hold("c1", kMaxTag + 1, pipe.read);

  EXPECT_NE(fcntl(pipe.read, F_GETFD), -1) << "the caller keeps its descriptor";
  std::vector<KeeperRecord> got;
  int heldFd = -1;
  KeeperRecord r;
  int fd;
  while (receiveRecord(keeper_, r, fd)) {
    got.push_back(r);
    if (fd >= 0) heldFd = fd;
  }
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].type, RecordType::kHold);
  EXPECT_EQ(got[0].tag, 2u);
  EXPECT_EQ(got[1].type, RecordType::kTrack);
  EXPECT_EQ(got[1].pid, 77);
  EXPECT_EQ(got[2].type, RecordType::kAck);
  EXPECT_EQ(got[2].pid, 76);
  EXPECT_EQ(got[3].type, RecordType::kRelease);
  ASSERT_GE(heldFd, 0);
  pipe.closeRead();
  EXPECT_TRUE(pipe.hasReader()) << "the keeper's duplicate still reads the pipe";
  ::close(heldFd);
  EXPECT_FALSE(pipe.hasReader());
}

TEST_F(KeeperLinkTest, AFullSocketQueuesInOrderWithoutBlocking) {
  Pipe pipe;
  constexpr int kRecords = 5000;  // far beyond a socket buffer
  for (int i = 1; i <= kRecords; ++i) {
    if (i == kRecords / 2) link_->hold("half", 1, pipe.read);
    link_->track("c1", i);
  }
  EXPECT_GT(link_->queuedRecords(), 0u);
  pipe.closeRead();  // the queued HOLD waits with its own duplicate

  std::vector<pid_t> pids;
  int heldFd = -1;
  ASSERT_TRUE(runUntil(loop_, [&] {
    KeeperRecord r;
    int fd;
    while (receiveRecord(keeper_, r, fd)) {
      if (r.type == RecordType::kTrack) pids.push_back(r.pid);
      if (fd >= 0) heldFd = fd;
    }
    return pids.size() == kRecords && link_->queuedRecords() == 0;
  }));
  for (int i = 0; i < kRecords; ++i)
    ASSERT_EQ(pids[i], i + 1);
  ASSERT_GE(heldFd, 0);
  EXPECT_TRUE(pipe.hasReader());
  ::close(heldFd);
}

TEST_F(KeeperLinkTest, LostWhenTheKeeperGoes) {
  int lost = 0;
  link_->onLost([&] { ++lost; });
  ::close(keeper_);
  keeper_ = -1;
  ASSERT_TRUE(runUntil(loop_, [&] { return lost > 0; }));
  EXPECT_TRUE(link_->lost());
  link_->track("c1", 5);  // dropped, logged, no crash
  EXPECT_EQ(lost, 1);
}

TEST_F(KeeperLinkTest, ReadyBeforeTheCallbackIsDeliveredWhenItIsSet) {
  auto exit = record(RecordType::kExit, "c1");
  exit.pid = 9;
  sendRecord(keeper_, exit);
  auto ready = record(RecordType::kReady);
  ready.exitCount = 1;
  sendRecord(keeper_, ready);
  auto live = record(RecordType::kExit, "c2");
  live.pid = 10;
  sendRecord(keeper_, live);
  ASSERT_TRUE(runUntil(loop_, [&] { return link_->ready(); }));
  size_t replayed = 0;
  std::vector<pid_t> later;
  link_->onReady([&](auto, std::vector<KeeperLink::Exit> e) { replayed = e.size(); });
  link_->onExit([&](const KeeperLink::Exit& e) { later.push_back(e.pid); });
  ASSERT_TRUE(runUntil(loop_, [&] { return replayed == 1 && later.size() == 1; }));
  EXPECT_EQ(later[0], 10);
}

TEST_F(KeeperLinkTest, RefusalsReachTheirCallback) {
  auto refused = record(RecordType::kRefused, "c3");
  refused.refusedType = RecordType::kHold;
  refused.reason = RefusalReason::kTableFull;
  sendRecord(keeper_, refused);
  std::string text;
  link_->onRefused([&](const KeeperLink::Refusal& r) { text = r.describe(); });
  ASSERT_TRUE(runUntil(loop_, [&] { return !text.empty(); }));
  EXPECT_EQ(text, "HOLD of c3 refused: the keeper's table is full");
}

TEST(KeeperLinkAdopt, RefusesWhatIsNotASeqpacketSocket) {
  loop::Loop loop;
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  std::string error;
  EXPECT_EQ(KeeperLink::adopt(loop, fds[0], error), nullptr);
  EXPECT_NE(error.find("SOCK_SEQPACKET"), std::string::npos) << error;
  EXPECT_EQ(fcntl(fds[0], F_GETFD), -1) << "adopt owns the fd, even to close it";
  ::close(fds[1]);
}

TEST(TakeKeeperFd, ReadsTheVariableOnceAndChecksTheSocket) {
  unsetenv(kKeeperFdVariable);
  EXPECT_EQ(takeKeeperFd(), -1);
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
  setenv(kKeeperFdVariable, std::to_string(pair[1]).c_str(), 1);
  EXPECT_EQ(takeKeeperFd(), pair[1]);
  EXPECT_EQ(getenv(kKeeperFdVariable), nullptr) << "nothing the daemon starts inherits it";
  EXPECT_NE(fcntl(pair[1], F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(takeKeeperFd(), -1);
  int stream[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, stream), 0);
  setenv(kKeeperFdVariable, std::to_string(stream[0]).c_str(), 1);
  EXPECT_EQ(takeKeeperFd(), -1);
  for (const char* bad : {"", "3x", "-3", "1", "99999999"}) {
    setenv(kKeeperFdVariable, bad, 1);
    EXPECT_EQ(takeKeeperFd(), -1) << bad;
  }
  for (int fd : {pair[0], pair[1], stream[0], stream[1]})
    ::close(fd);
}

}  // namespace
}  // namespace monocri::monitor
