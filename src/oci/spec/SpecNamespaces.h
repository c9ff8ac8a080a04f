// The container's namespaces (linux.namespaces) from its NamespaceOption and the pod's pinned
// namespaces, and the sysctls (linux.sysctl) that those namespaces make safe to set.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcStatus.h"

namespace monocri::oci {

struct NamespacesRequest {
  // The container's; null (a config without namespace_options, as crictl may send) -> the modes
  // the pod's own namespaces give: NODE where the pod uses the host's, else POD (pid: POD when
  // the pod has a shared pid namespace, else CONTAINER).
  const runtime::v1::NamespaceOption* options = nullptr;
  std::string netnsPath, ipcnsPath, utsnsPath, pidnsPath;  // the pod's pinned namespaces
  bool podHostNetwork = false, podHostIpc = false, podHostPid = false;
  std::string targetPidnsPath;  // pid mode TARGET: the target container's pid namespace
  bool cgroupV2Only = false;
  bool privileged = false;
};

struct NamespacesResult {
  nlohmann::json namespaces = nlohmann::json::array();
  bool hostNetwork = false, hostIpc = false, hostPid = false;
  bool privateUts = false;  // the container has a UTS namespace (so runc may set its hostname)
};

// network: POD -> the pod's, NODE -> the host's (CONTAINER and TARGET are INVALID_ARGUMENT:
// containers share their pod's network). ipc: POD -> the pod's, CONTAINER -> a new one, NODE ->
// the host's. uts follows the network: the pod's (or a new one) unless the host's network is
// used. pid: POD -> the pod's shared one, CONTAINER -> a new one, NODE -> the host's, TARGET ->
// targetPidnsPath (UNIMPLEMENTED when the caller gave none). mount: always new. cgroup: new on a
// v2-only host for unprivileged containers (containerd's rule). User namespaces are
// FAILED_PRECONDITION. A POD mode the pod has no pinned namespace for is FAILED_PRECONDITION.
grpc::Status buildNamespaces(const NamespacesRequest& request, NamespacesResult& out);

// Only sysctls a namespace of the container's own confines, as runc 1.1.5 accepts them:
// kernel.msgmax, msgmnb, msgmni, sem, shmall, shmmax, shmmni, shm_rmid_forced and fs.mqueue.*
// (private IPC namespace), net.* (private network namespace), kernel.domainname (private UTS
// namespace). Anything else would change the host: INVALID_ARGUMENT naming it.
grpc::Status buildSysctls(const google::protobuf::Map<std::string, std::string>& sysctls,
                          const NamespacesResult& namespaces, nlohmann::json& out);

}  // namespace monocri::oci
