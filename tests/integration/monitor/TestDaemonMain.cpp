// A daemon for the keeper's integration tests: a loop with a KeeperLink, driven line by line
// over a control socket by the test, and "containers" forked the way runc leaves them (a child
// that forks the container process and exits, so that the container re-parents to the keeper).
//
//   keeper-test-daemon --control SOCKET --dir DIR [--on-start-exit CODE [--live-ms MS]]
//
// Every start appends "start <pid> <CLOCK_MONOTONIC ms>" to DIR/starts. With --on-start-exit
// it exits with CODE at once (or after MS), a daemon that crashes at start. Otherwise it
// connects to SOCKET, says "hello <pid> <keeper fd>", and obeys (one reply line each):
//   adopt                                   take the keeper socket: "ready held=O:T:B,...
//                                           exits=O:P:S,..." (B: bytes waiting in the pipe)
//   spawn OWNER LINES BURST INTERVAL CODE [on-usr1]
//                                           a container writing "%08d\n" LINES times to a pipe,
//                                           BURST lines every INTERVAL ms, then exiting CODE
//                                           (at once, or when it gets SIGUSR1);
//                                           the daemon holds the pipe at the keeper, tracks
//                                           the pid, and appends what it reads to DIR/OWNER.out
//   spawn-untracked OWNER CODE              a container exiting CODE at once, not tracked
//   spawn-sleeper OWNER                     a container that waits for a signal, not tracked
//   track|ack OWNER PID, release OWNER, hold-null OWNER TAG (holds /dev/null)
//   raw HEX, raw-fd HEX                     bytes on the keeper socket (with a descriptor)
//   cycles N                                N x (spawn, track, exit, ack): "cycled N"
//   ping                                    "pong" (everything before it was handled)
//   kill-self, exit CODE
// Events: "exit OWNER PID STATUS", "refused TYPE OWNER PID REASON", "eof OWNER", "lost",
// "signal N" (then exits 0 for SIGTERM and SIGINT).
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "loop/Loop.h"
#include "loop/PipeStream.h"
#include "loop/Signal.h"
#include "loop/Timer.h"
#include "monitor/KeeperLink.h"
#include "monitor/keeper/Keeper.h"

using namespace monocri;

namespace {

int64_t monotonicMs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
}

void appendTo(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  (void)!::write(fd, text.data(), text.size());
  ::close(fd);
}

void writeAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(120);
    data += n;
    size -= static_cast<size_t>(n);
  }
}

struct ContainerSpec {
  int lines = 0;
  int burst = 1;
  int intervalMs = 0;
  int exitCode = 0;
  bool sleeper = false;
  bool exitOnSignal = false;  // after its lines, waits for SIGUSR1 to exit
};

int containerExitCode = 0;

// Forks a child that forks the container and exits, as runc does once the container runs:
// the container's parent is gone and the keeper (the subreaper) inherits it.
pid_t startContainer(const ContainerSpec& spec, int stdoutFd) {
  int pidPipe[2];
  if (pipe2(pidPipe, O_CLOEXEC) != 0) return -1;
  const pid_t child = fork();
  if (child < 0) return -1;
  if (child == 0) {
    const pid_t container = fork();
    if (container == 0) {
      // The container: default signal handling (SIGPIPE kills), none of the daemon's fds.
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      for (int sig = 1; sig < NSIG; ++sig)
        signal(sig, SIG_DFL);
      const int out = stdoutFd >= 0 ? stdoutFd : ::open("/dev/null", O_WRONLY);
      dup2(out, STDOUT_FILENO);
      close_range(3, ~0U, 0);
      if (spec.sleeper) {
        for (;;)
          pause();
      }
      containerExitCode = spec.exitCode;
      // SIGUSR1 waits until every line is written: the output is whole whenever it comes.
      sigset_t usr1;
      sigemptyset(&usr1);
      sigaddset(&usr1, SIGUSR1);
      if (spec.exitOnSignal) {
        signal(SIGUSR1, [](int) { _exit(containerExitCode); });
        sigprocmask(SIG_BLOCK, &usr1, nullptr);
      }
      for (int i = 0; i < spec.lines; ++i) {
        char line[16];
        const int n = std::snprintf(line, sizeof line, "%08d\n", i);
        writeAll(STDOUT_FILENO, line, static_cast<size_t>(n));
        if ((i + 1) % spec.burst == 0 && spec.intervalMs > 0) {
          timespec pause{spec.intervalMs / 1000, (spec.intervalMs % 1000) * 1'000'000L};
          nanosleep(&pause, nullptr);
        }
      }
      while (spec.exitOnSignal)
        sigsuspend(&none);
      _exit(spec.exitCode);
    }
    (void)!::write(pidPipe[1], &container, sizeof container);
    _exit(container > 0 ? 0 : 1);
  }
  ::close(pidPipe[1]);
  int status = 0;
  waitpid(child, &status, 0);
  pid_t container = -1;
  if (::read(pidPipe[0], &container, sizeof container) != sizeof container) container = -1;
  ::close(pidPipe[0]);
  return container;
}

class TestDaemon {
 public:
  TestDaemon(std::string dir, int keeperFd) : dir_(std::move(dir)), keeperFd_(keeperFd) {}

  int run(const std::string& controlPath) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", controlPath.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      std::perror("keeper-test-daemon: connect");
      return 1;
    }
    // A second descriptor on the keeper socket, for raw records the link would never send.
    if (keeperFd_ >= 0) rawFd_ = fcntl(keeperFd_, F_DUPFD_CLOEXEC, 0);
    control_ = loop::PipeStream::adopt(loop_, fd);
    control_->startReading([this](std::string_view data) { onControl(data); },
                           [](int) { _exit(3); });  // the test is gone
    // SIGTERM and SIGINT stop it (exit 0), SIGHUP is only reported.
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
      auto handle = loop::Signal::create(loop_);
      handle->start(sig, [this](int signum) {
        say("signal " + std::to_string(signum));
        if (signum != SIGHUP) loop_.defer([] { _exit(0); });
      });
      signals_.push_back(std::move(handle));
    }
    say("hello " + std::to_string(getpid()) + " " + std::to_string(keeperFd_));
    loop_.run();
    return 0;
  }

 private:
  void say(const std::string& line) { control_->write(line + "\n"); }

  void onControl(std::string_view data) {
    input_.append(data);
    size_t newline;
    while ((newline = input_.find('\n')) != std::string::npos) {
      const std::string line = input_.substr(0, newline);
      input_.erase(0, newline + 1);
      command(line);
    }
  }

  void command(const std::string& line) {
    std::istringstream words(line);
    std::string verb, owner;
    words >> verb;
    if (verb == "adopt") {
      adopt();
    } else if (verb == "spawn") {
      ContainerSpec spec;
      std::string then;
      words >> owner >> spec.lines >> spec.burst >> spec.intervalMs >> spec.exitCode >> then;
      spec.exitOnSignal = then == "on-usr1";
      spawnWithPipe(owner, spec);
    } else if (verb == "spawn-untracked" || verb == "spawn-sleeper") {
      ContainerSpec spec;
      words >> owner >> spec.exitCode;
      spec.sleeper = verb == "spawn-sleeper";
      const pid_t pid = startContainer(spec, -1);
      say("spawned " + owner + " " + std::to_string(pid));
    } else if (verb == "track" || verb == "ack") {
      pid_t pid = 0;
      words >> owner >> pid;
      if (verb == "track") {
        link_->track(owner, pid);
      } else {
        link_->acknowledge(owner, pid);
      }
      say("ok");
    } else if (verb == "release") {
      words >> owner;
      link_->release(owner);
      say("ok");
    } else if (verb == "hold-null") {
      uint32_t tag = 0;
      words >> owner >> tag;
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      link_->hold(owner, tag, fd);
      ::close(fd);
      say("ok");
    } else if (verb == "raw" || verb == "raw-fd") {
      std::string hex;
      words >> hex;
      sendRaw(hex, verb == "raw-fd");
      say("ok");
    } else if (verb == "cycles") {
      words >> cyclesLeft_;
      cyclesDone_ = 0;
      nextCycle();
    } else if (verb == "ping") {
      say("pong");
    } else if (verb == "kill-self") {
      raise(SIGKILL);
    } else if (verb == "exit") {
      int code = 0;
      words >> code;
      _exit(code);
    } else {
      say("error unknown command " + verb);
    }
  }

  void adopt() {
    std::string error;
    link_ = monitor::KeeperLink::adopt(loop_, keeperFd_, error);
    if (!link_) {
      say("error " + error);
      return;
    }
    link_->onReady([this](std::vector<monitor::KeeperLink::HeldFd> held,
                          std::vector<monitor::KeeperLink::Exit> exits) {
      std::sort(held.begin(), held.end(), [](auto& a, auto& b) { return a.owner < b.owner; });
      std::sort(exits.begin(), exits.end(), [](auto& a, auto& b) { return a.owner < b.owner; });
      std::string line = "ready held=";
      for (size_t i = 0; i < held.size(); ++i) {
        int waiting = 0;
        ioctl(held[i].fd, FIONREAD, &waiting);
        line += (i ? "," : "") + held[i].owner + ":" + std::to_string(held[i].tag) + ":" +
                std::to_string(waiting);
      }
      line += " exits=";
      for (size_t i = 0; i < exits.size(); ++i) {
        line += (i ? "," : "") + exits[i].owner + ":" + std::to_string(exits[i].pid) + ":" +
                std::to_string(exits[i].waitStatus);
      }
      say(line);
      for (const auto& h : held) {
        if (h.tag == 1) {
          readOutput(h.owner, h.fd);
        } else {
          ::close(h.fd);
        }
      }
    });
    link_->onExit([this](const monitor::KeeperLink::Exit& exit) {
      if (exit.owner.rfind("cycle", 0) == 0) {
        onCycleExit(exit);
        return;
      }
      say("exit " + exit.owner + " " + std::to_string(exit.pid) + " " +
          std::to_string(exit.waitStatus));
    });
    link_->onRefused([this](const monitor::KeeperLink::Refusal& refusal) {
      say(std::string("refused ") + monitor::recordTypeName(refusal.request) + " " +
          (refusal.owner.empty() ? "-" : refusal.owner) + " " + std::to_string(refusal.pid) + " " +
          std::to_string(static_cast<int>(refusal.reason)));
    });
    link_->onLost([this] { say("lost"); });
  }

  void spawnWithPipe(const std::string& owner, const ContainerSpec& spec) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      say("error pipe");
      return;
    }
    const pid_t pid = startContainer(spec, fds[1]);
    ::close(fds[1]);
    link_->hold(owner, 1, fds[0]);
    link_->track(owner, pid);
    readOutput(owner, fds[0]);
    say("spawned " + owner + " " + std::to_string(pid));
  }

  // What a daemon does with a container's stdout: reads it as it comes. Each read is appended
  // to DIR/OWNER.out at once, so that it survives this daemon's death.
  void readOutput(const std::string& owner, int fd) {
    auto stream = loop::PipeStream::adopt(loop_, fd);
    if (!stream) {
      say("error adopting the pipe of " + owner);
      return;
    }
    const std::string path = dir_ + "/" + owner + ".out";
    stream->startReading([path](std::string_view data) { appendTo(path, std::string(data)); },
                         [this, owner](int) { say("eof " + owner); });
    streams_.push_back(std::move(stream));
  }

  void sendRaw(const std::string& hex, bool withFd) {
    std::string bytes;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    const int nullFd = withFd ? ::open("/dev/null", O_RDONLY | O_CLOEXEC) : -1;
    iovec io{bytes.data(), bytes.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    if (nullFd >= 0) {
      message.msg_control = control;
      message.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&message);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &nullFd, sizeof nullFd);
    }
    if (::sendmsg(rawFd_, &message, MSG_NOSIGNAL) < 0) std::perror("raw sendmsg");
    if (nullFd >= 0) ::close(nullFd);
  }

  // One track/exit/ack cycle after another: the keeper's steady state under churn.
  void nextCycle() {
    if (cyclesLeft_ == 0) {
      say("cycled " + std::to_string(cyclesDone_));
      return;
    }
    ContainerSpec spec;
    spec.exitCode = cyclesDone_ % 200;
    const pid_t pid = startContainer(spec, -1);
    link_->track("cycle" + std::to_string(cyclesDone_), pid);
  }

  void onCycleExit(const monitor::KeeperLink::Exit& exit) {
    const std::string expected = "cycle" + std::to_string(cyclesDone_);
    if (exit.owner != expected || !WIFEXITED(exit.waitStatus) ||
        WEXITSTATUS(exit.waitStatus) != cyclesDone_ % 200) {
      say("error cycle " + exit.owner + " status " + std::to_string(exit.waitStatus));
    }
    link_->acknowledge(exit.owner, exit.pid);
    ++cyclesDone_;
    --cyclesLeft_;
    nextCycle();
  }

  loop::Loop loop_;
  std::string dir_;
  int keeperFd_;
  int rawFd_ = -1;
  loop::HandlePtr<loop::PipeStream> control_;
  std::vector<loop::HandlePtr<loop::Signal>> signals_;
  std::unique_ptr<monitor::KeeperLink> link_;
  std::vector<loop::HandlePtr<loop::PipeStream>> streams_;
  std::string input_;
  int cyclesLeft_ = 0;
  int cyclesDone_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string control, dir;
  int onStartExit = -1;
  int liveMs = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--control") control = argv[i + 1];
    if (flag == "--dir") dir = argv[i + 1];
    if (flag == "--on-start-exit") onStartExit = std::atoi(argv[i + 1]);
    if (flag == "--live-ms") liveMs = std::atoi(argv[i + 1]);
  }
  const int keeperFd = monitor::takeKeeperFd();
  appendTo(dir + "/starts",
           "start " + std::to_string(getpid()) + " " + std::to_string(monotonicMs()) + "\n");
  if (onStartExit >= 0) {
    if (liveMs > 0) usleep(static_cast<useconds_t>(liveMs) * 1000);
    return onStartExit;
  }
  TestDaemon daemon(dir, keeperFd);
  return daemon.run(control);
}
