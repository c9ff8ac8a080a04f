// What this host lets a container have, probed once when the daemon starts: the capabilities,
// resource limits and OOM score the daemon itself holds (runc, its child, cannot give more), and
// which cgroup and security features exist here.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace monocri::oci {

struct HostLimits {
  // The daemon's effective capability set, bit N = capability N: privileged/ALL get these, asks
  // beyond are clamped with a warning.
  uint64_t capabilities = 0;
  // The daemon's own oom_score_adj (-1000 when it holds CAP_SYS_RESOURCE): lower asks are raised
  // to it, with a warning.
  int oomScoreAdjFloor = 0;
  // RLIMIT_* -> the highest (soft, hard) a container may get: the daemon's own limits, or
  // unlimited (RLIMIT_NOFILE: fs.nr_open) when it holds CAP_SYS_RESOURCE. Asks above are clamped.
  std::map<int, std::pair<uint64_t, uint64_t>> rlimits;
  // The OCI runtime's cgroup manager can set hugetlb limits here: a v1 hugetlb hierarchy is
  // mounted, or the host is v2-only with hugetlb in cgroup.controllers. A hybrid host whose
  // hugetlb controller sits in the unified hierarchy alone does not qualify (runc's v1 manager
  // fails on it).
  bool hugetlbLimitsUsable = false;
  bool cgroupV2Only = false;    // unified hierarchy only (no v1 controllers mounted)
  bool swapAccounting = false;  // memory.memsw (v1) / memory.swap.max (v2) present
  // Added to the brief's fields: profiles and labels are refused or ignored by what exists here.
  bool apparmorEnabled = false;  // /sys/module/apparmor/parameters/enabled is "Y"
  bool selinuxEnabled = false;   // selinuxfs is mounted at /sys/fs/selinux
};

// Reads the daemon's capabilities, rlimits and oom_score_adj, /proc/self/mountinfo, the cgroup
// files and the LSM switches. Blocking file reads: once at start, or from the work queue.
HostLimits probeHostLimits();

// The pieces of the probe that interpret text, apart so that tests can feed them other hosts.
struct CgroupLayout {
  bool cgroupV2Only = false;       // cgroup2 is what is mounted at /sys/fs/cgroup (runc's test)
  bool hugetlbV1Mounted = false;   // a "cgroup" mount whose super options name hugetlb
  std::string memoryV1MountPoint;  // "" when there is no v1 memory hierarchy
  std::string unifiedMountPoint;   // the cgroup2 mount, "" when there is none
};
CgroupLayout cgroupLayoutFromMountInfo(std::string_view mountinfo);
// Whether `controller` is listed in a cgroup.controllers file's text.
bool controllerListed(std::string_view controllersFile, std::string_view controller);

}  // namespace monocri::oci
