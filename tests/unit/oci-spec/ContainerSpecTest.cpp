// The whole config.json for requests shaped like kubelet's, on a host shaped like this one
// (hybrid cgroups, no CAP_SYS_RESOURCE, hugetlb only in the unified hierarchy).
#include "oci/spec/ContainerSpec.h"

#include <gtest/gtest.h>
#include <sys/capability.h>
#include <sys/resource.h>

#include "SpecTestSupport.h"
#include "oci/spec/Capabilities.h"
#include "oci/spec/ProcessArgs.h"
#include "oci/spec/SpecSecurity.h"

namespace monocri::oci {
namespace {

using grpc::StatusCode;
using Json = nlohmann::json;
using testing::contains;
using testing::destinations;
using testing::mountAt;
using testing::strings;
using testing::TempDir;
using testing::writeFile;
using Strings = std::vector<std::string>;

const std::string kId = std::string(32, 'a') + std::string(32, '0');

class ContainerSpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    writeFile(rootfs_ / "etc/passwd",
              "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx:/var/cache/nginx:/bin/false\n");
    writeFile(rootfs_ / "etc/group", "root:x:0:\nnginx:x:101:\nwww:x:33:nginx\n");

    auto* pm = pod_.mutable_metadata();
    pm->set_name("web-0");
    pm->set_namespace_("shop");
    pm->set_uid("2b6f-uid");
    pod_.set_hostname("web-0");
    pod_.mutable_linux()->set_cgroup_parent("kubepods/besteffort/pod2b6f");
    (*pod_.mutable_linux()->mutable_sysctls())["net.ipv4.ip_unprivileged_port_start"] = "0";

    config_.mutable_metadata()->set_name("nginx");
    config_.mutable_image()->set_image("docker.io/library/nginx:1.25");
    config_.add_args("-g");
    config_.add_args("daemon off;");
    auto* env = config_.add_envs();
    env->set_key("MODE");
    env->set_value("prod");
    (*config_.mutable_annotations())["io.kubernetes.container.hash"] = "abc123";
    (*config_.mutable_annotations())["io.kubernetes.cri.sandbox-id"] = "spoofed";
    auto* linux = config_.mutable_linux();
    auto* resources = linux->mutable_resources();
    resources->set_cpu_shares(2);
    resources->set_cpu_period(100000);
    resources->set_memory_limit_in_bytes(128 << 20);
    resources->set_oom_score_adj(-997);
    auto* hugepage = resources->add_hugepage_limits();
    hugepage->set_page_size("2MB");
    hugepage->set_limit(0);
    auto* context = linux->mutable_security_context();
    context->mutable_namespace_options()->set_pid(runtime::v1::CONTAINER);
    context->mutable_seccomp()->set_profile_type(runtime::v1::SecurityProfile::RuntimeDefault);
    context->add_masked_paths("/proc/kcore");
    context->add_readonly_paths("/proc/sys");

    in_.containerId = kId;
    in_.config = &config_;
    in_.podConfig = &pod_;
    in_.imageConfig = Json{{"Env", {"PATH=/usr/local/sbin:/usr/sbin:/bin", "NGINX_VERSION=1.25"}},
                           {"Entrypoint", {"/docker-entrypoint.sh"}},
                           {"Cmd", {"nginx", "-g", "daemon off;"}},
                           {"User", "nginx"},
                           {"WorkingDir", "/srv"},
                           {"StopSignal", "SIGQUIT"}};
    in_.imageName = "docker.io/library/nginx:1.25";
    in_.imageRef = "sha256:" + std::string(64, 'f');
    in_.rootfsPath = rootfs_.path();
    in_.pod.podId = std::string(64, 'b');
    in_.pod.netnsPath = "/run/monocri/ns/net/web-0";
    in_.pod.ipcnsPath = "/run/monocri/ns/ipc/web-0";
    in_.pod.utsnsPath = "/run/monocri/ns/uts/web-0";
    in_.pod.hostnamePath = "/run/monocri/pods/web-0/hostname";
    in_.pod.hostsPath = "/run/monocri/pods/web-0/hosts";
    in_.pod.resolvConfPath = "/run/monocri/pods/web-0/resolv.conf";
    in_.pod.shmPath = "/run/monocri/pods/web-0/shm";
    in_.pod.cgroupParent = "kubepods/besteffort/pod2b6f";
    // This machine: everything but CAP_SYS_RESOURCE, floor 0, 20000 open files, hybrid.
    in_.host.capabilities = allKernelCapabilities() & ~(CapabilityMask{1} << CAP_SYS_RESOURCE);
    in_.host.oomScoreAdjFloor = 0;
    in_.host.rlimits[RLIMIT_NOFILE] = {20000, 20000};
    in_.host.swapAccounting = true;
    in_.defaultRlimits = {{RLIMIT_NOFILE, {1048576, 1048576}}};
  }

  grpc::Status build() { return buildContainerSpec(in_, spec_); }

  TempDir rootfs_;
  runtime::v1::PodSandboxConfig pod_;
  runtime::v1::ContainerConfig config_;
  ContainerSpecInputs in_;
  ContainerSpec spec_;
};

TEST_F(ContainerSpecTest, KubeletLikeRequest) {
  const auto status = build();
  ASSERT_TRUE(status.isOk()) << status.toString();
  const Json& c = spec_.config;
  EXPECT_EQ(c["ociVersion"], "1.0.2-dev");
  EXPECT_EQ(c["root"], (Json{{"path", rootfs_.path()}, {"readonly", false}}));
  EXPECT_EQ(c["hostname"], "web-0");

  const Json& process = c["process"];
  EXPECT_EQ(strings(process["args"]), (Strings{"/docker-entrypoint.sh", "-g", "daemon off;"}));
  EXPECT_EQ(strings(process["env"]),
            (Strings{"PATH=/usr/local/sbin:/usr/sbin:/bin", "HOSTNAME=web-0", "NGINX_VERSION=1.25",
                     "MODE=prod"}));
  EXPECT_EQ(process["cwd"], "/srv");
  EXPECT_EQ(process["terminal"], false);
  EXPECT_EQ(process["user"],
            (Json{{"uid", 101}, {"gid", 101}, {"umask", 18}, {"additionalGids", {33, 101}}}));
  EXPECT_EQ(process["noNewPrivileges"], false);
  EXPECT_EQ(process["oomScoreAdj"], 0);
  EXPECT_EQ(process["rlimits"],
            Json::array({Json{{"type", "RLIMIT_NOFILE"}, {"soft", 20000}, {"hard", 20000}}}));
  EXPECT_EQ(strings(process["capabilities"]["bounding"]).size(), 14u);
  EXPECT_TRUE(process["capabilities"]["ambient"].empty());
  EXPECT_FALSE(process.contains("apparmorProfile"));

  EXPECT_EQ(spec_.uid, 101u);
  EXPECT_EQ(spec_.gid, 101u);
  EXPECT_EQ(spec_.additionalGids, (std::vector<uint32_t>{33, 101}));
  EXPECT_EQ(spec_.username, "nginx");
  EXPECT_EQ(spec_.stopSignal, "SIGQUIT");

  const Json& linux = c["linux"];
  EXPECT_EQ(linux["cgroupsPath"], "kubepods/besteffort/pod2b6f/monocri-" + kId);
  EXPECT_EQ(
      linux["namespaces"],
      Json::array(
          {Json{{"type", "pid"}}, Json{{"type", "network"}, {"path", "/run/monocri/ns/net/web-0"}},
           Json{{"type", "ipc"}, {"path", "/run/monocri/ns/ipc/web-0"}},
           Json{{"type", "uts"}, {"path", "/run/monocri/ns/uts/web-0"}}, Json{{"type", "mount"}}}));
  EXPECT_EQ(linux["resources"]["cpu"], (Json{{"shares", 2}, {"period", 100000}}));
  EXPECT_EQ(linux["resources"]["memory"], (Json{{"limit", 128 << 20}, {"swap", 128 << 20}}));
  EXPECT_FALSE(linux["resources"].contains("hugepageLimits"));
  EXPECT_EQ(linux["resources"]["devices"][0], (Json{{"allow", false}, {"access", "rwm"}}));
  EXPECT_EQ(linux["sysctl"], (Json{{"net.ipv4.ip_unprivileged_port_start", "0"}}));
  EXPECT_EQ(linux["maskedPaths"], Json::array({"/proc/kcore"}));
  EXPECT_EQ(linux["readonlyPaths"], Json::array({"/proc/sys"}));
  EXPECT_EQ(linux["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
  EXPECT_FALSE(linux.contains("rootfsPropagation"));

  EXPECT_EQ(destinations(c["mounts"]),
            (Strings{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
                     "/dev/shm", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}));
  EXPECT_EQ(mountAt(c["mounts"], "/dev/shm")["source"], "/run/monocri/pods/web-0/shm");

  const Json& annotations = c["annotations"];
  EXPECT_EQ(annotations["io.kubernetes.container.hash"], "abc123");
  EXPECT_EQ(annotations["io.kubernetes.cri.container-type"], "container");
  EXPECT_EQ(annotations["io.kubernetes.cri.sandbox-id"], std::string(64, 'b'));
  EXPECT_EQ(annotations["io.kubernetes.cri.sandbox-name"], "web-0");
  EXPECT_EQ(annotations["io.kubernetes.cri.sandbox-namespace"], "shop");
  EXPECT_EQ(annotations["io.kubernetes.cri.sandbox-uid"], "2b6f-uid");
  EXPECT_EQ(annotations["io.kubernetes.cri.container-name"], "nginx");
  EXPECT_EQ(annotations["io.kubernetes.cri.image-name"], "docker.io/library/nginx:1.25");
  EXPECT_EQ(annotations["io.monocri.image-ref"], in_.imageRef);

  // One sentence per clamp or dropped setting: hugepages, oom_score_adj, RLIMIT_NOFILE.
  ASSERT_EQ(spec_.warnings.size(), 3u) << ::testing::PrintToString(spec_.warnings);
  int hugepageWarnings = 0;
  for (const auto& warning : spec_.warnings)
    hugepageWarnings += warning.find("hugepage") != std::string::npos;
  EXPECT_EQ(hugepageWarnings, 1);
  // The document dumps: every string is UTF-8.
  EXPECT_NO_THROW((void)c.dump());
}

TEST_F(ContainerSpecTest, HostNetworkPod) {
  auto* options = config_.mutable_linux()->mutable_security_context()->mutable_namespace_options();
  options->set_network(runtime::v1::NODE);
  options->set_ipc(runtime::v1::NODE);
  options->set_pid(runtime::v1::NODE);
  (*pod_.mutable_linux()->mutable_sysctls()).clear();
  in_.pod.hostNetwork = in_.pod.hostIpc = in_.pod.hostPid = true;
  in_.pod.netnsPath = in_.pod.ipcnsPath = in_.pod.utsnsPath = in_.pod.shmPath = "";
  pod_.set_hostname("node-7");
  in_.pod.hostname = "";
  ASSERT_TRUE(build().isOk());
  const Json& c = spec_.config;
  EXPECT_FALSE(c.contains("hostname"));  // runc refuses one without a UTS namespace
  EXPECT_TRUE(contains(strings(c["process"]["env"]), "HOSTNAME=node-7"));
  EXPECT_EQ(c["linux"]["namespaces"], Json::array({Json{{"type", "mount"}}}));
  EXPECT_EQ(mountAt(c["mounts"], "/dev/shm")["source"], "/dev/shm");

  // A net.* sysctl would change the host's network now.
  (*pod_.mutable_linux()->mutable_sysctls())["net.core.somaxconn"] = "1024";
  EXPECT_EQ(build().code(), StatusCode::kInvalidArgument);
}

TEST_F(ContainerSpecTest, PrivilegedContainer) {
  config_.mutable_linux()->mutable_security_context()->set_privileged(true);
  auto status = build();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("privileged"), std::string::npos);

  pod_.mutable_linux()->mutable_security_context()->set_privileged(true);
  status = build();
  ASSERT_TRUE(status.isOk()) << status.toString();
  const Json& c = spec_.config;
  EXPECT_FALSE(c["linux"].contains("seccomp"));
  EXPECT_EQ(c["linux"]["resources"]["devices"],
            Json::array({Json{{"allow", true}, {"access", "rwm"}}}));
  EXPECT_FALSE(c["linux"]["devices"].empty());
  EXPECT_EQ(c["linux"]["maskedPaths"], Json::array());
  EXPECT_EQ(strings(mountAt(c["mounts"], "/sys")["options"]).back(), "rw");
  const auto bounding = strings(c["process"]["capabilities"]["bounding"]);
  EXPECT_TRUE(contains(bounding, "CAP_SYS_ADMIN"));
  EXPECT_FALSE(contains(bounding, "CAP_SYS_RESOURCE"));
  int capabilityWarnings = 0;
  for (const auto& warning : spec_.warnings)
    capabilityWarnings += warning.find("lacks CAP_SYS_RESOURCE") != std::string::npos;
  EXPECT_EQ(capabilityWarnings, 1);
}

TEST_F(ContainerSpecTest, KubeletCommandTtyAndSecurityContext) {
  config_.add_command("/bin/sh");
  config_.set_tty(true);
  config_.set_working_dir("/tmp");
  config_.set_stop_signal(runtime::v1::SIGNAL_SIGUSR1);
  auto* context = config_.mutable_linux()->mutable_security_context();
  context->mutable_run_as_user()->set_value(4000);
  context->mutable_run_as_group()->set_value(5000);
  context->add_supplemental_groups(6000);
  context->set_readonly_rootfs(true);
  context->set_no_new_privs(true);
  context->mutable_capabilities()->add_drop_capabilities("ALL");
  context->mutable_capabilities()->add_add_capabilities("NET_BIND_SERVICE");
  ASSERT_TRUE(build().isOk());
  const Json& process = spec_.config["process"];
  EXPECT_EQ(strings(process["args"]), (Strings{"/bin/sh", "-g", "daemon off;"}));
  EXPECT_EQ(process["terminal"], true);
  EXPECT_TRUE(contains(strings(process["env"]), "TERM=xterm"));
  EXPECT_EQ(process["cwd"], "/tmp");
  EXPECT_EQ(process["user"]["uid"], 4000);
  EXPECT_EQ(process["user"]["gid"], 5000);
  EXPECT_EQ(process["user"]["additionalGids"], Json::array({5000, 6000}));
  EXPECT_EQ(process["noNewPrivileges"], true);
  EXPECT_EQ(strings(process["capabilities"]["effective"]), (Strings{"CAP_NET_BIND_SERVICE"}));
  EXPECT_EQ(spec_.config["root"]["readonly"], true);
  EXPECT_EQ(strings(mountAt(spec_.config["mounts"], "/etc/hosts")["options"]).back(), "ro");
  EXPECT_EQ(spec_.stopSignal, "SIGUSR1");
  EXPECT_EQ(spec_.username, "");
  // Without CAP_SYS_ADMIN or CAP_SYS_CHROOT their syscalls stay closed.
  bool chrootAllowed = false;
  for (const auto& rule : spec_.config["linux"]["seccomp"]["syscalls"]) {
    for (const auto& name : rule["names"])
      chrootAllowed = chrootAllowed || name == "chroot";
  }
  EXPECT_FALSE(chrootAllowed);
}

// crictl's smallest container config: no linux section at all.
TEST_F(ContainerSpecTest, MinimalCrictlConfig) {
  config_.clear_linux();
  (*pod_.mutable_linux()->mutable_sysctls()).clear();
  const auto status = build();
  ASSERT_TRUE(status.isOk()) << status.toString();
  const Json& c = spec_.config;
  EXPECT_FALSE(c["process"].contains("oomScoreAdj"));
  EXPECT_FALSE(c["linux"].contains("seccomp"));
  EXPECT_FALSE(c["linux"]["resources"].contains("cpu"));
  EXPECT_EQ(strings(c["linux"]["maskedPaths"]), defaultMaskedPaths());
  // The pod's namespaces decide: its network, IPC and UTS, a pid namespace of its own.
  EXPECT_EQ(c["linux"]["namespaces"][0], (Json{{"type", "pid"}}));
  EXPECT_EQ(c["linux"]["namespaces"][1]["path"], "/run/monocri/ns/net/web-0");
  ASSERT_EQ(spec_.warnings.size(), 1u);  // RLIMIT_NOFILE only
}

TEST_F(ContainerSpecTest, CgroupsPaths) {
  EXPECT_EQ(containerCgroupsPath("/kubepods/burstable/podx", kId),
            "/kubepods/burstable/podx/monocri-" + kId);
  EXPECT_EQ(containerCgroupsPath("kubepods/podx/", kId), "kubepods/podx/monocri-" + kId);
  EXPECT_EQ(containerCgroupsPath("", kId), "/monocri/monocri-" + kId);
  in_.pod.cgroupParent = "kubepods.slice/kubepods-besteffort.slice";
  auto status = build();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("cgroupfs"), std::string::npos);
  in_.pod.cgroupParent = "/kubepods/../../etc";
  EXPECT_EQ(build().code(), StatusCode::kInvalidArgument);
}

TEST_F(ContainerSpecTest, BadInputsAreNamed) {
  in_.containerId = "abc";
  EXPECT_EQ(build().code(), StatusCode::kInvalidArgument);
  in_.containerId = kId;
  in_.rootfsPath = "relative/rootfs";
  EXPECT_EQ(build().code(), StatusCode::kInvalidArgument);
  in_.rootfsPath = rootfs_.path();
  in_.config = nullptr;
  EXPECT_EQ(build().code(), StatusCode::kInvalidArgument);
  in_.config = &config_;

  config_.clear_args();
  in_.imageConfig.erase("Entrypoint");
  in_.imageConfig.erase("Cmd");
  auto status = build();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("no command specified"), std::string::npos);
  config_.add_args("/bin/true");

  in_.imageConfig["User"] = "www-data";
  status = build();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("www-data"), std::string::npos);
  in_.imageConfig["User"] = "nginx";

  config_.mutable_linux()->mutable_security_context()->mutable_seccomp()->set_profile_type(
      runtime::v1::SecurityProfile::Localhost);
  config_.mutable_linux()->mutable_security_context()->mutable_seccomp()->set_localhost_ref(
      "/nonexistent/seccomp/nginx.json");
  status = build();
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("/nonexistent/seccomp/nginx.json"), std::string::npos);
  config_.mutable_linux()->mutable_security_context()->clear_seccomp();

  config_.add_cdi_devices()->set_name("vendor.com/gpu=0");
  EXPECT_EQ(build().code(), StatusCode::kFailedPrecondition);
  config_.clear_cdi_devices();

  // A mount source that is not UTF-8 cannot go into JSON: refused, not thrown.
  auto* mount = config_.add_mounts();
  mount->set_host_path(rootfs_.path() + "/host-\xff");
  mount->set_container_path("/data");
  status = build();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("UTF-8"), std::string::npos);
  config_.clear_mounts();

  EXPECT_TRUE(build().isOk());
}

}  // namespace
}  // namespace monocri::oci
