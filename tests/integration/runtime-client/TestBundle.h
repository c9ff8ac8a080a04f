// Test helper: OCI bundles for real runc containers, from busybox-static. One root filesystem
// (busybox and the applets the tests use, mounted read-only by every container) serves many
// bundles, each a directory with a config.json written here.
#pragma once

#include <string>
#include <vector>

namespace monocri::testing {

// Makes `dir` a root filesystem: /bin/busybox copied from the host, applet symlinks, and the
// directories the mounts need. Returns "" or what failed.
std::string makeBusyboxRootfs(const std::string& dir);

struct BundleConfig {
  std::vector<std::string> args;
  bool terminal = false;
  // Relative, so that runc nests it under its own cgroup (the test's) in every hierarchy.
  std::string cgroupsPath;
};

// Writes `dir`/config.json for a container of `rootfs` (an absolute path). Returns "" or what
// failed.
std::string writeBundle(const std::string& dir, const std::string& rootfs,
                        const BundleConfig& config);

// Where a relative cgroupsPath lands in each mounted cgroup hierarchy: <mount>/<this process's
// cgroup there>/<relative>, for every cgroup and cgroup2 mount of this process.
std::vector<std::string> cgroupDirectories(const std::string& relative);

}  // namespace monocri::testing
