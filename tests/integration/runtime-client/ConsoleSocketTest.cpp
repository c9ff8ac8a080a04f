// The console socket against a sender written here (what runc does: one SCM_RIGHTS message
// carrying the pty master, the terminal's name as payload) and against senders that get it
// wrong. RuncTest receives a real runc's terminal.
#include "oci/runtime-client/ConsoleSocket.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "integration/runtime-client/LoopAwait.h"
#include "state/StateFiles.h"

namespace monocri::oci {
namespace {

using state::UniqueFd;
using testing::await;

size_t openDescriptors() {
  size_t count = 0;
  DIR* dir = opendir("/proc/self/fd");
  while (dirent* entry = readdir(dir))
    count += entry->d_name[0] != '.';
  closedir(dir);
  return count - 1;  // the directory's own
}

bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

// Connects to `path` and sends `fds` (may be none) with `payload`, as a runtime would.
void sendDescriptors(const std::string& path, const std::vector<int>& fds,
                     const std::string& payload) {
  UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  ASSERT_EQ(connect(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0)
      << std::strerror(errno);
  if (payload.empty() && fds.empty()) return;  // connects, then hangs up
  iovec vector{const_cast<char*>(payload.data()), payload.size()};
  msghdr message{};
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  }
  ASSERT_EQ(sendmsg(socket.get(), &message, 0), static_cast<ssize_t>(payload.size()))
      << std::strerror(errno);
}

class ConsoleSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/monocri-console-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/c.sock";
  }
  void TearDown() override { state::removeTree(dir_); }

  std::tuple<UniqueFd, std::string> receive(ConsoleSocket& socket) {
    return await<UniqueFd, std::string>(
        loop_, [&](auto done) { socket.receive(done); }, 10'000);
  }

  std::string dir_, path_;
  loop::Loop loop_;
};

TEST_F(ConsoleSocketTest, ReceivesThePtyMasterAndRemovesItsFile) {
  std::string error;
  auto socket = ConsoleSocket::listen(loop_, path_, error);
  ASSERT_TRUE(socket) << error;
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  UniqueFd master(posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_TRUE(master.valid());
  ASSERT_EQ(grantpt(master.get()), 0);
  ASSERT_EQ(unlockpt(master.get()), 0);
  const std::string slaveName = ptsname(master.get());
  sendDescriptors(path_, {master.get()}, slaveName);
  master.reset();  // only the received copy is left

  auto [received, why] = receive(*socket);
  ASSERT_TRUE(received.valid()) << why;
  EXPECT_EQ(why, "");
  EXPECT_TRUE(isatty(received.get()));
  EXPECT_EQ(fcntl(received.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_FALSE(exists(path_));

  // It is the same terminal: what the slave side writes, the received master reads.
  UniqueFd slave(open(slaveName.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_TRUE(slave.valid());
  termios raw{};
  tcgetattr(slave.get(), &raw);
  cfmakeraw(&raw);
  tcsetattr(slave.get(), TCSANOW, &raw);
  ASSERT_EQ(write(slave.get(), "ping", 4), 4);
  char buffer[16];
  ASSERT_EQ(read(received.get(), buffer, sizeof(buffer)), 4);
  EXPECT_EQ(std::string(buffer, 4), "ping");
}

TEST_F(ConsoleSocketTest, RefusesAPathThatDoesNotFitAUnixAddress) {
  std::string error;
  const std::string tooLong = dir_ + "/" + std::string(120, 'x');
  EXPECT_FALSE(ConsoleSocket::listen(loop_, tooLong, error));
  EXPECT_NE(error.find("a unix socket address holds 1 to 107"), std::string::npos) << error;
  EXPECT_FALSE(exists(tooLong));
}

TEST_F(ConsoleSocketTest, RefusesAPathThatExists) {
  std::string error;
  auto first = ConsoleSocket::listen(loop_, path_, error);
  ASSERT_TRUE(first);
  EXPECT_FALSE(ConsoleSocket::listen(loop_, path_, error));
  EXPECT_NE(error.find("Address already in use"), std::string::npos) << error;
  EXPECT_TRUE(exists(path_)) << "the failed second socket must not remove the first one's file";
}

TEST_F(ConsoleSocketTest, ARuntimeThatHangsUpIsAnError) {
  std::string error;
  auto socket = ConsoleSocket::listen(loop_, path_, error);
  ASSERT_TRUE(socket);
  sendDescriptors(path_, {}, "");
  auto [received, why] = receive(*socket);
  EXPECT_FALSE(received.valid());
  EXPECT_NE(why.find("without sending the terminal"), std::string::npos) << why;
  EXPECT_FALSE(exists(path_));
}

TEST_F(ConsoleSocketTest, WrongDescriptorsAreRefusedAndClosed) {
  int pipeFds[2];
  ASSERT_EQ(pipe2(pipeFds, O_CLOEXEC), 0);
  UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
  const size_t before = openDescriptors();
  struct Case {
    std::vector<int> fds;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{readEnd.get()}, "is not a terminal"},
      {{readEnd.get(), writeEnd.get()}, "sent 2 descriptors"},
      {std::vector<int>(12, readEnd.get()), "more than 8 descriptors"},
  };
  for (const auto& [fds, expected] : cases) {
    std::string error;
    auto socket = ConsoleSocket::listen(loop_, path_, error);
    ASSERT_TRUE(socket) << error;
    sendDescriptors(path_, fds, "x");
    auto [received, why] = receive(*socket);
    EXPECT_FALSE(received.valid());
    EXPECT_NE(why.find(expected), std::string::npos) << why;
    EXPECT_FALSE(exists(path_));
    EXPECT_EQ(openDescriptors(), before) << "a received descriptor leaked: " << expected;
  }
}

TEST_F(ConsoleSocketTest, DroppingItRemovesTheFile) {
  std::string error;
  auto socket = ConsoleSocket::listen(loop_, path_, error);
  ASSERT_TRUE(socket);
  socket->receive([](UniqueFd, std::string) { ADD_FAILURE() << "nothing was sent"; });
  testing::runUntil(
      loop_, [] { return false; }, 20);
  socket.reset();
  EXPECT_FALSE(exists(path_));
  testing::runUntil(
      loop_, [] { return false; }, 20);
}

}  // namespace
}  // namespace monocri::oci
