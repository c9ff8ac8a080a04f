// containers-registries.conf v2 as CRI-O, Podman and Skopeo read it: mirrors, blocked and
// insecure registries, prefixes, short-name search and aliases.
#include "oci/image/RegistriesConf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace monocri::oci {
namespace {

const std::string kDigest =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

ImageReference reference(const std::string& text) {
  auto parsed = parseImageReference(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(ImageReference{});
}

RegistriesConf parseOk(const std::string& text, std::vector<std::string>* warningsOut = nullptr) {
  RegistriesConf conf;
  std::vector<std::string> warnings;
  EXPECT_EQ(RegistriesConf::parse(text, "registries.conf", conf, warnings), "") << text;
  if (warningsOut) *warningsOut = warnings;
  return conf;
}

std::string parseError(const std::string& text) {
  RegistriesConf conf;
  std::vector<std::string> warnings;
  std::string error = RegistriesConf::parse(text, "registries.conf", conf, warnings);
  EXPECT_NE(error, "") << text;
  return error;
}

// The sources of `text` as "name-with-tag-or-digest [mirror] [insecure]" strings.
std::vector<std::string> sourcesOf(const RegistriesConf& conf, const std::string& text) {
  std::vector<PullSource> sources;
  std::string error = conf.sources(reference(text), sources);
  EXPECT_EQ(error, "") << text;
  std::vector<std::string> out;
  for (const auto& source : sources) {
    out.push_back(source.ref.string() + (source.mirror ? " mirror" : "") +
                  (source.insecure ? " insecure" : ""));
  }
  return out;
}

std::vector<std::string> names(const std::vector<ImageReference>& refs) {
  std::vector<std::string> out;
  for (const auto& r : refs)
    out.push_back(r.string());
  return out;
}

using Strings = std::vector<std::string>;

TEST(RegistriesConfTest, EmptyFileMeansDockerHubAndNoRewrites) {
  RegistriesConf conf = parseOk("");
  EXPECT_TRUE(conf.registries().empty());
  EXPECT_TRUE(conf.searchRegistries().empty());
  EXPECT_EQ(names(conf.qualify(reference("busybox"))), Strings{"docker.io/library/busybox:latest"});
  EXPECT_EQ(names(conf.qualify(reference("team/app:1"))), Strings{"docker.io/team/app:1"});
  EXPECT_EQ(sourcesOf(conf, "quay.io/a/b:1"), Strings{"quay.io/a/b:1"});
}

TEST(RegistriesConfTest, MissingFileGivesDefaultsAndAFileIsRead) {
  char tmpl[] = "/tmp/monocri-registries-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  RegistriesConf conf;
  std::vector<std::string> warnings;
  EXPECT_EQ(RegistriesConf::load(dir + "/missing.conf", conf, warnings), "");
  EXPECT_TRUE(conf.registries().empty());

  const std::string path = dir + "/registries.conf";
  std::ofstream(path) << "unqualified-search-registries = [\"quay.io\"]\n"
                         "[[registry]]\nlocation = \"quay.io\"\ninsecure = true\n";
  ASSERT_EQ(RegistriesConf::load(path, conf, warnings), "");
  EXPECT_EQ(conf.searchRegistries(), Strings{"quay.io"});
  EXPECT_EQ(sourcesOf(conf, "quay.io/a:1"), Strings{"quay.io/a:1 insecure"});

  std::ofstream(path) << "[[registry]]\nprefix = 5\n";
  std::string error = RegistriesConf::load(path, conf, warnings);
  EXPECT_NE(error.find(path + ":2"), std::string::npos) << error;
  std::system(("rm -rf " + dir).c_str());
}

TEST(RegistriesConfTest, MirrorsComeFirstThenThePrimary) {
  RegistriesConf conf = parseOk(R"(
[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "mirror-a.local:5000"
insecure = true

[[registry.mirror]]
location = "mirror-b.local/hub"
)");
  ASSERT_EQ(conf.registries().size(), 1u);
  ASSERT_EQ(conf.registries()[0].mirrors.size(), 2u);
  EXPECT_EQ(
      sourcesOf(conf, "busybox:1"),
      (Strings{"mirror-a.local:5000/library/busybox:1 mirror insecure",
               "mirror-b.local/hub/library/busybox:1 mirror", "docker.io/library/busybox:1"}));
  // Other registries are untouched.
  EXPECT_EQ(sourcesOf(conf, "quay.io/a:1"), Strings{"quay.io/a:1"});
}

TEST(RegistriesConfTest, LocationRewriteKeepsTheRestOfThePathAndTheDigest) {
  RegistriesConf conf = parseOk(R"(
[[registry]]
prefix = "example.com/foo"
location = "internal.example.net/mirrors/foo"
)");
  EXPECT_EQ(sourcesOf(conf, "example.com/foo/bar/baz:2"),
            Strings{"internal.example.net/mirrors/foo/bar/baz:2"});
  EXPECT_EQ(sourcesOf(conf, "example.com/foo@" + kDigest),
            Strings{"internal.example.net/mirrors/foo@" + kDigest});
  // A prefix matches at component boundaries only.
  EXPECT_EQ(sourcesOf(conf, "example.com/foobar:1"), Strings{"example.com/foobar:1"});
  EXPECT_EQ(sourcesOf(conf, "example.com/fo:1"), Strings{"example.com/fo:1"});
  EXPECT_EQ(sourcesOf(conf, "example.com:5000/foo:1"), Strings{"example.com:5000/foo:1"});
}

TEST(RegistriesConfTest, LongestPrefixWins) {
  RegistriesConf conf = parseOk(R"(
[[registry]]
prefix = "example.com"
location = "one.local"

[[registry]]
prefix = "example.com/team/app"
location = "three.local/x"

[[registry]]
prefix = "example.com/team"
location = "two.local"

[[registry]]
prefix = "*.example.com"
insecure = true
)");
  EXPECT_EQ(sourcesOf(conf, "example.com/other:1"), Strings{"one.local/other:1"});
  EXPECT_EQ(sourcesOf(conf, "example.com/team/other:1"), Strings{"two.local/other:1"});
  EXPECT_EQ(sourcesOf(conf, "example.com/team/app:1"), Strings{"three.local/x:1"});
  EXPECT_EQ(sourcesOf(conf, "example.com/team/app/sub:1"), Strings{"three.local/x/sub:1"});
  EXPECT_EQ(sourcesOf(conf, "example.com/team/application:1"), Strings{"two.local/application:1"});
  // The wildcard matches subdomains (with any port), not the domain itself.
  EXPECT_EQ(sourcesOf(conf, "a.example.com/x:1"), Strings{"a.example.com/x:1 insecure"});
  EXPECT_EQ(sourcesOf(conf, "b.a.example.com:5000/x:1"),
            Strings{"b.a.example.com:5000/x:1 insecure"});
  EXPECT_EQ(sourcesOf(conf, "notexample.com/x:1"), Strings{"notexample.com/x:1"});
}

TEST(RegistriesConfTest, WildcardMirrorsReplaceTheHost) {
  RegistriesConf conf = parseOk(R"(
[[registry]]
prefix = "*.corp.example"

[[registry.mirror]]
location = "cache.local/corp"
)");
  EXPECT_EQ(sourcesOf(conf, "reg.corp.example/team/app:1"),
            (Strings{"cache.local/corp/team/app:1 mirror", "reg.corp.example/team/app:1"}));
  // A wildcard cannot name a location.
  EXPECT_NE(parseError("[[registry]]\nprefix = \"*.x.example\"\nlocation = \"y.example\"\n")
                .find("wildcard"),
            std::string::npos);
}

TEST(RegistriesConfTest, DigestOnlyAndTagOnlyMirrors) {
  RegistriesConf conf = parseOk(R"(
[[registry]]
location = "quay.io"

[[registry.mirror]]
location = "digests.local"
pull-from-mirror = "digest-only"

[[registry.mirror]]
location = "tags.local"
pull-from-mirror = "tag-only"

[[registry.mirror]]
location = "all.local"
pull-from-mirror = "all"
)");
  EXPECT_EQ(sourcesOf(conf, "quay.io/a:1"),
            (Strings{"tags.local/a:1 mirror", "all.local/a:1 mirror", "quay.io/a:1"}));
  EXPECT_EQ(sourcesOf(conf, "quay.io/a@" + kDigest),
            (Strings{"digests.local/a@" + kDigest + " mirror", "all.local/a@" + kDigest + " mirror",
                     "quay.io/a@" + kDigest}));

  // mirror-by-digest-only applies to every mirror of the registry.
  RegistriesConf byDigest = parseOk(R"(
[[registry]]
location = "quay.io"
mirror-by-digest-only = true

[[registry.mirror]]
location = "m.local"
)");
  ASSERT_EQ(byDigest.registries().size(), 1u);
  EXPECT_EQ(sourcesOf(byDigest, "quay.io/a:1"), Strings{"quay.io/a:1"});
  EXPECT_EQ(sourcesOf(byDigest, "quay.io/a@" + kDigest),
            (Strings{"m.local/a@" + kDigest + " mirror", "quay.io/a@" + kDigest}));

  EXPECT_NE(parseError("[[registry]]\nlocation = \"q.io\"\n[[registry.mirror]]\nlocation = "
                       "\"m.io\"\npull-from-mirror = \"sometimes\"\n")
                .find("registries.conf:5: 'pull-from-mirror' must be all, digest-only or "
                      "tag-only, not 'sometimes'"),
            std::string::npos);
  EXPECT_NE(parseError("[[registry]]\nlocation = \"q.io\"\npull-from-mirror = \"all\"\n")
                .find("belongs in [[registry.mirror]]"),
            std::string::npos);
}

TEST(RegistriesConfTest, BlockedRegistryIsAnError) {
  RegistriesConf conf = parseOk(R"(
[[registry]]
prefix = "evil.example/bad"
blocked = true
)");
  std::vector<PullSource> sources;
  std::string error = conf.sources(reference("evil.example/bad/app:1"), sources);
  EXPECT_NE(error.find("blocked"), std::string::npos) << error;
  EXPECT_NE(error.find("evil.example/bad"), std::string::npos) << error;
  EXPECT_TRUE(sources.empty());
  // Outside the prefix, pulls go on.
  EXPECT_EQ(sourcesOf(conf, "evil.example/good:1"), Strings{"evil.example/good:1"});
}

TEST(RegistriesConfTest, ShortNamesUseAliasesThenSearchRegistries) {
  RegistriesConf conf = parseOk(R"(
unqualified-search-registries = ["registry.fedoraproject.org", "docker.io", "quay.io"]

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
"team/tool" = "quay.io/team/tool"
)");
  EXPECT_EQ(conf.searchRegistries(),
            (Strings{"registry.fedoraproject.org", "docker.io", "quay.io"}));
  EXPECT_EQ(names(conf.qualify(reference("fedora:39"))),
            Strings{"registry.fedoraproject.org/fedora:39"});
  EXPECT_EQ(names(conf.qualify(reference("team/tool"))), Strings{"quay.io/team/tool:latest"});
  // docker.io gets "library/" for a one-component name; the others the name as written.
  EXPECT_EQ(names(conf.qualify(reference("busybox@" + kDigest))),
            (Strings{"registry.fedoraproject.org/busybox@" + kDigest,
                     "docker.io/library/busybox@" + kDigest, "quay.io/busybox@" + kDigest}));
  EXPECT_EQ(names(conf.qualify(reference("org/app:2"))),
            (Strings{"registry.fedoraproject.org/org/app:2", "docker.io/org/app:2",
                     "quay.io/org/app:2"}));
  for (const auto& candidate : conf.qualify(reference("busybox"))) {
    EXPECT_FALSE(candidate.shortName);
  }
  // A qualified reference is returned as it is.
  EXPECT_EQ(names(conf.qualify(reference("docker.io/library/busybox"))),
            Strings{"docker.io/library/busybox:latest"});
  EXPECT_EQ(names(conf.qualify(reference("quay.io/x/fedora"))), Strings{"quay.io/x/fedora:latest"});

  EXPECT_NE(parseError("[aliases]\nfedora = \"fedora\"\n").find("fully qualified"),
            std::string::npos);
  EXPECT_NE(parseError("[aliases]\nfedora = 3\n").find("registries.conf:2"), std::string::npos);
  EXPECT_NE(parseError("unqualified-search-registries = [\"quay.io/team\"]\n")
                .find("must be registry hosts"),
            std::string::npos);
  EXPECT_NE(parseError("unqualified-search-registries = \"quay.io\"\n").find("array"),
            std::string::npos);
}

TEST(RegistriesConfTest, UnknownKeysAreWarningsNotErrors) {
  std::vector<std::string> warnings;
  RegistriesConf conf = parseOk(R"(short-name-mode = "enforcing"
credential-helpers = ["containers-auth.json"]

[[registry]]
location = "quay.io"
future-key = 1

[[registry.mirror]]
location = "m.local"
another = "x"
)",
                                &warnings);
  ASSERT_EQ(warnings.size(), 4u);
  std::string all;
  for (const auto& w : warnings)
    all += w + "\n";
  EXPECT_NE(all.find("registries.conf:1: 'short-name-mode'"), std::string::npos) << all;
  EXPECT_NE(all.find("'credential-helpers'"), std::string::npos) << all;
  EXPECT_NE(all.find("registries.conf:6: 'future-key' in [[registry]]"), std::string::npos) << all;
  EXPECT_NE(all.find("registries.conf:10: 'another' in [[registry.mirror]]"), std::string::npos)
      << all;
  EXPECT_EQ(sourcesOf(conf, "quay.io/a:1"), (Strings{"m.local/a:1 mirror", "quay.io/a:1"}));
}

TEST(RegistriesConfTest, VersionOneFormatIsRefusedClearly) {
  std::string error = parseError(R"(
[registries.search]
registries = ["docker.io"]

[registries.insecure]
registries = []
)");
  EXPECT_NE(error.find("registries.conf:"), std::string::npos) << error;
  EXPECT_NE(error.find("v1 format"), std::string::npos) << error;
  EXPECT_NE(error.find("[[registry]]"), std::string::npos) << error;
}

TEST(RegistriesConfTest, TypeErrorsNameFileAndLine) {
  EXPECT_NE(parseError("[[registry]]\nlocation = \"q.io\"\ninsecure = \"yes\"\n")
                .find("registries.conf:3: 'insecure' must be true or false, not a string"),
            std::string::npos);
  EXPECT_NE(parseError("[[registry]]\nlocation = \"q.io\"\nblocked = 1\n")
                .find("registries.conf:3: 'blocked' must be true or false"),
            std::string::npos);
  EXPECT_NE(parseError("[[registry]]\nlocation = [\"q.io\"]\n")
                .find("registries.conf:2: 'location' must be a string, not a array"),
            std::string::npos);
  EXPECT_NE(parseError("[[registry]]\nlocation = \"q.io\"\nmirror-by-digest-only = \"true\"\n")
                .find("registries.conf:3:"),
            std::string::npos);
  EXPECT_NE(parseError("registry = 1\n").find("[[registry]]"), std::string::npos);
  EXPECT_NE(parseError("[registry]\nlocation = \"q.io\"\n").find("[[registry]]"),
            std::string::npos);
  EXPECT_NE(parseError("[[registry]]\nlocation = \"q.io\"\nmirror = \"m.io\"\n")
                .find("[[registry.mirror]]"),
            std::string::npos);
  EXPECT_NE(parseError("[[registry]]\ninsecure = true\n").find("needs a prefix or a location"),
            std::string::npos);
  EXPECT_NE(parseError("[[registry]]\nprefix = \"Not A Host\"\n").find("prefix 'Not A Host'"),
            std::string::npos);
  EXPECT_NE(parseError("[[registry]]\nprefix = \"q.io\"\nlocation = \"q.io:tag:x\"\n")
                .find("location 'q.io:tag:x'"),
            std::string::npos);
  EXPECT_NE(parseError("[[registry]]\nlocation = \"q.io\"\n[[registry.mirror]]\ninsecure = true\n")
                .find("mirror location ''"),
            std::string::npos);
  EXPECT_NE(parseError("[[registry]]\nlocation = \"q.io\"\n[[registry]]\nlocation = 1\n")
                .find("registries.conf:4"),
            std::string::npos);
  // A TOML syntax error names the line too.
  EXPECT_NE(parseError("[[registry]]\nlocation = \n").find("registries.conf:2"), std::string::npos);
}

TEST(RegistriesConfTest, PrefixDefaultsToLocationAndLocationToPrefix) {
  RegistriesConf conf = parseOk(R"(
[[registry]]
location = "quay.io/team"

[[registry]]
prefix = "ghcr.io"
insecure = true
)");
  ASSERT_EQ(conf.registries().size(), 2u);
  EXPECT_EQ(conf.registries()[0].prefix, "quay.io/team");
  EXPECT_EQ(conf.registries()[1].primary.location, "ghcr.io");
  EXPECT_EQ(sourcesOf(conf, "ghcr.io/a:1"), Strings{"ghcr.io/a:1 insecure"});
  EXPECT_EQ(sourcesOf(conf, "quay.io/team/a:1"), Strings{"quay.io/team/a:1"});
}

}  // namespace
}  // namespace monocri::oci
