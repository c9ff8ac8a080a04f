#include "monitor/MemoryCgroup.h"

#include <gtest/gtest.h>

using monocri::monitor::memoryCgroupFrom;
using monocri::monitor::parseOomKillCount;

TEST(MemoryCgroup, HybridHostUsesTheV1MemoryController) {
  const char* procCgroup =
      "12:pids:/user.slice/x\n"
      "5:memory:/user.slice/x/monocri-test/monocri-abc\n"
      "4:cpu,cpuacct:/user.slice\n"
      "1:name=systemd:/user.slice\n"
      "0::/user.slice/x\n";
  EXPECT_EQ(memoryCgroupFrom(procCgroup, "/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified")
                .oomCounterPath,
            "/sys/fs/cgroup/memory/user.slice/x/monocri-test/monocri-abc/memory.oom_control");
}

TEST(MemoryCgroup, UnifiedHostUsesMemoryEvents) {
  EXPECT_EQ(memoryCgroupFrom("0::/kubepods/pod1/c1\n", "", "/sys/fs/cgroup").oomCounterPath,
            "/sys/fs/cgroup/kubepods/pod1/c1/memory.events");
  EXPECT_EQ(memoryCgroupFrom("0::/\n", "", "/sys/fs/cgroup").oomCounterPath,
            "/sys/fs/cgroup/memory.events");
}

TEST(MemoryCgroup, NothingUsableGivesNothing) {
  EXPECT_TRUE(memoryCgroupFrom("", "/sys/fs/cgroup/memory", "/sys/fs/cgroup").empty());
  EXPECT_TRUE(memoryCgroupFrom("5:memory:/a\n", "", "").empty());  // not mounted
  EXPECT_TRUE(memoryCgroupFrom("5:memory:/a/../../etc\n", "/m", "").empty());
  EXPECT_TRUE(memoryCgroupFrom("garbage\n5:memory\n::\n", "/m", "/u").empty());
  EXPECT_TRUE(memoryCgroupFrom("5:memory:relative\n", "/m", "").empty());
}

TEST(MemoryCgroup, OomKillCount) {
  EXPECT_EQ(parseOomKillCount("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 3u);
  EXPECT_EQ(parseOomKillCount("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n"), 1u);
  EXPECT_EQ(parseOomKillCount("oom_kill_disable 0\nunder_oom 0\n"), std::nullopt);  // old kernel
  EXPECT_EQ(parseOomKillCount("oom_kill \n"), std::nullopt);
  EXPECT_EQ(parseOomKillCount("oom_kill 12x\n"), std::nullopt);
  EXPECT_EQ(parseOomKillCount("oom_kill 99999999999999999999999\n"), std::nullopt);
  EXPECT_EQ(parseOomKillCount(""), std::nullopt);
}
