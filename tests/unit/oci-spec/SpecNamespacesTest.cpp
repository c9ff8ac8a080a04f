// Namespaces for every NamespaceMode, and which sysctls they make acceptable.
#include "oci/spec/SpecNamespaces.h"

#include <gtest/gtest.h>

#include "SpecTestSupport.h"

namespace monocri::oci {
namespace {

using grpc::StatusCode;
using Json = nlohmann::json;
using runtime::v1::NamespaceMode;

Json ns(const char* type, const char* path = nullptr) {
  Json entry{{"type", type}};
  if (path != nullptr) entry["path"] = path;
  return entry;
}

NamespacesRequest podRequest(runtime::v1::NamespaceOption& options) {
  NamespacesRequest request;
  request.options = &options;
  request.netnsPath = "/run/monocri/ns/net/p1";
  request.ipcnsPath = "/run/monocri/ns/ipc/p1";
  request.utsnsPath = "/run/monocri/ns/uts/p1";
  request.pidnsPath = "/run/monocri/ns/pid/p1";
  return request;
}

runtime::v1::NamespaceOption options(NamespaceMode network, NamespaceMode pid, NamespaceMode ipc) {
  runtime::v1::NamespaceOption o;
  o.set_network(network);
  o.set_pid(pid);
  o.set_ipc(ipc);
  return o;
}

TEST(SpecNamespacesTest, EveryMode) {
  using runtime::v1::CONTAINER;
  using runtime::v1::NODE;
  using runtime::v1::POD;
  struct Case {
    const char* name;
    runtime::v1::NamespaceOption options;
    Json expected;
    bool hostNetwork, hostIpc, hostPid;
  };
  const std::vector<Case> cases = {
      {"kubelet's default: pod network and ipc, own pid", options(POD, CONTAINER, POD),
       Json::array({ns("pid"), ns("network", "/run/monocri/ns/net/p1"),
                    ns("ipc", "/run/monocri/ns/ipc/p1"), ns("uts", "/run/monocri/ns/uts/p1"),
                    ns("mount")}),
       false, false, false},
      {"shared process namespace", options(POD, POD, POD),
       Json::array({ns("pid", "/run/monocri/ns/pid/p1"), ns("network", "/run/monocri/ns/net/p1"),
                    ns("ipc", "/run/monocri/ns/ipc/p1"), ns("uts", "/run/monocri/ns/uts/p1"),
                    ns("mount")}),
       false, false, false},
      {"host network, pid and ipc", options(NODE, NODE, NODE), Json::array({ns("mount")}), true,
       true, true},
      {"host network only: no uts of its own either", options(NODE, CONTAINER, POD),
       Json::array({ns("pid"), ns("ipc", "/run/monocri/ns/ipc/p1"), ns("mount")}), true, false,
       false},
      {"private ipc", options(POD, CONTAINER, CONTAINER),
       Json::array({ns("pid"), ns("network", "/run/monocri/ns/net/p1"), ns("ipc"),
                    ns("uts", "/run/monocri/ns/uts/p1"), ns("mount")}),
       false, false, false},
  };
  for (auto c : cases) {
    NamespacesResult out;
    const auto status = buildNamespaces(podRequest(c.options), out);
    ASSERT_TRUE(status.isOk()) << c.name << ": " << status.toString();
    EXPECT_EQ(out.namespaces, c.expected) << c.name << "\n" << out.namespaces.dump();
    EXPECT_EQ(out.hostNetwork, c.hostNetwork) << c.name;
    EXPECT_EQ(out.hostIpc, c.hostIpc) << c.name;
    EXPECT_EQ(out.hostPid, c.hostPid) << c.name;
    EXPECT_EQ(out.privateUts, !c.hostNetwork) << c.name;
  }
}

TEST(SpecNamespacesTest, WithoutOptionsThePodDecides) {
  runtime::v1::NamespaceOption unused;
  auto request = podRequest(unused);
  request.options = nullptr;
  request.pidnsPath.clear();
  NamespacesResult out;
  ASSERT_TRUE(buildNamespaces(request, out).isOk());
  EXPECT_EQ(out.namespaces, Json::array({ns("pid"), ns("network", "/run/monocri/ns/net/p1"),
                                         ns("ipc", "/run/monocri/ns/ipc/p1"),
                                         ns("uts", "/run/monocri/ns/uts/p1"), ns("mount")}));
  request.pidnsPath = "/run/monocri/ns/pid/p1";
  ASSERT_TRUE(buildNamespaces(request, out).isOk());
  EXPECT_EQ(out.namespaces[0], ns("pid", "/run/monocri/ns/pid/p1"));

  request = {};
  request.podHostNetwork = request.podHostIpc = request.podHostPid = true;
  ASSERT_TRUE(buildNamespaces(request, out).isOk());
  EXPECT_EQ(out.namespaces, Json::array({ns("mount")}));
  EXPECT_TRUE(out.hostNetwork && out.hostIpc && out.hostPid);
}

TEST(SpecNamespacesTest, NoPinnedUtsGivesANewOne) {
  auto o = options(runtime::v1::POD, runtime::v1::CONTAINER, runtime::v1::POD);
  auto request = podRequest(o);
  request.utsnsPath.clear();
  NamespacesResult out;
  ASSERT_TRUE(buildNamespaces(request, out).isOk());
  EXPECT_EQ(out.namespaces[3], ns("uts"));
}

TEST(SpecNamespacesTest, TargetPidNamespace) {
  auto o = options(runtime::v1::POD, runtime::v1::TARGET, runtime::v1::POD);
  o.set_target_id("abc");
  auto request = podRequest(o);
  NamespacesResult out;
  const auto status = buildNamespaces(request, out);
  EXPECT_EQ(status.code(), StatusCode::kUnimplemented);
  EXPECT_NE(status.message().find("\"abc\""), std::string::npos);
  request.targetPidnsPath = "/proc/4242/ns/pid";
  ASSERT_TRUE(buildNamespaces(request, out).isOk());
  EXPECT_EQ(out.namespaces[0], ns("pid", "/proc/4242/ns/pid"));
}

TEST(SpecNamespacesTest, CgroupNamespaceOnV2ForUnprivilegedOnly) {
  auto o = options(runtime::v1::POD, runtime::v1::CONTAINER, runtime::v1::POD);
  auto request = podRequest(o);
  request.cgroupV2Only = true;
  NamespacesResult out;
  ASSERT_TRUE(buildNamespaces(request, out).isOk());
  EXPECT_EQ(out.namespaces.back(), ns("cgroup"));
  request.privileged = true;
  ASSERT_TRUE(buildNamespaces(request, out).isOk());
  EXPECT_EQ(out.namespaces.back(), ns("mount"));
  request.privileged = false;
  request.cgroupV2Only = false;
  ASSERT_TRUE(buildNamespaces(request, out).isOk());
  EXPECT_EQ(out.namespaces.back(), ns("mount"));
}

TEST(SpecNamespacesTest, WhatCannotBeDone) {
  using runtime::v1::CONTAINER;
  using runtime::v1::POD;
  NamespacesResult out;
  auto o = options(CONTAINER, CONTAINER, POD);
  auto status = buildNamespaces(podRequest(o), out);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("CONTAINER"), std::string::npos);

  o = options(POD, POD, POD);
  auto request = podRequest(o);
  request.pidnsPath.clear();
  status = buildNamespaces(request, out);
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("pid"), std::string::npos);
  request = podRequest(o);
  request.netnsPath.clear();
  EXPECT_EQ(buildNamespaces(request, out).code(), StatusCode::kFailedPrecondition);

  o = options(POD, CONTAINER, POD);
  o.mutable_userns_options()->set_mode(POD);
  status = buildNamespaces(podRequest(o), out);
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("user namespaces"), std::string::npos);
  o.mutable_userns_options()->set_mode(runtime::v1::NODE);
  EXPECT_TRUE(buildNamespaces(podRequest(o), out).isOk());
}

TEST(SpecNamespacesTest, Sysctls) {
  NamespacesResult isolated;
  isolated.privateUts = true;
  NamespacesResult hostNetwork;
  hostNetwork.hostNetwork = true;
  NamespacesResult hostIpc;
  hostIpc.hostIpc = true;
  hostIpc.privateUts = true;
  struct Case {
    const char* name;
    const NamespacesResult* namespaces;
    bool accepted;
  };
  const std::vector<Case> cases = {
      {"net.ipv4.ip_unprivileged_port_start", &isolated, true},
      {"net/ipv4/ping_group_range", &isolated, true},
      {"net.core.somaxconn", &hostNetwork, false},
      {"kernel.shm_rmid_forced", &isolated, true},
      {"kernel.msgmax", &isolated, true},
      {"kernel.sem", &isolated, true},
      {"fs.mqueue.msg_max", &isolated, true},
      {"kernel.shmmax", &hostIpc, false},
      {"fs.mqueue.queues_max", &hostIpc, false},
      {"net.ipv4.tcp_syncookies", &hostIpc, true},
      {"kernel.domainname", &isolated, true},
      {"kernel.domainname", &hostNetwork, false},
      {"kernel.hostname", &isolated, false},
      {"vm.swappiness", &isolated, false},
      {"kernel.pid_max", &isolated, false},
      {"fs.file-max", &isolated, false},
      {"net.ipv4.conf.all.forwarding; reboot", &isolated, false},
      {"", &isolated, false},
  };
  for (const auto& c : cases) {
    google::protobuf::Map<std::string, std::string> sysctls;
    sysctls[c.name] = "1";
    Json out;
    const auto status = buildSysctls(sysctls, *c.namespaces, out);
    EXPECT_EQ(status.isOk(), c.accepted) << c.name << ": " << status.toString();
    if (status.isOk()) {
      EXPECT_EQ(out, (Json{{c.name, "1"}}));
    } else {
      EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    }
  }
  google::protobuf::Map<std::string, std::string> sysctls;
  sysctls["net.core.somaxconn"] = "1\n2";
  Json out;
  EXPECT_EQ(buildSysctls(sysctls, isolated, out).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace monocri::oci
