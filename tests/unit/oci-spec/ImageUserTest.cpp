// Users and groups from an image's /etc/passwd and /etc/group, in temporary root filesystems
// built to be hostile: symlinks out of the tree, fifos, huge files, garbage lines.
#include "oci/spec/ImageUser.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "SpecTestSupport.h"

namespace monocri::oci {
namespace {

using grpc::StatusCode;
using testing::TempDir;
using testing::writeFile;

constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "app:x:1000:1001:App User:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
constexpr const char* kGroup =
    "root:x:0:\n"
    "wheel:x:10:root,app\n"
    "app:x:1001:\n"
    "audio:x:29:daemon,app\n"
    "staff:x:50:\n"
    "nogroup:x:65534:\n";

class ImageUserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    writeFile(rootfs_ / "etc/passwd", kPasswd);
    writeFile(rootfs_ / "etc/group", kGroup);
  }

  grpc::Status resolve(const UserRequest& request, ResolvedUser& user) {
    return resolveUser(request, rootfs_.path(), user);
  }
  static UserRequest imageUser(const std::string& user) {
    UserRequest request;
    request.imageUser = user;
    return request;
  }

  TempDir rootfs_;
};

TEST_F(ImageUserTest, ImageUserForms) {
  struct Case {
    std::string user;
    uint32_t uid, gid;
    std::vector<uint32_t> gids;
    std::string name;
  };
  const std::vector<Case> cases = {
      {"", 0, 0, {0, 10}, "root"},
      {"app", 1000, 1001, {10, 29, 1001}, "app"},
      {"1000", 1000, 1001, {10, 29, 1001}, "app"},
      {"4242", 4242, 0, {0}, ""},  // not in /etc/passwd: gid 0, no name
      {"1000:50", 1000, 50, {10, 29, 50}, "app"},
      {"app:staff", 1000, 50, {10, 29, 50}, "app"},
      {"1000:audio", 1000, 29, {10, 29}, "app"},
      {"4242:4343", 4242, 4343, {4343}, ""},
      {"daemon", 1, 1, {1, 29}, "daemon"},
  };
  for (const auto& c : cases) {
    ResolvedUser user;
    const auto status = resolve(imageUser(c.user), user);
    ASSERT_TRUE(status.isOk()) << c.user << ": " << status.toString();
    EXPECT_EQ(user.uid, c.uid) << c.user;
    EXPECT_EQ(user.gid, c.gid) << c.user;
    EXPECT_EQ(user.additionalGids, c.gids) << c.user;
    EXPECT_EQ(user.username, c.name) << c.user;
  }
}

TEST_F(ImageUserTest, UnknownNamesAreNamedInTheError) {
  ResolvedUser user;
  auto status = resolve(imageUser("ghost"), user);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("\"ghost\""), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("/etc/passwd"), std::string::npos);

  status = resolve(imageUser("app:ghosts"), user);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("\"ghosts\""), std::string::npos) << status.message();

  for (const char* bad : {"a:b:c", ":1000", "1000:", "99999999999", "1000:99999999999"}) {
    EXPECT_EQ(resolve(imageUser(bad), user).code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(ImageUserTest, KubeletFieldsWinOverTheImage) {
  ResolvedUser user;
  UserRequest request = imageUser("app:staff");
  request.runAsUser = 0;
  ASSERT_TRUE(resolve(request, user).isOk());
  EXPECT_EQ(user.uid, 0u);
  EXPECT_EQ(user.gid, 0u);  // the image's group goes with the image's user
  EXPECT_EQ(user.username, "root");

  request = imageUser("root");
  request.runAsUsername = "app";
  request.runAsGroup = 7;
  request.supplementalGroups = {3000, 10, 3000};
  ASSERT_TRUE(resolve(request, user).isOk());
  EXPECT_EQ(user.uid, 1000u);
  EXPECT_EQ(user.gid, 7u);
  EXPECT_EQ(user.additionalGids, (std::vector<uint32_t>{7, 10, 29, 3000}));

  // Strict: only the primary group and kubelet's, nothing from /etc/group.
  request.strictSupplementalGroups = true;
  ASSERT_TRUE(resolve(request, user).isOk());
  EXPECT_EQ(user.additionalGids, (std::vector<uint32_t>{7, 10, 3000}));
}

TEST_F(ImageUserTest, RequestedIdsAreChecked) {
  ResolvedUser user;
  UserRequest request;
  request.runAsGroup = 5;
  auto status = resolve(request, user);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("run_as_group"), std::string::npos);
  request = {};
  request.runAsUser = -1;
  EXPECT_EQ(resolve(request, user).code(), StatusCode::kInvalidArgument);
  request.runAsUser = int64_t{1} << 31;
  EXPECT_EQ(resolve(request, user).code(), StatusCode::kInvalidArgument);
  request = {};
  request.supplementalGroups = {-5};
  EXPECT_EQ(resolve(request, user).code(), StatusCode::kInvalidArgument);
}

TEST_F(ImageUserTest, NoAccountFilesIsFineForNumbersOnly) {
  std::filesystem::remove(rootfs_ / "etc/passwd");
  std::filesystem::remove(rootfs_ / "etc/group");
  ResolvedUser user;
  ASSERT_TRUE(resolve(imageUser("123:456"), user).isOk());
  EXPECT_EQ(user.uid, 123u);
  EXPECT_EQ(user.gid, 456u);
  ASSERT_TRUE(resolve(imageUser("123"), user).isOk());
  EXPECT_EQ(user.gid, 0u);
  const auto status = resolve(imageUser("app"), user);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("has no /etc/passwd"), std::string::npos) << status.message();
}

// /etc/passwd is a symlink to a host path; the host has a file there naming "outside", the
// rootfs one naming "inside". Resolution must stay in the rootfs.
TEST_F(ImageUserTest, SymlinkToTheHostsFileResolvesInsideTheRootfs) {
  TempDir host;
  writeFile(host / "passwd", "outside:x:6666:6666::/:/bin/sh\n");
  writeFile(rootfs_.path() + host.path() + "/passwd", "inside:x:4242:4242::/:/bin/sh\n");
  std::filesystem::remove(rootfs_ / "etc/passwd");
  ASSERT_EQ(symlink((host / "passwd").c_str(), (rootfs_ / "etc/passwd").c_str()), 0);

  ResolvedUser user;
  ASSERT_TRUE(resolve(imageUser("inside"), user).isOk());
  EXPECT_EQ(user.uid, 4242u);
  EXPECT_EQ(resolve(imageUser("outside"), user).code(), StatusCode::kInvalidArgument);

  // A relative link climbing far above the root stops at the root.
  std::filesystem::remove(rootfs_ / "etc/passwd");
  ASSERT_EQ(symlink(("../../../../../../../../../.." + host.path() + "/passwd").c_str(),
                    (rootfs_ / "etc/passwd").c_str()),
            0);
  ASSERT_TRUE(resolve(imageUser("inside"), user).isOk());
  EXPECT_EQ(user.uid, 4242u);

  // So does a symlinked /etc.
  std::filesystem::remove_all(rootfs_ / "etc");
  writeFile(rootfs_ / "real-etc/passwd", "viaetc:x:777:777::/:/bin/sh\n");
  writeFile(host / "etc/passwd", "hostetc:x:888:888::/:/bin/sh\n");
  ASSERT_EQ(symlink("/real-etc", (rootfs_ / "etc").c_str()), 0);
  ASSERT_TRUE(resolve(imageUser("viaetc"), user).isOk());
  EXPECT_EQ(user.uid, 777u);
}

TEST_F(ImageUserTest, FifoAndDirectoryAreRefusedWithoutBlocking) {
  std::filesystem::remove(rootfs_ / "etc/passwd");
  ASSERT_EQ(mkfifo((rootfs_ / "etc/passwd").c_str(), 0644), 0);
  ResolvedUser user;
  const auto start = std::chrono::steady_clock::now();
  auto status = resolve(imageUser("app"), user);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("not a regular file"), std::string::npos);

  std::filesystem::remove(rootfs_ / "etc/passwd");
  std::filesystem::create_directory(rootfs_ / "etc/passwd");
  status = resolve(imageUser("0"), user);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
}

TEST_F(ImageUserTest, HugeFileIsRefused) {
  // Sparse: 4 MiB + 1 byte of zeros without writing them.
  const std::string path = rootfs_ / "etc/passwd";
  ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(kMaxAccountFileBytes + 1)), 0);
  ResolvedUser user;
  const auto status = resolve(imageUser("app"), user);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("limit"), std::string::npos) << status.message();
  // At the limit exactly it is read (and holds no user).
  ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(kMaxAccountFileBytes)), 0);
  EXPECT_EQ(resolve(imageUser("0"), user).code(), StatusCode::kOk);
}

TEST_F(ImageUserTest, SymlinkLoopIsRefused) {
  std::filesystem::remove(rootfs_ / "etc/passwd");
  ASSERT_EQ(symlink("/etc/loop-b", (rootfs_ / "etc/passwd").c_str()), 0);
  ASSERT_EQ(symlink("/etc/passwd", (rootfs_ / "etc/loop-b").c_str()), 0);
  ResolvedUser user;
  EXPECT_EQ(resolve(imageUser("app"), user).code(), StatusCode::kInvalidArgument);
}

TEST(PasswdParserTest, GarbageLinesAreSkipped) {
  const std::string text = std::string(
                               "# comment\n"
                               "+nisuser::::\n"
                               "-nisgroup\n"
                               "\n"
                               "short:x:1\n"
                               "neg:x:-1:0::/:/bin/sh\n"
                               "hex:x:0x10:0::/:/bin/sh\n"
                               "big:x:2147483648:0::/:/bin/sh\n"
                               "spacey:x: 5:0::/:/bin/sh\n"
                               ":x:5:5::/:/bin/sh\n"
                               "na me:x:6:6::/:/bin/sh\n"
                               "ctl\x01:x:7:7::/:/bin/sh\n"
                               "nul") +
                           std::string(1, '\0') +
                           ":x:8:8::/:/bin/sh\n"
                           "crlf:x:9:9::/:/bin/sh\r\n"
                           "minimal:x:10:11\n"
                           "tabs:x:12:12:a\tgecos:/:/bin/sh\n"
                           "max:x:2147483647:2147483647::/:/bin/sh\n" +
                           std::string("long:x:13:13:") + std::string(70000, 'g') + ":/:/bin/sh\n" +
                           "last:x:14:14::/:/bin/sh";
  const auto entries = parsePasswd(text);
  std::vector<std::string> names;
  for (const auto& entry : entries)
    names.push_back(entry.name);
  EXPECT_EQ(names, (std::vector<std::string>{"crlf", "minimal", "tabs", "max", "last"}));
  EXPECT_EQ(entries[1].uid, 10u);
  EXPECT_EQ(entries[1].gid, 11u);
  EXPECT_EQ(entries[3].uid, 2147483647u);
}

TEST(PasswdParserTest, GroupMembers) {
  const auto groups = parseGroup(
      "wheel:x:10:root,app,,bad name\n"
      "empty:x:20:\n"
      "nomembers:x:30\n"
      "broken:x:forty:root\n");
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].name, "wheel");
  EXPECT_EQ(groups[0].gid, 10u);
  EXPECT_EQ(groups[0].members, (std::vector<std::string>{"root", "app"}));
  EXPECT_TRUE(groups[1].members.empty());
  EXPECT_EQ(groups[2].gid, 30u);
}

}  // namespace
}  // namespace monocri::oci
