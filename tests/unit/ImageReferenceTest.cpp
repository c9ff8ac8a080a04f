// Image references as kubelet and users write them, normalized as Docker and containerd do, and
// what the reference grammar (distribution/reference) refuses.
#include "oci/image/ImageReference.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace monocri::oci {
namespace {

const std::string kHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kDigest = "sha256:" + kHex;

ImageReference parsed(const std::string& text) {
  std::string why;
  auto ref = parseImageReference(text, &why);
  EXPECT_TRUE(ref.has_value()) << text << ": " << why;
  return ref.value_or(ImageReference{});
}

std::string refusal(const std::string& text) {
  std::string why;
  auto ref = parseImageReference(text, &why);
  EXPECT_FALSE(ref.has_value()) << text << " was accepted as " << (ref ? ref->string() : "");
  EXPECT_NE(why, "") << text;
  return why;
}

TEST(ImageReferenceTest, OneComponentShortNameIsDockerHubLibrary) {
  ImageReference ref = parsed("busybox");
  EXPECT_EQ(ref.domain, "docker.io");
  EXPECT_EQ(ref.path, "library/busybox");
  EXPECT_EQ(ref.tag, "latest");
  EXPECT_FALSE(ref.digest.has_value());
  EXPECT_TRUE(ref.shortName);
  EXPECT_EQ(ref.shortPath, "busybox");
  EXPECT_EQ(ref.name(), "docker.io/library/busybox");
  EXPECT_EQ(ref.string(), "docker.io/library/busybox:latest");
  EXPECT_EQ(ref.manifestReference(), "latest");
}

TEST(ImageReferenceTest, TwoComponentShortNameKeepsItsPath) {
  ImageReference ref = parsed("bitnami/redis:7.2");
  EXPECT_EQ(ref.domain, "docker.io");
  EXPECT_EQ(ref.path, "bitnami/redis");
  EXPECT_EQ(ref.tag, "7.2");
  EXPECT_TRUE(ref.shortName);
  EXPECT_EQ(ref.shortPath, "bitnami/redis");
  EXPECT_EQ(ref.string(), "docker.io/bitnami/redis:7.2");
}

TEST(ImageReferenceTest, FirstComponentIsARegistryWithADotAColonOrLocalhost) {
  ImageReference dotted = parsed("quay.io/x/y:1.2");
  EXPECT_EQ(dotted.domain, "quay.io");
  EXPECT_EQ(dotted.path, "x/y");
  EXPECT_EQ(dotted.tag, "1.2");
  EXPECT_FALSE(dotted.shortName);
  EXPECT_EQ(dotted.shortPath, "");

  ImageReference port = parsed("registry:5000/app");
  EXPECT_EQ(port.domain, "registry:5000");
  EXPECT_EQ(port.path, "app");  // not docker.io: no "library/"
  EXPECT_EQ(port.tag, "latest");
  EXPECT_FALSE(port.shortName);

  ImageReference local = parsed("localhost/app:dev");
  EXPECT_EQ(local.domain, "localhost");
  EXPECT_EQ(local.path, "app");
  EXPECT_EQ(local.tag, "dev");
  EXPECT_FALSE(local.shortName);

  ImageReference localPort = parsed("localhost:5000/a/b");
  EXPECT_EQ(localPort.domain, "localhost:5000");
  EXPECT_EQ(localPort.path, "a/b");

  ImageReference ipv6 = parsed("[::1]:5000/app:v1");
  EXPECT_EQ(ipv6.domain, "[::1]:5000");
  EXPECT_EQ(ipv6.path, "app");
  EXPECT_EQ(ipv6.tag, "v1");

  // No '.', ':' or "localhost": a Docker Hub organisation, not a host.
  ImageReference org = parsed("myregistry/app");
  EXPECT_EQ(org.domain, "docker.io");
  EXPECT_EQ(org.path, "myregistry/app");
  EXPECT_TRUE(org.shortName);
}

TEST(ImageReferenceTest, DockerHubAliasesBecomeDockerIo) {
  for (const char* text :
       {"index.docker.io/library/busybox", "index.docker.io/busybox",
        "registry-1.docker.io/busybox", "docker.io/busybox", "docker.io/library/busybox:latest"}) {
    ImageReference ref = parsed(text);
    EXPECT_EQ(ref.domain, "docker.io") << text;
    EXPECT_EQ(ref.path, "library/busybox") << text;
    EXPECT_EQ(ref.tag, "latest") << text;
    EXPECT_FALSE(ref.shortName) << text;
  }
}

TEST(ImageReferenceTest, DigestsAndTags) {
  ImageReference byDigest = parsed("registry:5000/app@" + kDigest);
  EXPECT_EQ(byDigest.tag, "");  // no default tag when a digest is given
  ASSERT_TRUE(byDigest.digest.has_value());
  EXPECT_EQ(byDigest.digest->str(), kDigest);
  EXPECT_EQ(byDigest.string(), "registry:5000/app@" + kDigest);
  EXPECT_EQ(byDigest.manifestReference(), kDigest);

  ImageReference both = parsed("busybox:1.36@" + kDigest);
  EXPECT_EQ(both.tag, "1.36");
  ASSERT_TRUE(both.digest.has_value());
  EXPECT_EQ(both.string(), "docker.io/library/busybox:1.36@" + kDigest);
  EXPECT_EQ(both.manifestReference(), kDigest);  // the digest wins

  // Tags: word characters, '.', '-', up to 128, not starting with '.' or '-'.
  EXPECT_EQ(parsed("a:V1.2-rc_3").tag, "V1.2-rc_3");
  EXPECT_EQ(parsed("a:_x").tag, "_x");
  EXPECT_EQ(parsed("a:" + std::string(128, 't')).tag, std::string(128, 't'));
  // The separators of the grammar.
  EXPECT_EQ(parsed("x/a.b_c__d---e").path, "x/a.b_c__d---e");
}

TEST(ImageReferenceTest, AtMovesTheImageAndKeepsTagAndDigest) {
  ImageReference ref = parsed("busybox:1.36@" + kDigest);
  ImageReference moved = ref.at("mirror.local:5000", "cache/busybox");
  EXPECT_EQ(moved.domain, "mirror.local:5000");
  EXPECT_EQ(moved.path, "cache/busybox");
  EXPECT_EQ(moved.tag, "1.36");
  ASSERT_TRUE(moved.digest.has_value());
  EXPECT_EQ(moved.digest->str(), kDigest);
  EXPECT_FALSE(moved.shortName);
  EXPECT_EQ(moved.shortPath, "");
  EXPECT_EQ(moved.string(), "mirror.local:5000/cache/busybox:1.36@" + kDigest);
  // The original is unchanged.
  EXPECT_EQ(ref.domain, "docker.io");
  EXPECT_TRUE(ref.shortName);
}

TEST(ImageReferenceTest, StringReparsesToTheSameFields) {
  for (const std::string& text : std::vector<std::string>{
           "busybox", "a/b/c:1", "quay.io/x/y@" + kDigest, "[::1]:5000/a:t@" + kDigest,
           "localhost/x", "index.docker.io/busybox:2"}) {
    ImageReference first = parsed(text);
    ImageReference again = parsed(first.string());
    EXPECT_EQ(again.domain, first.domain) << text;
    EXPECT_EQ(again.path, first.path) << text;
    EXPECT_EQ(again.tag, first.tag) << text;
    EXPECT_EQ(again.digest, first.digest) << text;
    EXPECT_EQ(again.string(), first.string()) << text;
  }
}

TEST(ImageReferenceTest, TheGrammarsRefusals) {
  EXPECT_NE(refusal("").find("empty"), std::string::npos);
  // Path components: lowercase only, no empty component, no leading/trailing separator.
  EXPECT_NE(refusal("Busybox").find("'Busybox' is not a valid name component"), std::string::npos);
  EXPECT_NE(refusal("quay.io/Team/app").find("'Team'"), std::string::npos);
  refusal("a//b");
  refusal("a/");
  refusal("/a");
  refusal("a-");
  refusal("-a");
  refusal("a.");
  refusal("a/_b");
  refusal("a...b");  // '.' is a one-character separator
  refusal("a___b");
  refusal("a b");
  refusal("quay.io/");
  // Tags.
  EXPECT_NE(refusal("a:").find("not a valid tag"), std::string::npos);
  refusal("a:-x");
  refusal("a:.x");
  refusal("a:x/y");  // a '/' after the colon: "a:x" is then a registry host with a bad port
  refusal("a:t@");
  refusal("a:" + std::string(129, 't'));
  refusal("a:ta+g");
  // Registry hosts.
  refusal("-bad.host/a");
  refusal("bad..host/a");
  refusal("host.:5000/a");
  refusal("host:port/a");
  refusal("host:123456/a");
  refusal("[::1/a");
  refusal("[]/a");
  // Names longer than 255 characters.
  EXPECT_NE(refusal("quay.io/" + std::string(248, 'a')).find("255"), std::string::npos);
  // Digests: sha256 with 64 lowercase hex digits only; others named.
  EXPECT_NE(refusal("a@sha512:" + kHex + kHex).find("'sha512' is not supported"),
            std::string::npos);
  EXPECT_NE(refusal("a@sha256:" + kHex.substr(1)).find("64 hex digits"), std::string::npos);
  std::string upper = kHex;
  upper[0] = 'A';
  EXPECT_NE(refusal("a@sha256:" + upper).find("lowercase"), std::string::npos);
  refusal("a@" + kHex);
  refusal("a@");
  refusal("@" + kDigest);
  refusal(":tag");
  // The reason names the reference.
  EXPECT_NE(refusal("UPPER").find("invalid image reference 'UPPER'"), std::string::npos);
}

TEST(ImageReferenceTest, ExactlyTheMaximumNameLengthIsAccepted) {
  const std::string name = "quay.io/" + std::string(247, 'a');  // 255 characters
  ASSERT_EQ(name.size(), 255u);
  EXPECT_EQ(parsed(name).name(), name);
}

// The 255-character limit counts the normalized name, as distribution/reference does: a short
// name of 238 to 255 characters would otherwise parse while its own string() does not.
TEST(ImageReferenceTest, NameLimitCountsTheNormalizedName) {
  const std::string shortName(250, 'a');
  std::string why;
  auto ref = parseImageReference(shortName, &why);
  if (ref) {
    std::string again;
    EXPECT_TRUE(parseImageReference(ref->string(), &again).has_value()) << again;
  }
  EXPECT_FALSE(ref.has_value()) << "accepted as " << (ref ? ref->name() : "") << " ("
                                << (ref ? ref->name().size() : 0) << " characters)";
}

}  // namespace
}  // namespace monocri::oci
