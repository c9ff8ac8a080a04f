// Capability sets from kubelet's add/drop lists, "ALL", ambient capabilities and privileged
// containers, clamped to a host mask.
#include "oci/spec/Capabilities.h"

#include <gtest/gtest.h>
#include <sys/capability.h>

#include "SpecTestSupport.h"

namespace monocri::oci {
namespace {

using grpc::StatusCode;
using testing::contains;
using testing::strings;
using Strings = std::vector<std::string>;

const Strings kDefaultNames = {
    "CAP_CHOWN",      "CAP_DAC_OVERRIDE", "CAP_FOWNER",      "CAP_FSETID",           "CAP_KILL",
    "CAP_SETGID",     "CAP_SETUID",       "CAP_SETPCAP",     "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
    "CAP_SYS_CHROOT", "CAP_MKNOD",        "CAP_AUDIT_WRITE", "CAP_SETFCAP"};

runtime::v1::LinuxContainerSecurityContext contextWith(const Strings& add, const Strings& drop,
                                                       const Strings& ambient = {}) {
  runtime::v1::LinuxContainerSecurityContext context;
  for (const auto& name : add)
    context.mutable_capabilities()->add_add_capabilities(name);
  for (const auto& name : drop)
    context.mutable_capabilities()->add_drop_capabilities(name);
  for (const auto& name : ambient)
    context.mutable_capabilities()->add_add_ambient_capabilities(name);
  return context;
}

CapabilityMask bit(int cap) {
  return CapabilityMask{1} << cap;
}

Strings sorted(Strings names) {
  std::sort(names.begin(), names.end());
  return names;
}

TEST(CapabilitiesTest, NamesAreLibcaps) {
  EXPECT_EQ(capabilityFromName("CAP_SYS_ADMIN"), CAP_SYS_ADMIN);
  EXPECT_EQ(capabilityFromName("sys_admin"), CAP_SYS_ADMIN);
  EXPECT_EQ(capabilityFromName("Net_Raw"), CAP_NET_RAW);
  EXPECT_EQ(capabilityFromName("cap_bpf"), CAP_BPF);
  for (const char* bad : {"", "CAP_", "NOT_A_CAP", "12", "cap_12", "chown,kill", "CAP_CHOWN ",
                          "all", "CAP_CAP_CHOWN"}) {
    EXPECT_EQ(capabilityFromName(bad), -1) << bad;
  }
  EXPECT_EQ(capabilityName(CAP_CHOWN), "CAP_CHOWN");
  EXPECT_EQ(capabilityName(63), "");
}

TEST(CapabilitiesTest, DefaultsAreContainerds) {
  CapabilitySets sets;
  std::vector<std::string> warnings;
  ASSERT_TRUE(resolveCapabilities({}, allKernelCapabilities(), sets, warnings).isOk());
  EXPECT_EQ(sorted(capabilityNames(sets.bounding)), sorted(kDefaultNames));
  EXPECT_EQ(sets.effective, sets.bounding);
  EXPECT_EQ(sets.permitted, sets.bounding);
  EXPECT_EQ(sets.inheritable, 0u);
  EXPECT_EQ(sets.ambient, 0u);
  EXPECT_TRUE(warnings.empty());
}

TEST(CapabilitiesTest, AddAndDrop) {
  struct Case {
    const char* name;
    Strings add, drop;
    CapabilityMask expected;
  };
  const CapabilityMask all = allKernelCapabilities();
  const CapabilityMask defaults = defaultCapabilities();
  const std::vector<Case> cases = {
      {"add and drop, kubelet's spelling",
       {"NET_ADMIN"},
       {"CHOWN"},
       (defaults | bit(CAP_NET_ADMIN)) & ~bit(CAP_CHOWN)},
      {"prefixed and lowercase",
       {"cap_sys_time"},
       {"CAP_KILL"},
       (defaults | bit(CAP_SYS_TIME)) & ~bit(CAP_KILL)},
      {"ALL", {"ALL"}, {}, all},
      {"all in lowercase", {"all"}, {}, all},
      {"ALL but one", {"ALL"}, {"SYS_ADMIN"}, all & ~bit(CAP_SYS_ADMIN)},
      {"drop ALL, add one", {"NET_BIND_SERVICE"}, {"ALL"}, bit(CAP_NET_BIND_SERVICE)},
      {"drop ALL", {}, {"ALL"}, 0},
      {"add and drop ALL", {"ALL", "CHOWN"}, {"ALL"}, bit(CAP_CHOWN)},
  };
  for (const auto& c : cases) {
    CapabilitySets sets;
    std::vector<std::string> warnings;
    ASSERT_TRUE(resolveCapabilities(contextWith(c.add, c.drop), all, sets, warnings).isOk())
        << c.name;
    EXPECT_EQ(sets.bounding, c.expected) << c.name;
    EXPECT_EQ(sets.effective, c.expected) << c.name;
    EXPECT_TRUE(warnings.empty()) << c.name;
  }
}

TEST(CapabilitiesTest, UnknownNamesAreRefused) {
  CapabilitySets sets;
  std::vector<std::string> warnings;
  auto status = resolveCapabilities(contextWith({"NET_ADMIN", "FLY"}, {}), allKernelCapabilities(),
                                    sets, warnings);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("\"FLY\""), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("add_capabilities"), std::string::npos);
  status = resolveCapabilities(contextWith({}, {"12"}), allKernelCapabilities(), sets, warnings);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("drop_capabilities"), std::string::npos);
}

TEST(CapabilitiesTest, AsksBeyondTheHostAreClampedWithOneWarning) {
  // A host like this one: everything but CAP_SYS_RESOURCE.
  const CapabilityMask host = allKernelCapabilities() & ~bit(CAP_SYS_RESOURCE);
  CapabilitySets sets;
  std::vector<std::string> warnings;
  ASSERT_TRUE(
      resolveCapabilities(contextWith({"SYS_RESOURCE", "NET_ADMIN"}, {}), host, sets, warnings)
          .isOk());
  EXPECT_FALSE(hasCapability(sets.bounding, CAP_SYS_RESOURCE));
  EXPECT_TRUE(hasCapability(sets.bounding, CAP_NET_ADMIN));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("CAP_SYS_RESOURCE"), std::string::npos) << warnings[0];

  // Privileged: the host's set, one warning saying it is less than all.
  runtime::v1::LinuxContainerSecurityContext privileged;
  privileged.set_privileged(true);
  warnings.clear();
  ASSERT_TRUE(resolveCapabilities(privileged, host, sets, warnings).isOk());
  EXPECT_EQ(sets.bounding, host);
  EXPECT_EQ(sets.permitted, host);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("CAP_SYS_RESOURCE"), std::string::npos) << warnings[0];

  // With everything held, privileged brings no warning.
  warnings.clear();
  ASSERT_TRUE(resolveCapabilities(privileged, allKernelCapabilities(), sets, warnings).isOk());
  EXPECT_EQ(sets.bounding, allKernelCapabilities());
  EXPECT_TRUE(warnings.empty());
}

TEST(CapabilitiesTest, AmbientCapabilities) {
  CapabilitySets sets;
  std::vector<std::string> warnings;
  ASSERT_TRUE(resolveCapabilities(contextWith({}, {}, {"NET_BIND_SERVICE"}),
                                  allKernelCapabilities(), sets, warnings)
                  .isOk());
  EXPECT_EQ(sets.ambient, bit(CAP_NET_BIND_SERVICE));
  EXPECT_EQ(sets.inheritable, bit(CAP_NET_BIND_SERVICE));
  EXPECT_TRUE(hasCapability(sets.permitted, CAP_NET_BIND_SERVICE));

  const auto status = resolveCapabilities(contextWith({}, {}, {"NET_ADMIN"}),
                                          allKernelCapabilities(), sets, warnings);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("CAP_NET_ADMIN"), std::string::npos);
  EXPECT_EQ(resolveCapabilities(contextWith({"ALL"}, {}, {"ALL"}), allKernelCapabilities(), sets,
                                warnings)
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(CapabilitiesTest, JsonHasAllFiveSets) {
  CapabilitySets sets;
  sets.bounding = sets.effective = sets.permitted = bit(CAP_CHOWN) | bit(CAP_KILL);
  sets.inheritable = sets.ambient = bit(CAP_KILL);
  const auto json = capabilitiesJson(sets);
  EXPECT_EQ(strings(json["bounding"]), (Strings{"CAP_CHOWN", "CAP_KILL"}));
  EXPECT_EQ(strings(json["effective"]), (Strings{"CAP_CHOWN", "CAP_KILL"}));
  EXPECT_EQ(strings(json["permitted"]), (Strings{"CAP_CHOWN", "CAP_KILL"}));
  EXPECT_EQ(strings(json["inheritable"]), (Strings{"CAP_KILL"}));
  EXPECT_EQ(strings(json["ambient"]), (Strings{"CAP_KILL"}));
  EXPECT_EQ(json.size(), 5u);
}

}  // namespace
}  // namespace monocri::oci
