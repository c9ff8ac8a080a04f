// The mount list: defaults, the pod's files, kubelet's binds, their order, overrides and
// propagation (checked against mount tables written for the test).
#include "oci/spec/SpecMounts.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "SpecTestSupport.h"
#include "oci/spec/MountInfo.h"

namespace monocri::oci {
namespace {

using grpc::StatusCode;
using Json = nlohmann::json;
using testing::destinations;
using testing::mountAt;
using testing::strings;
using testing::TempDir;
using Strings = std::vector<std::string>;

runtime::v1::Mount* addMount(
    google::protobuf::RepeatedPtrField<runtime::v1::Mount>& mounts, const std::string& host,
    const std::string& container, bool readonly = false,
    runtime::v1::MountPropagation propagation = runtime::v1::PROPAGATION_PRIVATE) {
  auto* mount = mounts.Add();
  mount->set_host_path(host);
  mount->set_container_path(container);
  mount->set_readonly(readonly);
  mount->set_propagation(propagation);
  return mount;
}

// A mount table where `shared` is a shared mount and `slave` a slave one, "/" private.
std::string mountTable(const std::string& shared, const std::string& slave) {
  return "1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
         "2 1 0:40 / " +
         shared +
         " rw,relatime shared:7 - tmpfs tmpfs rw\n"
         "3 1 0:41 / " +
         slave + " rw,relatime master:9 - tmpfs tmpfs rw\n";
}

class SpecMountsTest : public ::testing::Test {
 protected:
  grpc::Status build(MountsResult& out, const std::string& table = "") {
    request_.criMounts = &mounts_;
    return buildMounts(
        request_, [table] { return table; }, out);
  }

  TempDir dir_;
  google::protobuf::RepeatedPtrField<runtime::v1::Mount> mounts_;
  MountsRequest request_;
};

TEST(CleanPathTest, LexicalCleaning) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/", "/"},         {"//", "/"},       {"/a/b/", "/a/b"},          {"/a//b", "/a/b"},
      {"/a/./b", "/a/b"}, {"/a/../b", "/b"}, {"/../../a", "/a"},         {"/a/b/..", "/a"},
      {"/a/..", "/"},     {"/.", "/"},       {"/a/.b/..c", "/a/.b/..c"},
  };
  for (const auto& [in, out] : cases)
    EXPECT_EQ(cleanPath(in), out) << in;
}

TEST(MountInfoTest, ParsesAndFindsTheMountOfAPath) {
  const auto table = parseMountInfo(
      "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
      "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
      "garbage line\n"
      "30 27 0:27 / /var/lib/with\\040space rw master:3 shared:4 - tmpfs tmpfs rw,size=4k\n"
      "31 27 0:28 / /var rw - tmpfs tmpfs rw\n"
      "32 27 0:29 / /var rw shared:5 - tmpfs tmpfs rw\n");
  ASSERT_EQ(table.size(), 5u);
  EXPECT_EQ(table[2].mountPoint, "/var/lib/with space");
  EXPECT_EQ(table[2].optionalFields, "master:3 shared:4");
  EXPECT_EQ(table[2].fsType, "tmpfs");
  EXPECT_EQ(table[2].superOptions, "rw,size=4k");
  EXPECT_EQ(mountContaining(table, "/etc/hosts")->mountPoint, "/");
  EXPECT_EQ(mountContaining(table, "/proc")->mountPoint, "/proc");
  EXPECT_EQ(mountContaining(table, "/processes")->mountPoint, "/");
  EXPECT_EQ(mountContaining(table, "/var/lib/with space/x")->mountPoint, "/var/lib/with space");
  // Two mounts on /var: the later one is on top.
  EXPECT_EQ(mountContaining(table, "/var/log")->optionalFields, "shared:5");
  EXPECT_EQ(mountContaining({}, "/"), nullptr);
}

TEST_F(SpecMountsTest, DefaultsInOrder) {
  request_.hostnamePath = "/run/pod/hostname";
  request_.hostsPath = "/run/pod/hosts";
  request_.resolvConfPath = "/run/pod/resolv.conf";
  request_.shmPath = "/run/pod/shm";
  MountsResult out;
  ASSERT_TRUE(build(out).isOk());
  EXPECT_EQ(destinations(out.mounts),
            (Strings{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
                     "/dev/shm", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}));
  EXPECT_EQ(mountAt(out.mounts, "/proc"), (Json{{"destination", "/proc"},
                                                {"type", "proc"},
                                                {"source", "proc"},
                                                {"options", {"nosuid", "noexec", "nodev"}}}));
  EXPECT_EQ(strings(mountAt(out.mounts, "/dev/pts")["options"]),
            (Strings{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}));
  EXPECT_EQ(strings(mountAt(out.mounts, "/sys")["options"]),
            (Strings{"nosuid", "noexec", "nodev", "ro"}));
  EXPECT_EQ(strings(mountAt(out.mounts, "/sys/fs/cgroup")["options"]),
            (Strings{"nosuid", "noexec", "nodev", "relatime", "ro"}));
  EXPECT_EQ(mountAt(out.mounts, "/dev/shm"), (Json{{"destination", "/dev/shm"},
                                                   {"type", "bind"},
                                                   {"source", "/run/pod/shm"},
                                                   {"options", {"rbind", "rprivate", "rw"}}}));
  EXPECT_EQ(mountAt(out.mounts, "/etc/hosts"), (Json{{"destination", "/etc/hosts"},
                                                     {"type", "bind"},
                                                     {"source", "/run/pod/hosts"},
                                                     {"options", {"rbind", "rprivate", "rw"}}}));
  EXPECT_EQ(out.rootfsPropagation, "");
}

TEST_F(SpecMountsTest, PrivilegedReadonlyRootfsAndShmVariants) {
  request_.privileged = true;
  request_.readonlyRootfs = true;
  request_.hostsPath = "/run/pod/hosts";
  request_.hostIpc = true;
  MountsResult out;
  ASSERT_TRUE(build(out).isOk());
  EXPECT_EQ(strings(mountAt(out.mounts, "/sys")["options"]).back(), "rw");
  EXPECT_EQ(strings(mountAt(out.mounts, "/sys/fs/cgroup")["options"]).back(), "rw");
  EXPECT_EQ(strings(mountAt(out.mounts, "/etc/hosts")["options"]).back(), "ro");
  EXPECT_EQ(mountAt(out.mounts, "/dev/shm")["source"], "/dev/shm");
  EXPECT_TRUE(mountAt(out.mounts, "/etc/hostname").is_null());

  request_ = {};
  ASSERT_TRUE(build(out).isOk());
  EXPECT_EQ(mountAt(out.mounts, "/dev/shm"),
            (Json{{"destination", "/dev/shm"},
                  {"type", "tmpfs"},
                  {"source", "shm"},
                  {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}}));
}

TEST_F(SpecMountsTest, KubeletMountsOverrideAndSortByDepth) {
  request_.hostsPath = "/run/pod/hosts";
  request_.resolvConfPath = "/run/pod/resolv.conf";
  request_.shmPath = "/run/pod/shm";
  std::filesystem::create_directories(dir_ / "a");
  addMount(mounts_, dir_ / "a", "/data/deep/er/");
  addMount(mounts_, dir_ / "a", "/x");
  addMount(mounts_, dir_ / "a", "/data/./deep");
  addMount(mounts_, dir_ / "kubelet-hosts", "/etc/hosts", true);
  addMount(mounts_, dir_ / "a", "//dev/shm");
  MountsResult out;
  ASSERT_TRUE(build(out).isOk());
  EXPECT_EQ(destinations(out.mounts),
            (Strings{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/x",
                     "/etc/resolv.conf", "/data/deep", "/etc/hosts", "/dev/shm", "/data/deep/er"}));
  // kubelet's /etc/hosts won over the pod's.
  EXPECT_EQ(mountAt(out.mounts, "/etc/hosts")["source"], dir_ / "kubelet-hosts");
  EXPECT_EQ(strings(mountAt(out.mounts, "/etc/hosts")["options"]),
            (Strings{"rbind", "rprivate", "ro"}));
  EXPECT_EQ(mountAt(out.mounts, "/dev/shm")["source"], dir_ / "a");

  // A mounted /dev takes everything under it along.
  mounts_.Clear();
  addMount(mounts_, dir_ / "a", "/dev");
  ASSERT_TRUE(build(out).isOk());
  EXPECT_EQ(destinations(out.mounts),
            (Strings{"/proc", "/sys", "/sys/fs/cgroup", "/dev", "/etc/hosts", "/etc/resolv.conf"}));
}

TEST_F(SpecMountsTest, MissingHostDirectoryIsCreatedAndSymlinksResolved) {
  const std::string missing = dir_ / "not/there/yet";
  addMount(mounts_, missing, "/cache");
  std::filesystem::create_directories(dir_ / "real");
  ASSERT_EQ(symlink((dir_ / "real").c_str(), (dir_ / "link").c_str()), 0);
  addMount(mounts_, dir_ / "link", "/linked");
  MountsResult out;
  ASSERT_TRUE(build(out).isOk());
  struct stat st {};
  ASSERT_EQ(stat(missing.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  EXPECT_EQ(mountAt(out.mounts, "/cache")["source"], missing);
  EXPECT_EQ(mountAt(out.mounts, "/linked")["source"], dir_ / "real");
}

TEST_F(SpecMountsTest, Propagation) {
  const std::string shared = dir_ / "shared";
  const std::string slave = dir_ / "slave";
  std::filesystem::create_directories(shared + "/sub");
  std::filesystem::create_directories(slave);
  const std::string table = mountTable(shared, slave);

  MountsResult out;
  addMount(mounts_, slave, "/from-host", false, runtime::v1::PROPAGATION_HOST_TO_CONTAINER);
  ASSERT_TRUE(build(out, table).isOk());
  EXPECT_EQ(strings(mountAt(out.mounts, "/from-host")["options"]),
            (Strings{"rbind", "rslave", "rw"}));
  EXPECT_EQ(out.rootfsPropagation, "rslave");

  addMount(mounts_, shared + "/sub", "/both", true, runtime::v1::PROPAGATION_BIDIRECTIONAL);
  addMount(mounts_, shared, "/also-from-host", false, runtime::v1::PROPAGATION_HOST_TO_CONTAINER);
  ASSERT_TRUE(build(out, table).isOk());
  EXPECT_EQ(strings(mountAt(out.mounts, "/both")["options"]), (Strings{"rbind", "rshared", "ro"}));
  EXPECT_EQ(out.rootfsPropagation, "rshared");  // a later rslave does not lower it

  // Bidirectional needs a shared mount; a slave or private one is refused with the reason.
  mounts_.Clear();
  addMount(mounts_, slave, "/both", false, runtime::v1::PROPAGATION_BIDIRECTIONAL);
  auto status = build(out, table);
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("shared"), std::string::npos) << status.message();
  mounts_.Clear();
  addMount(mounts_, dir_ / "private", "/from-host", false,
           runtime::v1::PROPAGATION_HOST_TO_CONTAINER);
  status = build(out, table);
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("\"/\""), std::string::npos) << status.message();
}

TEST_F(SpecMountsTest, WhatRuncCannotDoIsRefused) {
  std::filesystem::create_directories(dir_ / "a");
  struct Case {
    const char* name;
    std::function<void(runtime::v1::Mount*)> edit;
    StatusCode code;
  };
  const std::vector<Case> cases = {
      {"relative container path", [](auto* m) { m->set_container_path("data"); },
       StatusCode::kInvalidArgument},
      {"empty host path", [](auto* m) { m->set_host_path(""); }, StatusCode::kInvalidArgument},
      {"relative host path", [](auto* m) { m->set_host_path("a/b"); },
       StatusCode::kInvalidArgument},
      {"recursive read-only",
       [](auto* m) {
         m->set_readonly(true);
         m->set_recursive_read_only(true);
       },
       StatusCode::kFailedPrecondition},
      {"recursive read-only on rw", [](auto* m) { m->set_recursive_read_only(true); },
       StatusCode::kInvalidArgument},
      {"image volume", [](auto* m) { m->mutable_image()->set_image("busybox"); },
       StatusCode::kFailedPrecondition},
      {"uid mapping", [](auto* m) { m->add_uidmappings()->set_length(1); },
       StatusCode::kFailedPrecondition},
      {"unknown option", [](auto* m) { m->add_mount_options("suid"); },
       StatusCode::kInvalidArgument},
  };
  for (const auto& c : cases) {
    mounts_.Clear();
    c.edit(addMount(mounts_, dir_ / "a", "/data"));
    MountsResult out;
    EXPECT_EQ(build(out).code(), c.code) << c.name;
  }
  mounts_.Clear();
  addMount(mounts_, dir_ / "a", "/data")->add_mount_options("noexec");
  MountsResult out;
  ASSERT_TRUE(build(out).isOk());
  EXPECT_EQ(strings(mountAt(out.mounts, "/data")["options"]),
            (Strings{"rbind", "rprivate", "rw", "noexec"}));
}

}  // namespace
}  // namespace monocri::oci
