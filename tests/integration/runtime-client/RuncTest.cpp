// OciRuntimeClient and ConsoleSocket with the real runc (Debian's 1.1.5) running busybox-static
// containers. Needs root: ctest runs it through tests/harness/in-namespace (private mount and
// network namespaces). This process is a child subreaper, as monocri's keeper is: once runc
// exits, each container's init is its child, and its exit status is read here with waitid.
// Every container's cgroup is nested under this process's own (a relative cgroupsPath), and
// each test checks that runc's state directory and those cgroups are gone after delete.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "integration/runtime-client/LoopAwait.h"
#include "integration/runtime-client/TestBundle.h"
#include "oci/runtime-client/ConsoleSocket.h"
#include "oci/runtime-client/OciRuntimeClient.h"
#include "state/StateFiles.h"
#include "state/UniqueFd.h"

namespace monocri::oci {
namespace {

using grpc::Status;
using grpc::StatusCode;
using state::UniqueFd;
using testing::await;
using testing::runUntil;

bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

std::string readFileText(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

struct Pipe {
  UniqueFd read, write;
  static Pipe make() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) std::abort();
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
  }
};

// Everything readable from `fd` until its end, or until `timeoutMs` without a byte.
std::string readToEnd(int fd, int timeoutMs = 10'000) {
  std::string bytes;
  char buffer[4096];
  for (;;) {
    pollfd ready{fd, POLLIN, 0};
    if (poll(&ready, 1, timeoutMs) <= 0) return bytes + "<timed out>";
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return bytes;  // end; EIO on a pty master once its slave is gone
    bytes.append(buffer, static_cast<size_t>(n));
  }
}

// Waits for the container init `pid` (this process's child since runc exited) to end and reaps
// it. si_code is CLD_EXITED or CLD_KILLED; si_pid 0 means it did not end in time.
siginfo_t reapContainer(pid_t pid, int timeoutMs = 10'000) {
  siginfo_t info{};
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) {
    ADD_FAILURE() << "pidfd_open " << pid << ": " << std::strerror(errno);
    return info;
  }
  pollfd ready{pidfd.get(), POLLIN, 0};
  if (poll(&ready, 1, timeoutMs) != 1) return info;
  if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED) != 0) {
    ADD_FAILURE() << "waitid " << pid << ": " << std::strerror(errno)
                  << " (is the container this process's child?)";
  }
  return info;
}

class RuncTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0) << std::strerror(errno);
    char pattern[] = "/tmp/monocri-runc-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    const std::string error = testing::makeBusyboxRootfs(dir_ + "/rootfs");
    ASSERT_EQ(error, "");
  }
  static void TearDownTestSuite() {
    // runc keeps one directory per container under its root: none may remain.
    std::vector<std::string> left;
    if (DIR* root = opendir(RuncTest::root().c_str())) {
      while (dirent* entry = readdir(root))
        if (entry->d_name[0] != '.') left.emplace_back(entry->d_name);
      closedir(root);
    }
    EXPECT_TRUE(left.empty()) << "runc state left for " << left.front();
    state::removeTree(dir_);
  }

  void SetUp() override { client_ = std::make_unique<OciRuntimeClient>(loop_, binary_, root()); }

  void TearDown() override {
    EXPECT_EQ(client_->callsInFlight(), 0u);
    client_.reset();
    // Nothing left behind: runc's state directory and every cgroup of every container.
    for (const auto& id : ids_) {
      EXPECT_FALSE(exists(root() + "/" + id)) << "runc still has state for " << id;
      for (const auto& cgroup : testing::cgroupDirectories(cgroupPath(id)))
        EXPECT_FALSE(exists(cgroup)) << "left behind: " << cgroup;
    }
    for (const auto& id : ids_)
      state::removeTree(dir_ + "/bundles/" + id);
    // No container init or runc is left running or unreaped: this process has no child at all.
    siginfo_t info{};
    EXPECT_EQ(waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT), -1);
    EXPECT_EQ(errno, ECHILD) << "child " << info.si_pid << " is left";
  }

  static std::string root() { return dir_ + "/runc"; }
  static std::string cgroupPath(const std::string& id) {
    return "monocri-rtc-" + std::to_string(getpid()) + "-" + id;
  }

  // A bundle for container `id` running `args`; the options to create it.
  RuntimeCreateOptions bundle(const std::string& id, std::vector<std::string> args,
                              bool terminal = false) {
    ids_.push_back(id);
    const std::string bundleDir = dir_ + "/bundles/" + id;
    const std::string error = testing::writeBundle(bundleDir, dir_ + "/rootfs",
                                                   {std::move(args), terminal, cgroupPath(id)});
    EXPECT_EQ(error, "");
    RuntimeCreateOptions options;
    options.id = id;
    options.bundle = bundleDir;
    options.pidFile = bundleDir + "/pid";
    return options;
  }

  std::tuple<Status, pid_t> create(const RuntimeCreateOptions& options) {
    return await<Status, pid_t>(loop_, [&](auto done) { client_->create(options, done); });
  }
  Status start(const std::string& id) {
    return std::get<0>(await<Status>(loop_, [&](auto done) { client_->start(id, done); }));
  }
  Status kill(const std::string& id, int signal, bool all = false) {
    return std::get<0>(
        await<Status>(loop_, [&](auto done) { client_->kill(id, signal, all, done); }));
  }
  Status remove(const std::string& id, bool force = false) {
    return std::get<0>(await<Status>(loop_, [&](auto done) { client_->remove(id, force, done); }));
  }
  std::tuple<Status, OciState> state(const std::string& id) {
    return await<Status, OciState>(loop_, [&](auto done) { client_->state(id, done); });
  }

  // The cgroup file `name` of container `id` in the hierarchy mounted at `mount`.
  std::string cgroupFile(const std::string& id, const std::string& mount, const std::string& name) {
    for (const auto& dir : testing::cgroupDirectories(cgroupPath(id)))
      if (dir.rfind(mount + "/", 0) == 0) return dir + "/" + name;
    return "";
  }

  static inline std::string dir_;
  loop::Loop loop_;
  OciRuntimeBinary binary_{"runc"};
  std::unique_ptr<OciRuntimeClient> client_;
  std::vector<std::string> ids_;
};

TEST_F(RuncTest, ContainerStdioGoesThroughTheCallersPipesAndItsExitCodeIsObserved) {
  auto options = bundle("stdio", {"sh", "-c", "echo hello-out; echo hello-err >&2; exit 3"});
  Pipe out = Pipe::make(), err = Pipe::make();
  options.stdoutFd = out.write.get();
  options.stderrFd = err.write.get();
  auto [created, pid] = create(options);
  ASSERT_TRUE(created.isOk()) << created.toString();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(std::stoi(readFileText(options.pidFile)), pid);
  // The container holds its copies now; ours must go for the pipes to end with it.
  out.write.reset();
  err.write.reset();
  // The cgroups exist while the container does (what TearDown's check of their absence means).
  const auto cgroups = testing::cgroupDirectories(cgroupPath("stdio"));
  ASSERT_FALSE(cgroups.empty());
  for (const auto& dir : cgroups) {
    if (dir.find("/pids/") != std::string::npos || dir.find("/memory/") != std::string::npos) {
      EXPECT_TRUE(exists(dir)) << dir;
    }
  }

  auto [stated, report] = state("stdio");
  ASSERT_TRUE(stated.isOk()) << stated.toString();
  EXPECT_EQ(report.status, "created");
  EXPECT_EQ(report.pid, pid);
  EXPECT_EQ(report.bundle, options.bundle);

  ASSERT_TRUE(start("stdio").isOk());
  EXPECT_EQ(readToEnd(out.read.get()), "hello-out\n");
  EXPECT_EQ(readToEnd(err.read.get()), "hello-err\n");
  const siginfo_t exit = reapContainer(pid);
  EXPECT_EQ(exit.si_pid, pid);
  EXPECT_EQ(exit.si_code, CLD_EXITED);
  EXPECT_EQ(exit.si_status, 3);

  auto [after, stopped] = state("stdio");
  ASSERT_TRUE(after.isOk()) << after.toString();
  EXPECT_EQ(stopped.status, "stopped");
  EXPECT_EQ(stopped.pid, 0);

  ASSERT_TRUE(remove("stdio").isOk());
  auto [gone, unused] = state("stdio");
  EXPECT_EQ(gone.code(), StatusCode::kNotFound) << gone.toString();
  EXPECT_EQ(gone.message(), "runc state stdio failed: container does not exist");
}

TEST_F(RuncTest, RunningUpdatedKilledAndDeleted) {
  auto options = bundle("running", {"sleep", "1000"});
  auto [created, pid] = create(options);
  ASSERT_TRUE(created.isOk()) << created.toString();
  ASSERT_TRUE(start("running").isOk());
  auto [stated, report] = state("running");
  ASSERT_TRUE(stated.isOk()) << stated.toString();
  EXPECT_EQ(report.status, "running");
  EXPECT_EQ(report.pid, pid);

  // update: the pids limit lands in the container's cgroup.
  const std::string pidsMax = cgroupFile("running", "/sys/fs/cgroup/pids", "pids.max");
  ASSERT_FALSE(pidsMax.empty());
  EXPECT_EQ(readFileText(pidsMax), "max\n");
  auto [updated] = await<Status>(loop_, [&](auto done) {
    client_->update("running", {{"pids", {{"limit", 50}}}}, done);
  });
  ASSERT_TRUE(updated.isOk()) << updated.toString();
  EXPECT_EQ(readFileText(pidsMax), "50\n");

  // Deleting a running container is refused without force.
  const Status refused = remove("running");
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.toString();
  EXPECT_NE(refused.message().find("runc delete running failed: "), std::string::npos);

  ASSERT_TRUE(kill("running", SIGKILL).isOk());
  const siginfo_t exit = reapContainer(pid);
  EXPECT_EQ(exit.si_pid, pid);
  EXPECT_EQ(exit.si_code, CLD_KILLED);
  EXPECT_EQ(exit.si_status, SIGKILL);  // the 137 of a shell

  auto [after, stopped] = state("running");
  EXPECT_EQ(stopped.status, "stopped");
  const Status again = kill("running", SIGKILL);
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition) << again.toString();
  EXPECT_EQ(again.message(), "runc kill running failed: container not running");
  ASSERT_TRUE(remove("running").isOk());
  EXPECT_EQ(std::get<0>(state("running")).code(), StatusCode::kNotFound);
}

TEST_F(RuncTest, KillAllReachesEveryProcessOfTheContainer) {
  // The init is a shell, pid 1 of its namespace: a SIGTERM it has no handler for is dropped.
  // Its child sleep is not protected so: only --all reaches it, and then the shell exits 7.
  auto options = bundle("all", {"sh", "-c", "sleep 1000 & wait $!; exit 7"});
  auto [created, pid] = create(options);
  ASSERT_TRUE(created.isOk()) << created.toString();
  ASSERT_TRUE(start("all").isOk());
  // Both processes are in the cgroup before signalling.
  const std::string procs = cgroupFile("all", "/sys/fs/cgroup/pids", "cgroup.procs");
  ASSERT_TRUE(runUntil(loop_, [&] {
    const std::string pids = readFileText(procs);
    return std::count(pids.begin(), pids.end(), '\n') == 2;
  }));
  ASSERT_TRUE(kill("all", SIGTERM, /*all=*/false).isOk());
  EXPECT_EQ(reapContainer(pid, 500).si_pid, 0) << "the init should have ignored SIGTERM";
  ASSERT_TRUE(kill("all", SIGTERM, /*all=*/true).isOk());
  const siginfo_t exit = reapContainer(pid);
  EXPECT_EQ(exit.si_code, CLD_EXITED);
  EXPECT_EQ(exit.si_status, 7);
  ASSERT_TRUE(remove("all").isOk());
}

TEST_F(RuncTest, ATtyContainersMasterArrivesOnTheConsoleSocket) {
  auto options = bundle("tty", {"sh", "-c", "echo hello-tty; sleep 0.3"}, /*terminal=*/true);
  options.consoleSocket = dir_ + "/tty.sock";
  std::string error;
  auto socket = ConsoleSocket::listen(loop_, options.consoleSocket, error);
  ASSERT_TRUE(socket) << error;
  std::optional<std::pair<UniqueFd, std::string>> console;
  std::optional<std::pair<Status, pid_t>> created;
  socket->receive([&](UniqueFd master, std::string why) {
    console.emplace(std::move(master), std::move(why));
  });
  client_->create(options, [&](Status status, pid_t pid) { created.emplace(status, pid); });
  ASSERT_TRUE(runUntil(loop_, [&] { return console && created; }));
  ASSERT_TRUE(created->first.isOk()) << created->first.toString();
  ASSERT_TRUE(console->first.valid()) << console->second;
  EXPECT_TRUE(isatty(console->first.get()));
  EXPECT_FALSE(exists(options.consoleSocket));
  socket.reset();

  ASSERT_TRUE(start("tty").isOk());
  EXPECT_EQ(readToEnd(console->first.get()), "hello-tty\r\n");
  const siginfo_t exit = reapContainer(created->second);
  EXPECT_EQ(exit.si_code, CLD_EXITED);
  EXPECT_EQ(exit.si_status, 0);
  ASSERT_TRUE(remove("tty").isOk());
}

TEST_F(RuncTest, ABadConfigFailsWithRuncsReasonAndLeavesNothing) {
  auto options = bundle("bad", {"/bin/no-such-binary"});
  auto [created, pid] = create(options);
  EXPECT_EQ(created.code(), StatusCode::kUnknown);
  EXPECT_EQ(pid, 0);
  // runc's own words, with the verb and the id.
  EXPECT_NE(created.message().find("runc create bad failed: "), std::string::npos)
      << created.message();
  EXPECT_NE(created.message().find("no-such-binary"), std::string::npos) << created.message();
  EXPECT_NE(created.message().find("no such file or directory"), std::string::npos)
      << created.message();
  EXPECT_EQ(std::get<0>(state("bad")).code(), StatusCode::kNotFound);
}

TEST_F(RuncTest, UnknownContainersAreNotFound) {
  for (const char* verb : {"state", "start", "kill", "delete"}) {
    Status status;
    if (verb == std::string("state")) status = std::get<0>(state("never-made"));
    if (verb == std::string("start")) status = start("never-made");
    if (verb == std::string("kill")) status = kill("never-made", SIGKILL);
    if (verb == std::string("delete")) status = remove("never-made");
    EXPECT_EQ(status.code(), StatusCode::kNotFound) << verb << ": " << status.toString();
    EXPECT_EQ(status.message(),
              std::string("runc ") + verb + " never-made failed: container does not exist");
  }
  // A forced delete of nothing is fine: what cleanup after a crash needs.
  EXPECT_TRUE(remove("never-made", /*force=*/true).isOk());
}

TEST_F(RuncTest, ASecondCreateWithTheSameIdIsRefusedAndTheFirstIsUntouched) {
  auto options = bundle("twice", {"sleep", "1000"});
  auto [first, pid] = create(options);
  ASSERT_TRUE(first.isOk()) << first.toString();
  auto [second, none] = create(options);
  EXPECT_EQ(second.code(), StatusCode::kAlreadyExists) << second.toString();
  auto [stated, report] = state("twice");
  EXPECT_EQ(report.status, "created");
  EXPECT_EQ(report.pid, pid);
  ASSERT_TRUE(remove("twice", /*force=*/true).isOk());
  EXPECT_EQ(reapContainer(pid).si_code, CLD_KILLED);
}

TEST_F(RuncTest, AMissingRuntimeBinaryIsAFailedPrecondition) {
  OciRuntimeBinary missing("/usr/sbin/no-such-runc");
  OciRuntimeClient client(loop_, missing, root());
  auto [status] = await<Status>(loop_, [&](auto done) { client.start("x", done); });
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("/usr/sbin/no-such-runc"), std::string::npos);
}

TEST_F(RuncTest, TwentyContainersCreatedAtOnce) {
  constexpr int kContainers = 20;
  std::vector<RuntimeCreateOptions> options;
  for (int i = 0; i < kContainers; ++i)
    options.push_back(bundle("many" + std::to_string(i), {"sleep", "1000"}));
  std::vector<pid_t> pids(kContainers, 0);
  int answered = 0;
  std::vector<std::string> failures;
  auto collect = [&](const std::string& what) {
    return [&, what](Status status) {
      ++answered;
      if (!status.isOk()) failures.push_back(what + ": " + status.toString());
    };
  };
  const uint64_t before = uv_hrtime();
  for (int i = 0; i < kContainers; ++i) {
    client_->create(options[i], [&, i](Status status, pid_t pid) {
      ++answered;
      pids[i] = pid;
      if (!status.isOk()) failures.push_back(status.toString());
    });
  }
  ASSERT_TRUE(runUntil(
      loop_, [&] { return answered == kContainers; }, 240'000));
  const double createSeconds = static_cast<double>(uv_hrtime() - before) / 1e9;
  EXPECT_TRUE(failures.empty()) << failures.front();
  EXPECT_EQ(std::set<pid_t>(pids.begin(), pids.end()).size(), static_cast<size_t>(kContainers));

  answered = 0;
  for (int i = 0; i < kContainers; ++i)
    client_->start(options[i].id, collect("start " + options[i].id));
  ASSERT_TRUE(runUntil(
      loop_, [&] { return answered == kContainers; }, 60'000));
  answered = 0;
  for (int i = 0; i < kContainers; ++i)
    client_->kill(options[i].id, SIGKILL, false, collect("kill " + options[i].id));
  ASSERT_TRUE(runUntil(
      loop_, [&] { return answered == kContainers; }, 60'000));
  for (pid_t pid : pids)
    EXPECT_EQ(reapContainer(pid).si_status, SIGKILL);
  answered = 0;
  for (int i = 0; i < kContainers; ++i)
    client_->remove(options[i].id, false, collect("delete " + options[i].id));
  ASSERT_TRUE(runUntil(
      loop_, [&] { return answered == kContainers; }, 60'000));
  const double totalSeconds = static_cast<double>(uv_hrtime() - before) / 1e9;
  EXPECT_TRUE(failures.empty()) << failures.front();
  std::printf(
      "[ figures  ] %d containers at once: created in %.2f s, created+started+killed+"
      "deleted in %.2f s (%.0f ms per container); runc time %.2f s summed\n",
      kContainers, createSeconds, totalSeconds, totalSeconds * 1000 / kContainers,
      static_cast<double>(client_->runtimeNanos()) / 1e9);
}

TEST_F(RuncTest, FiguresForOneContainerAtATime) {
  constexpr int kContainers = 10;
  const uint64_t runtimeBefore = client_->runtimeNanos();
  const uint64_t before = uv_hrtime();
  for (int i = 0; i < kContainers; ++i) {
    const std::string id = "seq" + std::to_string(i);
    auto options = bundle(id, {"sleep", "1000"});
    auto [created, pid] = create(options);
    ASSERT_TRUE(created.isOk()) << created.toString();
    ASSERT_TRUE(start(id).isOk());
    ASSERT_TRUE(kill(id, SIGKILL).isOk());
    ASSERT_EQ(reapContainer(pid).si_status, SIGKILL);
    ASSERT_TRUE(remove(id).isOk());
  }
  const uint64_t wall = uv_hrtime() - before;
  const uint64_t runtime = client_->runtimeNanos() - runtimeBefore;
  EXPECT_LE(runtime, wall);
  std::printf(
      "[ figures  ] one at a time: %.1f ms per container for create+start+kill+delete; "
      "runc processes %.1f ms of it (%.1f%% of wall time)\n",
      static_cast<double>(wall) / kContainers / 1e6,
      static_cast<double>(runtime) / kContainers / 1e6,
      100.0 * static_cast<double>(runtime) / static_cast<double>(wall));
}

}  // namespace
}  // namespace monocri::oci
