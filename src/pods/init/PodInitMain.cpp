// monocri-pod-init: the init of a pod that shares one pid namespace, without a pause image.
//
//   monocri-pod-init pidns PIDFILE
//     Enters a new pid namespace and forks its init, which holds the namespace for the pod's
//     containers: it reaps what re-parents to it and exits on SIGTERM or SIGINT (SIGKILL from
//     outside ends it and, with it, every process of the namespace). Writes the init's pid
//     (as the caller sees it) to PIDFILE and exits, so the init re-parents to the subreaper.
//
// The pod's net, ipc and uts namespaces are made by the daemon (PodNamespaces), not here: they
// need no process to hold them. Errors go to stderr, one line, exit status 1.
// Plain syscalls only: this runs once per pod and must stay small.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "monocri-pod-init: %s: %s\n", what.c_str(), std::strerror(errno));
  return 1;
}

int usage() {
  std::fprintf(stderr, "usage: monocri-pod-init pidns PIDFILE\n");
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
  if (mode == "pidns") return pidns(argc, argv);
  return usage();
}
