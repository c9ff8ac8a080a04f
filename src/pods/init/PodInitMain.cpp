// monocri-pod-init: the pod's namespaces without a pause image.
//
//   monocri-pod-init pin DIR [--net] [--ipc] [--uts] [--hostname NAME] [--sysctl KEY=VALUE]...
//     Enters new net/ipc/uts namespaces, sets them up (hostname, loopback up, namespaced
//     sysctls) and pins each one with a bind mount of /proc/self/ns/<ns> onto DIR/<ns>, then
//     exits: the mounts keep the namespaces alive (as CRI-O's pinns does).
//
//   monocri-pod-init pidns PIDFILE
//     Enters a new pid namespace and forks its init, which holds the namespace for the pod's
//     containers: it reaps what re-parents to it and exits on SIGTERM or SIGINT (SIGKILL from
//     outside ends it and, with it, every process of the namespace). Writes the init's pid
//     (as the caller sees it) to PIDFILE and exits, so the init re-parents to the subreaper.
//
// Errors go to stderr, one line, exit status 1; whatever was made before the error is undone.
// Plain syscalls only: this runs once per pod and must stay small.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "monocri-pod-init: %s: %s\n", what.c_str(), std::strerror(errno));
  return 1;
}

int usage() {
  std::fprintf(stderr,
               "usage: monocri-pod-init pin DIR [--net] [--ipc] [--uts] [--hostname NAME] "
               "[--sysctl KEY=VALUE]...\n"
               "       monocri-pod-init pidns PIDFILE\n");
  return 2;
}

bool writeAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// The namespaces' mounts made so far, undone if a later step fails.
struct Pins {
  std::vector<std::string> made;
  ~Pins() {
    for (const auto& path : made) {
      umount2(path.c_str(), MNT_DETACH);
      unlink(path.c_str());
    }
  }
};

int bringLoopbackUp() {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return fail("socket for the loopback interface");
  ifreq request{};
  std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  int rc = ioctl(sock, SIOCGIFFLAGS, &request);
  if (rc == 0) {
    request.ifr_flags |= IFF_UP | IFF_RUNNING;
    rc = ioctl(sock, SIOCSIFFLAGS, &request);
  }
  const int saved = errno;
  close(sock);
  errno = saved;
  return rc == 0 ? 0 : fail("bring the loopback interface up");
}

// Sysctls of the namespaces just entered: /proc/sys/net and kernel.shm*/msg*/sem resolve to the
// writer's own namespaces. The daemon has checked that each one is namespaced.
int setSysctl(const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    errno = EINVAL;
    return fail("sysctl '" + assignment + "' is not KEY=VALUE");
  }
  std::string key = assignment.substr(0, eq);
  if (key.find("..") != std::string::npos || key.find('/') != std::string::npos) {
    errno = EINVAL;
    return fail("sysctl key '" + key + "'");
  }
  for (char& c : key)
    if (c == '.') c = '/';
  const std::string path = "/proc/sys/" + key;
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail("open " + path);
  const bool ok = writeAll(fd, assignment.substr(eq + 1));
  const int saved = errno;
  close(fd);
  errno = saved;
  return ok ? 0 : fail("write " + path);
}

int pin(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string dir = argv[2];
  bool net = false, ipc = false, uts = false;
  std::string hostname;
  std::vector<std::string> sysctls;
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--net") {
      net = true;
    } else if (arg == "--ipc") {
      ipc = true;
    } else if (arg == "--uts") {
      uts = true;
    } else if (arg == "--hostname" && i + 1 < argc) {
      hostname = argv[++i];
    } else if (arg == "--sysctl" && i + 1 < argc) {
      sysctls.emplace_back(argv[++i]);
    } else {
      return usage();
    }
  }
  const int flags = (net ? CLONE_NEWNET : 0) | (ipc ? CLONE_NEWIPC : 0) | (uts ? CLONE_NEWUTS : 0);
  if (flags != 0 && unshare(flags) != 0) return fail("unshare the pod's namespaces");
  if (uts && !hostname.empty() && sethostname(hostname.data(), hostname.size()) != 0) {
    return fail("set the hostname '" + hostname + "'");
  }
  if (net && bringLoopbackUp() != 0) return 1;
  for (const auto& sysctl : sysctls)
    if (setSysctl(sysctl) != 0) return 1;

  Pins pins;
  for (const auto& [wanted, name] : {std::pair{net, "net"}, {ipc, "ipc"}, {uts, "uts"}}) {
    if (!wanted) continue;
    const std::string target = dir + "/" + name;
    int fd = open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    if (fd < 0) return fail("create " + target);
    close(fd);
    const std::string source = std::string("/proc/self/ns/") + name;
    if (mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      const int saved = errno;
      unlink(target.c_str());
      errno = saved;
      return fail("bind " + source + " onto " + target);
    }
    pins.made.push_back(target);
  }
  pins.made.clear();  // all pinned: keep them
  return 0;
}

[[noreturn]] void runInit() {
  // pid 1 of the namespace: nothing else to do than reap and wait for the end.
  prctl(PR_SET_NAME, "monocri-pod-init", 0, 0, 0);
  setsid();
  if (chdir("/") != 0) _exit(1);
  for (int fd = 0; fd < 3; ++fd) {
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0 && null != fd) {
      dup2(null, fd);
      close(null);
    }
  }
  close_range(3, ~0U, 0);
  sigset_t set;
  sigfillset(&set);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  while (true) {
    siginfo_t info;
    const int signal = sigwaitinfo(&set, &info);
    if (signal == SIGTERM || signal == SIGINT) _exit(0);
    if (signal == SIGCHLD) {
      while (waitpid(-1, nullptr, WNOHANG) > 0) {
      }
    }
  }
}

int pidns(int argc, char** argv) {
  if (argc != 3) return usage();
  const std::string pidFile = argv[2];
  if (unshare(CLONE_NEWPID) != 0) return fail("unshare a pid namespace");
  const pid_t child = fork();
  if (child < 0) return fail("fork the pid namespace's init");
  if (child == 0) runInit();
  int fd = open(pidFile.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || !writeAll(fd, std::to_string(child)) || fsync(fd) != 0) {
    const int saved = errno;
    kill(child, SIGKILL);
    errno = saved;
    return fail("write " + pidFile);
  }
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string mode = argv[1];
  if (mode == "pin") return pin(argc, argv);
  if (mode == "pidns") return pidns(argc, argv);
  return usage();
}
