#include "oci/runtime/ContainerCommands.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/nsfs.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "oci/runtime/ContainerCgroup.h"
#include "oci/runtime/ContainerInit.h"
#include "oci/runtime/ContainerState.h"
#include "oci/runtime/Hooks.h"
#include "oci/runtime/ProcessExit.h"
#include "oci/runtime/ProcessSecurity.h"
#include "oci/runtime/RuntimeError.h"
#include "oci/runtime/RuntimeLog.h"
#include "oci/runtime/SeccompFilter.h"
#include "oci/runtime/SyncChannel.h"

#include "state/UniqueFd.h"

namespace monocri::runtime {

using state::UniqueFd;

namespace {

using nlohmann::json;

// ---- small file helpers ----

json parseJsonFile(const std::string& path) {
  std::string text = readWholeFile(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

// The pid file, written whole or not at all, as runc does (no newline).
void writePidFile(const std::string& path, pid_t pid) {
  if (path.empty()) return;
  std::string temp = path + ".tmp";
  UniqueFd fd(open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throwErrno(fmt::format("creating the pid file {}", temp));
  std::string text = std::to_string(pid);
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    throwErrno(fmt::format("writing the pid file {}", temp));
  fd.reset();
  if (rename(temp.c_str(), path.c_str()) < 0)
    throwErrno(fmt::format("renaming {} to {}", temp, path));
}

void removeStateDir(const std::string& dir) {
  DIR* entries = opendir(dir.c_str());
  if (!entries) return;
  while (dirent* entry = readdir(entries)) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
    unlinkat(dirfd(entries), entry->d_name, 0);
  }
  closedir(entries);
  rmdir(dir.c_str());
}

void mkdirs(const std::string& path, mode_t mode) {
  std::string prefix;
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    prefix = path.substr(0, slash);
    if (!prefix.empty() && mkdir(prefix.c_str(), mode) < 0 && errno != EEXIST)
      throwErrno(fmt::format("creating {}", prefix));
    start = slash + 1;
  }
}

std::string absolutePath(const std::string& path) {
  char resolved[PATH_MAX];
  if (!realpath(path.c_str(), resolved)) throwErrno(fmt::format("resolving {}", path));
  return resolved;
}

// ---- namespaces ----

struct NamespaceKind {
  const char* specName;  // in linux.namespaces[].type
  const char* procName;  // under /proc/<pid>/ns/
  int flag;
};

constexpr NamespaceKind kNamespaces[] = {
    {"user", "user", CLONE_NEWUSER},       {"pid", "pid", CLONE_NEWPID},
    {"network", "net", CLONE_NEWNET},      {"ipc", "ipc", CLONE_NEWIPC},
    {"uts", "uts", CLONE_NEWUTS},          {"mount", "mnt", CLONE_NEWNS},
    {"cgroup", "cgroup", CLONE_NEWCGROUP}, {"time", "time", CLONE_NEWTIME},
};

const NamespaceKind* namespaceKind(const std::string& specName) {
  for (const auto& kind : kNamespaces)
    if (specName == kind.specName) return &kind;
  return nullptr;
}

struct NamespacePlan {
  int newFlags = 0;
  std::vector<UniqueFd> fds;  // keeps the joined namespace files open
  std::vector<NamespaceJoin> childJoins;
  std::optional<int> pidJoin, timeJoin, userJoin;
  bool hasUts = false;  // listed, new or joined
};

NamespacePlan planNamespaces(const json& linux) {
  NamespacePlan plan;
  if (!linux.contains("namespaces")) return plan;
  if (!linux["namespaces"].is_array()) fail("linux.namespaces: not an array");
  int seen = 0;
  size_t index = 0;
  std::vector<NamespaceJoin> joins;
  for (const auto& entry : linux["namespaces"]) {
    std::string where = fmt::format("linux.namespaces[{}]", index++);
    if (!entry.is_object()) fail("{}: not an object", where);
    std::string type = entry.value("type", "");
    const NamespaceKind* kind = namespaceKind(type);
    if (!kind) fail("{}.type {:?} is not a namespace type", where, type);
    if (seen & kind->flag) fail("{}: the {} namespace is listed twice", where, type);
    seen |= kind->flag;
    if (kind->flag == CLONE_NEWUTS) plan.hasUts = true;
    std::string path = entry.value("path", "");
    if (path.empty()) {
      plan.newFlags |= kind->flag;
      continue;
    }
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throwErrno(fmt::format("{}: opening {}", where, path));
    int actual = ioctl(fd.get(), NS_GET_NSTYPE);
    if (actual < 0 || actual != kind->flag) fail("{}: {} is not a {} namespace", where, path, type);
    int raw = fd.get();
    plan.fds.push_back(std::move(fd));
    if (kind->flag == CLONE_NEWPID) {
      plan.pidJoin = raw;
    } else if (kind->flag == CLONE_NEWTIME) {
      plan.timeJoin = raw;
    } else if (kind->flag == CLONE_NEWUSER) {
      plan.userJoin = raw;
    } else {
      joins.push_back({raw, kind->flag, type});
    }
  }
  if (plan.userJoin) plan.childJoins.push_back({*plan.userJoin, CLONE_NEWUSER, "user"});
  // The mount namespace last: joining it changes the root the others' paths were opened from.
  for (auto& join : joins)
    if (join.type != CLONE_NEWNS) plan.childJoins.push_back(join);
  for (auto& join : joins)
    if (join.type == CLONE_NEWNS) plan.childJoins.push_back(join);
  return plan;
}

void setOomScoreAdj(pid_t pid, const json& process) {
  if (!process.contains("oomScoreAdj")) return;
  int value = process["oomScoreAdj"].get<int>();
  std::string path = fmt::format("/proc/{}/oom_score_adj", pid);
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  std::string text = std::to_string(value);
  if (!fd || write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    throwErrno(fmt::format("process.oomScoreAdj: writing {} to {}", value, path));
}

UniqueFd connectConsoleSocket(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path)
    fail("--console-socket {} is longer than a unix socket path may be", path);
  memcpy(address.sun_path, path.c_str(), path.size());
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throwErrno("socket for the console socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0)
    throwErrno(fmt::format("connecting to the console socket {}", path));
  return fd;
}

pid_t cloneProcess(int flags) {
  // Like fork (a copy of this single-threaded process) but into the new namespaces at once.
  return static_cast<pid_t>(syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, 0));
}

// The devices every container may use whatever its spec's list says, appended after it as runc
// does: mknod of any device (the init creates /dev), the standard character devices, ptys, tun.
json withDefaultDevices(const json& resources) {
  json result = resources.is_object() ? resources : json::object();
  json& devices = result["devices"];
  if (!devices.is_array()) devices = json::array();
  auto rule = [](const char* type, std::optional<int> major, std::optional<int> minor,
                 const char* access) {
    json entry{{"allow", true}, {"type", type}, {"access", access}};
    if (major) entry["major"] = *major;
    if (minor) entry["minor"] = *minor;
    return entry;
  };
  devices.push_back(rule("c", std::nullopt, std::nullopt, "m"));
  devices.push_back(rule("b", std::nullopt, std::nullopt, "m"));
  for (auto [major, minor] :
       {std::pair{1, 3}, {1, 8}, {1, 7}, {5, 0}, {1, 5}, {1, 9}, {5, 2}, {10, 200}})
    devices.push_back(rule("c", major, minor, "rwm"));
  devices.push_back(rule("c", 136, std::nullopt, "rwm"));
  return result;
}

bool hasHooks(const json& spec, std::initializer_list<const char*> stages) {
  if (!spec.contains("hooks") || !spec["hooks"].is_object()) return false;
  for (const char* stage : stages)
    if (spec["hooks"].contains(stage) && !spec["hooks"][stage].empty()) return true;
  return false;
}

// A container being created: undone unless committed.
struct CreateTransaction {
  std::string stateDir;
  std::optional<ContainerCgroup> cgroup;
  pid_t child = 0;  // < 0: -pid of an init that is not our child
  bool committed = false;

  ~CreateTransaction() {
    if (committed) return;
    if (child > 0) {
      kill(child, SIGKILL);
      int status;
      while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
    } else if (child < 0) {  // an init that is not our child (a staged create's)
      kill(-child, SIGKILL);
      waitForExit(-child, 5'000);
    }
    if (cgroup) {
      try {
        cgroup->remove();
      } catch (const std::exception& e) {
        RuntimeLog::warning(e.what());
      }
    }
    if (!stateDir.empty()) removeStateDir(stateDir);
  }
};

// The body of create; `keepChild` leaves the init our child (run waits for it).
pid_t createInternal(const GlobalOptions& global, const CreateOptions& options) {
  if (!isValidContainerId(options.id)) fail("invalid container id {:?}", options.id);
  std::string bundle = absolutePath(options.bundle);
  json spec = parseJsonFile(bundle + "/config.json");
  if (!spec.is_object()) fail("{}/config.json: not a JSON object", bundle);
  std::string version = spec.value("ociVersion", "");
  if (version.rfind("1.", 0) != 0)
    fail("config.json: ociVersion {:?} is not 1.x, which monocri-runtime implements", version);
  const json& process = spec.contains("process") ? spec["process"] : json();
  if (!process.is_object()) fail("config.json: process is missing");
  const json& linux = spec.contains("linux") ? spec["linux"] : json::object();
  if (!spec.contains("root") || !spec["root"].contains("path"))
    fail("config.json: root.path is missing");
  // Relative paths in the spec (root.path, mount sources) are the bundle's, as runc reads them.
  if (chdir(bundle.c_str()) < 0) throwErrno(fmt::format("chdir to the bundle {}", bundle));
  std::string rootfs = absolutePath(spec["root"]["path"].get<std::string>());
  bool terminal = process.value("terminal", false);
  if (terminal && options.consoleSocket.empty())
    fail("cannot allocate tty if runc will detach without setting console socket");
  if (!terminal && !options.consoleSocket.empty())
    fail("cannot use console socket if runc will not detach or allocate tty");

  // Everything that reads the spec is checked before anything is created.
  ProcessSecurity security = ProcessSecurity::fromSpec(process);
  std::optional<SeccompFilter> seccomp;
  if (linux.contains("seccomp") && !linux["seccomp"].is_null())
    seccomp.emplace(SeccompFilter::compile(linux["seccomp"]));
  NamespacePlan namespaces = planNamespaces(linux);
  if (!(namespaces.newFlags & CLONE_NEWNS)) {
    for (const char* key : {"maskedPaths", "readonlyPaths"})
      if (linux.contains(key) && !linux[key].empty())
        fail("linux.{} needs a mount namespace of the container's own (linux.namespaces)", key);
    if (spec.contains("mounts") && !spec["mounts"].empty())
      fail("mounts need a mount namespace of the container's own (linux.namespaces)");
    if (hasHooks(spec, {"prestart", "createRuntime", "createContainer"}))
      fail(
          "prestart, createRuntime and createContainer hooks need a mount namespace of the "
          "container's own (linux.namespaces)");
  }

  CreateTransaction transaction;
  mkdirs(global.root, 0700);
  std::string stateDir = global.root + "/" + options.id;
  if (mkdir(stateDir.c_str(), 0711) < 0) {
    if (errno == EEXIST) fail("container with id exists: {}", options.id);
    throwErrno(fmt::format("creating the state directory {}", stateDir));
  }
  transaction.stateDir = stateDir;
  std::string fifo = stateDir + "/" + kExecFifo;
  if (mkfifo(fifo.c_str(), 0622) < 0) throwErrno(fmt::format("creating {}", fifo));
  if (chmod(fifo.c_str(), 0622) < 0) throwErrno(fmt::format("chmod {}", fifo));
  UniqueFd execFifoFd(open(fifo.c_str(), O_PATH | O_CLOEXEC));
  if (!execFifoFd) throwErrno(fmt::format("opening {}", fifo));

  ContainerCgroup cgroup =
      ContainerCgroup::forSpec(linux.value("cgroupsPath", std::string()), options.id);
  transaction.cgroup = cgroup;
  cgroup.create();
  cgroup.apply(withDefaultDevices(linux.contains("resources") ? linux["resources"] : json()));

  UniqueFd consoleSocket;
  if (terminal) consoleSocket = connectConsoleSocket(options.consoleSocket);

  // pid and time namespaces apply to the children of the caller: joined or made here.
  if (namespaces.pidJoin && setns(*namespaces.pidJoin, CLONE_NEWPID) < 0)
    throwErrno("joining the pid namespace");
  if (namespaces.timeJoin && setns(*namespaces.timeJoin, CLONE_NEWTIME) < 0)
    throwErrno("joining the time namespace");
  if (namespaces.newFlags & CLONE_NEWTIME) {
    if (unshare(CLONE_NEWTIME) < 0) throwErrno("unshare of a time namespace");
    if (linux.contains("timeOffsets") && linux["timeOffsets"].is_object()) {
      std::string offsets;
      for (const auto& [clock, offset] : linux["timeOffsets"].items())
        offsets += fmt::format("{} {} {}\n", clock, offset.value("secs", 0LL),
                               offset.value("nanosecs", 0LL));
      UniqueFd fd(open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC));
      if (!fd || write(fd.get(), offsets.data(), offsets.size()) < 0)
        throwErrno("writing linux.timeOffsets");
    }
  }

  int sockets[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) < 0) throwErrno("socketpair");
  UniqueFd parentEnd(sockets[0]), childEnd(sockets[1]);

  InitConfig init;
  init.spec = &spec;
  init.id = options.id;
  init.bundle = bundle;
  init.rootfs = rootfs;
  init.noPivot = options.noPivot;
  init.newMountNamespace = namespaces.newFlags & CLONE_NEWNS;
  init.newUserNamespace = namespaces.newFlags & CLONE_NEWUSER;
  init.inUserNamespace = init.newUserNamespace || namespaces.userJoin;
  init.ownUtsNamespace = namespaces.hasUts;
  init.newCgroupNamespace = namespaces.newFlags & CLONE_NEWCGROUP;
  init.hooksRoundTrip = hasHooks(spec, {"prestart", "createRuntime", "createContainer"});
  init.syncFd = childEnd.get();
  init.execFifoFd = execFifoFd.get();
  init.joins = namespaces.childJoins;
  init.cgroupDirectories = cgroup.v1Directories();
  init.launch.process = &process;
  init.launch.security = &security;
  init.launch.seccomp = seccomp ? &*seccomp : nullptr;
  init.launch.consoleSocketFd = consoleSocket ? consoleSocket.get() : -1;
  init.launch.bindConsole = true;
  init.launch.preserveFds = options.preserveFds;

  // One clone makes every new namespace at once, unless a user namespace meets namespaces
  // joined by path: then a staged child joins and unshares in the order that works.
  bool staged = namespaces.userJoin || (init.newUserNamespace && !namespaces.childJoins.empty());
  std::vector<NamespaceJoin> stagedJoins;
  if (staged) {
    stagedJoins = std::move(init.joins);  // the user namespace first when it is joined
    init.joins.clear();
  }
  int cloneFlags = staged ? 0 : namespaces.newFlags & ~(CLONE_NEWCGROUP | CLONE_NEWTIME);
  pid_t pid = cloneProcess(cloneFlags);
  if (pid < 0) throwErrno("clone of the container's init");
  if (pid == 0) {
    parentEnd.reset();
    if (staged) runStagedInit(init, stagedJoins, namespaces.newFlags);
    runContainerInit(init);
  }
  transaction.child = pid;
  childEnd.reset();
  consoleSocket.reset();

  if (staged) {
    pid_t stage = pid;
    for (;;) {
      SyncMessage message;
      if (!receiveSync(parentEnd.get(), message))
        fail("the container's init exited while joining its namespaces");
      if (message.type == SyncType::kError) fail("{}", message.payload);
      if (message.type == SyncType::kIdMaps) {
        writeIdMappings(stage, linux);
        sendSync(parentEnd.get(), SyncType::kIdMapsDone);
        continue;
      }
      if (message.type != SyncType::kInitPid) fail("an unexpected message while joining");
      pid = static_cast<pid_t>(std::strtol(message.payload.c_str(), nullptr, 10));
      break;
    }
    if (pid != stage) {  // the stage forked the init into its new pid namespace and left
      int status;
      waitpid(stage, &status, 0);
      transaction.child = -pid;  // not our child: killed, not waited for
    }
  } else if (init.newUserNamespace) {
    writeIdMappings(pid, linux);
  }
  cgroup.join(pid);
  setOomScoreAdj(pid, process);
  sendSync(parentEnd.get(), SyncType::kGo);

  ContainerState state;
  state.id = options.id;
  state.dir = stateDir;
  state.pid = pid;
  state.bundle = bundle;
  state.rootfs = rootfs;
  state.created = nowRfc3339();
  state.cgroup = cgroup.toJson();
  if (init.hooksRoundTrip) state.spec = spec;  // the hooks' state carries its annotations
  for (;;) {
    SyncMessage message;
    if (!receiveSync(parentEnd.get(), message)) {
      if (transaction.child < 0) fail("the container's init exited before it was ready");
      int status = 0;
      waitpid(pid, &status, 0);
      transaction.child = 0;
      fail("the container's init exited before it was ready ({})", describeWaitStatus(status));
    }
    if (message.type == SyncType::kError) fail("{}", message.payload);
    if (message.type == SyncType::kMounted) {
      std::string stateJson = state.ociState("creating").dump();
      runHooks(spec["hooks"], "prestart", stateJson);
      runHooks(spec["hooks"], "createRuntime", stateJson);
      sendSync(parentEnd.get(), SyncType::kHooksDone, stateJson);
      continue;
    }
    if (message.type == SyncType::kReady) break;
    fail("an unexpected message from the container's init ({})",
         static_cast<uint32_t>(message.type));
  }
  state.pidStartTime = processStartTime(pid);
  state.spec = std::move(spec);
  state.save();
  writePidFile(options.pidFile, pid);
  transaction.committed = true;
  return pid;
}

bool hasPrivatePidNamespace(const json& spec) {
  if (!spec.contains("linux") || !spec["linux"].contains("namespaces")) return false;
  for (const auto& entry : spec["linux"]["namespaces"])
    if (entry.value("type", "") == "pid" && entry.value("path", "").empty()) return true;
  return false;
}

std::vector<pid_t> containerPids(const ContainerState& state) {
  if (state.cgroup.is_null()) return {state.pid};
  return ContainerCgroup::fromJson(state.cgroup).pids();
}

void runStateHooks(const ContainerState& state, const char* stage, const std::string& status,
                   bool warnOnly) {
  if (!state.spec.contains("hooks")) return;
  try {
    json hookState = state.ociState(status);
    if (status == "stopped") hookState.erase("pid");  // runc's poststop state has none
    runHooks(state.spec["hooks"], stage, hookState.dump());
  } catch (const RuntimeError& e) {
    if (!warnOnly) throw;
    RuntimeLog::warning(e.what());
  }
}

void destroy(ContainerState& state) {
  std::optional<ContainerCgroup> cgroup;
  if (!state.cgroup.is_null()) cgroup = ContainerCgroup::fromJson(state.cgroup);
  if (cgroup) {
    // Processes left in the cgroup (a stopped init's orphans) go with it.
    for (int attempt = 0; attempt < 100; ++attempt) {
      auto pids = cgroup->pids();
      if (pids.empty()) break;
      if (attempt == 0 && cgroup->frozen()) {
        for (pid_t pid : pids)
          kill(pid, SIGKILL);
        cgroup->setFrozen(false);
      }
      for (pid_t pid : pids)
        kill(pid, SIGKILL);
      usleep(10'000);
    }
  }
  // runc's order: a delete that fails to remove the cgroup is retried whole, and the poststop
  // hooks must not have run twice by then.
  if (cgroup) cgroup->remove();
  removeStateDir(state.dir);
  runStateHooks(state, "poststop", "stopped", true);
}

const char* const kSignalNames[] = {
    nullptr, "HUP",  "INT",  "QUIT", "ILL",    "TRAP",   "ABRT",  "BUS",  "FPE",  "KILL", "USR1",
    "SEGV",  "USR2", "PIPE", "ALRM", "TERM",   "STKFLT", "CHLD",  "CONT", "STOP", "TSTP", "TTIN",
    "TTOU",  "URG",  "XCPU", "XFSZ", "VTALRM", "PROF",   "WINCH", "IO",   "PWR",  "SYS",
};

}  // namespace

int parseSignal(const std::string& text) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
    int number = text.size() > 2 ? 0 : std::atoi(text.c_str());
    if (number < 1 || number > 64) fail("invalid signal {:?}", text);
    return number;
  }
  std::string name = text;
  for (auto& c : name)
    c = static_cast<char>(toupper(c));
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  for (int number = 1; number < static_cast<int>(std::size(kSignalNames)); ++number)
    if (name == kSignalNames[number]) return number;
  if (name.rfind("RTMIN", 0) == 0 || name.rfind("RTMAX", 0) == 0) {
    int offset = name.size() > 5 && name.size() < 9 ? std::atoi(name.c_str() + 5) : 0;
    int number = name.rfind("RTMIN", 0) == 0 ? SIGRTMIN + offset : SIGRTMAX + offset;
    if (number >= SIGRTMIN && number <= SIGRTMAX) return number;
  }
  fail("unknown signal {:?}", text);
}

void createContainer(const GlobalOptions& global, const CreateOptions& options) {
  createInternal(global, options);
}

void startContainer(const GlobalOptions& global, const std::string& id) {
  ContainerState state = ContainerState::load(global.root, id);
  std::string status = state.status();
  if (status == "stopped") fail("cannot start a container that has stopped");
  if (status != "created") fail("cannot start an already running container");
  // The pidfd before the fifo: opening the fifo releases the init, and a command that exits at
  // once may be gone (and reaped) before a pidfd_open after it.
  UniqueFd pidfd(pidfdOpen(state.pid));
  if (!pidfd) throwErrno(fmt::format("pidfd_open of the container's init {}", state.pid));
  if (state.status() != "created") fail("cannot start a container that has stopped");
  std::string fifoPath = state.dir + "/" + kExecFifo;
  UniqueFd fifo(open(fifoPath.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fifo) throwErrno(fmt::format("opening {}", fifoPath));
  // The init writes one byte once it sees us, then execs (closing its end) or fails and exits.
  bool sawByte = false;
  for (;;) {
    pollfd entries[2] = {{fifo.get(), POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
    int ready = poll(entries, sawByte ? 1 : 2, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) throwErrno("poll on exec.fifo");
    if (entries[0].revents) {
      char byte[16];
      ssize_t n = read(fifo.get(), byte, sizeof byte);
      if (n > 0) {
        sawByte = true;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (sawByte || n == 0) break;
    } else if (!sawByte && (entries[1].revents & POLLIN)) {
      fail("cannot start the container: its init exited before start (see the log)");
    }
  }
  unlink(fifoPath.c_str());
  if (!sawByte) fail("cannot start an already running container");
  runStateHooks(state, "poststart", "running", true);
}

int runContainer(const GlobalOptions& global, const CreateOptions& options, bool detach) {
  // Our child, or re-parented to us (a staged create's init): waited for below.
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  pid_t pid = createInternal(global, options);
  startContainer(global, options.id);
  if (detach) return 0;
  static pid_t forwardTo;
  forwardTo = pid;
  struct sigaction forward {};
  forward.sa_handler = [](int signal) { kill(forwardTo, signal); };
  for (int signal : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH})
    sigaction(signal, &forward, nullptr);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  deleteContainer(global, options.id, true);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

void printState(const GlobalOptions& global, const std::string& id) {
  ContainerState state = ContainerState::load(global.root, id);
  std::string text = state.ociState(state.status()).dump(2) + "\n";
  fwrite(text.data(), 1, text.size(), stdout);
}

void killContainer(const GlobalOptions& global, const std::string& id, const std::string& signal,
                   bool all) {
  int number = parseSignal(signal);
  ContainerState state = ContainerState::load(global.root, id);
  std::string status = state.status();
  if (status == "stopped" && !all) fail("container not running");
  // Without a pid namespace of its own the container's other processes would outlive a KILL of
  // its init: runc kills them all, so do we.
  if (number == SIGKILL && !hasPrivatePidNamespace(state.spec)) all = true;
  if (!all) {
    UniqueFd pidfd(pidfdOpen(state.pid));
    if (!pidfd || syscall(SYS_pidfd_send_signal, pidfd.get(), number, nullptr, 0) < 0)
      throwErrno(fmt::format("sending signal {} to the container's init {}", number, state.pid));
    return;
  }
  for (pid_t pid : containerPids(state)) {
    if (kill(pid, number) < 0 && errno != ESRCH)
      throwErrno(fmt::format("sending signal {} to {}", number, pid));
  }
  if (status == "paused" && number == SIGKILL)
    ContainerCgroup::fromJson(state.cgroup).setFrozen(false);
}

void deleteContainer(const GlobalOptions& global, const std::string& id, bool force) {
  std::optional<ContainerState> loaded;
  try {
    loaded = ContainerState::load(global.root, id);
  } catch (const RuntimeError&) {
    // A create killed half way may leave a directory without state.json: it goes too. A
    // damaged state.json stays (its init and cgroup may be alive): the error says so.
    struct stat st {};
    std::string dir = global.root + "/" + id;
    bool stateMissing = stat((dir + "/" + kStateFile).c_str(), &st) < 0 && errno == ENOENT;
    if (!isValidContainerId(id) || !stateMissing) throw;
    if (stat(dir.c_str(), &st) == 0) removeStateDir(dir);
    if (force) return;
    throw;
  }
  ContainerState& state = *loaded;
  std::string status = state.status();
  if (status == "running" || status == "paused") {
    if (!force) fail("cannot delete container {} that is not stopped: {}", id, status);
  }
  if (status != "stopped") {
    if (status == "paused") {
      kill(state.pid, SIGKILL);
      ContainerCgroup::fromJson(state.cgroup).setFrozen(false);
    }
    kill(state.pid, SIGKILL);
    if (!waitForExit(state.pid, 10'000))
      fail("the container's init {} did not exit after SIGKILL", state.pid);
  }
  destroy(state);
}

int execInContainer(const GlobalOptions& global, const ExecOptions& options) {
  ContainerState state = ContainerState::load(global.root, options.id);
  std::string containerStatus = state.status();
  if (containerStatus == "stopped") fail("cannot exec in a stopped container");
  if (containerStatus == "paused") fail("cannot exec in a paused container");

  json process;
  if (!options.processFile.empty()) {
    process = parseJsonFile(options.processFile);
    if (!process.is_object()) fail("{}: not a JSON object", options.processFile);
  } else {
    if (options.args.empty()) fail("exec needs --process or the command to run");
    process = state.spec.value("process", json::object());
    process["args"] = options.args;
    process["terminal"] = options.tty;
    if (!options.cwd.empty()) process["cwd"] = options.cwd;
    for (const auto& variable : options.env)
      process["env"].push_back(variable);
    if (!options.user.empty()) {
      // uid[:gid]; without a gid the spec's stays, as runc keeps it.
      auto number = [&](const std::string& text) {
        char* end = nullptr;
        errno = 0;
        unsigned long value = std::strtoul(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || errno != 0 || value > 0xFFFFFFFEul)
          fail("--user {:?}: expected uid[:gid] as numbers", options.user);
        return static_cast<uint32_t>(value);
      };
      size_t colon = options.user.find(':');
      process["user"]["uid"] = number(options.user.substr(0, colon));
      if (colon != std::string::npos)
        process["user"]["gid"] = number(options.user.substr(colon + 1));
    }
  }
  bool terminal = process.value("terminal", false);
  if (terminal && options.consoleSocket.empty())
    fail("cannot allocate tty if runc will detach without setting console socket");
  ProcessSecurity security = ProcessSecurity::fromSpec(process);
  std::optional<SeccompFilter> seccomp;
  const json& linux = state.spec.contains("linux") ? state.spec["linux"] : json::object();
  if (linux.contains("seccomp") && !linux["seccomp"].is_null())
    seccomp.emplace(SeccompFilter::compile(linux["seccomp"]));

  // The init's namespaces that differ from ours: those the process joins.
  std::vector<UniqueFd> fds;
  ExecConfig config;
  std::vector<NamespaceJoin> joins;
  std::optional<int> pidJoin, timeJoin;
  for (const auto& kind : kNamespaces) {
    std::string theirs = fmt::format("/proc/{}/ns/{}", state.pid, kind.procName);
    std::string ours = fmt::format("/proc/self/ns/{}", kind.procName);
    struct stat a {
    }, b{};
    if (stat(theirs.c_str(), &a) < 0) continue;  // a kernel without that namespace type
    if (stat(ours.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) continue;
    UniqueFd fd(open(theirs.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throwErrno(fmt::format("opening {}", theirs));
    int raw = fd.get();
    fds.push_back(std::move(fd));
    if (kind.flag == CLONE_NEWPID) {
      pidJoin = raw;
    } else if (kind.flag == CLONE_NEWTIME) {
      timeJoin = raw;
    } else {
      joins.push_back({raw, kind.flag, kind.specName});
    }
  }
  for (auto& join : joins)
    if (join.type == CLONE_NEWUSER) config.joins.push_back(join);
  for (auto& join : joins)
    if (join.type != CLONE_NEWUSER && join.type != CLONE_NEWNS) config.joins.push_back(join);
  for (auto& join : joins)
    if (join.type == CLONE_NEWNS) config.joins.push_back(join);
  if (!state.processAlive()) fail("cannot exec in a stopped container");
  if (pidJoin && setns(*pidJoin, CLONE_NEWPID) < 0) throwErrno("joining the pid namespace");
  if (timeJoin && setns(*timeJoin, CLONE_NEWTIME) < 0) throwErrno("joining the time namespace");

  UniqueFd consoleSocket;
  if (terminal) consoleSocket = connectConsoleSocket(options.consoleSocket);
  int sockets[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) < 0) throwErrno("socketpair");
  UniqueFd parentEnd(sockets[0]), childEnd(sockets[1]);
  config.syncFd = childEnd.get();
  config.launch.process = &process;
  config.launch.security = &security;
  config.launch.seccomp = seccomp ? &*seccomp : nullptr;
  config.launch.consoleSocketFd = consoleSocket ? consoleSocket.get() : -1;
  config.launch.preserveFds = options.preserveFds;

  pid_t pid = cloneProcess(0);
  if (pid < 0) throwErrno("fork of the exec'd process");
  if (pid == 0) {
    parentEnd.reset();
    runExecProcess(config);
  }
  childEnd.reset();
  consoleSocket.reset();
  try {
    if (!state.cgroup.is_null()) ContainerCgroup::fromJson(state.cgroup).join(pid);
    setOomScoreAdj(pid, process);
    sendSync(parentEnd.get(), SyncType::kGo);
    SyncMessage message;
    if (receiveSync(parentEnd.get(), message)) {
      if (message.type == SyncType::kError) fail("{}", message.payload);
      fail("an unexpected message from the exec'd process");
    }
  } catch (...) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    throw;
  }
  // EOF: it exec'd.
  writePidFile(options.pidFile, pid);
  if (options.detach) return 0;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

void listContainers(const GlobalOptions& global, const std::string& format, bool quiet) {
  std::vector<ContainerState> states;
  if (DIR* entries = opendir(global.root.c_str())) {
    while (dirent* entry = readdir(entries)) {
      std::string id = entry->d_name;
      if (id == "." || id == ".." || !isValidContainerId(id)) continue;
      try {
        states.push_back(ContainerState::load(global.root, id));
      } catch (const RuntimeError&) {
        // Half-created: not listed, as runc.
      }
    }
    closedir(entries);
  }
  std::string out;
  if (quiet) {
    for (const auto& state : states)
      out += state.id + "\n";
  } else if (format == "json") {
    json list = json::array();
    for (const auto& state : states)
      list.push_back(state.ociState(state.status()));
    out = list.dump() + "\n";
  } else if (format == "table" || format.empty()) {
    out = fmt::format("{:<12} {:<8} {:<10} {:<40} {:<31} {}\n", "ID", "PID", "STATUS", "BUNDLE",
                      "CREATED", "OWNER");
    for (const auto& state : states) {
      std::string status = state.status();
      out += fmt::format("{:<12} {:<8} {:<10} {:<40} {:<31} {}\n", state.id,
                         status == "stopped" ? 0 : state.pid, status, state.bundle, state.created,
                         "root");
    }
  } else {
    fail("invalid format option {:?}", format);
  }
  fwrite(out.data(), 1, out.size(), stdout);
}

void printProcesses(const GlobalOptions& global, const std::string& id, const std::string& format) {
  ContainerState state = ContainerState::load(global.root, id);
  auto pids = containerPids(state);
  std::string out;
  if (format == "json") {
    out = json(pids).dump() + "\n";
  } else if (format == "table" || format.empty()) {
    out = "PID     CMD\n";
    for (pid_t pid : pids) {
      std::string comm;
      try {
        comm = readWholeFile(fmt::format("/proc/{}/comm", pid));
      } catch (const RuntimeError&) {
        continue;
      }
      if (!comm.empty() && comm.back() == '\n') comm.pop_back();
      out += fmt::format("{:<7} {}\n", pid, comm);
    }
  } else {
    fail("invalid format option {:?}", format);
  }
  fwrite(out.data(), 1, out.size(), stdout);
}

void pauseContainer(const GlobalOptions& global, const std::string& id, bool paused) {
  ContainerState state = ContainerState::load(global.root, id);
  std::string status = state.status();
  if (paused && status != "running" && status != "created")
    fail("container {} is not running: {}", id, status);
  if (!paused && status != "paused") fail("container {} is not paused: {}", id, status);
  ContainerCgroup::fromJson(state.cgroup).setFrozen(paused);
}

void updateContainer(const GlobalOptions& global, const std::string& id,
                     const std::string& resources, const std::string& overridesJson) {
  ContainerState state = ContainerState::load(global.root, id);
  if (state.status() == "stopped") fail("container {} is stopped", id);
  json update = json::object();
  if (!resources.empty()) {
    update = parseJsonFile(resources);
    if (!update.is_object()) fail("--resources {}: not a JSON object", resources);
  }
  if (!overridesJson.empty()) update.merge_patch(json::parse(overridesJson));
  ContainerCgroup::fromJson(state.cgroup).apply(update);
  json& saved = state.spec["linux"]["resources"];
  if (!saved.is_object()) saved = json::object();
  saved.merge_patch(update);
  state.save();
}

void printFeatures() {
  json mountOptions = json::array();
  for (const char* name :
       {"async",      "atime",         "bind",    "defaults", "dev",         "diratime", "dirsync",
        "exec",       "mand",          "noatime", "nodev",    "nodiratime",  "noexec",   "nomand",
        "norelatime", "nostrictatime", "nosuid",  "private",  "rbind",       "relatime", "remount",
        "ro",         "rprivate",      "rshared", "rslave",   "runbindable", "rw",       "shared",
        "slave",      "strictatime",   "suid",    "sync",     "unbindable"})
    mountOptions.push_back(name);
  json namespaces = json::array();
  for (const auto& kind : kNamespaces)
    namespaces.push_back(kind.specName);
  json features{
      {"ociVersionMin", "1.0.0"},
      {"ociVersionMax", "1.1.0"},
      {"hooks",
       {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}},
      {"mountOptions", mountOptions},
      {"linux",
       {{"namespaces", namespaces},
        {"capabilities", knownCapabilityNames()},
        {"cgroup", {{"v1", true}, {"v2", true}, {"systemd", false}, {"systemdUser", false}}},
        {"seccomp", seccompFeatures()},
        {"apparmor", {{"enabled", false}}},
        {"selinux", {{"enabled", false}}}}},
      {"annotations", {{"io.monocri.runtime.name", "monocri-runtime"}}}};
  std::string text = features.dump(4) + "\n";
  fwrite(text.data(), 1, text.size(), stdout);
}

void writeDefaultSpec(const std::string& bundle, bool rootless) {
  std::string path = bundle + "/config.json";
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) fail("File {} exists. Remove it first.", path);
  if (rootless) fail("--rootless specs are not supported by monocri-runtime");
  json caps = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  json spec{
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", true},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", {"sh"}},
        {"env",
         {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"}},
        {"cwd", "/"},
        {"capabilities",
         {{"bounding", caps}, {"effective", caps}, {"permitted", caps}, {"ambient", caps}}},
        {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
        {"noNewPrivileges", true}}},
      {"root", {{"path", "rootfs"}, {"readonly", true}}},
      {"hostname", "runc"},
      {"mounts",
       {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
        {{"destination", "/dev"},
         {"type", "tmpfs"},
         {"source", "tmpfs"},
         {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
        {{"destination", "/dev/pts"},
         {"type", "devpts"},
         {"source", "devpts"},
         {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
        {{"destination", "/dev/shm"},
         {"type", "tmpfs"},
         {"source", "shm"},
         {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
        {{"destination", "/dev/mqueue"},
         {"type", "mqueue"},
         {"source", "mqueue"},
         {"options", {"nosuid", "noexec", "nodev"}}},
        {{"destination", "/sys"},
         {"type", "sysfs"},
         {"source", "sysfs"},
         {"options", {"nosuid", "noexec", "nodev", "ro"}}},
        {{"destination", "/sys/fs/cgroup"},
         {"type", "cgroup"},
         {"source", "cgroup"},
         {"options", {"nosuid", "noexec", "nodev", "relatime", "ro"}}}}},
      {"linux",
       {{"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
        {"namespaces",
         {{{"type", "pid"}},
          {{"type", "network"}},
          {{"type", "ipc"}},
          {{"type", "uts"}},
          {{"type", "mount"}}}},
        {"maskedPaths",
         {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
          "/proc/scsi"}},
        {"readonlyPaths",
         {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}}}};
  std::string text = spec.dump(2) + "\n";
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd || write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    throwErrno(fmt::format("writing {}", path));
}

}  // namespace monocri::runtime
