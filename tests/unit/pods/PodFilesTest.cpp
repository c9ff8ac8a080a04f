// The pod's shared files and the checks on kubelet's pod config values.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pods/PodFiles.h"
#include "pods/PodManager.h"

namespace monocri::pods {
namespace {

using grpc::StatusCode;

TEST(PodFiles, ResolvConfFromDnsConfig) {
  DnsSettings dns;
  dns.servers = {"10.96.0.10", "fd00::a"};
  dns.searches = {"ns.svc.cluster.local", "svc.cluster.local"};
  dns.options = {"ndots:5", "edns0"};
  std::string out;
  ASSERT_TRUE(resolvConfFor(dns, out).isOk());
  EXPECT_EQ(out,
            "search ns.svc.cluster.local svc.cluster.local\n"
            "nameserver 10.96.0.10\nnameserver fd00::a\n"
            "options ndots:5 edns0\n");
}

TEST(PodFiles, ResolvConfRefusesValuesThatWouldAddLinesOrFields) {
  for (const std::string bad : {"1.1.1.1\nnameserver 6.6.6.6", "a b", "", "x#y", "tab\there"}) {
    DnsSettings dns;
    dns.servers = {bad};
    std::string out;
    auto status = resolvConfFor(dns, out);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(status.message().find("server"), std::string::npos);
  }
  DnsSettings many;
  many.servers = {"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"};
  std::string out;
  EXPECT_EQ(resolvConfFor(many, out).code(), StatusCode::kInvalidArgument);
  DnsSettings longSearch;
  longSearch.searches.assign(20, std::string(20, 'a'));
  EXPECT_EQ(resolvConfFor(longSearch, out).code(), StatusCode::kInvalidArgument);
}

TEST(PodFiles, Hostnames) {
  for (const std::string& good :
       std::vector<std::string>{"", "web", "web-0", "a.b.c", std::string(63, 'x')})
    EXPECT_TRUE(checkHostname(good).isOk()) << good;
  for (const std::string& bad :
       std::vector<std::string>{"-web", "web-", "we_b", "a b", std::string(64, 'x'), ".a", "a\n"})
    EXPECT_EQ(checkHostname(bad).code(), StatusCode::kInvalidArgument) << bad;
}

TEST(PodFiles, HostsFileNamesTheHostnameOnLoopback) {
  const std::string hosts = podHostsFile("web-0");
  EXPECT_EQ(hosts.find("127.0.0.1\tlocalhost\n"), 0u);
  EXPECT_NE(hosts.find("127.0.1.1\tweb-0\n"), std::string::npos);
  EXPECT_EQ(podHostsFile("").find("127.0.1.1"), std::string::npos);
}

TEST(PodSysctls, OnlyNamespacedOnes) {
  for (const std::string key :
       {"net.ipv4.ip_forward", "kernel.shmmax", "kernel.sem", "kernel.msgmni", "fs.mqueue.msg_max"})
    EXPECT_TRUE(checkPodSysctl(key, false, false).isOk()) << key;
  for (const std::string key :
       {"kernel.panic", "vm.swappiness", "fs.file-max", "", "net/../x", "kernel.shm"})
    EXPECT_EQ(checkPodSysctl(key, false, false).code(), StatusCode::kInvalidArgument) << key;
  EXPECT_EQ(checkPodSysctl("net.ipv4.ip_forward", true, false).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(checkPodSysctl("kernel.shmmax", false, true).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(checkPodSysctl("kernel.shmmax", true, false).isOk());
}

TEST(PodIds, SixtyFourHexCharactersAndUnique) {
  const std::string a = newPodOrContainerId(), b = newPodOrContainerId();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace monocri::pods
