#include "oci/spec/HostLimits.h"

#include <sys/capability.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "oci/spec/HostFile.h"
#include "oci/spec/MountInfo.h"

namespace monocri::oci {

namespace {

constexpr size_t kProcFileLimit = 1024 * 1024;
constexpr uint32_t kSelinuxMagic = 0xf97cff8c;

bool fileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

uint64_t effectiveCapabilities() {
  uint64_t mask = 0;
  cap_t caps = cap_get_proc();
  if (caps == nullptr) return 0;
  const unsigned bits = cap_max_bits();
  for (unsigned cap = 0; cap < bits && cap < 64; ++cap) {
    cap_flag_value_t value = CAP_CLEAR;
    if (cap_get_flag(caps, static_cast<cap_value_t>(cap), CAP_EFFECTIVE, &value) == 0 &&
        value == CAP_SET) {
      mask |= uint64_t{1} << cap;
    }
  }
  cap_free(caps);
  return mask;
}

int ownOomScoreAdj() {
  std::string text;
  if (readHostFile("/proc/self/oom_score_adj", kProcFileLimit, text) != 0) return 0;
  return std::atoi(text.c_str());
}

uint64_t nrOpen() {
  std::string text;
  if (readHostFile("/proc/sys/fs/nr_open", kProcFileLimit, text) != 0) return 1024 * 1024;
  return std::strtoull(text.c_str(), nullptr, 10);
}

// The v2 cgroup of this process ("0::/path" in /proc/self/cgroup), "" when there is none.
std::string ownUnifiedCgroup() {
  std::string text;
  if (readHostFile("/proc/self/cgroup", kProcFileLimit, text) != 0) return "";
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    if (line.starts_with("0::")) return std::string(line.substr(3));
    start = end + 1;
  }
  return "";
}

// memory.swap.max exists in non-root cgroups only: this process's own, or any child of the root.
bool unifiedSwapAccounting(const std::string& mountPoint) {
  const std::string own = ownUnifiedCgroup();
  if (!own.empty() && own != "/" && fileExists(mountPoint + own + "/memory.swap.max")) return true;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(mountPoint, error)) {
    if (entry.is_directory(error) && fileExists(entry.path().string() + "/memory.swap.max")) {
      return true;
    }
  }
  return false;
}

}  // namespace

CgroupLayout cgroupLayoutFromMountInfo(std::string_view mountinfo) {
  CgroupLayout layout;
  std::string topOfSysFsCgroup;  // fs type of the last mount on /sys/fs/cgroup
  for (const auto& entry : parseMountInfo(mountinfo)) {
    if (entry.mountPoint == "/sys/fs/cgroup") topOfSysFsCgroup = entry.fsType;
    if (entry.fsType == "cgroup2") {
      if (layout.unifiedMountPoint.empty() || entry.mountPoint == "/sys/fs/cgroup") {
        layout.unifiedMountPoint = entry.mountPoint;
      }
      continue;
    }
    if (entry.fsType != "cgroup") continue;
    size_t start = 0;
    const std::string& options = entry.superOptions;
    while (start <= options.size()) {
      size_t end = options.find(',', start);
      if (end == std::string::npos) end = options.size();
      const std::string_view option(options.data() + start, end - start);
      if (option == "hugetlb") layout.hugetlbV1Mounted = true;
      if (option == "memory" && layout.memoryV1MountPoint.empty()) {
        layout.memoryV1MountPoint = entry.mountPoint;
      }
      start = end + 1;
    }
  }
  // runc's own test: the unified hierarchy is mounted at /sys/fs/cgroup itself.
  layout.cgroupV2Only = topOfSysFsCgroup == "cgroup2";
  return layout;
}

bool controllerListed(std::string_view controllersFile, std::string_view controller) {
  size_t start = 0;
  while (start < controllersFile.size()) {
    const size_t end = controllersFile.find_first_of(" \n\t", start);
    const size_t stop = end == std::string_view::npos ? controllersFile.size() : end;
    if (controllersFile.substr(start, stop - start) == controller) return true;
    start = stop + 1;
  }
  return false;
}

HostLimits probeHostLimits() {
  HostLimits host;
  host.capabilities = effectiveCapabilities();
  const bool sysResource = (host.capabilities >> CAP_SYS_RESOURCE) & 1;
  host.oomScoreAdjFloor = sysResource ? -1000 : ownOomScoreAdj();

  for (int resource = 0; resource < RLIM_NLIMITS; ++resource) {
    rlimit limit{};
    if (getrlimit(resource, &limit) != 0) continue;
    if (sysResource) {
      // Raising a hard limit is what CAP_SYS_RESOURCE allows; the kernel still caps open files.
      const uint64_t ceiling = resource == RLIMIT_NOFILE ? nrOpen() : RLIM_INFINITY;
      host.rlimits[resource] = {ceiling, ceiling};
    } else {
      host.rlimits[resource] = {limit.rlim_cur, limit.rlim_max};
    }
  }

  std::string mountinfo;
  readHostFile("/proc/self/mountinfo", 16 * kProcFileLimit, mountinfo);
  const CgroupLayout layout = cgroupLayoutFromMountInfo(mountinfo);
  host.cgroupV2Only = layout.cgroupV2Only;
  if (layout.cgroupV2Only) {
    std::string controllers;
    readHostFile(layout.unifiedMountPoint + "/cgroup.controllers", kProcFileLimit, controllers);
    host.hugetlbLimitsUsable = controllerListed(controllers, "hugetlb");
    host.swapAccounting = unifiedSwapAccounting(layout.unifiedMountPoint);
  } else {
    host.hugetlbLimitsUsable = layout.hugetlbV1Mounted;
    host.swapAccounting = !layout.memoryV1MountPoint.empty() &&
                          fileExists(layout.memoryV1MountPoint + "/memory.memsw.limit_in_bytes");
  }

  std::string apparmor;
  host.apparmorEnabled =
      readHostFile("/sys/module/apparmor/parameters/enabled", kProcFileLimit, apparmor) == 0 &&
      apparmor.starts_with("Y");
  struct statfs fs {};
  host.selinuxEnabled =
      ::statfs("/sys/fs/selinux", &fs) == 0 && static_cast<uint32_t>(fs.f_type) == kSelinuxMagic;
  return host;
}

}  // namespace monocri::oci
