// What runs in the process the runtime clones: the container's init (create) up to the moment
// `start` lets it exec the user's process, and the process of `exec`, which joins a running
// container. Both end in execve or in _exit with their error sent to the runtime.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/runtime/ProcessSecurity.h"
#include "oci/runtime/SeccompFilter.h"

namespace monocri::runtime {

struct NamespaceJoin {
  int fd;    // an open /proc/.../ns/* file or the spec's path
  int type;  // CLONE_NEW*
  std::string name;
};

// The process's last steps, shared by the init and exec'd processes.
struct ProcessLaunch {
  const nlohmann::json* process = nullptr;  // the spec's process object
  const ProcessSecurity* security = nullptr;
  SeccompFilter* seccomp = nullptr;  // nullptr: none
  int consoleSocketFd = -1;          // process.terminal: where the pty master goes
  bool bindConsole = false;          // the init: the pty also becomes /dev/console
  int preserveFds = 0;               // fds 3..3+n-1 stay open in the process
};

struct InitConfig {
  const nlohmann::json* spec = nullptr;
  std::string id;
  std::string bundle;
  std::string rootfs;  // absolute
  bool noPivot = false;
  bool newMountNamespace = false;
  bool newUserNamespace = false;
  bool inUserNamespace = false;     // new or joined: devices are bound from the host, not made
  bool ownUtsNamespace = false;     // new or joined: not the host's, so the hostname may be set
  bool newCgroupNamespace = false;  // unshared after the parent moved us into the cgroup
  bool hooksRoundTrip = false;      // prestart/createRuntime/createContainer hooks exist
  int syncFd = -1;
  int execFifoFd = -1;  // O_PATH of exec.fifo, reopened through /proc/self/fd after the pivot
  std::vector<NamespaceJoin> joins;
  // ContainerCgroup::v1Directories of the container's cgroup, for its "cgroup" mounts.
  std::vector<std::pair<std::string, std::string>> cgroupDirectories;
  ProcessLaunch launch;
};

// The child of `create`. Never returns.
[[noreturn]] void runContainerInit(const InitConfig& config);

// The child of `create` when the namespaces cannot all come from one clone: a user namespace
// joined by path (the others must be made inside it), or a new one with namespaces joined by
// path (those are joined first, from the runtime's own user namespace, as runc does). It joins
// (`joins`, in order), unshares `unshareFlags`, has the parent map a new user namespace, and
// for a new pid namespace forks the init; the parent is told the init's pid (kInitPid), then
// this goes on as runContainerInit(config). Never returns.
[[noreturn]] void runStagedInit(const InitConfig& config, const std::vector<NamespaceJoin>& joins,
                                int unshareFlags);

struct ExecConfig {
  std::vector<NamespaceJoin> joins;  // user first; mount last
  int syncFd = -1;
  ProcessLaunch launch;
};

// The child of `exec`. Never returns.
[[noreturn]] void runExecProcess(const ExecConfig& config);

// Writes uid_map/gid_map of `pid` from the spec's linux.uidMappings/gidMappings.
void writeIdMappings(pid_t pid, const nlohmann::json& linux);

}  // namespace monocri::runtime
