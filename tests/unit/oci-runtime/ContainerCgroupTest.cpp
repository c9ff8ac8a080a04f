// ContainerCgroup against the host's real cgroup hierarchies (root, in-namespace). Every cgroup
// is nested under this test process's own cgroups ("oci-runtime-test-<pid>/...") and removed in
// TearDown, whatever failed. Values are read back from the controllers' files, and devices,
// freezing and joining are checked on forked children.
#include "oci/runtime/ContainerCgroup.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "oci/runtime/RuntimeError.h"

namespace monocri::runtime {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr int64_t kMiB = 1024 * 1024;

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  std::string text = content.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  return text;
}

bool isDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// rmdir deepest first, a few tries while killed children leave.
void removeTree(const std::string& top) {
  for (int attempt = 0; attempt < 50 && isDirectory(top); ++attempt) {
    std::vector<std::string> dirs;
    std::error_code error;
    for (auto it = fs::recursive_directory_iterator(top, error);
         !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (it->is_directory(error)) dirs.push_back(it->path());
    }
    std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) {
      return std::count(a.begin(), a.end(), '/') > std::count(b.begin(), b.end(), '/');
    });
    for (const auto& dir : dirs)
      ::rmdir(dir.c_str());
    ::rmdir(top.c_str());
    if (isDirectory(top)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

struct SavedDirectory {
  std::string path;
  std::vector<std::string> controllers;
  bool unified = false;
};

std::vector<SavedDirectory> directoriesOf(const ContainerCgroup& cgroup) {
  std::vector<SavedDirectory> dirs;
  const Json saved = cgroup.toJson();
  for (const auto& entry : saved.at("directories")) {
    dirs.push_back({entry.at("path").get<std::string>(),
                    entry.at("controllers").get<std::vector<std::string>>(),
                    entry.at("unified").get<bool>()});
  }
  return dirs;
}

bool hasController(const SavedDirectory& dir, const std::string& controller) {
  return std::find(dir.controllers.begin(), dir.controllers.end(), controller) !=
         dir.controllers.end();
}

// The v1 directory of `controller`, or "".
std::string v1Dir(const ContainerCgroup& cgroup, const std::string& controller) {
  for (const auto& dir : directoriesOf(cgroup))
    if (!dir.unified && hasController(dir, controller)) return dir.path;
  return "";
}

std::string unifiedDir(const ContainerCgroup& cgroup) {
  for (const auto& dir : directoriesOf(cgroup))
    if (dir.unified) return dir.path;
  return "";
}

// This process's line of /proc/self/cgroup for a hierarchy ("cpu,cpuacct", "" for v2).
std::string ownCgroupPath(const SavedDirectory& dir) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  std::string controllers;
  for (const auto& c : dir.controllers)
    controllers += (controllers.empty() ? "" : ",") + c;
  while (std::getline(in, line)) {
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    if (line.substr(first + 1, second - first - 1) == controllers) return line.substr(second + 1);
  }
  return "";
}

template <typename F>
std::string errorOf(F&& call) {
  try {
    call();
  } catch (const RuntimeError& error) {
    return error.what();
  }
  return "(no error)";
}

class ContainerCgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u)
        << "cgroups need root (ctest runs this under tests/harness/in-namespace)";
    name_ = fmt::format("oci-runtime-test-{}", ::getpid());
  }

  void TearDown() override {
    if (name_.empty()) return;
    const auto tops = topDirectories();
    for (const auto& top : tops)
      thawTree(top);
    for (const pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    for (const auto& top : tops) {
      removeTree(top);
      EXPECT_FALSE(isDirectory(top)) << top << " was left behind";
    }
  }

  std::vector<std::string> topDirectories() const {
    std::vector<std::string> tops;
    for (const auto& dir : directoriesOf(ContainerCgroup::forSpec(name_, "unused")))
      tops.push_back(dir.path);
    return tops;
  }

  static void thawTree(const std::string& top) {
    if (!isDirectory(top)) return;
    std::error_code error;
    std::vector<std::string> dirs = {top};
    for (auto it = fs::recursive_directory_iterator(top, error);
         !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (it->is_directory(error)) dirs.push_back(it->path());
    }
    for (const auto& dir : dirs) {
      if (fs::exists(dir + "/freezer.state")) std::ofstream(dir + "/freezer.state") << "THAWED";
      if (fs::exists(dir + "/cgroup.freeze")) std::ofstream(dir + "/cgroup.freeze") << "0";
    }
  }

  std::string sub(std::string_view leaf) const { return fmt::format("{}/{}", name_, leaf); }

  // A unified-hierarchy-only cgroup (what a cgroup v2 host has), or nullopt without one.
  std::optional<ContainerCgroup> unifiedOnly(std::string_view leaf) const {
    const std::string dir = unifiedDir(ContainerCgroup::forSpec(sub(leaf), "unused"));
    if (dir.empty()) return std::nullopt;
    return ContainerCgroup::fromJson(Json{
        {"directories",
         Json::array({Json{{"path", dir}, {"controllers", Json::array()}, {"unified", true}}})}});
  }

  pid_t spawn(const std::function<void()>& body) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      body();
      ::_exit(0);
    }
    EXPECT_GT(pid, 0);
    if (pid > 0) children_.push_back(pid);
    return pid;
  }

  pid_t sleeper() {
    return spawn([] {
      for (;;)
        ::pause();
    });
  }

  void reap(pid_t pid) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    children_.erase(std::remove(children_.begin(), children_.end(), pid), children_.end());
  }

  // A child moved into `cgroup` that then opens each (path, flags): the errnos, 0 when it opened.
  std::vector<int> opensInside(ContainerCgroup& cgroup,
                               const std::vector<std::pair<const char*, int>>& opens) {
    int go[2], out[2];
    EXPECT_EQ(::pipe2(go, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    const pid_t pid = spawn([&] {
      ::close(go[1]);
      ::close(out[0]);
      char byte;
      if (::read(go[0], &byte, 1) != 1) ::_exit(1);
      for (const auto& [path, flags] : opens) {
        const int fd = ::open(path, flags | O_CLOEXEC);
        const int error = fd < 0 ? errno : 0;
        if (fd >= 0) ::close(fd);
        if (::write(out[1], &error, sizeof error) != sizeof error) ::_exit(1);
      }
    });
    ::close(go[0]);
    ::close(out[1]);
    std::vector<int> errors;
    try {
      cgroup.join(pid);
    } catch (...) {
      ::close(go[1]);
      ::close(out[0]);
      throw;
    }
    EXPECT_EQ(::write(go[1], "g", 1), 1);
    int error = 0;
    while (::read(out[0], &error, sizeof error) == sizeof error)
      errors.push_back(error);
    ::close(go[1]);
    ::close(out[0]);
    reap(pid);
    return errors;
  }

  std::string name_;
  std::vector<pid_t> children_;
};

TEST_F(ContainerCgroupTest, RelativePathIsUnderOwnCgroupInEveryHierarchy) {
  const auto cgroup = ContainerCgroup::forSpec(sub("c1"), "id");
  const auto dirs = directoriesOf(cgroup);
  ASSERT_FALSE(dirs.empty());
  for (const auto& dir : dirs) {
    const std::string suffix = "/" + sub("c1");
    ASSERT_GT(dir.path.size(), suffix.size());
    EXPECT_EQ(dir.path.substr(dir.path.size() - suffix.size()), suffix);
    // The directory above is this process's own cgroup: it lists this process.
    const std::string own = dir.path.substr(0, dir.path.size() - suffix.size());
    const std::string procs = readText(own + "/cgroup.procs");
    EXPECT_NE(("\n" + procs + "\n").find(fmt::format("\n{}\n", ::getpid())), std::string::npos)
        << own << " is not this process's cgroup";
  }
  // Every hierarchy of /proc/self/cgroup that is mounted here, once.
  std::vector<std::string> paths;
  for (const auto& dir : dirs)
    paths.push_back(dir.path);
  std::sort(paths.begin(), paths.end());
  EXPECT_EQ(std::unique(paths.begin(), paths.end()), paths.end());

  // Empty: the id, relative.
  const auto byId = directoriesOf(ContainerCgroup::forSpec("", "ctr-id"));
  ASSERT_EQ(byId.size(), dirs.size());
  for (size_t i = 0; i < dirs.size(); ++i) {
    const std::string own = dirs[i].path.substr(0, dirs[i].path.size() - sub("c1").size() - 1);
    EXPECT_EQ(byId[i].path, own + "/ctr-id");
  }

  // The state round trip.
  EXPECT_EQ(ContainerCgroup::fromJson(cgroup.toJson()).toJson(), cgroup.toJson());
}

TEST_F(ContainerCgroupTest, AbsolutePathIsFromEachHierarchysRoot) {
  const auto relative = directoriesOf(ContainerCgroup::forSpec(name_, "id"));
  const auto absolute = directoriesOf(ContainerCgroup::forSpec("/kubepods/pod1//c1/", "id"));
  ASSERT_EQ(relative.size(), absolute.size());
  for (size_t i = 0; i < relative.size(); ++i) {
    // mountpoint = own directory without this process's cgroup path (mount roots are "/" here)
    std::string own = relative[i].path.substr(0, relative[i].path.size() - name_.size() - 1);
    const std::string ownPath = ownCgroupPath(relative[i]);
    if (ownPath != "/") {
      ASSERT_EQ(own.substr(own.size() - ownPath.size()), ownPath);
      own.resize(own.size() - ownPath.size());
    }
    EXPECT_EQ(absolute[i].path, own + "/kubepods/pod1/c1");
  }
}

TEST_F(ContainerCgroupTest, RefusesDotDotAndBadSavedState) {
  EXPECT_NE(errorOf([] { ContainerCgroup::forSpec("a/../b", "id"); }).find("\"..\""),
            std::string::npos);
  EXPECT_NE(errorOf([] { ContainerCgroup::forSpec("/kubepods/..", "id"); }).find(".."),
            std::string::npos);
  EXPECT_NE(errorOf([] { ContainerCgroup::forSpec("", "../escape"); }).find("container id"),
            std::string::npos);
  EXPECT_NE(errorOf([] { ContainerCgroup::forSpec("", ""); }), "(no error)");
  EXPECT_NE(errorOf([] { ContainerCgroup::forSpec("/", "id"); }), "(no error)");
  EXPECT_NE(errorOf([] { ContainerCgroup::fromJson(Json(42)); }).find("directories"),
            std::string::npos);
  EXPECT_NE(errorOf([] {
              ContainerCgroup::fromJson(Json::parse(R"({"directories":[{"path":"relative"}]})"));
            }).find("absolute"),
            std::string::npos);
  EXPECT_NE(errorOf([] {
              ContainerCgroup::fromJson(
                  Json::parse(R"({"directories":[{"path":"/sys/fs/cgroup/../../etc"}]})"));
            }).find(".."),
            std::string::npos);
}

TEST_F(ContainerCgroupTest, CreateMakesEveryDirectoryWithParentCpuset) {
  auto cgroup = ContainerCgroup::forSpec(sub("made"), "id");
  cgroup.create();
  cgroup.create();  // again: fine
  for (const auto& dir : directoriesOf(cgroup))
    EXPECT_TRUE(isDirectory(dir.path)) << dir.path;
  const std::string cpuset = v1Dir(cgroup, "cpuset");
  if (cpuset.empty()) return;
  // Both new levels got their parent's cpus and mems (else no process could join).
  const std::string own = cpuset.substr(0, cpuset.size() - sub("made").size() - 1);
  for (const auto& level : {own + "/" + name_, cpuset}) {
    EXPECT_EQ(readText(level + "/cpuset.cpus"), readText(own + "/cpuset.cpus")) << level;
    EXPECT_EQ(readText(level + "/cpuset.mems"), readText(own + "/cpuset.mems")) << level;
    EXPECT_FALSE(readText(level + "/cpuset.cpus").empty());
  }
}

TEST_F(ContainerCgroupTest, AppliesLimitsReadBackFromTheFiles) {
  auto cgroup = ContainerCgroup::forSpec(sub("limits"), "id");
  cgroup.create();
  const std::string memory = v1Dir(cgroup, "memory");
  if (memory.empty()) {
    // cgroup v2 host.
    const std::string dir = unifiedDir(cgroup);
    ASSERT_FALSE(dir.empty());
    cgroup.apply(Json::parse(R"({"memory": {"limit": 67108864, "swap": 134217728},
                                 "cpu": {"shares": 512, "quota": 50000, "period": 100000},
                                 "pids": {"limit": 42}})"));
    EXPECT_EQ(readText(dir + "/memory.max"), "67108864");
    if (fs::exists(dir + "/memory.swap.max")) {
      EXPECT_EQ(readText(dir + "/memory.swap.max"), "67108864");
    }
    EXPECT_EQ(readText(dir + "/cpu.weight"), "20");  // 1 + (510 * 9999) / 262142
    EXPECT_EQ(readText(dir + "/cpu.max"), "50000 100000");
    EXPECT_EQ(readText(dir + "/pids.max"), "42");
    cgroup.apply(Json::parse(R"({"cpu": {"quota": -1}, "pids": {"limit": -1}})"));
    EXPECT_EQ(readText(dir + "/cpu.max"), "max 100000");
    EXPECT_EQ(readText(dir + "/pids.max"), "max");
    return;
  }
  const bool memsw = fs::exists(memory + "/memory.memsw.limit_in_bytes");
  Json resources = {
      {"memory", {{"limit", 64 * kMiB}, {"reservation", 32 * kMiB}}},
      {"cpu",
       {{"shares", 512}, {"quota", 50000}, {"period", 100000}, {"cpus", "0"}, {"mems", "0"}}},
      {"pids", {{"limit", 42}}}};
  if (memsw) resources["memory"]["swap"] = 128 * kMiB;
  cgroup.apply(resources);
  EXPECT_EQ(readText(memory + "/memory.limit_in_bytes"), std::to_string(64 * kMiB));
  EXPECT_EQ(readText(memory + "/memory.soft_limit_in_bytes"), std::to_string(32 * kMiB));
  if (memsw) {
    EXPECT_EQ(readText(memory + "/memory.memsw.limit_in_bytes"), std::to_string(128 * kMiB));
  }
  const std::string cpu = v1Dir(cgroup, "cpu");
  ASSERT_FALSE(cpu.empty());
  EXPECT_EQ(readText(cpu + "/cpu.shares"), "512");
  EXPECT_EQ(readText(cpu + "/cpu.cfs_quota_us"), "50000");
  EXPECT_EQ(readText(cpu + "/cpu.cfs_period_us"), "100000");
  const std::string cpuset = v1Dir(cgroup, "cpuset");
  ASSERT_FALSE(cpuset.empty());
  EXPECT_EQ(readText(cpuset + "/cpuset.cpus"), "0");
  EXPECT_EQ(readText(cpuset + "/cpuset.mems"), "0");
  const std::string pids = v1Dir(cgroup, "pids");
  ASSERT_FALSE(pids.empty());
  EXPECT_EQ(readText(pids + "/pids.max"), "42");

  if (memsw) {
    // Raising both past the current memsw: memsw must go first, else the kernel refuses.
    cgroup.apply({{"memory", {{"limit", 256 * kMiB}, {"swap", 512 * kMiB}}}});
    EXPECT_EQ(readText(memory + "/memory.limit_in_bytes"), std::to_string(256 * kMiB));
    EXPECT_EQ(readText(memory + "/memory.memsw.limit_in_bytes"), std::to_string(512 * kMiB));
    // Lowering both below the current limit: the memory limit must go first.
    cgroup.apply({{"memory", {{"limit", 16 * kMiB}, {"swap", 24 * kMiB}}}});
    EXPECT_EQ(readText(memory + "/memory.limit_in_bytes"), std::to_string(16 * kMiB));
    EXPECT_EQ(readText(memory + "/memory.memsw.limit_in_bytes"), std::to_string(24 * kMiB));
    // Unlimited memory with swap not given: unlimited swap as well.
    cgroup.apply({{"memory", {{"limit", -1}}}});
    EXPECT_EQ(readText(memory + "/memory.memsw.limit_in_bytes"),
              readText(memory + "/../memory.memsw.limit_in_bytes"));
  }
  // Period and quota lowered together.
  cgroup.apply({{"cpu", {{"quota", 5000}, {"period", 10000}}}});
  EXPECT_EQ(readText(cpu + "/cpu.cfs_quota_us"), "5000");
  EXPECT_EQ(readText(cpu + "/cpu.cfs_period_us"), "10000");
  cgroup.apply({{"cpu", {{"quota", -1}}}, {"pids", {{"limit", 0}}}});
  EXPECT_EQ(readText(cpu + "/cpu.cfs_quota_us"), "-1");
  EXPECT_EQ(readText(pids + "/pids.max"), "max");
  // An out-of-range cpu.shares is reported rather than silently clamped.
  EXPECT_NE(errorOf([&] {
              cgroup.apply({{"cpu", {{"shares", 1000000}}}});
            }).find("cpu.shares"),
            std::string::npos);
}

TEST_F(ContainerCgroupTest, WrongValueTypesAreNamed) {
  auto cgroup = ContainerCgroup::forSpec(sub("types"), "id");
  cgroup.create();
  const auto error = [&](const char* resources) {
    return errorOf([&] { cgroup.apply(Json::parse(resources)); });
  };
  EXPECT_NE(error(R"({"memory": {"limit": "1G"}})").find("memory.limit must be an integer"),
            std::string::npos);
  EXPECT_NE(error(R"({"pids": 5})").find("linux.resources.pids must be an object"),
            std::string::npos);
  EXPECT_NE(error(R"({"cpu": {"shares": -5}})").find("cpu.shares"), std::string::npos);
  EXPECT_NE(error(R"({"cpu": {"cpus": 3}})").find("cpu.cpus must be a string"), std::string::npos);
  EXPECT_NE(error(R"({"devices": {}})").find("devices must be an array"), std::string::npos);
  EXPECT_NE(error(R"({"devices": [{"allow": "yes"}]})").find("devices[0].allow"),
            std::string::npos);
  EXPECT_NE(error(R"({"devices": [{"allow": false}, {"allow": true, "type": "x"}]})")
                .find("devices[1].type \"x\""),
            std::string::npos);
  EXPECT_NE(error(R"({"devices": [{"allow": true, "access": "rwx"}]})").find("access"),
            std::string::npos);
  EXPECT_NE(error(R"({"hugepageLimits": [{"pageSize": "../2MB", "limit": 1}]})").find("pageSize"),
            std::string::npos);
  EXPECT_NE(error(R"("memory")").find("linux.resources must be an object"), std::string::npos);
  EXPECT_EQ(error("null"), "(no error)");
  EXPECT_EQ(error("{}"), "(no error)");
}

TEST_F(ContainerCgroupTest, MissingControllerIsNamed) {
  auto cgroup = ContainerCgroup::forSpec(sub("missing"), "id");
  cgroup.create();
  const bool v1 = !v1Dir(cgroup, "memory").empty();
  if (v1 && v1Dir(cgroup, "hugetlb").empty()) {
    // A hybrid host whose hugetlb is only in the unified hierarchy (this one), or none at all.
    const std::string error = errorOf([&] {
      cgroup.apply(Json::parse(R"({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]})"));
    });
    EXPECT_NE(error.find("hugetlb"), std::string::npos) << error;
    EXPECT_NE(error.find("hugepageLimits"), std::string::npos) << error;
  }
  if (v1) {
    EXPECT_NE(errorOf([&] {
                cgroup.apply({{"unified", {{"memory.high", "1000000"}}}});
              }).find("cgroup v2"),
              std::string::npos);
  }
  auto unified = unifiedOnly("missing-v2");
  if (!unified) return;
  unified->create();
  const std::string dir = unifiedDir(*unified);
  if (readText(dir + "/cgroup.controllers").find("memory") == std::string::npos) {
    const std::string error = errorOf([&] {
      unified->apply({{"memory", {{"limit", 64 * kMiB}}}});
    });
    EXPECT_NE(error.find("cgroup v2 memory controller"), std::string::npos) << error;
    EXPECT_NE(error.find(dir), std::string::npos) << error;
  }
}

TEST_F(ContainerCgroupTest, JoinedProcessesAreListedWithSubCgroups) {
  auto cgroup = ContainerCgroup::forSpec(sub("join"), "id");
  cgroup.create();
  EXPECT_TRUE(cgroup.pids().empty());
  const pid_t first = sleeper();
  cgroup.join(first);
  EXPECT_EQ(cgroup.pids(), std::vector<pid_t>{first});
  // In every hierarchy.
  const std::string own = readText(fmt::format("/proc/{}/cgroup", first));
  size_t lines = 0;
  std::istringstream in(own);
  for (std::string line; std::getline(in, line);) {
    ++lines;
    EXPECT_NE(line.find("/" + sub("join")), std::string::npos)
        << line << " (a hierarchy not mounted here is fine to miss)";
  }
  EXPECT_EQ(lines, directoriesOf(cgroup).size());

  // A process in a cgroup below (the container's own sub-cgroups) counts too.
  auto below = ContainerCgroup::forSpec(sub("join/below"), "id");
  below.create();
  const pid_t second = sleeper();
  below.join(second);
  auto pids = cgroup.pids();
  EXPECT_EQ(pids, (std::vector<pid_t>{std::min(first, second), std::max(first, second)}));
  EXPECT_EQ(below.pids(), std::vector<pid_t>{second});
  EXPECT_NE(errorOf([&] { cgroup.join(0); }), "(no error)");
}

// A child writing a byte every millisecond: frozen, it writes none.
TEST_F(ContainerCgroupTest, FreezeStopsAndThawResumes) {
  auto cgroup = ContainerCgroup::forSpec(sub("freeze"), "id");
  cgroup.create();
  int ticks[2];
  ASSERT_EQ(::pipe2(ticks, O_CLOEXEC | O_NONBLOCK), 0);
  const pid_t pid = spawn([&] {
    ::close(ticks[0]);
    const int flags = ::fcntl(ticks[1], F_GETFL);
    ::fcntl(ticks[1], F_SETFL, flags & ~O_NONBLOCK);
    for (;;) {
      if (::write(ticks[1], "t", 1) != 1) ::_exit(1);
      ::usleep(1000);
    }
  });
  ::close(ticks[1]);
  cgroup.join(pid);
  const auto drain = [&] {
    char buffer[4096];
    ssize_t total = 0, n;
    while ((n = ::read(ticks[0], buffer, sizeof buffer)) > 0)
      total += n;
    return total;
  };
  const auto waitForTick = [&] {
    pollfd p{ticks[0], POLLIN, 0};
    return ::poll(&p, 1, 2000) == 1 && drain() > 0;
  };
  ASSERT_TRUE(waitForTick());
  EXPECT_FALSE(cgroup.frozen());

  cgroup.setFrozen(true);
  EXPECT_TRUE(cgroup.frozen());
  const std::string freezer = v1Dir(cgroup, "freezer");
  if (!freezer.empty()) {
    EXPECT_EQ(readText(freezer + "/freezer.state"), "FROZEN");
  } else {
    EXPECT_NE(readText(unifiedDir(cgroup) + "/cgroup.events").find("frozen 1"), std::string::npos);
  }
  drain();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(drain(), 0) << "a frozen child kept running";

  cgroup.setFrozen(false);
  EXPECT_FALSE(cgroup.frozen());
  EXPECT_TRUE(waitForTick()) << "the thawed child did not resume";
  ::close(ticks[0]);
}

TEST_F(ContainerCgroupTest, UnifiedFreezerWhereNoV1Freezer) {
  auto cgroup = unifiedOnly("freeze-v2");
  ASSERT_TRUE(cgroup) << "no unified (cgroup2) hierarchy mounted: a node of monocri has one";
  cgroup->create();
  const pid_t pid = sleeper();
  cgroup->join(pid);
  EXPECT_EQ(cgroup->pids(), std::vector<pid_t>{pid});
  cgroup->setFrozen(true);
  EXPECT_TRUE(cgroup->frozen());
  EXPECT_EQ(readText(unifiedDir(*cgroup) + "/cgroup.freeze"), "1");
  cgroup->setFrozen(false);
  EXPECT_FALSE(cgroup->frozen());
  EXPECT_NE(readText(unifiedDir(*cgroup) + "/cgroup.events").find("frozen 0"), std::string::npos);
}

const std::vector<std::pair<const char*, int>> kNullAndZero = {{"/dev/null", O_RDWR},
                                                               {"/dev/zero", O_RDONLY}};

TEST_F(ContainerCgroupTest, V1DevicesDenyAllButTheListed) {
  auto cgroup = ContainerCgroup::forSpec(sub("devices"), "id");
  const std::string devices = v1Dir(cgroup, "devices");
  ASSERT_FALSE(devices.empty()) << "no cgroup v1 devices hierarchy on this hybrid host";
  cgroup.create();
  // Outside the cgroup both open: what the child sees below is the cgroup's doing.
  for (const auto& [path, flags] : kNullAndZero) {
    const int fd = ::open(path, flags | O_CLOEXEC);
    EXPECT_GE(fd, 0) << path;
    if (fd >= 0) ::close(fd);
  }
  cgroup.apply(Json::parse(R"({"devices": [
      {"allow": false, "access": "rwm"},
      {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})"));
  EXPECT_EQ(readText(devices + "/devices.list"), "c 1:3 rwm");
  EXPECT_EQ(opensInside(cgroup, kNullAndZero), (std::vector<int>{0, EPERM}));

  // The last matching rule wins: everything, then /dev/zero denied.
  cgroup.apply(Json::parse(R"({"devices": [
      {"allow": false, "access": "rwm"},
      {"allow": true, "type": "a", "major": null, "minor": -1},
      {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "rwm"}]})"));
  EXPECT_EQ(opensInside(cgroup, kNullAndZero), (std::vector<int>{0, EPERM}));
  EXPECT_EQ(opensInside(cgroup, {{"/dev/full", O_WRONLY}}), std::vector<int>{0});

  // A list without a leading deny-all still starts from deny-all (a new cgroup allows all).
  auto fresh = ContainerCgroup::forSpec(sub("devices-fresh"), "id");
  fresh.create();
  EXPECT_EQ(opensInside(fresh, kNullAndZero), (std::vector<int>{0, 0}));
  fresh.apply(Json::parse(R"({"devices": [
      {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})"));
  EXPECT_EQ(opensInside(fresh, kNullAndZero), (std::vector<int>{0, EPERM}));
}

TEST_F(ContainerCgroupTest, V2DevicesAsAnEbpfProgram) {
  auto cgroup = unifiedOnly("ebpf");
  ASSERT_TRUE(cgroup) << "no unified (cgroup2) hierarchy mounted: a node of monocri has one";
  cgroup->create();
  cgroup->apply(Json::parse(R"({"devices": [
      {"allow": false, "access": "rwm"},
      {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})"));
  EXPECT_EQ(opensInside(*cgroup, kNullAndZero), (std::vector<int>{0, EPERM}));

  // Applied again (an update): the new program replaces the old one, which denied /dev/zero.
  cgroup->apply(Json::parse(R"({"devices": [
      {"allow": false, "access": "rwm"},
      {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
      {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"}]})"));
  EXPECT_EQ(opensInside(*cgroup, {{"/dev/null", O_RDWR},
                                  {"/dev/zero", O_RDONLY},
                                  {"/dev/zero", O_WRONLY},
                                  {"/dev/full", O_RDONLY}}),
            (std::vector<int>{0, 0, EPERM, EPERM}));

  // The last matching rule wins; wildcard type and numbers.
  cgroup->apply(Json::parse(R"({"devices": [
      {"allow": false, "access": "rwm"},
      {"allow": true, "type": "a"},
      {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "rwm"}]})"));
  EXPECT_EQ(opensInside(*cgroup,
                        {{"/dev/null", O_RDWR}, {"/dev/zero", O_RDONLY}, {"/dev/full", O_WRONLY}}),
            (std::vector<int>{0, EPERM, 0}));
  cgroup->apply(Json::parse(R"({"devices": [
      {"allow": false, "access": "rwm"},
      {"allow": true, "type": "c", "major": 1, "minor": -1, "access": "rw"},
      {"allow": false, "type": "b", "major": 1, "access": "rwm"}]})"));
  EXPECT_EQ(
      opensInside(*cgroup, {{"/dev/null", O_RDWR}, {"/dev/zero", O_RDONLY}, {"/dev/tty", O_RDWR}}),
      (std::vector<int>{0, 0, EPERM}));

  // Anything no rule matches is denied.
  cgroup->apply(Json::parse(R"({"devices": [
      {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})"));
  EXPECT_EQ(opensInside(*cgroup, kNullAndZero), (std::vector<int>{0, EPERM}));
}

TEST_F(ContainerCgroupTest, RemoveLeavesNothing) {
  auto cgroup = ContainerCgroup::forSpec(sub("gone"), "id");
  cgroup.create();
  const auto dirs = directoriesOf(cgroup);
  for (const auto& dir : dirs)
    ASSERT_EQ(::mkdir((dir.path + "/inner").c_str(), 0755), 0);
  cgroup.remove();
  for (const auto& dir : dirs)
    EXPECT_FALSE(isDirectory(dir.path)) << dir.path;
  cgroup.remove();  // already gone: fine

  // A process inside: removal waits about a second, then names the directory.
  cgroup.create();
  const pid_t pid = sleeper();
  cgroup.join(pid);
  const auto start = std::chrono::steady_clock::now();
  const std::string error = errorOf([&] { cgroup.remove(); });
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_NE(error.find(sub("gone")), std::string::npos) << error;
  EXPECT_GE(waited, std::chrono::milliseconds(900));
  EXPECT_LT(waited, std::chrono::milliseconds(3000));
  // Killed (and being reaped meanwhile): removal rides out its exit.
  ::kill(pid, SIGKILL);
  std::thread reaper([&] { reap(pid); });
  cgroup.remove();
  reaper.join();
  for (const auto& dir : dirs)
    EXPECT_FALSE(isDirectory(dir.path)) << dir.path;
}

}  // namespace
}  // namespace monocri::runtime
