// The host probe: cgroup layouts of other hosts from their mount tables, and this host's
// capabilities, limits and OOM score read back by other means.
#include "oci/spec/HostLimits.h"

#include <gtest/gtest.h>
#include <sys/capability.h>
#include <sys/resource.h>

#include <cstdlib>

#include "SpecTestSupport.h"

namespace monocri::oci {
namespace {

// This machine: v1 controllers, hugetlb only in the unified hierarchy (hybrid).
constexpr const char* kHybrid =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
constexpr const char* kV2Only =
    "25 23 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";
constexpr const char* kV1WithHugetlb =
    "31 23 0:28 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n"
    "33 31 0:30 / /sys/fs/cgroup/hugetlb rw - cgroup cgroup rw,hugetlb\n"
    "34 31 0:31 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";

TEST(HostLimitsTest, CgroupLayouts) {
  auto layout = cgroupLayoutFromMountInfo(kHybrid);
  EXPECT_FALSE(layout.cgroupV2Only);
  EXPECT_FALSE(layout.hugetlbV1Mounted);
  EXPECT_EQ(layout.memoryV1MountPoint, "/sys/fs/cgroup/memory");
  EXPECT_EQ(layout.unifiedMountPoint, "/sys/fs/cgroup/unified");

  layout = cgroupLayoutFromMountInfo(kV2Only);
  EXPECT_TRUE(layout.cgroupV2Only);
  EXPECT_EQ(layout.unifiedMountPoint, "/sys/fs/cgroup");
  EXPECT_EQ(layout.memoryV1MountPoint, "");

  layout = cgroupLayoutFromMountInfo(kV1WithHugetlb);
  EXPECT_FALSE(layout.cgroupV2Only);
  EXPECT_TRUE(layout.hugetlbV1Mounted);
  EXPECT_EQ(layout.unifiedMountPoint, "");

  EXPECT_TRUE(controllerListed("cpuset cpu io memory hugetlb pids rdma misc\n", "hugetlb"));
  EXPECT_TRUE(controllerListed("hugetlb\n", "hugetlb"));
  EXPECT_FALSE(controllerListed("cpuset cpu io memory pids\n", "hugetlb"));
  EXPECT_FALSE(controllerListed("hugetlbx\n", "hugetlb"));
}

uint64_t capEffFromStatus() {
  const std::string status = testing::readFile("/proc/self/status");
  const auto at = status.find("CapEff:");
  return std::strtoull(status.c_str() + at + 7, nullptr, 16);
}

TEST(HostLimitsTest, ProbeReadsThisProcess) {
  const HostLimits host = probeHostLimits();
  EXPECT_EQ(host.capabilities, capEffFromStatus());
  rlimit nofile{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &nofile), 0);
  ASSERT_TRUE(host.rlimits.count(RLIMIT_NOFILE));
  if ((host.capabilities >> CAP_SYS_RESOURCE) & 1) {
    EXPECT_EQ(host.oomScoreAdjFloor, -1000);
    EXPECT_GE(host.rlimits.at(RLIMIT_NOFILE).second, nofile.rlim_max);
  } else {
    EXPECT_EQ(host.oomScoreAdjFloor,
              std::atoi(testing::readFile("/proc/self/oom_score_adj").c_str()));
    EXPECT_EQ(host.rlimits.at(RLIMIT_NOFILE).second, nofile.rlim_max);
    EXPECT_EQ(host.rlimits.at(RLIMIT_NOFILE).first, nofile.rlim_cur);
  }
  const auto layout = cgroupLayoutFromMountInfo(testing::readFile("/proc/self/mountinfo"));
  EXPECT_EQ(host.cgroupV2Only, layout.cgroupV2Only);
  if (!layout.cgroupV2Only) {
    EXPECT_EQ(host.hugetlbLimitsUsable, layout.hugetlbV1Mounted);
  }
  if (!layout.cgroupV2Only && !layout.memoryV1MountPoint.empty()) {
    EXPECT_EQ(host.swapAccounting,
              std::filesystem::exists(layout.memoryV1MountPoint + "/memory.memsw.limit_in_bytes"));
  }
  EXPECT_EQ(host.selinuxEnabled, std::filesystem::exists("/sys/fs/selinux/enforce"));
}

}  // namespace
}  // namespace monocri::oci
