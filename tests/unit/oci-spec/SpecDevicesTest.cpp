// Devices: kubelet's device list stat'ed on this host's /dev, the device cgroup rules, and the
// privileged walk of /dev.
#include "oci/spec/SpecDevices.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "SpecTestSupport.h"

namespace monocri::oci {
namespace {

using grpc::StatusCode;
using Json = nlohmann::json;
using testing::TempDir;
using testing::writeFile;

google::protobuf::RepeatedPtrField<runtime::v1::Device> deviceList(
    const std::vector<std::array<std::string, 3>>& entries) {
  google::protobuf::RepeatedPtrField<runtime::v1::Device> devices;
  for (const auto& [host, container, permissions] : entries) {
    auto* device = devices.Add();
    device->set_host_path(host);
    device->set_container_path(container);
    device->set_permissions(permissions);
  }
  return devices;
}

Json deviceAt(const Json& devices, const std::string& path) {
  for (const auto& device : devices) {
    if (device["path"] == path) return device;
  }
  return nullptr;
}

const Json kDenyAll = {{"allow", false}, {"access", "rwm"}};

TEST(SpecDevicesTest, KubeletDeviceIsStatedAndAllowed) {
  struct stat st {};
  ASSERT_EQ(stat("/dev/null", &st), 0);
  DevicesResult out;
  ASSERT_TRUE(
      buildDevices(deviceList({{"/dev/null", "/dev/mynull", "rw"}}), false, "/dev", out).isOk());
  ASSERT_EQ(out.devices.size(), 1u);
  EXPECT_EQ(out.devices[0], (Json{{"path", "/dev/mynull"},
                                  {"type", "c"},
                                  {"major", 1},
                                  {"minor", 3},
                                  {"fileMode", st.st_mode & 07777},
                                  {"uid", st.st_uid},
                                  {"gid", st.st_gid}}));
  // Deny everything, allow the standard devices, then this one with its permissions.
  ASSERT_EQ(out.cgroupRules.size(), 11u);
  EXPECT_EQ(out.cgroupRules[0], kDenyAll);
  EXPECT_EQ(out.cgroupRules[9],
            (Json{{"allow", true}, {"type", "c"}, {"major", 136}, {"access", "rwm"}}));
  EXPECT_EQ(out.cgroupRules[10],
            (Json{{"allow", true}, {"type", "c"}, {"major", 1}, {"minor", 3}, {"access", "rw"}}));
}

TEST(SpecDevicesTest, DefaultsAndSymlinks) {
  TempDir dir;
  ASSERT_EQ(symlink("/dev/zero", (dir / "zero-link").c_str()), 0);
  DevicesResult out;
  ASSERT_TRUE(buildDevices(deviceList({{dir / "zero-link", "", ""}}), false, "/dev", out).isOk());
  ASSERT_EQ(out.devices.size(), 1u);
  EXPECT_EQ(out.devices[0]["path"], dir / "zero-link");  // container path defaults to host path
  EXPECT_EQ(out.devices[0]["minor"], 5);                 // /dev/zero's, through the link
  EXPECT_EQ(out.cgroupRules.back()["access"], "rwm");
}

TEST(SpecDevicesTest, DirectoryBringsItsDevices) {
  struct stat st {};
  if (stat("/dev/net/tun", &st) != 0) GTEST_SKIP() << "no /dev/net/tun here";
  DevicesResult out;
  ASSERT_TRUE(
      buildDevices(deviceList({{"/dev/net", "/dev/xnet", "rwm"}}), false, "/dev", out).isOk());
  const Json tun = deviceAt(out.devices, "/dev/xnet/tun");
  ASSERT_FALSE(tun.is_null()) << out.devices.dump();
  EXPECT_EQ(tun["major"], major(st.st_rdev));
  EXPECT_EQ(tun["minor"], minor(st.st_rdev));
}

TEST(SpecDevicesTest, BadDevicesAreRefused) {
  TempDir dir;
  writeFile(dir / "file", "x");
  DevicesResult out;
  auto status = buildDevices(deviceList({{"/dev/no-such-device", "", ""}}), false, "/dev", out);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("/dev/no-such-device"), std::string::npos);
  status = buildDevices(deviceList({{dir / "file", "/dev/f", "rw"}}), false, "/dev", out);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("not a device"), std::string::npos);
  for (const char* permissions : {"rwx", "rr", "read"}) {
    status = buildDevices(deviceList({{"/dev/null", "", permissions}}), false, "/dev", out);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << permissions;
  }
  EXPECT_EQ(buildDevices(deviceList({{"dev/null", "", ""}}), false, "/dev", out).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(buildDevices(deviceList({{"/dev/null", "null", ""}}), false, "/dev", out).code(),
            StatusCode::kInvalidArgument);
}

TEST(SpecDevicesTest, PrivilegedGetsTheHostsDevices) {
  DevicesResult out;
  ASSERT_TRUE(
      buildDevices(deviceList({{"/dev/null", "/dev/zero", "r"}}), true, "/dev", out).isOk());
  EXPECT_EQ(out.cgroupRules, (Json::array({Json{{"allow", true}, {"access", "rwm"}}})));
  // kubelet's /dev/zero (really /dev/null) wins over the host's /dev/zero.
  EXPECT_EQ(deviceAt(out.devices, "/dev/zero")["minor"], 3);
  EXPECT_FALSE(deviceAt(out.devices, "/dev/null").is_null());
  EXPECT_FALSE(deviceAt(out.devices, "/dev/urandom").is_null());
  EXPECT_TRUE(deviceAt(out.devices, "/dev/console").is_null());
  for (const auto& device : out.devices) {
    const std::string path = device["path"];
    EXPECT_FALSE(path.starts_with("/dev/pts/")) << path;
    EXPECT_FALSE(path.starts_with("/dev/shm/")) << path;
    EXPECT_NE(device["type"], "p") << path;
  }
  // Everything listed really is under /dev with that number.
  for (const auto& device : out.devices) {
    const std::string path = device["path"];
    if (path == "/dev/zero") continue;
    struct stat st {};
    ASSERT_EQ(lstat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(device["major"], major(st.st_rdev)) << path;
  }
}

}  // namespace
}  // namespace monocri::oci
