// The keeper for real: keeper-test-keeper (runKeeper) supervising keeper-test-daemon (a loop
// with a KeeperLink), which this test drives over a control socket. Containers are forked the
// way runc leaves them, so they re-parent to the keeper. No root needed.
//
// This test process is a child subreaper itself: whatever the keeper leaves behind when a test
// kills it re-parents here, and is stopped and reaped by pid.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "monitor/keeper/ExitRecordFile.h"
#include "monitor/keeper/KeeperProtocol.h"

namespace monocri::monitor {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string readFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

size_t countLines(const std::string& path) {
  const std::string text = readFile(path);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

bool waitUntil(const std::function<bool()>& done, int timeoutMs) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

bool processExists(pid_t pid) {
  return fs::exists("/proc/" + std::to_string(pid));
}

// The state letter of a live process ('Z' for a zombie), 0 if gone.
char processState(pid_t pid) {
  const std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ? 0 : stat[close + 2];
}

long statusKiB(pid_t pid, const std::string& field) {
  std::istringstream status(readFile("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

size_t openFds(pid_t pid) {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry :
       fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    ++count;
  }
  return count;
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;)
    out.push_back(w);
  return out;
}

// "%08d\n" lines 0..count-1, each exactly once and in order.
void expectSequence(const std::string& path, int count) {
  const std::string text = readFile(path);
  ASSERT_EQ(text.size(), static_cast<size_t>(count) * 9) << path;
  char expected[16];
  for (int i = 0; i < count; ++i) {
    std::snprintf(expected, sizeof expected, "%08d\n", i);
    if (text.compare(static_cast<size_t>(i) * 9, 9, expected) != 0) {
      FAIL() << path << ": line " << i << " is '" << text.substr(static_cast<size_t>(i) * 9, 8)
             << "'";
    }
  }
}

class TempDir {
 public:
  explicit TempDir(const std::string& base = "/tmp") {
    std::string pattern = base + "/keeper-test-XXXXXX";
    path_ = mkdtemp(pattern.data()) ? pattern : "";
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// One daemon instance's control connection: commands out, reply and event lines in.
class Control {
 public:
  explicit Control(int fd) : fd_(fd) {}
  ~Control() { ::close(fd_); }

  void send(const std::string& line) {
    const std::string text = line + "\n";
    ASSERT_EQ(::write(fd_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  // The first line starting with `prefix`; lines before it stay for later expects.
  std::string expect(const std::string& prefix, int timeoutMs = 10000) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
    for (;;) {
      for (auto it = lines_.begin(); it != lines_.end(); ++it) {
        if (it->rfind(prefix, 0) == 0) {
          std::string line = *it;
          lines_.erase(it);
          return line;
        }
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0 || !readMore(static_cast<int>(left))) {
        ADD_FAILURE() << "no '" << prefix << "' from the daemon; it said: " << transcript();
        return "";
      }
    }
  }
  // Whether a line starting with `prefix` has arrived (no waiting: ask for a reply first).
  bool said(const std::string& prefix) const {
    for (const auto& line : lines_) {
      if (line.rfind(prefix, 0) == 0) return true;
    }
    return false;
  }
  // Sends `command` and returns its reply.
  std::string ask(const std::string& command, const std::string& replyPrefix,
                  int timeoutMs = 10000) {
    send(command);
    return expect(replyPrefix, timeoutMs);
  }
  // Whether the daemon's end closed (it died) within the time.
  bool closes(int timeoutMs = 10000) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
    while (!eof_) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0 || (!readMore(static_cast<int>(left)) && !eof_)) return false;
    }
    return true;
  }

 private:
  bool readMore(int timeoutMs) {
    if (eof_) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeoutMs) <= 0) return false;
    char buffer[4096];
    const ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    partial_.append(buffer, static_cast<size_t>(n));
    for (size_t newline; (newline = partial_.find('\n')) != std::string::npos;) {
      lines_.push_back(partial_.substr(0, newline));
      partial_.erase(0, newline + 1);
    }
    return true;
  }
  std::string transcript() const {
    std::string all;
    for (const auto& line : lines_)
      all += "[" + line + "] ";
    return all + (eof_ ? "(closed)" : "");
  }

  int fd_;
  std::string partial_;
  std::deque<std::string> lines_;
  bool eof_ = false;
};

// A keeper-test-keeper process and the control socket its daemons connect to.
class KeeperRun {
 public:
  KeeperRun(const TempDir& dir, const std::vector<std::string>& keeperFlags,
            const std::vector<std::string>& daemonFlags = {}, std::string exitDir = "")
      : dir_(dir.path()), exitDir_(exitDir.empty() ? dir / "exits" : std::move(exitDir)) {
    listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string control = dir / "control.sock";
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", control.c_str());
    EXPECT_EQ(::bind(listen_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(listen_, 8), 0);

    std::vector<std::string> args = {KEEPER_TEST_KEEPER};
    args.insert(args.end(), keeperFlags.begin(), keeperFlags.end());
    for (const char* a : {"--exit-dir", exitDir_.c_str(), "--", KEEPER_TEST_DAEMON, "--control",
                          control.c_str(), "--dir", dir_.c_str()}) {
      args.push_back(a);
    }
    args.insert(args.end(), daemonFlags.begin(), daemonFlags.end());
    const std::string log = dir / "keeper.log";
    pid_ = fork();
    if (pid_ == 0) {
      const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }

  ~KeeperRun() {
    if (::testing::Test::HasFailure()) std::fprintf(stderr, "keeper log:\n%s", log().c_str());
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    // What it leaves re-parents to this process: stop the daemons and containers it ran.
    for (pid_t pid : started_) {
      const std::string status = readFile("/proc/" + std::to_string(pid) + "/status");
      if (status.find("\nPPid:\t" + std::to_string(getpid()) + "\n") != std::string::npos) {
        ::kill(pid, SIGKILL);
      }
    }
    waitUntil([] { return waitpid(-1, nullptr, WNOHANG) < 0 && errno == ECHILD; }, 3000);
    ::close(listen_);
  }

  pid_t pid() const { return pid_; }
  const std::string& exitDir() const { return exitDir_; }
  std::string log() const { return readFile(dir_ + "/keeper.log"); }
  std::string exitRecord(const std::string& owner, pid_t pid) const {
    return exitDir_ + "/" + owner + "." + std::to_string(pid);
  }
  // Remembered so that the teardown can stop them, should the keeper be gone.
  void started(pid_t pid) { started_.push_back(pid); }

  // The next daemon instance: its control connection, once it said hello.
  std::unique_ptr<Control> accept(int timeoutMs = 10000) {
    pollfd p{listen_, POLLIN, 0};
    if (::poll(&p, 1, timeoutMs) != 1) {
      ADD_FAILURE() << "no daemon connected; keeper log:\n" << log();
      return nullptr;
    }
    auto control = std::make_unique<Control>(::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC));
    const auto hello = words(control->expect("hello"));
    if (hello.size() == 3) {
      daemonPid_ = std::atoi(hello[1].c_str());
      started(daemonPid_);
      EXPECT_EQ(hello[2], "3") << "the daemon finds the keeper socket at fd 3";
    }
    return control;
  }
  pid_t daemonPid() const { return daemonPid_; }

  // The keeper's exit code (128 + signal if killed), or nullopt if it runs on.
  std::optional<int> wait(int timeoutMs) {
    int status = 0;
    const bool ended =
        waitUntil([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, timeoutMs);
    if (!ended) return std::nullopt;
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  std::string dir_;
  std::string exitDir_;
  int listen_ = -1;
  pid_t pid_ = -1;
  pid_t daemonPid_ = -1;
  bool exited_ = false;
  std::vector<pid_t> started_;
};

pid_t spawned(KeeperRun& keeper, Control& daemon, const std::string& command) {
  const auto reply = words(daemon.ask(command, "spawned " + words(command)[1]));
  if (reply.size() != 3) return -1;
  const pid_t pid = std::atoi(reply[2].c_str());
  keeper.started(pid);
  return pid;
}

class KeeperIntegration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    signal(SIGPIPE, SIG_IGN);
  }
};

// The heart of it: the daemon dies (SIGKILL) while containers write; the restarted daemon gets
// their pipes back and reads every byte written during the outage, in order; a container that
// exited during the outage is reported with its true status; nobody met SIGPIPE.
TEST_F(KeeperIntegration, ADaemonCrashLosesNoByteNoExitAndNoContainer) {
  TempDir dir;
  // Two seconds of outage before each restart, for c2 to exit while no daemon runs at all.
  KeeperRun keeper(dir, {"--delay-min", "2000", "--delay-max", "2000"});
  auto first = keeper.accept();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->ask("adopt", "ready"), "ready held= exits=");
  // c1 writes 270 kB, far more than a pipe holds; c2 writes 18 kB, then exits 7 when told.
  const pid_t c1 = spawned(keeper, *first, "spawn c1 30000 200 5 0");
  const pid_t c2 = spawned(keeper, *first, "spawn c2 2000 2000 0 7 on-usr1");
  ASSERT_GT(c1, 0);
  ASSERT_GT(c2, 0);
  EXPECT_TRUE(
      waitUntil([&] { return fs::exists(dir / "c1.out") && fs::exists(dir / "c2.out"); }, 5000));

  first->send("kill-self");
  EXPECT_TRUE(first->closes());
  // The outage: no daemon at all. c2 ends, and its exit is on disk with its status before any
  // daemon hears of it.
  ASSERT_EQ(::kill(c2, SIGUSR1), 0);
  ASSERT_TRUE(waitUntil([&] { return fs::exists(keeper.exitRecord("c2", c2)); }, 1900))
      << keeper.log();
  EXPECT_EQ(countLines(dir / "starts"), 1u) << "c2 exited before the restart";
  ExitInfo onDisk;
  const std::string record = readFile(keeper.exitRecord("c2", c2));
  ASSERT_EQ(parseExitRecord(record.data(), record.size(), onDisk), nullptr) << record;
  EXPECT_EQ(onDisk.waitStatus, 7 << 8);

  auto second = keeper.accept();
  ASSERT_TRUE(second);
  // Still nobody reads: c1 fills its pipe and blocks in write(), alive.
  EXPECT_TRUE(waitUntil(
      [&] {
        return readFile("/proc/" + std::to_string(c1) + "/wchan").find("pipe_write") !=
               std::string::npos;
      },
      10000));
  EXPECT_NE(processState(c1), 'Z');

  const auto ready = words(second->ask("adopt", "ready"));
  ASSERT_EQ(ready.size(), 3u);
  // held=c1:1:<bytes waiting>,c2:1:<bytes waiting>
  ASSERT_EQ(ready[1].rfind("held=c1:1:", 0), 0u) << ready[1];
  const long c1Waiting = std::atol(ready[1].c_str() + std::strlen("held=c1:1:"));
  EXPECT_GT(c1Waiting, 60000) << "c1's pipe was full: it blocked instead of losing a byte";
  EXPECT_NE(ready[1].find(",c2:1:"), std::string::npos) << ready[1];
  EXPECT_EQ(ready[2], "exits=c2:" + std::to_string(c2) + ":" + std::to_string(7 << 8));

  // c1 goes on where it stopped and ends normally: exit 0, never SIGPIPE.
  EXPECT_EQ(second->expect("exit c1", 30000), "exit c1 " + std::to_string(c1) + " 0");
  second->expect("eof c1");
  second->expect("eof c2");
  expectSequence(dir / "c1.out", 30000);
  expectSequence(dir / "c2.out", 2000);

  // Acknowledged exits are forgotten: records removed, not reported to the next daemon.
  EXPECT_EQ(second->ask("ack c2 " + std::to_string(c2), "ok"), "ok");
  EXPECT_EQ(second->ask("ack c1 " + std::to_string(c1), "ok"), "ok");
  EXPECT_TRUE(waitUntil([&] { return fs::is_empty(keeper.exitDir()); }, 5000));
  second->send("kill-self");
  EXPECT_TRUE(second->closes());
  auto third = keeper.accept();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->ask("adopt", "ready"), "ready held=c1:1:0,c2:1:0 exits=");

  // RELEASE closes the keeper's copies.
  const size_t fdsHeld = openFds(keeper.pid());
  third->ask("release c1", "ok");
  third->ask("release c2", "ok");
  EXPECT_TRUE(waitUntil([&] { return openFds(keeper.pid()) == fdsHeld - 2; }, 5000));

  // Exit status 0 is a clean shutdown: the keeper ends with it.
  third->send("exit 0");
  EXPECT_EQ(keeper.wait(5000), 0);
  EXPECT_EQ(countLines(dir / "starts"), 3u);
}

// Requests a daemon sent just before it died still count: the keeper reads them from the
// dead daemon's socket before it lets go of it.
TEST_F(KeeperIntegration, RequestsSentJustBeforeTheDaemonDiesAreKept) {
  TempDir dir;
  KeeperRun keeper(dir, {"--delay-min", "500"});
  auto first = keeper.accept();
  ASSERT_TRUE(first);
  first->ask("adopt", "ready");
  // The keeper is stopped meanwhile, so that it finds the daemon's death and its last records
  // at the same time (and handles the death first).
  ASSERT_EQ(::kill(keeper.pid(), SIGSTOP), 0);
  first->send("spawn c9 100 100 0 0\nkill-self");  // HOLD and TRACK, then SIGKILL at once
  EXPECT_TRUE(first->closes());
  const pid_t dead = keeper.daemonPid();
  EXPECT_TRUE(waitUntil([&] { return processState(dead) == 'Z'; }, 5000)) << "SIGCHLD is sent";
  ASSERT_EQ(::kill(keeper.pid(), SIGCONT), 0);
  auto second = keeper.accept();
  ASSERT_TRUE(second);
  const auto ready = words(second->ask("adopt", "ready"));
  ASSERT_EQ(ready.size(), 3u);
  EXPECT_EQ(ready[1], "held=c9:1:900") << "the pipe, with all 100 lines unread";
  ASSERT_EQ(ready[2].rfind("exits=c9:", 0), 0u) << ready[2];
  EXPECT_EQ(ready[2].substr(ready[2].size() - 2), ":0") << ready[2];
}

// A container's init can exit before the daemon learns its pid: the keeper keeps the exit and
// reports it when the pid is tracked. A pid it knows nothing of is refused.
TEST_F(KeeperIntegration, AnExitBeforeItsTrackIsReportedWhenTracked) {
  TempDir dir;
  KeeperRun keeper(dir, {});
  auto daemon = keeper.accept();
  ASSERT_TRUE(daemon);
  daemon->ask("adopt", "ready");
  const pid_t early = spawned(keeper, *daemon, "spawn-untracked u1 5");
  ASSERT_TRUE(waitUntil([&] { return !processExists(early); }, 5000)) << "the keeper reaps it";
  EXPECT_FALSE(fs::exists(keeper.exitRecord("u1", early))) << "no owner yet, no record";
  daemon->send("track u1 " + std::to_string(early));
  EXPECT_EQ(daemon->expect("exit u1"),
            "exit u1 " + std::to_string(early) + " " + std::to_string(5 << 8));
  EXPECT_TRUE(fs::exists(keeper.exitRecord("u1", early)));
  daemon->ask("ack u1 " + std::to_string(early), "ok");
  EXPECT_TRUE(waitUntil([&] { return !fs::exists(keeper.exitRecord("u1", early)); }, 5000));

  // A pid whose exit the keeper never saw, and that no process has: pids stay below pid_max.
  const pid_t gone = std::atoi(readFile("/proc/sys/kernel/pid_max").c_str());
  ASSERT_GT(gone, 0);
  daemon->send("track ghost " + std::to_string(gone));
  EXPECT_EQ(daemon->expect("refused"),
            "refused TRACK ghost " + std::to_string(gone) + " " +
                std::to_string(static_cast<int>(RefusalReason::kUnknownProcess)));
}

TEST_F(KeeperIntegration, ExitStatusTwoIsFinal) {
  TempDir dir;
  KeeperRun keeper(dir, {});
  auto daemon = keeper.accept();
  ASSERT_TRUE(daemon);
  daemon->send("exit 2");
  EXPECT_EQ(keeper.wait(5000), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a restart would be due by now
  EXPECT_EQ(countLines(dir / "starts"), 1u) << "started once";
  EXPECT_NE(keeper.log().find("configuration error"), std::string::npos) << keeper.log();
}

TEST_F(KeeperIntegration, SignalsAreForwardedToTheDaemon) {
  for (int stop : {SIGTERM, SIGINT}) {
    TempDir dir;
    KeeperRun keeper(dir, {});
    auto daemon = keeper.accept();
    ASSERT_TRUE(daemon);
    daemon->ask("adopt", "ready");
    ASSERT_EQ(::kill(keeper.pid(), stop), 0);
    EXPECT_EQ(daemon->expect("signal"), "signal " + std::to_string(stop));
    EXPECT_EQ(keeper.wait(5000), 0);
    EXPECT_EQ(countLines(dir / "starts"), 1u) << "a daemon asked to stop is not restarted";
  }
}

// SIGHUP replaces the daemon (SIGTERM, then a new one at once) and the keeper keeps everything:
// the new daemon gets the held pipe back and the exit that follows.
TEST_F(KeeperIntegration, SighupReplacesTheDaemonAndKeepsWhatItHolds) {
  TempDir dir;
  KeeperRun keeper(dir, {});
  auto first = keeper.accept();
  ASSERT_TRUE(first);
  first->ask("adopt", "ready");
  const pid_t writer = spawned(keeper, *first, "spawn w1 1 1 10 4 on-usr1");
  ASSERT_GT(writer, 0);
  ASSERT_TRUE(waitUntil([&] { return readFile(dir / "w1.out") == "00000000\n"; }, 5000));
  ASSERT_EQ(::kill(keeper.pid(), SIGHUP), 0);
  EXPECT_EQ(first->expect("signal"), "signal 15");
  EXPECT_TRUE(first->closes());
  auto second = keeper.accept();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->ask("adopt", "ready"), "ready held=w1:1:0 exits=");
  ASSERT_EQ(::kill(writer, SIGUSR1), 0);
  EXPECT_EQ(second->expect("exit"),
            "exit w1 " + std::to_string(writer) + " " + std::to_string(4 << 8));
  EXPECT_EQ(countLines(dir / "starts"), 2u);
  EXPECT_NE(keeper.log().find("as asked (SIGHUP)"), std::string::npos) << keeper.log();
  ASSERT_EQ(::kill(keeper.pid(), SIGTERM), 0);
  EXPECT_EQ(keeper.wait(5000), 0);
}

// A clean shutdown (exit 0) closes every held descriptor with the keeper: a container still
// writing then meets a pipe without readers. This is what "exit 0" means; restarts are for
// non-zero exits and crashes.
TEST_F(KeeperIntegration, ACleanShutdownLetsGoOfHeldPipes) {
  TempDir dir;
  KeeperRun keeper(dir, {});
  auto daemon = keeper.accept();
  ASSERT_TRUE(daemon);
  daemon->ask("adopt", "ready");
  const pid_t writer = spawned(keeper, *daemon, "spawn w1 1000000 10 10 0");
  ASSERT_GT(writer, 0);
  daemon->send("exit 0");
  EXPECT_EQ(keeper.wait(5000), 0);
  // The writer re-parented to this test process; it dies of SIGPIPE at its next write.
  int status = 0;
  ASSERT_TRUE(waitUntil([&] { return waitpid(writer, &status, WNOHANG) == writer; }, 5000));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE) << status;
}

std::vector<long> startTimesMs(const std::string& path) {
  std::vector<long> times;
  std::istringstream in(readFile(path));
  for (std::string word, pid; in >> word >> pid;) {
    long ms;
    in >> ms;
    times.push_back(ms);
  }
  return times;
}

// 100 ms, doubling: starts at 0, 0.1, 0.3, 0.7, 1.5 s; the next would be at 3.1 s.
TEST_F(KeeperIntegration, BackoffBoundsTheRestartsOfADaemonThatCrashesAtOnce) {
  TempDir dir;
  KeeperRun keeper(dir, {}, {"--on-start-exit", "1"});
  std::this_thread::sleep_for(std::chrono::milliseconds(2700));
  ASSERT_EQ(::kill(keeper.pid(), SIGTERM), 0);  // between restarts: the keeper just stops
  EXPECT_EQ(keeper.wait(5000), 0);
  const auto starts = startTimesMs(dir / "starts");
  ASSERT_EQ(starts.size(), 5u) << readFile(dir / "starts") << keeper.log();
  const long expectedGap[] = {100, 200, 400, 800};
  for (size_t i = 1; i < starts.size(); ++i) {
    const long gap = starts[i] - starts[i - 1];
    EXPECT_GE(gap, expectedGap[i - 1]) << "restart " << i;
    EXPECT_LT(gap, expectedGap[i - 1] + 300) << "restart " << i;  // + a start and a crash
  }
  // One line per restart, naming the delay.
  const std::string log = keeper.log();
  size_t at = 0;
  for (const char* delay : {"in 100 ms", "in 200 ms", "in 400 ms", "in 800 ms", "in 1600 ms"}) {
    at = log.find(delay, at);
    EXPECT_NE(at, std::string::npos) << delay << "\n" << log;
  }
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 7) << log;  // + starting, + stopping
}

TEST_F(KeeperIntegration, BackoffStopsAtItsMaximumAndResetsAfterAnUptime) {
  {
    TempDir dir;
    KeeperRun keeper(dir, {"--delay-min", "50", "--delay-max", "200"}, {"--on-start-exit", "1"});
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    ::kill(keeper.pid(), SIGTERM);
    keeper.wait(5000);
    const std::string log = keeper.log();
    size_t at = 0;
    for (const char* delay : {"in 50 ms", "in 100 ms", "in 200 ms", "in 200 ms", "in 200 ms"}) {
      at = log.find(delay, at);
      ASSERT_NE(at, std::string::npos) << delay << "\n" << log;
      ++at;
    }
    EXPECT_EQ(log.find("in 400 ms"), std::string::npos) << log;
  }
  {
    // Each daemon runs 250 ms, past the 200 ms reset: the delay never grows.
    TempDir dir;
    KeeperRun keeper(dir, {"--delay-min", "50", "--reset-after", "200"},
                     {"--on-start-exit", "1", "--live-ms", "250"});
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    ::kill(keeper.pid(), SIGTERM);
    keeper.wait(5000);
    const std::string log = keeper.log();
    size_t restarts = 0;
    for (size_t at = log.find("in 50 ms"); at != std::string::npos;
         at = log.find("in 50 ms", at + 1)) {
      ++restarts;
    }
    EXPECT_GE(restarts, 3u) << log;
    EXPECT_EQ(log.find("in 100 ms"), std::string::npos) << log;
  }
}

// Records an earlier keeper left (the node rebooted, or the keeper was replaced) reach the
// first daemon; files that are not whole records are left alone, unfinished writes removed.
TEST_F(KeeperIntegration, ExitRecordsLeftByAnEarlierKeeperAreReplayed) {
  TempDir dir;
  const std::string exits = dir / "exits";
  fs::create_directory(exits);
  ExitInfo old;
  ASSERT_TRUE(Owner::parse("old1", old.owner));
  old.pid = 4242;
  old.waitStatus = SIGKILL;
  old.timeNs = 1700000000000000000;
  char text[kMaxExitRecordBytes];
  const std::string valid(text, formatExitRecord(old, text));
  writeFile(exits + "/old1.4242", valid);
  writeFile(exits + "/misnamed.4242", valid);  // contents name another file
  writeFile(exits + "/garbage.1", "not a record\n");
  writeFile(exits + "/.old2.77.tmp", valid.substr(0, 20));  // a write cut short

  KeeperRun keeper(dir, {});
  auto daemon = keeper.accept();
  ASSERT_TRUE(daemon);
  EXPECT_EQ(daemon->ask("adopt", "ready"), "ready held= exits=old1:4242:9");
  EXPECT_FALSE(fs::exists(exits + "/.old2.77.tmp"));
  EXPECT_TRUE(fs::exists(exits + "/garbage.1"));
  EXPECT_TRUE(fs::exists(exits + "/misnamed.4242"));
  EXPECT_NE(keeper.log().find("skipping " + exits + "/garbage.1"), std::string::npos);
  daemon->ask("ack old1 4242", "ok");
  EXPECT_TRUE(waitUntil([&] { return !fs::exists(exits + "/old1.4242"); }, 5000));
}

TEST_F(KeeperIntegration, FullTablesAnswerRefusalsAndTheKeeperCarriesOn) {
  TempDir dir;
  KeeperRun keeper(dir, {"--max-held", "2", "--max-tracked", "1"});
  auto daemon = keeper.accept();
  ASSERT_TRUE(daemon);
  daemon->ask("adopt", "ready");
  const size_t baseline = openFds(keeper.pid());
  daemon->ask("hold-null a 1", "ok");
  daemon->ask("hold-null a 1", "ok");  // same owner and tag: replaces
  daemon->ask("hold-null b 1", "ok");
  daemon->ask("ping", "pong");
  EXPECT_TRUE(waitUntil([&] { return openFds(keeper.pid()) == baseline + 2; }, 5000));
  daemon->send("hold-null c 1");
  EXPECT_EQ(daemon->expect("refused"),
            "refused HOLD c 0 " + std::to_string(static_cast<int>(RefusalReason::kTableFull)));
  EXPECT_EQ(openFds(keeper.pid()), baseline + 2) << "the refused descriptor was closed";

  const pid_t s1 = spawned(keeper, *daemon, "spawn-sleeper s1 0");
  const pid_t s2 = spawned(keeper, *daemon, "spawn-sleeper s2 0");
  daemon->ask("track s1 " + std::to_string(s1), "ok");
  daemon->send("track s2 " + std::to_string(s2));
  EXPECT_EQ(daemon->expect("refused"),
            "refused TRACK s2 " + std::to_string(s2) + " " +
                std::to_string(static_cast<int>(RefusalReason::kTableFull)));
  ASSERT_EQ(::kill(s1, SIGKILL), 0);
  EXPECT_EQ(daemon->expect("exit s1"), "exit s1 " + std::to_string(s1) + " 9");
  // Room again; s2's exit waited in the untracked ring meanwhile.
  ASSERT_EQ(::kill(s2, SIGKILL), 0);
  ASSERT_TRUE(waitUntil([&] { return !processExists(s2); }, 5000));
  daemon->send("track s2 " + std::to_string(s2));
  EXPECT_EQ(daemon->expect("exit s2"), "exit s2 " + std::to_string(s2) + " 9");

  daemon->ask("release a", "ok");
  daemon->ask("release b", "ok");
  EXPECT_TRUE(waitUntil([&] { return openFds(keeper.pid()) == baseline; }, 5000));
}

// More unacknowledged exits than the table holds: the extra ones wait on disk and are sent as
// soon as an acknowledgement makes room.
TEST_F(KeeperIntegration, ExitsBeyondThePendingTableWaitOnDiskForRoom) {
  TempDir dir;
  KeeperRun keeper(dir, {"--max-pending", "1"});
  auto daemon = keeper.accept();
  ASSERT_TRUE(daemon);
  daemon->ask("adopt", "ready");
  const pid_t x1 = spawned(keeper, *daemon, "spawn-untracked x1 3");
  daemon->send("track x1 " + std::to_string(x1));
  EXPECT_EQ(daemon->expect("exit x1"),
            "exit x1 " + std::to_string(x1) + " " + std::to_string(3 << 8));
  const pid_t x2 = spawned(keeper, *daemon, "spawn-untracked x2 4");
  daemon->ask("track x2 " + std::to_string(x2), "ok");
  ASSERT_TRUE(waitUntil([&] { return fs::exists(keeper.exitRecord("x2", x2)); }, 5000));
  daemon->ask("ping", "pong");
  EXPECT_FALSE(daemon->said("exit x2")) << "no room to keep it: not sent yet";
  daemon->ask("ack x1 " + std::to_string(x1), "ok");
  EXPECT_EQ(daemon->expect("exit x2"),
            "exit x2 " + std::to_string(x2) + " " + std::to_string(4 << 8));
  EXPECT_NE(keeper.log().find("pending-exit table full"), std::string::npos) << keeper.log();
}

std::string hex(const KeeperRecord& record) {
  std::array<uint8_t, kRecordSize> bytes;
  encodeRecord(record, bytes.data());
  std::string out;
  char pair[3];
  for (uint8_t b : bytes) {
    std::snprintf(pair, sizeof pair, "%02x", b);
    out += pair;
  }
  return out;
}

TEST_F(KeeperIntegration, MalformedRecordsAreRefusedAndTheirDescriptorsClosed) {
  TempDir dir;
  KeeperRun keeper(dir, {});
  auto daemon = keeper.accept();
  ASSERT_TRUE(daemon);
  daemon->ask("adopt", "ready");
  const size_t baseline = openFds(keeper.pid());
  const std::string malformed = std::to_string(static_cast<int>(RefusalReason::kMalformed));

  daemon->ask("raw 00112233", "ok");
  EXPECT_EQ(daemon->expect("refused"), "refused UNKNOWN - 0 " + malformed);
  KeeperRecord track;
  track.type = RecordType::kTrack;
  ASSERT_TRUE(Owner::parse("c1", track.owner));
  track.pid = 5;
  daemon->ask("raw-fd " + hex(track), "ok");  // TRACK takes no descriptor
  EXPECT_EQ(daemon->expect("refused"), "refused TRACK c1 5 " + malformed);
  std::string badOwner = hex(track);
  badOwner.replace(80, 2, "2f");  // owner "/1"
  daemon->ask("raw " + badOwner, "ok");
  EXPECT_EQ(daemon->expect("refused"), "refused TRACK - 5 " + malformed);
  daemon->ask("ping", "pong");
  EXPECT_EQ(openFds(keeper.pid()), baseline);

  // And it still works.
  const pid_t u = spawned(keeper, *daemon, "spawn-untracked u2 3");
  daemon->send("track u2 " + std::to_string(u));
  EXPECT_EQ(daemon->expect("exit u2"),
            "exit u2 " + std::to_string(u) + " " + std::to_string(3 << 8));
}

// The keeper's memory: tiny, and flat under churn. Allocations are counted by the test keeper's
// malloc; none may happen after start, so the count is the same after 10 000 cycles.
TEST_F(KeeperIntegration, MemoryIsTinyAndFlatOverTenThousandTrackExitCycles) {
  TempDir dir;
  TempDir exits("/dev/shm");  // tmpfs: 20 000 fsyncs here measure the keeper, not the disk
  const std::string report = dir / "allocations";
  KeeperRun keeper(dir, {"--alloc-report", report}, {}, exits / "exits");
  auto daemon = keeper.accept();
  ASSERT_TRUE(daemon);
  daemon->ask("adopt", "ready");
  auto sampleAllocations = [&] {
    const size_t before = readFile(report).size();
    ::kill(keeper.pid(), SIGUSR1);
    waitUntil([&] { return readFile(report).size() > before; }, 5000);
    const std::string text = readFile(report);
    const size_t last = text.rfind("allocations ");
    return last == std::string::npos ? -1L : std::atol(text.c_str() + last + 12);
  };

  // Warm-up: every table slot and ring entry the steady state uses gets touched.
  // Generous: 10 000 cycles take 5-7 s alone, and ctest runs other suites beside this one.
  constexpr int kCyclesTimeoutMs = 120'000;
  EXPECT_EQ(daemon->ask("cycles 2000", "cycled", kCyclesTimeoutMs), "cycled 2000");
  const long allocationsBefore = sampleAllocations();
  const long rssBefore = statusKiB(keeper.pid(), "VmRSS");
  const auto start = Clock::now();
  EXPECT_EQ(daemon->ask("cycles 10000", "cycled", kCyclesTimeoutMs), "cycled 10000");
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const long allocationsAfter = sampleAllocations();
  const long rssAfter = statusKiB(keeper.pid(), "VmRSS");
  const long anon = statusKiB(keeper.pid(), "RssAnon");
  const long file = statusKiB(keeper.pid(), "RssFile");
  std::printf(
      "keeper: VmRSS %ld KiB before, %ld KiB after 10000 cycles (RssAnon %ld, RssFile %ld), "
      "%ld allocations at start, %.1f s for the cycles\n",
      rssBefore, rssAfter, anon, file, allocationsBefore, seconds);
  RecordProperty("keeper_rss_kib", std::to_string(rssAfter));
  EXPECT_GT(allocationsBefore, 0);
  EXPECT_EQ(allocationsAfter, allocationsBefore) << "the keeper allocated while working";
  EXPECT_LE(rssAfter - rssBefore, 32) << "KiB of growth over 10 000 cycles";
  EXPECT_LT(rssAfter, 3 * 1024) << "KiB";
  EXPECT_TRUE(fs::is_empty(exits / "exits")) << "every acknowledged record removed";
  EXPECT_EQ(daemon->ask("ping", "pong"), "pong");
  EXPECT_FALSE(daemon->said("error")) << "every cycle saw its own exit status";

  // A restart, a replay and a refusal allocate nothing either.
  daemon->send("kill-self");
  EXPECT_TRUE(daemon->closes());
  auto next = keeper.accept();
  ASSERT_TRUE(next);
  next->ask("adopt", "ready");
  next->ask("hold-null h1 1", "ok");
  next->ask("raw 00", "ok");
  next->expect("refused");
  EXPECT_EQ(sampleAllocations(), allocationsBefore);
}

}  // namespace
}  // namespace monocri::monitor
