// The OCI runtime spec (config.json) of one container, built from kubelet's CreateContainer
// request, the pod's config, the image config and what the pod manager prepared: what CRI-O and
// containerd produce for the same request, checked against what this host can do.
//
// buildContainerSpec does blocking file-system work (the image's /etc/passwd and /etc/group, a
// Localhost seccomp profile, stat of devices and mount sources, mkdir of missing mount sources,
// a walk of /dev for privileged containers): call it from loop::queueWork, with inputs whose
// pointed-to messages outlive the work.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcStatus.h"
#include "oci/spec/HostLimits.h"

namespace monocri::oci {

// The OCI runtime spec version written: what runc 1.1.5 reports.
inline constexpr const char* kOciSpecVersion = "1.0.2-dev";

// What the pod manager prepared for the pod (namespaces pinned by the daemon, files it wrote).
struct PodSpecContext {
  std::string podId;
  std::string netnsPath, ipcnsPath, utsnsPath;  // pinned namespace files; "" = the host's (NODE)
  std::string pidnsPath;  // "" and !hostPid: each container gets its own pid namespace;
                          // set: the pod's shared pid namespace (NamespaceMode POD)
  bool hostNetwork = false, hostPid = false, hostIpc = false;
  std::string hostname;  // "" -> the pod config's hostname, else this node's
  std::string hostnamePath, hostsPath, resolvConfPath;  // files to bind into every container
  std::string shmPath;  // the pod's /dev/shm (a tmpfs mount) to bind; "" with hostIpc -> host's
  // From the pod config, as kubelet sent it: absolute, or relative (runc then nests the
  // container under its own cgroup in every hierarchy).
  std::string cgroupParent;
};

struct ContainerSpecInputs {
  std::string containerId;  // 64 hex chars
  const runtime::v1::ContainerConfig* config = nullptr;
  const runtime::v1::PodSandboxConfig* podConfig = nullptr;
  // The image config document's "config" object (Env, Entrypoint, Cmd, User, WorkingDir,
  // StopSignal, Labels...); may be empty (null or {}).
  nlohmann::json imageConfig;
  std::string imageName, imageRef;  // for annotations
  std::string rootfsPath;  // the container's mounted rootfs (its /etc/passwd, /etc/group are read)
  PodSpecContext pod;
  HostLimits host;
  // From monocri's config, e.g. {RLIMIT_NOFILE, {1048576, 1048576}}; clamped to the host's.
  std::vector<std::pair<int, std::pair<uint64_t, uint64_t>>> defaultRlimits;
  // Localhost seccomp profiles: kubelet sends absolute paths, taken as they are; a relative one
  // is resolved under this root.
  std::string seccompProfileRoot;
  // Added: pid namespace mode TARGET shares the pid namespace of the container named by
  // namespace_options.target_id. The caller knows it (e.g. /proc/<its pid>/ns/pid); empty -> the
  // request is answered UNIMPLEMENTED.
  std::string targetPidnsPath;
};

struct ContainerSpec {
  nlohmann::json config;  // the config.json document
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> additionalGids;
  std::string username;    // as resolved ("" for a uid the image's /etc/passwd does not list)
  std::string stopSignal;  // "SIGTERM" unless the CRI stop_signal or the image says otherwise
  std::vector<std::string> warnings;  // each clamp or dropped setting, one sentence each
};

// Everything wrong with the inputs is an INVALID_ARGUMENT (or NOT_FOUND for a missing profile
// file or device, FAILED_PRECONDITION for what this host cannot do) naming the field and the
// value. `out` is complete only when the answer is OK.
grpc::Status buildContainerSpec(const ContainerSpecInputs& in, ContainerSpec& out);

// cgroupsPath for a container: parent + "/monocri-" + id (an absolute parent stays absolute, a
// relative one relative); without a parent "/monocri/monocri-" + id, a tree of monocri's own
// beside the host's services, with the same leaf name as under a parent.
std::string containerCgroupsPath(const std::string& cgroupParent, const std::string& containerId);

}  // namespace monocri::oci
