// AppArmor and SELinux choices against what the host has, and the masked/read-only paths.
#include "oci/spec/SpecSecurity.h"

#include <gtest/gtest.h>

#include "SpecTestSupport.h"

namespace monocri::oci {
namespace {

using grpc::StatusCode;
using Json = nlohmann::json;
using runtime::v1::SecurityProfile;
using testing::TempDir;
using testing::writeFile;

runtime::v1::LinuxContainerSecurityContext apparmor(SecurityProfile::ProfileType type,
                                                    const std::string& ref = "") {
  runtime::v1::LinuxContainerSecurityContext context;
  context.mutable_apparmor()->set_profile_type(type);
  context.mutable_apparmor()->set_localhost_ref(ref);
  return context;
}

runtime::v1::LinuxContainerSecurityContext apparmorString(const std::string& profile) {
  runtime::v1::LinuxContainerSecurityContext context;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  context.set_apparmor_profile(profile);
#pragma GCC diagnostic pop
  return context;
}

TEST(SpecSecurityTest, ApparmorWithoutApparmor) {
  std::string profile;
  std::vector<std::string> warnings;
  for (const auto& context :
       {runtime::v1::LinuxContainerSecurityContext(), apparmor(SecurityProfile::RuntimeDefault),
        apparmor(SecurityProfile::Unconfined), apparmorString("runtime/default"),
        apparmorString("unconfined")}) {
    ASSERT_TRUE(resolveApparmor(context, false, "/nonexistent", profile, warnings).isOk());
    EXPECT_EQ(profile, "");
  }
  EXPECT_TRUE(warnings.empty());
  for (const auto& context : {apparmor(SecurityProfile::Localhost, "my-profile"),
                              apparmorString("localhost/my-profile")}) {
    const auto status = resolveApparmor(context, false, "/nonexistent", profile, warnings);
    EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(status.message().find("\"my-profile\""), std::string::npos) << status.message();
    EXPECT_NE(status.message().find("not enabled"), std::string::npos);
  }
  EXPECT_EQ(resolveApparmor(apparmorString("my-profile"), false, "", profile, warnings).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      resolveApparmor(apparmor(SecurityProfile::RuntimeDefault, "x"), false, "", profile, warnings)
          .code(),
      StatusCode::kInvalidArgument);
}

TEST(SpecSecurityTest, ApparmorWithApparmor) {
  TempDir dir;
  writeFile(dir / "profiles", "docker-default (enforce)\nmy-profile (complain)\n");
  std::string profile;
  std::vector<std::string> warnings;
  ASSERT_TRUE(resolveApparmor(apparmor(SecurityProfile::Localhost, "localhost/my-profile"), true,
                              dir / "profiles", profile, warnings)
                  .isOk());
  EXPECT_EQ(profile, "my-profile");
  EXPECT_EQ(resolveApparmor(apparmor(SecurityProfile::Localhost, "my"), true, dir / "profiles",
                            profile, warnings)
                .code(),
            StatusCode::kNotFound);
  ASSERT_TRUE(resolveApparmor(apparmor(SecurityProfile::RuntimeDefault), true, dir / "profiles",
                              profile, warnings)
                  .isOk());
  EXPECT_EQ(profile, "");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("AppArmor"), std::string::npos);
}

TEST(SpecSecurityTest, SelinuxOptionsIgnoredWhereSelinuxIsOff) {
  runtime::v1::LinuxContainerSecurityContext context;
  context.mutable_selinux_options()->set_level("s0:c1,c2");
  EXPECT_TRUE(checkSelinux(context, false).isOk());
  EXPECT_EQ(checkSelinux(context, true).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(checkSelinux({}, true).isOk());
}

TEST(SpecSecurityTest, MaskedAndReadonlyPaths) {
  runtime::v1::LinuxContainerSecurityContext context;
  Json masked, readonly;
  ASSERT_TRUE(buildMaskedPaths(context, masked, readonly).isOk());
  EXPECT_EQ(testing::strings(masked), defaultMaskedPaths());
  EXPECT_EQ(testing::strings(readonly), defaultReadonlyPaths());
  EXPECT_TRUE(testing::contains(testing::strings(masked), "/proc/kcore"));
  EXPECT_TRUE(testing::contains(testing::strings(readonly), "/proc/sys"));

  context.add_masked_paths("/proc/custom");
  context.add_readonly_paths("/proc/other");
  ASSERT_TRUE(buildMaskedPaths(context, masked, readonly).isOk());
  EXPECT_EQ(masked, Json::array({"/proc/custom"}));
  EXPECT_EQ(readonly, Json::array({"/proc/other"}));

  context.set_privileged(true);
  ASSERT_TRUE(buildMaskedPaths(context, masked, readonly).isOk());
  EXPECT_EQ(masked, Json::array());
  EXPECT_EQ(readonly, Json::array());

  runtime::v1::LinuxContainerSecurityContext bad;
  bad.add_masked_paths("proc/x");
  EXPECT_EQ(buildMaskedPaths(bad, masked, readonly).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace monocri::oci
