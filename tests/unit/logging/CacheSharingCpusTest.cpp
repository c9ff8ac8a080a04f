// The kernel's CPU lists, and the CPUs sharing a CPU's L2 cache read from a sysfs tree made
// here (each case the way a machine's sysfs says it) and from this machine's.
#include "logging/CacheSharingCpus.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "logging/LogTestSupport.h"

namespace monocri::logging {
namespace {

std::vector<int> members(const cpu_set_t& set) {
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

std::vector<int> parsed(std::string_view text) {
  const std::optional<cpu_set_t> set = parseCpuList(text);
  EXPECT_TRUE(set.has_value()) << text;
  return set ? members(*set) : std::vector<int>{};
}

TEST(CpuListTest, ParsesWhatTheKernelWrites) {
  EXPECT_EQ(parsed("0\n"), (std::vector<int>{0}));
  EXPECT_EQ(parsed("0-3"), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(parsed("0,4\n"), (std::vector<int>{0, 4}));
  EXPECT_EQ(parsed("1-2,8,10-11\n"), (std::vector<int>{1, 2, 8, 10, 11}));
  EXPECT_EQ(parsed("1023"), (std::vector<int>{1023}));
  EXPECT_EQ(parsed(""), (std::vector<int>{}));
  EXPECT_EQ(parsed("\n"), (std::vector<int>{}));
}

TEST(CpuListTest, RefusesWhatIsNotACpuList) {
  for (const char* bad : {",", "0,", ",0", "0-", "-3", "3-1", "0--2", "0--0", "a", "0x1", " 0",
                          "0 ", "0\n\n", "1024", "0-1024", "-1", "4294967296", "0,,1", "0-3:2/4"}) {
    EXPECT_FALSE(parseCpuList(bad).has_value()) << '"' << bad << '"';
  }
}

class CacheSharingCpusTest : public ::testing::Test {
 protected:
  // cpu<cpu>/cache/index<index>/{level,type,shared_cpu_list}
  void cache(int cpu, int index, const std::string& level, const std::string& type,
             const std::string& shared) {
    const std::string dir =
        root_ + "/cpu" + std::to_string(cpu) + "/cache/index" + std::to_string(index);
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/level") << level << '\n';
    std::ofstream(dir + "/type") << type << '\n';
    if (!shared.empty()) std::ofstream(dir + "/shared_cpu_list") << shared << '\n';
  }
  // What an SMT machine says: L1d, L1i, L2 per core (two siblings), L3 for eight.
  void smtCpu(int cpu, const std::string& siblings) {
    cache(cpu, 0, "1", "Data", siblings);
    cache(cpu, 1, "1", "Instruction", siblings);
    cache(cpu, 2, "2", "Unified", siblings);
    cache(cpu, 3, "3", "Unified", "0-7");
  }

  testing::TempDir dir_;
  std::string root_ = dir_.file("cpu");
};

TEST_F(CacheSharingCpusTest, AnSmtCoreSharesItsL2WithItsSibling) {
  smtCpu(0, "0,4");
  smtCpu(4, "0,4");
  smtCpu(1, "1,5");
  CacheSharingCpus caches(root_);
  EXPECT_EQ(members(caches.l2Of(0)), (std::vector<int>{0, 4}));
  EXPECT_EQ(members(caches.l2Of(4)), (std::vector<int>{0, 4}));
  EXPECT_EQ(members(caches.l2Of(1)), (std::vector<int>{1, 5}));
}

TEST_F(CacheSharingCpusTest, AnInstructionOnlyL2IsNotTheOneTheCopiesGoThrough) {
  cache(2, 0, "2", "Instruction", "0-3");
  cache(2, 1, "2", "Data", "2-3");
  CacheSharingCpus caches(root_);
  EXPECT_EQ(members(caches.l2Of(2)), (std::vector<int>{2, 3}));
}

TEST_F(CacheSharingCpusTest, ACpuSysfsSaysNothingOrNonsenseAboutRunsAlone) {
  cache(1, 0, "1", "Data", "1");  // no L2 listed
  cache(2, 0, "2", "Unified", "garbage");
  cache(3, 0, "2", "Unified", "0-1");  // a list without the CPU itself
  cache(5, 0, "2", "Unified", "");     // no shared_cpu_list
  CacheSharingCpus caches(root_);
  for (int cpu : {1, 2, 3, 5, 7 /* no directory at all */}) {
    EXPECT_EQ(members(caches.l2Of(cpu)), (std::vector<int>{cpu})) << "cpu " << cpu;
  }
}

TEST_F(CacheSharingCpusTest, EachCpuIsReadOnce) {
  smtCpu(0, "0-1");
  CacheSharingCpus caches(root_);
  EXPECT_EQ(members(caches.l2Of(0)), (std::vector<int>{0, 1}));
  std::filesystem::remove_all(root_);
  EXPECT_EQ(members(caches.l2Of(0)), (std::vector<int>{0, 1}));
}

TEST(CacheSharingCpusOfThisMachineTest, EveryCpuSharesItsL2WithItself) {
  CacheSharingCpus caches;
  cpu_set_t allowed;
  ASSERT_EQ(::sched_getaffinity(0, sizeof allowed, &allowed), 0);
  for (int cpu : members(allowed)) {
    const cpu_set_t& shared = caches.l2Of(cpu);
    EXPECT_TRUE(CPU_ISSET(cpu, &shared)) << "cpu " << cpu;
    EXPECT_GE(CPU_COUNT(&shared), 1);
  }
}

}  // namespace
}  // namespace monocri::logging
