// The container's filesystem, built by its init inside the new mount namespace: propagation,
// the spec's mounts (every target resolved inside the rootfs with openat2(RESOLVE_IN_ROOT), so a
// symlink in the image cannot point a mount at the host), /dev (default and configured devices,
// the standard symlinks, ptmx), then pivot_root (or MS_MOVE with --no-pivot). After the pivot:
// sysctls, read-only and masked paths, a read-only root.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace monocri::runtime {

struct RootfsOptions {
  std::string rootfs;  // absolute host path of root.path
  bool noPivot = false;
  bool newUserNamespace = false;  // devices are bind-mounted from the host, not mknod'ed
  // A "cgroup" mount on a v1 host binds these (name under the mount, the container's host
  // directory: ContainerCgroup::v1Directories); none means a v2 host, where cgroup2 is mounted.
  std::vector<std::pair<std::string, std::string>> cgroupDirectories;
};

// Mounts, devices and /dev symlinks; `beforePivot` runs last before the pivot (the
// createContainer hooks). Throws RuntimeError naming the mount or path.
void prepareRootfs(const nlohmann::json& spec, const RootfsOptions& options,
                   const std::function<void()>& beforePivot);
// After the pivot: sysctls, readonly and masked paths, root.readonly.
void finishRootfs(const nlohmann::json& spec);
// Sysctls alone (a container without its own mount namespace still gets them).
void applySysctls(const nlohmann::json& spec);

}  // namespace monocri::runtime
