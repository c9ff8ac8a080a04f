// CPU, memory, swap, huge pages and unified settings against host capabilities; oom_score_adj
// and rlimit clamps.
#include "oci/spec/SpecResources.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <functional>

#include "SpecTestSupport.h"

namespace monocri::oci {
namespace {

using grpc::StatusCode;
using Json = nlohmann::json;

HostLimits v1Host() {
  HostLimits host;
  host.swapAccounting = true;
  return host;
}

TEST(SpecResourcesTest, CpuAndMemory) {
  runtime::v1::LinuxContainerResources resources;
  resources.set_cpu_shares(512);
  resources.set_cpu_period(100000);
  resources.set_cpu_quota(50000);
  resources.set_cpuset_cpus("0-1,3");
  resources.set_cpuset_mems("0");
  resources.set_memory_limit_in_bytes(256 << 20);
  resources.set_oom_score_adj(500);  // process-level, not here
  Json out;
  std::vector<std::string> warnings;
  ASSERT_TRUE(buildResources(resources, v1Host(), out, warnings).isOk());
  EXPECT_EQ(out, (Json{{"cpu",
                        {{"shares", 512},
                         {"period", 100000},
                         {"quota", 50000},
                         {"cpus", "0-1,3"},
                         {"mems", "0"}}},
                       {"memory", {{"limit", 256 << 20}, {"swap", 256 << 20}}}}));
  EXPECT_TRUE(warnings.empty());
}

TEST(SpecResourcesTest, UnsetStaysUnset) {
  Json out;
  std::vector<std::string> warnings;
  ASSERT_TRUE(buildResources({}, v1Host(), out, warnings).isOk());
  EXPECT_EQ(out, Json::object());
}

TEST(SpecResourcesTest, Swap) {
  runtime::v1::LinuxContainerResources resources;
  resources.set_memory_limit_in_bytes(100 << 20);
  resources.set_memory_swap_limit_in_bytes(300 << 20);
  Json out;
  std::vector<std::string> warnings;
  ASSERT_TRUE(buildResources(resources, v1Host(), out, warnings).isOk());
  EXPECT_EQ(out["memory"]["swap"], 300 << 20);

  // Without swap accounting the swap limit goes, with a warning; the memory limit stays.
  HostLimits noSwap;
  ASSERT_TRUE(buildResources(resources, noSwap, out, warnings).isOk());
  EXPECT_EQ(out["memory"], (Json{{"limit", 100 << 20}}));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("swap"), std::string::npos);

  resources.set_memory_swap_limit_in_bytes(50 << 20);  // below the memory limit
  EXPECT_EQ(buildResources(resources, v1Host(), out, warnings).code(),
            StatusCode::kInvalidArgument);
  resources.set_memory_swap_limit_in_bytes(-1);
  ASSERT_TRUE(buildResources(resources, v1Host(), out, warnings).isOk());
  EXPECT_EQ(out["memory"]["swap"], -1);
}

TEST(SpecResourcesTest, HugepagesLeftOutWithExactlyOneWarning) {
  runtime::v1::LinuxContainerResources resources;
  for (const char* size : {"2MB", "1GB"}) {
    auto* limit = resources.add_hugepage_limits();
    limit->set_page_size(size);
    limit->set_limit(0);
  }
  Json out;
  std::vector<std::string> warnings;
  HostLimits hybrid = v1Host();  // this machine: hugetlb only in the unified hierarchy
  ASSERT_TRUE(buildResources(resources, hybrid, out, warnings).isOk());
  EXPECT_FALSE(out.contains("hugepageLimits"));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("2MB, 1GB"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("hugetlb"), std::string::npos) << warnings[0];

  HostLimits usable = v1Host();
  usable.hugetlbLimitsUsable = true;
  warnings.clear();
  ASSERT_TRUE(buildResources(resources, usable, out, warnings).isOk());
  EXPECT_EQ(out["hugepageLimits"], (Json::array({Json{{"pageSize", "2MB"}, {"limit", 0}},
                                                 Json{{"pageSize", "1GB"}, {"limit", 0}}})));
  EXPECT_TRUE(warnings.empty());

  resources.mutable_hugepage_limits(0)->set_page_size("2 MB");
  EXPECT_EQ(buildResources(resources, usable, out, warnings).code(), StatusCode::kInvalidArgument);
}

TEST(SpecResourcesTest, UnifiedNeedsCgroupV2) {
  runtime::v1::LinuxContainerResources resources;
  (*resources.mutable_unified())["memory.high"] = "1000000";
  Json out;
  std::vector<std::string> warnings;
  const auto status = buildResources(resources, v1Host(), out, warnings);
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("memory.high"), std::string::npos);

  HostLimits v2;
  v2.cgroupV2Only = true;
  ASSERT_TRUE(buildResources(resources, v2, out, warnings).isOk());
  EXPECT_EQ(out["unified"], (Json{{"memory.high", "1000000"}}));
  for (const char* key : {"../memory.high", "memory/high", "nodot", ".memory"}) {
    runtime::v1::LinuxContainerResources bad;
    (*bad.mutable_unified())[key] = "1";
    EXPECT_EQ(buildResources(bad, v2, out, warnings).code(), StatusCode::kInvalidArgument) << key;
  }
}

TEST(SpecResourcesTest, OutOfRangeValuesAreRefused) {
  struct Case {
    const char* name;
    std::function<void(runtime::v1::LinuxContainerResources&)> edit;
  };
  const std::vector<Case> cases = {
      {"shares 1", [](auto& r) { r.set_cpu_shares(1); }},
      {"shares negative", [](auto& r) { r.set_cpu_shares(-5); }},
      {"shares too many", [](auto& r) { r.set_cpu_shares(262145); }},
      {"period too short", [](auto& r) { r.set_cpu_period(999); }},
      {"period too long", [](auto& r) { r.set_cpu_period(1000001); }},
      {"quota tiny", [](auto& r) { r.set_cpu_quota(10); }},
      {"quota negative", [](auto& r) { r.set_cpu_quota(-2); }},
      {"cpus", [](auto& r) { r.set_cpuset_cpus("0-"); }},
      {"cpus reversed", [](auto& r) { r.set_cpuset_cpus("3-1"); }},
      {"mems", [](auto& r) { r.set_cpuset_mems("a"); }},
      {"memory negative", [](auto& r) { r.set_memory_limit_in_bytes(-1); }},
      {"swap without memory", [](auto& r) { r.set_memory_swap_limit_in_bytes(1 << 20); }},
  };
  for (const auto& c : cases) {
    runtime::v1::LinuxContainerResources resources;
    c.edit(resources);
    Json out;
    std::vector<std::string> warnings;
    EXPECT_EQ(buildResources(resources, v1Host(), out, warnings).code(),
              StatusCode::kInvalidArgument)
        << c.name;
  }
  runtime::v1::LinuxContainerResources unlimited;
  unlimited.set_cpu_quota(-1);
  Json out;
  std::vector<std::string> warnings;
  ASSERT_TRUE(buildResources(unlimited, v1Host(), out, warnings).isOk());
  EXPECT_EQ(out["cpu"]["quota"], -1);
}

TEST(SpecResourcesTest, OomScoreAdjIsRaisedToTheFloor) {
  int adj = 0;
  std::vector<std::string> warnings;
  ASSERT_TRUE(resolveOomScoreAdj(-997, 0, adj, warnings).isOk());
  EXPECT_EQ(adj, 0);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("-997"), std::string::npos);
  warnings.clear();
  ASSERT_TRUE(resolveOomScoreAdj(1000, 0, adj, warnings).isOk());
  EXPECT_EQ(adj, 1000);
  ASSERT_TRUE(resolveOomScoreAdj(-997, -1000, adj, warnings).isOk());
  EXPECT_EQ(adj, -997);
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(resolveOomScoreAdj(1001, 0, adj, warnings).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(resolveOomScoreAdj(-1001, -1000, adj, warnings).code(), StatusCode::kInvalidArgument);
}

TEST(SpecResourcesTest, RlimitsAreClampedToTheHostsHardLimits) {
  HostLimits host;
  host.rlimits[RLIMIT_NOFILE] = {1024, 20000};
  host.rlimits[RLIMIT_NPROC] = {RLIM_INFINITY, RLIM_INFINITY};
  Json out;
  std::vector<std::string> warnings;
  ASSERT_TRUE(buildRlimits({{RLIMIT_NOFILE, {1048576, 1048576}},
                            {RLIMIT_NPROC, {4096, 8192}},
                            {RLIMIT_CORE, {0, 0}}},
                           host, out, warnings)
                  .isOk());
  // In resource number order.
  EXPECT_EQ(out,
            (Json::array({Json{{"type", "RLIMIT_CORE"}, {"soft", 0}, {"hard", 0}},
                          Json{{"type", "RLIMIT_NPROC"}, {"soft", 4096}, {"hard", 8192}},
                          Json{{"type", "RLIMIT_NOFILE"}, {"soft", 20000}, {"hard", 20000}}})));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("RLIMIT_NOFILE"), std::string::npos);
  EXPECT_NE(warnings[0].find("20000"), std::string::npos);

  EXPECT_EQ(buildRlimits({{RLIMIT_NOFILE, {10, 5}}}, host, out, warnings).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(buildRlimits({{99, {1, 1}}}, host, out, warnings).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(rlimitName(RLIMIT_MEMLOCK), "RLIMIT_MEMLOCK");
}

}  // namespace
}  // namespace monocri::oci
