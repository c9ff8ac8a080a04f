// ProcessSecurity: the spec's process object checked when it is read, and applied for real in
// forked children whose /proc/self/status is sent back and compared mask by mask.
#include "oci/runtime/ProcessSecurity.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/capability.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "oci/runtime/RuntimeError.h"

namespace monocri::runtime {
namespace {

using nlohmann::json;

// Runs `body` in a forked child and returns what it returned, or "error: <what>" if it threw.
std::string inChild(const std::function<std::string()>& body) {
  int fds[2];
  EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    try {
      out = body();
    } catch (const std::exception& e) {
      out = std::string("error: ") + e.what();
    }
    for (size_t done = 0; done < out.size();) {
      ssize_t n = write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) _exit(2);
      done += static_cast<size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string result;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof(buffer))) > 0)
    result.append(buffer, n);
  close(fds[0]);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  return result;
}

std::string readFile(const char* path) {
  std::string text;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0)
    text.append(buffer, n);
  close(fd);
  return text;
}

// The value of "Key:\t..." in a /proc status text, trailing blanks removed.
std::string field(const std::string& status, const std::string& key) {
  auto at = status.find("\n" + key + ":");
  if (at == std::string::npos) return "<missing " + key + ">";
  at += key.size() + 2;
  auto end = status.find('\n', at);
  std::string value = status.substr(at, end - at);
  value.erase(0, value.find_first_not_of(" \t"));
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
    value.pop_back();
  return value;
}

std::string parseError(const json& process) {
  try {
    ProcessSecurity::fromSpec(process);
  } catch (const RuntimeError& e) {
    return e.what();
  }
  return "no error";
}

void applyAll(const ProcessSecurity& security) {
  security.applyRlimits();
  security.applyBoundingSet();
  security.switchUser();
  security.applyCapabilities();
  security.applyNoNewPrivileges();
}

TEST(ProcessSecurityTest, UnknownCapabilityIsNamed) {
  EXPECT_EQ(parseError({{"capabilities", {{"bounding", {"CAP_CHOWN", "CAP_FOO"}}}}}),
            "process.capabilities.bounding: unknown capability CAP_FOO");
  EXPECT_EQ(parseError({{"capabilities", {{"ambient", {"CAP_BAR"}}}}}),
            "process.capabilities.ambient: unknown capability CAP_BAR");
}

TEST(ProcessSecurityTest, OnlyExactCapabilityNames) {
  // libcap's cap_from_name takes all of these; the spec's names are exact.
  for (const char* name : {"cap_chown", "CAP_CHOWN2", "12", "CHOWN", "CAP_", "CAP_chown", "all"}) {
    EXPECT_NE(parseError({{"capabilities", {{"effective", {name}}}}}).find("unknown capability"),
              std::string::npos)
        << name;
  }
  EXPECT_EQ(parseError({{"capabilities", {{"effective", {"CAP_CHECKPOINT_RESTORE"}}}}}),
            "no error");
}

TEST(ProcessSecurityTest, UnknownRlimitIsNamed) {
  EXPECT_EQ(parseError({{"rlimits", {{{"type", "RLIMIT_FOO"}, {"hard", 1}, {"soft", 1}}}}}),
            "process.rlimits[0].type: unknown rlimit RLIMIT_FOO");
}

TEST(ProcessSecurityTest, HostileValuesNameTheField) {
  const std::pair<json, std::string> cases[] = {
      {json::array(), "process: expected an object"},
      {{{"user", {{"uid", "0"}}}}, "process.user.uid: expected an unsigned integer"},
      {{{"user", {{"uid", -1}}}}, "process.user.uid: expected an unsigned integer"},
      {{{"user", {{"uid", 4294967295u}}}}, "process.user.uid: 4294967295 is not a valid id"},
      {{{"user", {{"gid", 1.5}}}}, "process.user.gid: expected an unsigned integer"},
      {{{"user", {{"umask", 01000}}}}, "process.user.umask: 1000 is not a file mode mask"},
      {{{"user", {{"additionalGids", 10}}}}, "process.user.additionalGids: expected an array"},
      {{{"user", {{"additionalGids", {10, "20"}}}}},
       "process.user.additionalGids[1]: expected an unsigned integer"},
      {{{"user", "root"}}, "process.user: expected an object"},
      {{{"capabilities", {{"effective", "CAP_CHOWN"}}}},
       "process.capabilities.effective: expected an array of names"},
      {{{"capabilities", {{"permitted", {"CAP_CHOWN", 1}}}}},
       "process.capabilities.permitted[1]: expected a string"},
      {{{"capabilities", true}}, "process.capabilities: expected an object"},
      {{{"rlimits", json::object()}}, "process.rlimits: expected an array"},
      {{{"rlimits", {7}}}, "process.rlimits[0]: expected an object"},
      {{{"rlimits", {{{"type", 7}, {"hard", 1}, {"soft", 1}}}}},
       "process.rlimits[0].type: expected a string"},
      {{{"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", "1"}, {"soft", 1}}}}},
       "process.rlimits[0].hard: expected an unsigned integer"},
      {{{"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1}}}}},
       "process.rlimits[0].soft: missing"},
      {{{"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1}, {"soft", 2}}}}},
       "process.rlimits[0]: RLIMIT_NOFILE soft limit 2 is above the hard limit 1"},
      {{{"rlimits",
         {{{"type", "RLIMIT_CORE"}, {"hard", 1}, {"soft", 1}},
          {{"type", "RLIMIT_CORE"}, {"hard", 1}, {"soft", 1}}}}},
       "process.rlimits[1]: RLIMIT_CORE set twice"},
      {{{"noNewPrivileges", "yes"}}, "process.noNewPrivileges: expected a boolean"},
  };
  for (const auto& [process, message] : cases) {
    EXPECT_EQ(parseError(process), message) << process.dump();
  }
  // A hostile name is quoted short and printable.
  std::string name = "CAP_\x01" + std::string(500, 'X');
  std::string error = parseError({{"capabilities", {{"bounding", {name}}}}});
  EXPECT_LT(error.size(), 150u);
  EXPECT_EQ(error.find('\x01'), std::string::npos);
}

TEST(ProcessSecurityTest, KnownCapabilityNames) {
  auto names = knownCapabilityNames();
  EXPECT_GE(names.size(), 41u);  // libcap 2.66 knows up to CAP_CHECKPOINT_RESTORE (40)
  EXPECT_EQ(names.front(), "CAP_CHOWN");
  EXPECT_NE(std::find(names.begin(), names.end(), "CAP_SYS_ADMIN"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "CAP_CHECKPOINT_RESTORE"), names.end());
  for (const auto& name : names)
    EXPECT_EQ(name.rfind("CAP_", 0), 0u) << name;
}

TEST(ProcessSecurityTest, UserCapabilitiesAndNoNewPrivilegesApplied) {
  auto security = ProcessSecurity::fromSpec({
      {"user", {{"uid", 1000}, {"gid", 1000}, {"additionalGids", {10, 20}}, {"umask", 027}}},
      {"capabilities",
       {{"bounding", {"CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"}},
        {"effective", {"CAP_NET_BIND_SERVICE", "CAP_CHOWN"}},
        {"permitted", {"CAP_NET_BIND_SERVICE", "CAP_CHOWN"}},
        {"inheritable", {"CAP_NET_BIND_SERVICE"}},
        {"ambient", {"CAP_NET_BIND_SERVICE"}}}},
      {"noNewPrivileges", true},
  });
  EXPECT_TRUE(security.noNewPrivileges());
  std::string status = inChild([&] {
    applyAll(security);
    return readFile("/proc/self/status");
  });
  ASSERT_EQ(status.rfind("error: ", 0), std::string::npos) << status;
  EXPECT_EQ(field(status, "CapEff"), "0000000000000401");  // CHOWN (0), NET_BIND_SERVICE (10)
  EXPECT_EQ(field(status, "CapPrm"), "0000000000000401");
  EXPECT_EQ(field(status, "CapInh"), "0000000000000400");
  EXPECT_EQ(field(status, "CapBnd"), "0000000000000421");  // and KILL (5)
  EXPECT_EQ(field(status, "CapAmb"), "0000000000000400");
  EXPECT_EQ(field(status, "Uid"), "1000\t1000\t1000\t1000");
  EXPECT_EQ(field(status, "Gid"), "1000\t1000\t1000\t1000");
  EXPECT_EQ(field(status, "Groups"), "10 20");
  EXPECT_EQ(field(status, "NoNewPrivs"), "1");
  EXPECT_EQ(field(status, "Umask"), "0027");
}

TEST(ProcessSecurityTest, AmbientNotInheritableIsSkippedAsRunc) {
  auto security = ProcessSecurity::fromSpec({
      {"user", {{"uid", 1000}, {"gid", 1000}}},
      {"capabilities",
       {{"bounding", {"CAP_KILL"}},
        {"effective", {"CAP_KILL"}},
        {"permitted", {"CAP_KILL"}},
        {"ambient", {"CAP_KILL"}}}},
  });
  std::string status = inChild([&] {
    applyAll(security);
    return readFile("/proc/self/status");
  });
  ASSERT_EQ(status.rfind("error: ", 0), std::string::npos) << status;
  EXPECT_EQ(field(status, "CapEff"), "0000000000000020");
  EXPECT_EQ(field(status, "CapAmb"), "0000000000000000");
  EXPECT_EQ(field(status, "NoNewPrivs"), "0");
  EXPECT_EQ(field(status, "Groups"), "");  // no additionalGids: supplementary groups cleared
}

TEST(ProcessSecurityTest, NoCapabilitiesObjectLeavesTheSetsAlone) {
  auto security = ProcessSecurity::fromSpec({{"user", {{"uid", 0}, {"gid", 0}}}});
  std::string before = readFile("/proc/self/status");
  std::string status = inChild([&] {
    applyAll(security);
    return readFile("/proc/self/status");
  });
  for (const char* set : {"CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"}) {
    EXPECT_EQ(field(status, set), field(before, set)) << set;
  }
}

TEST(ProcessSecurityTest, SoftRlimitLowered) {
  rlimit current{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &current), 0);
  auto security = ProcessSecurity::fromSpec(
      {{"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", current.rlim_max}, {"soft", 64}}}}});
  std::string result = inChild([&] {
    security.applyRlimits();
    rlimit now{};
    getrlimit(RLIMIT_NOFILE, &now);
    return std::to_string(now.rlim_cur) + " " + std::to_string(now.rlim_max);
  });
  EXPECT_EQ(result, "64 " + std::to_string(current.rlim_max));
}

TEST(ProcessSecurityTest, RaisingTheHardRlimitIsReported) {
  rlimit current{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &current), 0);
  ASSERT_NE(current.rlim_max, RLIM_INFINITY);
  auto security = ProcessSecurity::fromSpec({{"rlimits",
                                              {{{"type", "RLIMIT_NOFILE"},
                                                {"hard", current.rlim_max + 1},
                                                {"soft", current.rlim_cur}}}}});
  std::string result = inChild([&] {
    // Without CAP_SYS_RESOURCE, as on this host's root, whatever the host.
    cap_t caps = cap_get_proc();
    cap_value_t resource = CAP_SYS_RESOURCE;
    cap_set_flag(caps, CAP_EFFECTIVE, 1, &resource, CAP_CLEAR);
    cap_set_proc(caps);
    cap_free(caps);
    security.applyRlimits();
    return std::string("applied");
  });
  EXPECT_EQ(result, fmt::format("error: setrlimit RLIMIT_NOFILE soft {} hard {}: Operation not "
                                "permitted (current soft {} hard {}; raising a hard limit needs "
                                "CAP_SYS_RESOURCE)",
                                current.rlim_cur, current.rlim_max + 1, current.rlim_cur,
                                current.rlim_max));
}

TEST(ProcessSecurityTest, SetgroupsDeniedInAUserNamespaceIsSkipped) {
  auto security =
      ProcessSecurity::fromSpec({{"user", {{"uid", 0}, {"gid", 0}, {"additionalGids", {10}}}}});
  std::string result = inChild([&] {
    if (unshare(CLONE_NEWUSER) != 0) return std::string("unshare failed");
    auto put = [](const char* path, const char* text) {
      int fd = open(path, O_WRONLY | O_CLOEXEC);
      bool ok = fd >= 0 && write(fd, text, strlen(text)) == static_cast<ssize_t>(strlen(text));
      if (fd >= 0) close(fd);
      return ok;
    };
    if (!put("/proc/self/setgroups", "deny") || !put("/proc/self/uid_map", "0 0 1") ||
        !put("/proc/self/gid_map", "0 0 1")) {
      return std::string("user namespace set-up failed");
    }
    security.switchUser();
    return std::string("switched");
  });
  EXPECT_EQ(result, "switched");
}

}  // namespace
}  // namespace monocri::runtime
