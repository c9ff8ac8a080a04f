// PodNamespaces::pin with real namespaces (root, in the harness's private mount and network
// namespaces): what a process joining the pinned namespaces sees, that a failure leaves
// nothing pinned, and the pool of network namespaces made ahead.
#include "pods/PodNamespaces.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "loop/Loop.h"

namespace monocri::pods {
namespace {

namespace fs = std::filesystem;

class PodNamespacesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pod-ns-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    for (const auto& point : mountsUnder(dir_))
      umount2(point.c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }

  grpc::Status pin(const PodNamespaces::PinRequest& request) {
    loop::Loop loop;
    PodNamespaces namespaces(loop, "/nonexistent/monocri-pod-init", {});  // pin execs nothing
    std::optional<grpc::Status> result;
    namespaces.pin(request, [&](grpc::Status status) { result = status; });
    loop.run();
    EXPECT_TRUE(result.has_value());
    return result.value_or(grpc::Status(grpc::StatusCode::kUnknown, "pin never answered"));
  }

  // What a child that joined the pinned namespaces prints: its hostname, whether lo is up, and
  // a net sysctl, as "hostname lo-up port-start".
  std::string seenFromInside() const { return seenFromInside(dir_); }
  static std::string seenFromInside(const std::string& dir) {
    int out[2];
    if (pipe(out) != 0) return "pipe failed";
    const pid_t child = fork();
    if (child == 0) {
      close(out[0]);
      for (const char* name : {"net", "uts"}) {
        const int fd = open((dir + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, 0) != 0) _exit(10);
      }
      char host[128] = {};
      gethostname(host, sizeof(host) - 1);
      const int sock = socket(AF_INET, SOCK_DGRAM, 0);
      ifreq request{};
      std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
      const bool up = ioctl(sock, SIOCGIFFLAGS, &request) == 0 && (request.ifr_flags & IFF_UP);
      std::ifstream sysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start");
      std::string port;
      sysctl >> port;
      const std::string line = std::string(host) + (up ? " up " : " down ") + port;
      (void)!write(out[1], line.data(), line.size());
      _exit(0);
    }
    close(out[1]);
    std::string seen;
    char buffer[256];
    ssize_t n;
    while ((n = read(out[0], buffer, sizeof(buffer))) > 0)
      seen.append(buffer, n);
    close(out[0]);
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "the child could not join";
    return seen;
  }

  static std::vector<std::string> mountPoints() {
    std::vector<std::string> points;
    std::ifstream mounts("/proc/self/mountinfo");
    std::string line;
    while (std::getline(mounts, line)) {
      std::istringstream fields(line);
      std::string id, parent, device, root, point;
      fields >> id >> parent >> device >> root >> point;
      points.push_back(point);
    }
    return points;
  }
  static bool isMountPoint(const std::string& path) {
    for (const auto& point : mountPoints())
      if (point == path) return true;
    return false;
  }
  static std::vector<std::string> mountsUnder(const std::string& dir) {
    std::vector<std::string> under;
    for (const auto& point : mountPoints())
      if (point.rfind(dir + "/", 0) == 0) under.push_back(point);
    return under;
  }
  static ino_t inodeOf(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
  }

  std::string dir_;
};

TEST_F(PodNamespacesTest, PinnedNamespacesHoldTheHostnameLoopbackAndSysctls) {
  PodNamespaces::PinRequest request;
  request.dir = dir_;
  request.net = request.ipc = request.uts = true;
  request.hostname = "web-0";
  request.sysctls = {"net.ipv4.ip_unprivileged_port_start=42"};
  const grpc::Status status = pin(request);
  ASSERT_TRUE(status.isOk()) << status.message();
  for (const char* name : {"net", "ipc", "uts"}) {
    EXPECT_TRUE(isMountPoint(dir_ + "/" + name)) << name;
  }
  // New namespaces, not the test's own.
  struct stat pinned {
  }, own{};
  ASSERT_EQ(stat((dir_ + "/net").c_str(), &pinned), 0);
  ASSERT_EQ(stat("/proc/self/ns/net", &own), 0);
  EXPECT_NE(pinned.st_ino, own.st_ino);
  EXPECT_EQ(seenFromInside(), "web-0 up 42");
  char host[128] = {};
  gethostname(host, sizeof(host) - 1);
  EXPECT_STRNE(host, "web-0");  // the test's own namespace is untouched
}

TEST_F(PodNamespacesTest, AFailedPinLeavesNothingPinned) {
  std::ofstream(dir_ + "/ipc") << "in the way";  // the second pin cannot be created
  PodNamespaces::PinRequest request;
  request.dir = dir_;
  request.net = request.ipc = request.uts = true;
  const grpc::Status status = pin(request);
  ASSERT_FALSE(status.isOk());
  EXPECT_NE(status.message().find(dir_ + "/ipc"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("File exists"), std::string::npos) << status.message();
  EXPECT_FALSE(isMountPoint(dir_ + "/net"));
  EXPECT_FALSE(fs::exists(dir_ + "/net"));  // the first pin was undone
  EXPECT_FALSE(fs::exists(dir_ + "/uts"));
}

TEST_F(PodNamespacesTest, AnUnknownSysctlIsNamedAndNothingIsPinned) {
  PodNamespaces::PinRequest request;
  request.dir = dir_;
  request.net = true;
  request.sysctls = {"net.ipv4.no_such_sysctl=1"};
  const grpc::Status status = pin(request);
  ASSERT_FALSE(status.isOk());
  EXPECT_NE(status.message().find("/proc/sys/net/ipv4/no_such_sysctl"), std::string::npos)
      << status.message();
  EXPECT_FALSE(fs::exists(dir_ + "/net"));
}

TEST_F(PodNamespacesTest, AMalformedSysctlIsRefusedBeforeAnyNamespaceIsMade) {
  PodNamespaces::PinRequest request;
  request.dir = dir_;
  request.net = true;
  request.sysctls = {"net/../../kernel/panic=1"};
  const grpc::Status status = pin(request);
  ASSERT_FALSE(status.isOk());
  EXPECT_EQ(status.code(), grpc::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir_ + "/net"));
}

TEST_F(PodNamespacesTest, APodTakesAPooledNetworkNamespaceAndThePoolRefills) {
  const std::string poolDir = dir_ + "/pool", podDir = dir_ + "/pod";
  fs::create_directories(podDir);
  // A pin an earlier daemon left in the pool: nobody knows it, the start removes it.
  fs::create_directories(poolDir);
  std::ofstream(poolDir + "/stale").close();
  ASSERT_EQ(mount("/proc/self/ns/net", (poolDir + "/stale").c_str(), nullptr, MS_BIND, nullptr), 0);
  loop::Loop loop;
  {
    PodNamespaces namespaces(loop, "/nonexistent/monocri-pod-init", {poolDir, 2});
    ASSERT_EQ(namespaces.startPool(), "");
    EXPECT_FALSE(fs::exists(poolDir + "/stale"));
    loop.run();  // until the pool is full
    nlohmann::json info = namespaces.poolInfo();
    EXPECT_EQ(info["ready"].get<int>(), 2) << info.dump();
    EXPECT_EQ(info["made"].get<int>(), 2) << info.dump();
    const std::string first = poolDir + "/" + std::to_string(getpid()) + "-";
    ASSERT_TRUE(isMountPoint(first + "0"));
    ASSERT_TRUE(isMountPoint(first + "1"));
    const ino_t pooled = inodeOf(first + "0");
    EXPECT_NE(pooled, inodeOf("/proc/self/ns/net"));

    // A pod takes one at once (a bind of the pool's pin where the pod's goes), and its other
    // namespaces are made with its net sysctls set in the taken one.
    ASSERT_TRUE(namespaces.takePooledNetns(podDir + "/net"));
    EXPECT_EQ(inodeOf(podDir + "/net"), pooled);  // the ready one, not a new one
    EXPECT_FALSE(fs::exists(first + "0"));        // and no longer the pool's
    PodNamespaces::PinRequest request;
    request.dir = podDir;
    request.ipc = request.uts = true;
    request.enterNet = podDir + "/net";
    request.hostname = "web-1";
    request.sysctls = {"net.ipv4.ip_unprivileged_port_start=43"};
    std::optional<grpc::Status> result;
    namespaces.pin(request, [&](grpc::Status status) { result = status; });
    loop.run();
    ASSERT_TRUE(result.has_value());
    ASSERT_TRUE(result->isOk()) << result->message();
    EXPECT_EQ(inodeOf(podDir + "/net"), pooled);
    // Set up for the pod all the same: its hostname and sysctl, and lo up from the pool.
    EXPECT_EQ(seenFromInside(podDir), "web-1 up 43");
    info = namespaces.poolInfo();
    EXPECT_EQ(info["taken"].get<int>(), 1) << info.dump();
    EXPECT_EQ(info["ready"].get<int>(), 1) << info.dump();
    // Made again when the pod manager says the pods' work is done.
    namespaces.refillPool();
    loop.run();
    EXPECT_EQ(namespaces.poolInfo()["ready"].get<int>(), 2);
    EXPECT_TRUE(isMountPoint(first + "2"));
    EXPECT_NE(inodeOf(first + "2"), pooled);

    const ino_t next = inodeOf(first + "1");
    ASSERT_TRUE(namespaces.takePooledNetns(dir_ + "/taken"));
    EXPECT_EQ(inodeOf(dir_ + "/taken"), next);
    EXPECT_FALSE(fs::exists(first + "1"));
    // A target that cannot be made: false, and the pooled namespace is not leaked.
    EXPECT_FALSE(namespaces.takePooledNetns(dir_ + "/no/such/dir/net"));
    EXPECT_TRUE(mountsUnder(poolDir).empty());
    EXPECT_FALSE(namespaces.takePooledNetns(dir_ + "/none-left"));  // the pool is empty
    EXPECT_EQ(namespaces.poolInfo()["missed"].get<int>(), 1);
  }
  // What it handed out stays the pods'.
  EXPECT_TRUE(isMountPoint(podDir + "/net"));
  EXPECT_TRUE(isMountPoint(dir_ + "/taken"));
}

TEST_F(PodNamespacesTest, TheDaemonGoingUnpinsThePoolsNamespaces) {
  const std::string poolDir = dir_ + "/pool";
  loop::Loop loop;
  {
    PodNamespaces namespaces(loop, "/nonexistent/monocri-pod-init", {poolDir, 3});
    ASSERT_EQ(namespaces.startPool(), "");
    loop.run();
    ASSERT_EQ(mountsUnder(poolDir).size(), 3u);
  }
  EXPECT_TRUE(mountsUnder(poolDir).empty());
  EXPECT_TRUE(fs::is_empty(poolDir));
}

TEST_F(PodNamespacesTest, WithAnEmptyPoolAPodMakesItsOwn) {
  const std::string podDir = dir_ + "/pod";
  fs::create_directories(podDir);
  loop::Loop loop;
  PodNamespaces namespaces(loop, "/nonexistent/monocri-pod-init", {dir_ + "/pool", 1});
  // Not started: nothing ready, so the pod makes its own.
  EXPECT_FALSE(namespaces.takePooledNetns(podDir + "/net"));
  PodNamespaces::PinRequest request;
  request.dir = podDir;
  request.net = request.uts = true;
  request.hostname = "web-2";
  std::optional<grpc::Status> result;
  namespaces.pin(request, [&](grpc::Status status) { result = status; });
  loop.run();
  ASSERT_TRUE(result.has_value() && result->isOk());
  EXPECT_EQ(seenFromInside(podDir).substr(0, 8), "web-2 up");
  const nlohmann::json info = namespaces.poolInfo();
  EXPECT_EQ(info["missed"].get<int>(), 1) << info.dump();
  EXPECT_EQ(info["taken"].get<int>(), 0) << info.dump();
}

}  // namespace
}  // namespace monocri::pods
