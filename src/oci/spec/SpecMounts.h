// The container's mounts: the kernel filesystems every container has, the pod's files
// (/etc/hostname, /etc/hosts, /etc/resolv.conf) and /dev/shm, and kubelet's bind mounts, in an
// order where no mount hides a later one, as containerd does it.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcStatus.h"

namespace monocri::oci {

// Lexical cleaning of an absolute path, as Go's filepath.Clean: "//a/./b/../c/" -> "/a/c"; ".."
// above the root stays at the root.
std::string cleanPath(std::string_view path);

struct MountsRequest {
  const google::protobuf::RepeatedPtrField<runtime::v1::Mount>* criMounts = nullptr;
  std::string hostnamePath, hostsPath, resolvConfPath;  // "" -> not bound
  std::string shmPath;  // the pod's /dev/shm to bind; "" -> host's with hostIpc, else a tmpfs
  bool hostIpc = false;
  bool privileged = false;      // sysfs and cgroupfs writable
  bool readonlyRootfs = false;  // the pod's files bound read-only too
  bool selinuxEnabled = false;
};

struct MountsResult {
  nlohmann::json mounts = nlohmann::json::array();
  std::string rootfsPropagation;  // "" (runc's default, rprivate), "rslave" or "rshared"
};

// Supplies /proc/self/mountinfo when a propagation needs checking; tests pass other tables.
using MountInfoSource = std::function<std::string()>;
std::string readOwnMountInfo();

// In order: /proc, /dev, /dev/pts, /dev/mqueue, /sys, /sys/fs/cgroup, /dev/shm (each left out
// when kubelet mounts the same destination, everything under /dev when kubelet mounts /dev);
// then the pod's files (unless kubelet mounts the same destination) and kubelet's mounts,
// stably sorted by depth so that /a is mounted before /a/b. kubelet's mounts are rbind with
// rprivate, rslave (HOST_TO_CONTAINER: the source must be on a shared or slave mount) or
// rshared (BIDIRECTIONAL: the source must be on a shared mount) and set rootfsPropagation as
// containerd does. A missing host_path is created as a directory (kubelet expects it), and
// symlinks in it are resolved. recursive_read_only, image volumes and id-mapped mounts are
// FAILED_PRECONDITION: runc 1.1.5 has none of them.
grpc::Status buildMounts(const MountsRequest& request, const MountInfoSource& mountInfo,
                         MountsResult& out);

}  // namespace monocri::oci
