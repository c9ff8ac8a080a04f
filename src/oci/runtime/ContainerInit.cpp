#include "oci/runtime/ContainerInit.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include <linux/close_range.h>

#include <cstdlib>

#include "oci/runtime/ContainerState.h"
#include "oci/runtime/Hooks.h"
#include "oci/runtime/RootfsSetup.h"
#include "oci/runtime/RuntimeError.h"
#include "oci/runtime/RuntimeLog.h"
#include "oci/runtime/SyncChannel.h"

#include "state/UniqueFd.h"

namespace monocri::runtime {

using state::UniqueFd;

namespace {

using nlohmann::json;

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

void joinNamespaces(const std::vector<NamespaceJoin>& joins) {
  for (const auto& join : joins)
    if (setns(join.fd, join.type) < 0)
      throwErrno(fmt::format("joining the {} namespace", join.name));
}

void sendFd(int socketFd, int fd, const std::string& name) {
  char control[CMSG_SPACE(sizeof(int))] = {};
  iovec data{const_cast<char*>(name.data()), name.size()};
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(header), &fd, sizeof(int));
  while (sendmsg(socketFd, &message, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) throwErrno("sending the pty master to the console socket");
  }
}

// A pty from this mount namespace's /dev/ptmx: the master to the console socket, the peer as
// the controlling terminal and stdio.
void setUpConsole(const ProcessLaunch& launch) {
  UniqueFd master(open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master) throwErrno("opening /dev/ptmx in the container");
  if (unlockpt(master.get()) < 0) throwErrno("unlockpt");
  UniqueFd peer(ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY));
  if (!peer) throwErrno("opening the pty's peer");
  char name[64] = {};
  if (ptsname_r(master.get(), name, sizeof name) != 0) throwErrno("ptsname");
  const json& process = *launch.process;
  if (process.contains("consoleSize") && process["consoleSize"].is_object()) {
    winsize size{};
    size.ws_row = process["consoleSize"].value("height", 0);
    size.ws_col = process["consoleSize"].value("width", 0);
    if (ioctl(peer.get(), TIOCSWINSZ, &size) < 0) throwErrno("setting the console size");
  }
  if (launch.bindConsole) {
    // By fds on both sides: no symlink in the container's /dev can redirect the bind.
    int created = open("/dev/console", O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (created >= 0) close(created);
    UniqueFd console(open("/dev/console", O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!console) throwErrno("opening /dev/console");
    std::string source = fmt::format("/proc/self/fd/{}", peer.get());
    std::string target = fmt::format("/proc/self/fd/{}", console.get());
    if (mount(source.c_str(), target.c_str(), "", MS_BIND, nullptr) < 0)
      throwErrno(fmt::format("binding {} on /dev/console", name));
  }
  sendFd(launch.consoleSocketFd, master.get(), name);
  close(launch.consoleSocketFd);
  if (setsid() < 0) throwErrno("setsid");
  if (ioctl(peer.get(), TIOCSCTTY, 0) < 0) throwErrno("making the pty the controlling terminal");
  for (int fd = 0; fd <= 2; ++fd)
    if (dup2(peer.get(), fd) < 0) throwErrno("dup2 of the pty");
}

std::vector<std::string> stringArray(const json& object, const char* key, const char* where) {
  std::vector<std::string> values;
  if (!object.contains(key) || object[key].is_null()) return values;
  if (!object[key].is_array()) fail("{}.{}: not an array", where, key);
  for (const auto& item : object[key]) {
    if (!item.is_string()) fail("{}.{}: {} is not a string", where, key, item.dump());
    values.push_back(item.get<std::string>());
  }
  return values;
}

// args[0] as execvpe would find it, with the container's PATH (runc's message when it cannot).
std::string findExecutable(const std::string& name, const std::vector<std::string>& env) {
  if (name.find('/') != std::string::npos) {
    struct stat st {};
    if (stat(name.c_str(), &st) < 0) throwErrno(fmt::format("exec: {:?}: stat {}", name, name));
    return name;
  }
  std::string path = kDefaultPath;
  for (const auto& variable : env)
    if (variable.rfind("PATH=", 0) == 0) path = variable.substr(5);
  size_t start = 0;
  while (start <= path.size()) {
    size_t colon = path.find(':', start);
    if (colon == std::string::npos) colon = path.size();
    std::string dir = path.substr(start, colon - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) {
      return candidate;
    }
    start = colon + 1;
  }
  fail("exec: {:?}: executable file not found in $PATH", name);
}

// The process's stdio becomes its user's, as runc does, so that a non-root process can reopen
// /dev/stdout (nginx-style images). /dev/null and what we may not change stay as they are.
void giveStdioTo(uid_t uid, gid_t gid) {
  for (int fd = 0; fd <= 2; ++fd) {
    struct stat st {};
    if (fstat(fd, &st) < 0 || st.st_uid == uid) continue;
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) continue;
    if (fchown(fd, uid, gid) < 0 && errno != EPERM && errno != EROFS && errno != EINVAL)
      throwErrno(fmt::format("chown of fd {} to the process's user", fd));
  }
}

struct PreparedExec {
  std::string path;
  std::vector<std::string> args, env;
};

// Everything up to execve that can fail, in runc's order. Returns what to exec.
PreparedExec prepareProcess(const ProcessLaunch& launch) {
  const json& process = *launch.process;
  if (!process.is_object()) fail("process: missing or not an object");
  if (process.value("terminal", false)) {
    if (launch.consoleSocketFd < 0)
      fail("process.terminal is set but no --console-socket was given");
    setUpConsole(launch);
  }
  if (!process.value("apparmorProfile", std::string()).empty())
    fail("process.apparmorProfile: AppArmor is not supported by monocri-runtime on this host");
  if (!process.value("selinuxLabel", std::string()).empty())
    fail("process.selinuxLabel: SELinux is not supported by monocri-runtime on this host");

  PreparedExec prepared;
  prepared.args = stringArray(process, "args", "process");
  if (prepared.args.empty()) fail("process.args must not be empty");
  prepared.env = stringArray(process, "env", "process");
  std::string cwd = process.value("cwd", "/");
  if (cwd.empty() || cwd.front() != '/') fail("process.cwd {:?} must be an absolute path", cwd);
  // The pivot made the rootfs "/": no cwd, symlinks and ".." included, resolves outside it.
  if (chdir(cwd.c_str()) < 0) throwErrno(fmt::format("process.cwd: chdir to {}", cwd));

  // Without no_new_privs the filter must go in while CAP_SYS_ADMIN is still held.
  if (launch.seccomp && !launch.security->noNewPrivileges()) launch.seccomp->load();
  giveStdioTo(launch.security->uid(), launch.security->gid());
  launch.security->applyRlimits();
  launch.security->applyBoundingSet();
  launch.security->switchUser();
  launch.security->applyCapabilities();
  launch.security->applyNoNewPrivileges();
  prepared.path = findExecutable(prepared.args[0], prepared.env);
  // Nothing of the runtime's stays open in the container beyond the preserved fds.
  if (syscall(SYS_close_range, 3 + launch.preserveFds, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
    throwErrno("close_range");
  return prepared;
}

[[noreturn]] void execPrepared(const ProcessLaunch& launch, const PreparedExec& prepared) {
  if (launch.seccomp && launch.security->noNewPrivileges()) launch.seccomp->load();
  std::vector<char*> argv, envp;
  for (const auto& arg : prepared.args)
    argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  for (const auto& variable : prepared.env)
    envp.push_back(const_cast<char*>(variable.c_str()));
  envp.push_back(nullptr);
  execve(prepared.path.c_str(), argv.data(), envp.data());
  throwErrno(fmt::format("exec {}", prepared.path));
}

void setHostname(const json& spec, bool ownUts) {
  std::string hostname = spec.value("hostname", "");
  std::string domainname = spec.value("domainname", "");
  if ((!hostname.empty() || !domainname.empty()) && !ownUts)
    fail(
        "hostname/domainname need a UTS namespace of the container (linux.namespaces has no "
        "\"uts\")");
  if (!hostname.empty() && sethostname(hostname.data(), hostname.size()) < 0)
    throwErrno(fmt::format("sethostname {:?}", hostname));
  if (!domainname.empty() && setdomainname(domainname.data(), domainname.size()) < 0)
    throwErrno(fmt::format("setdomainname {:?}", domainname));
}

// Blocks until `start` opens exec.fifo, then tells it so. The fifo is held as an O_PATH fd, not
// through its host directory, which a process of the container must never reach.
void waitForStart(int execFifoFd) {
  UniqueFd fifo;
  std::string path = fmt::format("/proc/self/fd/{}", execFifoFd);
  for (;;) {
    fifo.reset(open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (fifo || errno != EINTR) break;
  }
  if (!fifo) throwErrno("opening exec.fifo through /proc/self/fd");
  if (write(fifo.get(), "0", 1) != 1) throwErrno("writing exec.fifo");
  close(execFifoFd);
  // Open until execve closes it: `start` returns once the process runs (after the
  // startContainer hooks), so poststart hooks come after it, as the spec orders them.
  (void)fifo.release();
}

}  // namespace

void writeIdMappings(pid_t pid, const json& linux) {
  for (const char* kind : {"uid", "gid"}) {
    std::string key = std::string(kind) + "Mappings";
    if (!linux.contains(key)) continue;
    if (!linux[key].is_array()) fail("linux.{}: not an array", key);
    std::string text;
    for (const auto& mapping : linux[key]) {
      if (!mapping.is_object()) fail("linux.{}: {} is not an object", key, mapping.dump());
      text += fmt::format("{} {} {}\n", mapping.value("containerID", 0u),
                          mapping.value("hostID", 0u), mapping.value("size", 0u));
    }
    std::string path = fmt::format("/proc/{}/{}_map", pid, kind);
    UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd || write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      throwErrno(fmt::format("writing linux.{} to {}", key, path));
  }
}

void runContainerInit(const InitConfig& config) {
  // Not dumpable until execve: a process of the container (an exec, a pod sharing the pid
  // namespace) must not reach our fds or memory through /proc/<pid>, whatever its uid and caps.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  try {
    const json& spec = *config.spec;
    // The runtime writes our maps and moves us into the cgroup first.
    SyncMessage message;
    if (!receiveSync(config.syncFd, message) || message.type != SyncType::kGo) _exit(1);
    if (config.newUserNamespace) {
      if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
        throwErrno("becoming root in the new user namespace");
    }
    joinNamespaces(config.joins);
    setHostname(spec, config.ownUtsNamespace);
    umask(0);
    if (config.newMountNamespace) {
      RootfsOptions options{config.rootfs, config.noPivot, config.inUserNamespace,
                            config.cgroupDirectories};
      prepareRootfs(spec, options, [&] {
        if (!config.hooksRoundTrip) return;
        sendSync(config.syncFd, SyncType::kMounted);
        SyncMessage reply;
        if (!receiveSync(config.syncFd, reply) || reply.type != SyncType::kHooksDone) _exit(1);
        if (!spec.contains("hooks")) return;
        // As runc: the pid as the container sees itself.
        json state = json::parse(reply.payload);
        state["pid"] = getpid();
        runHooks(spec["hooks"], "createContainer", state.dump());
      });
      finishRootfs(spec);
    } else {
      if (chroot(config.rootfs.c_str()) < 0) throwErrno(fmt::format("chroot {}", config.rootfs));
      applySysctls(spec);
    }
    // Last, as runc: the container's processes see their own cgroup as "/".
    if (config.newCgroupNamespace && unshare(CLONE_NEWCGROUP) < 0)
      throwErrno("unshare of the cgroup namespace");
    umask(022);
    PreparedExec prepared = prepareProcess(config.launch);
    sendSync(config.syncFd, SyncType::kReady);
    close(config.syncFd);
    waitForStart(config.execFifoFd);
    if (spec.contains("hooks")) {
      json state{{"ociVersion", spec.value("ociVersion", "1.0.2")},
                 {"id", config.id},
                 {"status", "created"},
                 {"pid", getpid()},
                 {"bundle", config.bundle}};
      runHooks(spec["hooks"], "startContainer", state.dump());
    }
    execPrepared(config.launch, prepared);
  } catch (const std::exception& e) {
    // Before kReady the runtime reports it; after, only the log is left to say it.
    try {
      sendSync(config.syncFd, SyncType::kError, e.what());
    } catch (const std::exception&) {
      RuntimeLog::error(e.what());
    }
    _exit(1);
  }
}

void runStagedInit(const InitConfig& config, const std::vector<NamespaceJoin>& joins,
                   int unshareFlags) {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  try {
    joinNamespaces(joins);
    int flags = unshareFlags & ~(CLONE_NEWPID | CLONE_NEWCGROUP | CLONE_NEWTIME);
    if (flags && unshare(flags) < 0) throwErrno("unshare of the container's namespaces");
    if (unshareFlags & CLONE_NEWUSER) {
      sendSync(config.syncFd, SyncType::kIdMaps);
      SyncMessage reply;
      if (!receiveSync(config.syncFd, reply) || reply.type != SyncType::kIdMapsDone) _exit(1);
    }
    if (unshareFlags & CLONE_NEWPID) {
      if (unshare(CLONE_NEWPID) < 0) throwErrno("unshare of the pid namespace");
      pid_t init = fork();
      if (init < 0) throwErrno("fork of the container's init");
      if (init > 0) {
        sendSync(config.syncFd, SyncType::kInitPid, std::to_string(init));
        _exit(0);
      }
    } else {
      sendSync(config.syncFd, SyncType::kInitPid, std::to_string(getpid()));
    }
  } catch (const std::exception& e) {
    try {
      sendSync(config.syncFd, SyncType::kError, e.what());
    } catch (const std::exception&) {
    }
    _exit(1);
  }
  runContainerInit(config);
}

void runExecProcess(const ExecConfig& config) {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // as the init's
  try {
    SyncMessage message;
    if (!receiveSync(config.syncFd, message) || message.type != SyncType::kGo) _exit(1);
    joinNamespaces(config.joins);
    umask(022);
    PreparedExec prepared = prepareProcess(config.launch);
    execPrepared(config.launch, prepared);
  } catch (const std::exception& e) {
    try {
      sendSync(config.syncFd, SyncType::kError, e.what());
    } catch (const std::exception&) {
    }
    _exit(1);
  }
}

}  // namespace monocri::runtime
