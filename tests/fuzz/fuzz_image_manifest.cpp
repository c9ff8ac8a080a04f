// Manifests, indexes and image configs as a registry may serve them. The first byte picks the
// Content-Type header the document came with; the rest is the document. Nothing may throw, and
// what is accepted must be usable: a manifest's layers are layers, an index's platform choice
// returns one of its entries.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <variant>

#include "oci/image/ImageManifest.h"

using namespace monocri::oci;

namespace {

const std::string_view kContentTypes[] = {
    "",
    mediatype::kOciManifest,
    mediatype::kOciIndex,
    mediatype::kDockerManifest,
    mediatype::kDockerManifestList,
    "application/json; charset=utf-8",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
};

void checkDocument(std::string_view document, std::string_view contentType) {
  std::variant<Manifest, Index> out;
  const auto status = parseManifestDocument(document, contentType, out);
  if (!status.isOk()) {
    if (status.message().empty()) std::abort();
    return;
  }
  if (const auto* manifest = std::get_if<Manifest>(&out)) {
    if (manifest->config.mediaType != mediatype::kOciConfig &&
        manifest->config.mediaType != mediatype::kDockerConfig) {
      std::abort();
    }
    if (manifest->config.size < 0) std::abort();
    for (const auto& layer : manifest->layers) {
      if (!isLayerMediaType(layer.mediaType) || layer.size < 0) std::abort();
    }
    return;
  }
  const Index& index = std::get<Index>(out);
  for (const Platform& platform :
       {nodePlatform(), Platform{"linux", "amd64", ""}, Platform{"linux", "arm64", "v8"},
        Platform{"linux", "arm64", ""}, Platform{"linux", "arm", "v7"},
        Platform{"linux", "arm", "v6"}, Platform{"", "", ""}}) {
    Descriptor chosen;
    if (!selectPlatform(index, platform, chosen).isOk()) continue;
    bool listed = false;
    for (const auto& entry : index.manifests) {
      listed = listed || (entry.platform && entry.digest == chosen.digest &&
                          entry.platform->os == platform.os &&
                          entry.platform->architecture == platform.architecture);
    }
    if (!listed) std::abort();
  }
}

void checkConfig(std::string_view document) {
  ImageConfig config;
  const auto status = parseImageConfig(document, config);
  if (!status.isOk()) {
    if (status.message().empty()) std::abort();
    return;
  }
  if (!config.json.is_object()) std::abort();
  const auto& ids = config.json["rootfs"]["diff_ids"];
  if (ids.size() != config.diffIds.size()) std::abort();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i].get<std::string>() != config.diffIds[i].str()) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view contentType =
      kContentTypes[data[0] % (sizeof(kContentTypes) / sizeof(kContentTypes[0]))];
  const std::string_view document(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    checkDocument(document, contentType);
    checkConfig(document);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exception: %s\n", e.what());
    std::abort();
  }
  return 0;
}
