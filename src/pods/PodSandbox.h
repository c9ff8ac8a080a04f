// One pod sandbox: kubelet's config and what the daemon made for it, persisted under
// <root>/pods/<id>/ (pod.json: state; config.pb: the PodSandboxConfig as kubelet sent it).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "api.pb.h"

namespace monocri::pods {

enum class PodState { kCreating, kReady, kNotReady };

struct PodSandbox {
  std::string id;  // 64 hex characters
  runtime::v1::PodSandboxConfig config;
  std::string runtimeHandler;
  int64_t createdAtNs = 0;
  PodState state = PodState::kCreating;

  // Namespace modes, from config.linux.security_context.namespace_options.
  runtime::v1::NamespaceMode networkMode = runtime::v1::POD;
  runtime::v1::NamespaceMode pidMode = runtime::v1::POD;
  runtime::v1::NamespaceMode ipcMode = runtime::v1::POD;

  std::string runDir;  // <run_root>/pods/<id>: ns/, shm/, hostname, hosts, resolv.conf
  bool shmMounted = false;
  pid_t initPid = 0;            // the pid namespace's init (pidMode POD), 0 if none
  uint64_t initStartTicks = 0;  // its start time (/proc/PID/stat), so a recycled pid is not it
  std::string stopReason;       // why it is NOTREADY, for verbose status
  // The CNI network it is attached to and the addresses it got there (IPv4 first); cleared by
  // the DEL that released them. networkCheck: a failed CHECK after a daemon restart, else "".
  std::string networkName;
  std::vector<std::string> podIps;
  std::string networkCheck;

  // Where the pod's shared files and pinned namespaces are; "" where the node's are used.
  std::string netnsPath() const;
  std::string ipcnsPath() const;
  std::string utsnsPath() const;
  std::string pidnsPath() const;  // /proc/<init>/ns/pid while the init lives
  std::string hostnamePath() const { return runDir + "/hostname"; }
  std::string hostsPath() const { return runDir + "/hosts"; }
  std::string resolvConfPath() const { return runDir + "/resolv.conf"; }
  std::string shmPath() const { return shmMounted ? runDir + "/shm" : std::string(); }

  // name_namespace_uid_attempt: two RunPodSandbox calls with the same key are one pod.
  std::string key() const;
};

std::string podKeyOf(const runtime::v1::PodSandboxMetadata& metadata);

}  // namespace monocri::pods
