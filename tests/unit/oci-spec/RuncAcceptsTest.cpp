// Specs built by buildContainerSpec, run by the real runc (1.1.5 here) on a busybox rootfs: the
// document is accepted, and what the container sees (its user, groups, capabilities, seccomp
// mode, limits, mounts) is what the spec says. Needs root: run through tests/harness/in-namespace
// (private mount and network namespaces). The container's cgroup is a relative leaf, so runc
// makes it under its own cgroup in each hierarchy, and removes it when the container is deleted.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "SpecTestSupport.h"
#include "oci/spec/Capabilities.h"
#include "oci/spec/ContainerSpec.h"

namespace monocri::oci {
namespace {

using Json = nlohmann::json;
using testing::readFile;
using testing::TempDir;
using testing::writeFile;

constexpr const char* kRunc = "/usr/sbin/runc";
constexpr const char* kBusybox = "/bin/busybox";

struct RunResult {
  int exitCode = -1;
  std::string output;  // stdout and stderr together
};

// Runs argv with stdin from /dev/null, collecting what it writes.
RunResult run(const std::vector<std::string>& argv) {
  RunResult result;
  int pipeFds[2];
  if (pipe2(pipeFds, O_CLOEXEC) != 0) return result;
  const pid_t pid = fork();
  if (pid == 0) {
    const int devNull = open("/dev/null", O_RDONLY);
    dup2(devNull, 0);
    dup2(pipeFds[1], 1);
    dup2(pipeFds[1], 2);
    std::vector<char*> args;
    for (const auto& arg : argv)
      args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(pipeFds[1]);
  char buffer[4096];
  ssize_t n;
  while ((n = read(pipeFds[0], buffer, sizeof(buffer))) > 0)
    result.output.append(buffer, static_cast<size_t>(n));
  close(pipeFds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

// Where a relative cgroup path lands in each mounted hierarchy: <mount>/<this process's cgroup
// there>/<relative>.
std::vector<std::string> cgroupDirectories(const std::string& relative) {
  std::vector<std::pair<std::string, std::string>> own;  // controllers ("" for v2), path
  std::istringstream cgroups(readFile("/proc/self/cgroup"));
  for (std::string line; std::getline(cgroups, line);) {
    const auto first = line.find(':');
    const auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    own.emplace_back(line.substr(first + 1, second - first - 1), line.substr(second + 1));
  }
  std::vector<std::string> dirs;
  std::istringstream mounts(readFile("/proc/self/mountinfo"));
  for (std::string line; std::getline(mounts, line);) {
    std::istringstream fields(line);
    std::vector<std::string> parts;
    for (std::string part; fields >> part;)
      parts.push_back(part);
    const auto dash = std::find(parts.begin(), parts.end(), "-");
    if (parts.size() < 5 || dash == parts.end() || dash + 1 == parts.end()) continue;
    const std::string& type = *(dash + 1);
    const std::string options = dash + 3 < parts.end() ? *(dash + 3) : "";
    for (const auto& [controllers, path] : own) {
      bool match = false;
      if (type == "cgroup2") {
        match = controllers.empty();
      } else if (type == "cgroup" && !controllers.empty()) {
        match =
            ("," + options + ",").find("," + controllers.substr(0, controllers.find(',')) + ",") !=
            std::string::npos;
      }
      if (match) dirs.push_back(parts[4] + (path == "/" ? "" : path) + "/" + relative);
    }
  }
  return dirs;
}

class RuncAcceptsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // `make deps` installs both and ctest runs this through tests/harness/in-namespace as root:
    // a missing piece is a broken setup, not a reason to pass.
    ASSERT_EQ(getuid(), 0u) << "runc needs root (run through tests/harness/in-namespace)";
    ASSERT_EQ(access(kRunc, X_OK), 0) << kRunc << " is missing (make deps)";
    ASSERT_EQ(access(kBusybox, X_OK), 0) << kBusybox << " is missing (make deps)";
    const std::string rootfs = dir_ / "bundle/rootfs";
    std::filesystem::create_directories(rootfs + "/bin");
    std::filesystem::copy_file(kBusybox, rootfs + "/bin/busybox");
    writeFile(rootfs + "/etc/passwd",
              "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n");
    writeFile(rootfs + "/etc/group", "root:x:0:\napp:x:1000:\nwheel:x:10:app\n");
    writeFile(dir_ / "pod/hostname", "web-0\n");
    writeFile(dir_ / "pod/hosts", "127.0.0.1 localhost\n10.1.2.3 web-0 # from the pod\n");
    writeFile(dir_ / "pod/resolv.conf", "nameserver 10.96.0.10\n");

    pod_.mutable_metadata()->set_name("web-0");
    pod_.mutable_metadata()->set_namespace_("default");
    pod_.set_hostname("web-0");
    config_.mutable_metadata()->set_name("probe");
    auto* options =
        config_.mutable_linux()->mutable_security_context()->mutable_namespace_options();
    // The harness's network and IPC namespaces stand for the node's.
    options->set_network(runtime::v1::NODE);
    options->set_ipc(runtime::v1::NODE);
    options->set_pid(runtime::v1::CONTAINER);
    config_.mutable_linux()->mutable_security_context()->mutable_seccomp()->set_profile_type(
        runtime::v1::SecurityProfile::RuntimeDefault);
    config_.mutable_linux()->mutable_resources()->set_oom_score_adj(-997);
    auto* hugepage = config_.mutable_linux()->mutable_resources()->add_hugepage_limits();
    hugepage->set_page_size("2MB");

    in_.containerId = id_;
    in_.config = &config_;
    in_.podConfig = &pod_;
    in_.rootfsPath = rootfs;
    in_.imageName = "busybox";
    in_.pod.podId = std::string(64, 'e');
    in_.pod.hostNetwork = in_.pod.hostIpc = true;
    in_.pod.hostnamePath = dir_ / "pod/hostname";
    in_.pod.hostsPath = dir_ / "pod/hosts";
    in_.pod.resolvConfPath = dir_ / "pod/resolv.conf";
    in_.host = probeHostLimits();
    in_.defaultRlimits = {{RLIMIT_NOFILE, {1048576, 1048576}}};
  }

  void TearDown() override {
    if (!created_) return;
    run({kRunc, "--root", dir_ / "runc", "delete", "--force", id_});
    // runc removes what it made: no cgroup of the container is left in any hierarchy.
    for (const auto& dir : cgroupDirectories(cgroupLeaf())) {
      EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
    }
  }

  std::string cgroupLeaf() const { return "monocri-spec-test-" + id_.substr(0, 12); }

  // Builds the spec, writes it and runs the container to its end.
  RunResult runContainer(const std::string& script) {
    in_.imageConfig = Json{{"Entrypoint", {"/bin/busybox", "sh", "-c"}}, {"Cmd", {script}}};
    const auto status = buildContainerSpec(in_, spec_);
    EXPECT_TRUE(status.isOk()) << status.toString();
    if (!status.isOk()) return {};
    // A relative leaf: runc nests it under its own cgroup in each hierarchy and removes it.
    spec_.config["linux"]["cgroupsPath"] = cgroupLeaf();
    writeFile(dir_ / "bundle/config.json", spec_.config.dump(2));
    created_ = true;
    return run({kRunc, "--root", dir_ / "runc", "run", "--bundle", dir_ / "bundle", id_});
  }

  TempDir dir_;
  const std::string id_ = std::string(56, '7') + "0badc0de";
  bool created_ = false;
  runtime::v1::PodSandboxConfig pod_;
  runtime::v1::ContainerConfig config_;
  ContainerSpecInputs in_;
  ContainerSpec spec_;
};

std::string hexMask(CapabilityMask mask) {
  char text[32];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(mask));
  return text;
}

TEST_F(RuncAcceptsTest, ImageUserRuntimeDefaultSeccompAndClampedLimits) {
  const auto result = runContainer(
      "id; grep -E '^(CapBnd|Seccomp):' /proc/self/status; ulimit -n; "
      "cat /proc/self/oom_score_adj; cat /etc/hosts; cat /proc/self/cgroup");
  ASSERT_EQ(result.exitCode, 0) << result.output;
  // The image has no User: root, with root's groups.
  EXPECT_NE(result.output.find("uid=0(root) gid=0(root) groups=0(root)"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("CapBnd:\t" + hexMask(defaultCapabilities())), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("Seccomp:\t2"), std::string::npos) << result.output;
  // RLIMIT_NOFILE as clamped to the daemon's own hard limit, oom_score_adj to its floor.
  const auto wantedFiles = std::min<rlim_t>(1048576, in_.host.rlimits[RLIMIT_NOFILE].second);
  EXPECT_NE(result.output.find("\n" + std::to_string(wantedFiles) + "\n"), std::string::npos)
      << result.output;
  EXPECT_NE(
      result.output.find("\n" + std::to_string(std::max(-997, in_.host.oomScoreAdjFloor)) + "\n"),
      std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("10.1.2.3 web-0 # from the pod"), std::string::npos)
      << result.output;
  // Nested under this process's own cgroup.
  EXPECT_NE(result.output.find("/" + cgroupLeaf() + "\n"), std::string::npos) << result.output;
}

TEST_F(RuncAcceptsTest, NamedImageUserWithGroups) {
  config_.add_command("/bin/busybox");
  config_.add_args("id");
  in_.imageConfig = Json{{"User", "app"}};
  const auto built = buildContainerSpec(in_, spec_);
  ASSERT_TRUE(built.isOk()) << built.toString();
  spec_.config["linux"]["cgroupsPath"] = cgroupLeaf();
  writeFile(dir_ / "bundle/config.json", spec_.config.dump(2));
  created_ = true;
  const auto result =
      run({kRunc, "--root", dir_ / "runc", "run", "--bundle", dir_ / "bundle", id_});
  ASSERT_EQ(result.exitCode, 0) << result.output;
  EXPECT_NE(result.output.find("uid=1000(app) gid=1000(app) groups=10(wheel),1000(app)"),
            std::string::npos)
      << result.output;
}

// A process holding network, IPC and UTS namespaces, as the daemon pins a pod's.
class PodNamespaces {
 public:
  PodNamespaces() {
    int ready[2];
    if (pipe(ready) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(ready[0]);
      const char ok = unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) == 0 ? '1' : '0';
      (void)!write(ready[1], &ok, 1);
      pause();
      _exit(0);
    }
    close(ready[1]);
    char ok = '0';
    if (read(ready[0], &ok, 1) != 1) ok = '0';
    close(ready[0]);
    ready_ = ok == '1';
  }
  ~PodNamespaces() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool ready() const { return ready_; }
  std::string path(const char* type) const {
    return "/proc/" + std::to_string(pid_) + "/ns/" + type;
  }

 private:
  pid_t pid_ = -1;
  bool ready_ = false;
};

TEST_F(RuncAcceptsTest, PodNamespacesHostnameAndSysctl) {
  PodNamespaces pod;
  ASSERT_TRUE(pod.ready());
  auto* options = config_.mutable_linux()->mutable_security_context()->mutable_namespace_options();
  options->set_network(runtime::v1::POD);
  options->set_ipc(runtime::v1::POD);
  in_.pod.hostNetwork = in_.pod.hostIpc = false;
  in_.pod.netnsPath = pod.path("net");
  in_.pod.ipcnsPath = pod.path("ipc");
  in_.pod.utsnsPath = pod.path("uts");
  (*pod_.mutable_linux()->mutable_sysctls())["net.ipv4.ip_unprivileged_port_start"] = "80";
  const auto result = runContainer(
      "hostname; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; readlink /proc/self/ns/uts; "
      "readlink /proc/self/ns/net; grep ' /dev/shm ' /proc/self/mounts");
  ASSERT_EQ(result.exitCode, 0) << result.output;
  EXPECT_NE(result.output.find("web-0\n80\n"), std::string::npos) << result.output;
  char link[64] = {};
  ASSERT_GT(readlink(pod.path("uts").c_str(), link, sizeof(link) - 1), 0);
  EXPECT_NE(result.output.find(link), std::string::npos) << result.output;
  std::fill(std::begin(link), std::end(link), '\0');
  ASSERT_GT(readlink(pod.path("net").c_str(), link, sizeof(link) - 1), 0);
  EXPECT_NE(result.output.find(link), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("shm /dev/shm tmpfs"), std::string::npos) << result.output;
}

TEST_F(RuncAcceptsTest, PrivilegedContainer) {
  pod_.mutable_linux()->mutable_security_context()->set_privileged(true);
  config_.mutable_linux()->mutable_security_context()->set_privileged(true);
  const auto result = runContainer(
      "grep -E '^(CapBnd|Seccomp):' /proc/self/status; test -c /dev/null && echo has-null; "
      "grep ' /sys ' /proc/self/mounts");
  ASSERT_EQ(result.exitCode, 0) << result.output;
  EXPECT_NE(result.output.find("CapBnd:\t" + hexMask(in_.host.capabilities)), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("Seccomp:\t0"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("has-null"), std::string::npos);
  EXPECT_NE(result.output.find("sysfs rw"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace monocri::oci
