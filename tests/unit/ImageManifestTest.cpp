// Manifests, indexes and image configs as registries serve them, and documents built to make a
// careless JSON reader throw.
#include "oci/image/ImageManifest.h"

#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <functional>
#include <string>
#include <variant>
#include <vector>

namespace monocri::oci {
namespace {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;

const std::string kA = "sha256:" + std::string(64, 'a');
const std::string kB = "sha256:" + std::string(64, 'b');
const std::string kC = "sha256:" + std::string(64, 'c');

Json descriptor(std::string_view mediaType, const std::string& digest, int64_t size) {
  return Json{{"mediaType", mediaType}, {"digest", digest}, {"size", size}};
}

Json ociManifest() {
  return Json{{"schemaVersion", 2},
              {"mediaType", mediatype::kOciManifest},
              {"config", descriptor(mediatype::kOciConfig, kA, 1234)},
              {"layers",
               Json::array({descriptor("application/vnd.oci.image.layer.v1.tar+gzip", kB, 100),
                            descriptor("application/vnd.oci.image.layer.v1.tar+zstd", kC, 200)})}};
}

Json platformEntry(const std::string& digest, const std::string& arch,
                   const std::string& variant = "") {
  Json entry = descriptor(mediatype::kOciManifest, digest, 500);
  entry["platform"] = Json{{"os", "linux"}, {"architecture", arch}};
  if (!variant.empty()) entry["platform"]["variant"] = variant;
  return entry;
}

Status parse(const Json& json, std::variant<Manifest, Index>& out,
             std::string_view contentType = "") {
  return parseManifestDocument(json.dump(), contentType, out);
}

Index indexOf(const std::vector<Json>& entries) {
  std::variant<Manifest, Index> out;
  Json json{{"mediaType", mediatype::kOciIndex}, {"manifests", entries}};
  EXPECT_TRUE(parse(json, out).isOk()) << json.dump();
  return std::holds_alternative<Index>(out) ? std::get<Index>(out) : Index{};
}

Status parseText(std::string_view text, std::string_view contentType = "") {
  std::variant<Manifest, Index> out;
  return parseManifestDocument(text, contentType, out);
}

TEST(ImageManifestTest, OciManifest) {
  std::variant<Manifest, Index> out;
  ASSERT_TRUE(parse(ociManifest(), out).isOk());
  ASSERT_TRUE(std::holds_alternative<Manifest>(out));
  const Manifest& manifest = std::get<Manifest>(out);
  EXPECT_EQ(manifest.mediaType, mediatype::kOciManifest);
  EXPECT_EQ(manifest.config.mediaType, mediatype::kOciConfig);
  EXPECT_EQ(manifest.config.digest.str(), kA);
  EXPECT_EQ(manifest.config.size, 1234);
  ASSERT_EQ(manifest.layers.size(), 2u);
  EXPECT_EQ(manifest.layers[0].digest.str(), kB);
  EXPECT_EQ(manifest.layers[0].size, 100);
  EXPECT_EQ(manifest.layers[1].mediaType, "application/vnd.oci.image.layer.v1.tar+zstd");
  EXPECT_EQ(manifest.layers[1].size, 200);
}

TEST(ImageManifestTest, DockerSchema2ManifestAndList) {
  Json docker{
      {"schemaVersion", 2},
      {"mediaType", mediatype::kDockerManifest},
      {"config", descriptor(mediatype::kDockerConfig, kA, 10)},
      {"layers",
       Json::array({descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", kB, 20)})}};
  std::variant<Manifest, Index> out;
  ASSERT_TRUE(parse(docker, out).isOk());
  ASSERT_TRUE(std::holds_alternative<Manifest>(out));
  EXPECT_EQ(std::get<Manifest>(out).mediaType, mediatype::kDockerManifest);
  EXPECT_EQ(std::get<Manifest>(out).layers.size(), 1u);

  Json list{{"schemaVersion", 2},
            {"mediaType", mediatype::kDockerManifestList},
            {"manifests", Json::array({platformEntry(kA, "amd64"), platformEntry(kB, "arm64")})}};
  ASSERT_TRUE(parse(list, out).isOk());
  ASSERT_TRUE(std::holds_alternative<Index>(out));
  const Index& index = std::get<Index>(out);
  EXPECT_EQ(index.mediaType, mediatype::kDockerManifestList);
  ASSERT_EQ(index.manifests.size(), 2u);
  ASSERT_TRUE(index.manifests[1].platform.has_value());
  EXPECT_EQ(index.manifests[1].platform->string(), "linux/arm64");
}

TEST(ImageManifestTest, MediaTypeFromHeaderThenFromShape) {
  Json manifest = ociManifest();
  manifest.erase("mediaType");
  std::variant<Manifest, Index> out;
  // The header decides (parameters after ';' ignored).
  ASSERT_TRUE(
      parse(manifest, out, std::string(mediatype::kDockerManifest) + "; charset=utf-8").isOk());
  EXPECT_EQ(std::get<Manifest>(out).mediaType, mediatype::kDockerManifest);
  // A generic header: the shape decides.
  ASSERT_TRUE(parse(manifest, out, "application/json").isOk());
  EXPECT_EQ(std::get<Manifest>(out).mediaType, mediatype::kOciManifest);

  Json index{{"schemaVersion", 2}, {"manifests", Json::array({platformEntry(kA, "amd64")})}};
  ASSERT_TRUE(parse(index, out).isOk());
  ASSERT_TRUE(std::holds_alternative<Index>(out));
  EXPECT_EQ(std::get<Index>(out).mediaType, mediatype::kOciIndex);
  // A mediaType of the wrong JSON type counts as absent.
  index["mediaType"] = 7;
  ASSERT_TRUE(parse(index, out).isOk());
  EXPECT_TRUE(std::holds_alternative<Index>(out));
  // The document's own mediaType wins over the header.
  ASSERT_TRUE(parse(ociManifest(), out, mediatype::kOciIndex).isOk());
  EXPECT_TRUE(std::holds_alternative<Manifest>(out));
}

TEST(ImageManifestTest, SchemaOneIsRefusedByName) {
  Json schema1{{"schemaVersion", 1},
               {"name", "library/busybox"},
               {"tag", "latest"},
               {"fsLayers", Json::array({Json{{"blobSum", kA}}})}};
  Status status = parseText(schema1.dump(), "application/vnd.docker.distribution.manifest.v1+json");
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("schema1"), std::string::npos) << status.message();
}

TEST(ImageManifestTest, UnknownMediaTypesAndArtifactsAreRefused) {
  Json unknown = ociManifest();
  unknown["mediaType"] = "application/vnd.example.thing+json";
  Status status = parseText(unknown.dump());
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("unsupported manifest media type "
                                  "'application/vnd.example.thing+json'"),
            std::string::npos)
      << status.message();

  // Neither a known media type nor a known shape: the header is named.
  status = parseText("{\"schemaVersion\": 2}", "text/html");
  EXPECT_NE(status.message().find("'text/html'"), std::string::npos) << status.message();
  EXPECT_FALSE(status.isOk());

  Json artifact = ociManifest();
  artifact["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json";
  status = parseText(artifact.dump());
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("application/vnd.cncf.helm.config.v1+json"), std::string::npos);
  EXPECT_NE(status.message().find("not a container image config"), std::string::npos);

  Json notALayer = ociManifest();
  notALayer["layers"][1]["mediaType"] = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
  status = parseText(notALayer.dump());
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("layer " + kC), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("not a container filesystem layer"), std::string::npos);
}

TEST(ImageManifestTest, WrongJsonTypesAreErrorsNotExceptions) {
  // Each document replaces one part of a valid manifest or index with a value of another type.
  auto manifestWith = [](const std::function<void(Json&)>& change) {
    Json json = ociManifest();
    change(json);
    return json.dump();
  };
  const std::vector<std::string> documents = {
      manifestWith([](Json& j) { j["config"]["size"] = "1234"; }),
      manifestWith([](Json& j) { j["config"]["size"] = 12.5; }),
      manifestWith([](Json& j) { j["config"]["size"] = -1; }),
      manifestWith([](Json& j) { j["config"]["size"] = nullptr; }),
      manifestWith([](Json& j) { j["config"]["size"] = Json::array({1}); }),
      manifestWith([](Json& j) { j["config"]["size"] = UINT64_MAX; }),
      manifestWith([](Json& j) { j["config"]["digest"] = 5; }),
      manifestWith([](Json& j) { j["config"]["digest"] = "sha256:abc"; }),
      manifestWith([](Json& j) { j["config"]["digest"] = "md5:" + std::string(32, 'a'); }),
      manifestWith([](Json& j) { j["config"]["mediaType"] = true; }),
      manifestWith([](Json& j) { j["config"].erase("mediaType"); }),
      manifestWith([](Json& j) { j["config"] = "sha256:abc"; }),
      manifestWith([](Json& j) { j["config"] = Json::array(); }),
      manifestWith([](Json& j) { j.erase("config"); }),
      manifestWith([](Json& j) { j["layers"] = Json::object(); }),
      manifestWith([](Json& j) { j["layers"] = "none"; }),
      manifestWith([](Json& j) { j.erase("layers"); }),
      manifestWith([](Json& j) { j["layers"][0] = 42; }),
      manifestWith([](Json& j) { j["layers"][0]["size"] = "100"; }),
      manifestWith([](Json& j) { j["layers"][1]["digest"] = Json::object(); }),
      Json{{"mediaType", mediatype::kOciIndex}, {"manifests", "x"}}.dump(),
      Json{{"mediaType", mediatype::kOciIndex}, {"manifests", Json::object()}}.dump(),
      Json{{"mediaType", mediatype::kOciIndex}, {"manifests", Json::array({1, 2})}}.dump(),
      Json{{"mediaType", mediatype::kOciIndex},
           {"manifests", Json::array({Json{{"digest", kA}, {"size", "1"}, {"mediaType", "x"}}})}}
          .dump(),
      Json{{"mediaType", mediatype::kOciIndex}}.dump(),
      "[]",
      "\"manifest\"",
      "42",
      "null",
      "{",
      "",
      "{\"schemaVersion\": 2, \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\"",
  };
  for (const auto& document : documents) {
    std::variant<Manifest, Index> out;
    Status status;
    EXPECT_NO_THROW(status = parseManifestDocument(document, "", out)) << document;
    EXPECT_FALSE(status.isOk()) << document;
    EXPECT_NE(status.code(), StatusCode::kInternal) << document;
    EXPECT_NE(status.message(), "") << document;
  }
  // Wrong types where the field is optional are ignored: a platform that is not an object, a
  // platform with numbers for strings.
  Json index{{"mediaType", mediatype::kOciIndex},
             {"manifests", Json::array({descriptor(mediatype::kOciManifest, kA, 1),
                                        descriptor(mediatype::kOciManifest, kB, 1)})}};
  index["manifests"][0]["platform"] = "linux/amd64";
  index["manifests"][1]["platform"] = Json{{"os", 1}, {"architecture", Json::array()}};
  std::variant<Manifest, Index> out;
  ASSERT_TRUE(parse(index, out).isOk());
  const Index& parsed = std::get<Index>(out);
  EXPECT_FALSE(parsed.manifests[0].platform.has_value());
  ASSERT_TRUE(parsed.manifests[1].platform.has_value());
  EXPECT_EQ(parsed.manifests[1].platform->os, "");
  EXPECT_EQ(parsed.manifests[1].platform->architecture, "");
}

TEST(ImageManifestTest, OversizedDocumentIsRefusedUnread) {
  std::string big(kMaxManifestBytes + 1, ' ');
  const std::string manifest = ociManifest().dump();
  big.replace(0, manifest.size(), manifest);  // valid JSON followed by whitespace
  Status status = parseText(big);
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(status.message().find(std::to_string(kMaxManifestBytes)), std::string::npos);
  // At the limit it is read.
  big.resize(kMaxManifestBytes);
  EXPECT_TRUE(parseText(big).isOk());
}

TEST(ImageManifestTest, SelectPlatformAmd64PrefersNoVariant) {
  const Index index = indexOf({platformEntry(kA, "arm64", "v8"), platformEntry(kB, "amd64", "v3"),
                               descriptor(mediatype::kOciManifest, kB, 9),  // no platform
                               platformEntry(kC, "amd64")});
  Descriptor chosen;
  ASSERT_TRUE(selectPlatform(index, Platform{"linux", "amd64", ""}, chosen).isOk());
  EXPECT_EQ(chosen.digest.str(), kC);
  ASSERT_TRUE(selectPlatform(index, Platform{"linux", "arm64", "v8"}, chosen).isOk());
  EXPECT_EQ(chosen.digest.str(), kA);
  // Not for windows.
  Status status = selectPlatform(index, Platform{"windows", "amd64", ""}, chosen);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
}

TEST(ImageManifestTest, SelectPlatformArm64TakesEmptyOrV8Variant) {
  for (const std::string variant : {"", "v8"}) {
    const Index index =
        indexOf({platformEntry(kA, "arm", "v7"), platformEntry(kB, "arm64", variant)});
    for (const std::string nodeVariant : {"v8", ""}) {
      Descriptor chosen;
      ASSERT_TRUE(selectPlatform(index, Platform{"linux", "arm64", nodeVariant}, chosen).isOk())
          << variant << " on " << nodeVariant;
      EXPECT_EQ(chosen.digest.str(), kB);
    }
  }
}

// An arm/v7 node prefers v7, then v6, then v5. (variantRank once bound a string_view to a
// temporary std::string here: ASan saw stack-use-after-scope and v5 was picked.)
TEST(ImageManifestTest, SelectPlatformArmV7FallsBackToV6ThenV5) {
  const Platform node{"linux", "arm", "v7"};
  Descriptor chosen;
  // v7 first whatever the order.
  ASSERT_TRUE(
      selectPlatform(indexOf({platformEntry(kA, "arm", "v5"), platformEntry(kB, "arm", "v6"),
                              platformEntry(kC, "arm", "v7")}),
                     node, chosen)
          .isOk());
  EXPECT_EQ(chosen.digest.str(), kC);
  // Then v6 over v5.
  ASSERT_TRUE(
      selectPlatform(indexOf({platformEntry(kA, "arm", "v5"), platformEntry(kB, "arm", "v6"),
                              platformEntry(kC, "arm64", "v8")}),
                     node, chosen)
          .isOk());
  EXPECT_EQ(chosen.digest.str(), kB);
  ASSERT_TRUE(selectPlatform(indexOf({platformEntry(kA, "arm", "v5")}), node, chosen).isOk());
  EXPECT_EQ(chosen.digest.str(), kA);
  // An arm entry without a variant is taken as v7.
  ASSERT_TRUE(selectPlatform(indexOf({platformEntry(kA, "arm", "v6"), platformEntry(kB, "arm")}),
                             node, chosen)
                  .isOk());
  EXPECT_EQ(chosen.digest.str(), kB);
  // A v6 node does not run v7 code.
  Status status = selectPlatform(indexOf({platformEntry(kA, "arm", "v7")}),
                                 Platform{"linux", "arm", "v6"}, chosen);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  // v8 is arm64's, not arm's.
  status = selectPlatform(indexOf({platformEntry(kA, "arm", "v8")}), node, chosen);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
}

TEST(ImageManifestTest, SelectPlatformErrorListsWhatTheIndexOffers) {
  const Index index = indexOf({platformEntry(kA, "arm64", "v8"), platformEntry(kB, "s390x")});
  Descriptor chosen;
  Status status = selectPlatform(index, Platform{"linux", "amd64", ""}, chosen);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("linux/amd64"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("linux/arm64/v8, linux/s390x"), std::string::npos)
      << status.message();

  status = selectPlatform(Index{}, Platform{"linux", "amd64", ""}, chosen);
  EXPECT_NE(status.message().find("none"), std::string::npos) << status.message();
}

TEST(ImageManifestTest, ImageConfig) {
  Json config{{"architecture", "arm"},
              {"os", "linux"},
              {"variant", "v7"},
              {"config", Json{{"User", "1000:1000"}, {"Env", Json::array({"PATH=/bin"})}}},
              {"rootfs", Json{{"type", "layers"}, {"diff_ids", Json::array({kA, kB})}}}};
  ImageConfig out;
  ASSERT_TRUE(parseImageConfig(config.dump(), out).isOk());
  ASSERT_EQ(out.diffIds.size(), 2u);
  EXPECT_EQ(out.diffIds[0].str(), kA);
  EXPECT_EQ(out.diffIds[1].str(), kB);
  EXPECT_EQ(out.user, "1000:1000");
  EXPECT_EQ(out.platform.string(), "linux/arm/v7");
  EXPECT_EQ(out.json["config"]["Env"][0], "PATH=/bin");

  // An image without layers (FROM scratch with no files) is valid.
  ASSERT_TRUE(parseImageConfig(R"({"rootfs": {"type": "layers", "diff_ids": []}})", out).isOk());
  EXPECT_TRUE(out.diffIds.empty());
  EXPECT_EQ(out.user, "");
}

TEST(ImageManifestTest, ImageConfigWrongTypesAreErrorsOrIgnoredNeverExceptions) {
  const std::vector<std::string> bad = {
      "",
      "[]",
      "{}",
      R"({"rootfs": "layers"})",
      R"({"rootfs": {"diff_ids": "sha256:x"}})",
      R"({"rootfs": {"diff_ids": {"a": 1}}})",
      R"({"rootfs": {"diff_ids": [5]}})",
      R"({"rootfs": {"diff_ids": [null]}})",
      R"({"rootfs": {"diff_ids": ["sha512:abc"]}})",
      R"({"rootfs": []})",
  };
  for (const auto& document : bad) {
    ImageConfig out;
    Status status;
    EXPECT_NO_THROW(status = parseImageConfig(document, out)) << document;
    EXPECT_FALSE(status.isOk()) << document;
    EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << document;
  }
  // Optional fields of the wrong type are ignored.
  ImageConfig out;
  Status status;
  EXPECT_NO_THROW(status = parseImageConfig(
                      R"({"os": 1, "architecture": [], "variant": {}, "config": {"User": 0},
                          "rootfs": {"diff_ids": [")" +
                          kA + R"("]}})",
                      out));
  ASSERT_TRUE(status.isOk()) << status.message();
  EXPECT_EQ(out.user, "");
  EXPECT_EQ(out.platform.os, "");
  EXPECT_EQ(out.platform.architecture, "");
  EXPECT_NO_THROW(status = parseImageConfig(R"({"config": "x", "rootfs": {"diff_ids": []}})", out));
  EXPECT_TRUE(status.isOk());

  std::string big(kMaxConfigBytes + 1, ' ');
  EXPECT_EQ(parseImageConfig(big, out).code(), StatusCode::kResourceExhausted);
}

TEST(ImageManifestTest, LayerMediaTypes) {
  for (const char* type :
       {"application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"}) {
    EXPECT_TRUE(isLayerMediaType(type)) << type;
  }
  for (const char* type : {"", "application/vnd.oci.image.config.v1+json",
                           "application/vnd.oci.image.layer.v1.tar+bzip2",
                           "application/vnd.oci.image.layer.v1.tar+gzip ",
                           "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                           "APPLICATION/VND.OCI.IMAGE.LAYER.V1.TAR"}) {
    EXPECT_FALSE(isLayerMediaType(type)) << type;
  }
}

TEST(ImageManifestTest, NodePlatformNamesTheArchitectureAsImagesDo) {
  utsname name{};
  ASSERT_EQ(uname(&name), 0);
  const std::string machine = name.machine;
  const Platform node = nodePlatform();
  EXPECT_EQ(node.os, "linux");
  if (machine == "x86_64") {
    EXPECT_EQ(node.string(), "linux/amd64");
  } else if (machine == "aarch64") {
    EXPECT_EQ(node.string(), "linux/arm64/v8");
  } else {
    EXPECT_NE(node.architecture, "");
  }
  EXPECT_NE(node.architecture, "x86_64");
  EXPECT_NE(node.architecture, "aarch64");
}

}  // namespace
}  // namespace monocri::oci
