#include "oci/image/ImageManifest.h"

#include <fmt/format.h>
#include <sys/utsname.h>

#include <algorithm>
#include <array>

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;

namespace {

// A string member, or "" when it is absent or not a string (json::value would throw).
std::string stringField(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Status malformed(std::string_view what, std::string_view why) {
  return Status(StatusCode::kFailedPrecondition, fmt::format("malformed {}: {}", what, why));
}

// Reads a descriptor object; `what` names the document part for messages.
Status readDescriptor(const Json& json, std::string_view what, Descriptor& out) {
  if (!json.is_object()) return malformed(what, "a descriptor is not an object");
  const auto mediaType = json.find("mediaType");
  const auto digest = json.find("digest");
  const auto size = json.find("size");
  if (mediaType == json.end() || !mediaType->is_string()) {
    return malformed(what, "a descriptor has no mediaType");
  }
  if (digest == json.end() || !digest->is_string()) {
    return malformed(what, "a descriptor has no digest");
  }
  if (size == json.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return malformed(what, "a descriptor has no valid size");
  }
  std::string why;
  auto parsed = Digest::parse(digest->get<std::string>(), &why);
  if (!parsed) return malformed(what, why);
  out.mediaType = mediaType->get<std::string>();
  out.digest = *parsed;
  out.size = size->get<int64_t>();
  if (auto platform = json.find("platform"); platform != json.end() && platform->is_object()) {
    Platform p;
    p.os = stringField(*platform, "os");
    p.architecture = stringField(*platform, "architecture");
    p.variant = stringField(*platform, "variant");
    out.platform = p;
  }
  return Status::ok();
}

// Preference of an index entry's variant for this node (lower is better), or -1 if unusable.
int variantRank(const Platform& node, const Platform& candidate) {
  if (candidate.os != node.os || candidate.architecture != node.architecture) return -1;
  if (candidate.variant == node.variant) return 0;
  if (node.architecture == "arm64") {
    // "v8" is arm64's only variant in practice; unset means the same.
    return (candidate.variant.empty() || candidate.variant == "v8") ? 0 : -1;
  }
  if (node.architecture == "arm") {
    // A v7 node runs v6 and v5 code too; an unset variant is taken as v7.
    static constexpr std::array<std::string_view, 3> kOrder = {"v7", "v6", "v5"};
    // Both arms string_view: `cond ? "v7" : str` would make a temporary std::string.
    const std::string_view nodeVariant =
        node.variant.empty() ? std::string_view("v7") : std::string_view(node.variant);
    const std::string_view want =
        candidate.variant.empty() ? std::string_view("v7") : std::string_view(candidate.variant);
    size_t start = 0;
    while (start < kOrder.size() && kOrder[start] != nodeVariant)
      ++start;
    for (size_t i = start; i < kOrder.size(); ++i) {
      if (kOrder[i] == want) return static_cast<int>(i - start);
    }
    return -1;
  }
  // amd64 and others: an unset variant first, then any.
  return candidate.variant.empty() ? 0 : 1;
}

}  // namespace

std::string Platform::string() const {
  return variant.empty() ? os + "/" + architecture : os + "/" + architecture + "/" + variant;
}

Platform nodePlatform() {
  utsname name{};
  uname(&name);
  const std::string_view machine = name.machine;
  Platform platform{"linux", std::string(machine), ""};
  if (machine == "x86_64") {
    platform.architecture = "amd64";
  } else if (machine == "aarch64") {
    platform = {"linux", "arm64", "v8"};
  } else if (machine.starts_with("armv7")) {
    platform = {"linux", "arm", "v7"};
  } else if (machine.starts_with("armv6")) {
    platform = {"linux", "arm", "v6"};
  } else if (machine == "i686" || machine == "i386") {
    platform.architecture = "386";
  }
  return platform;
}

Status parseManifestDocument(std::string_view bytes, std::string_view contentType,
                             std::variant<Manifest, Index>& out) {
  if (bytes.size() > kMaxManifestBytes) {
    return Status(StatusCode::kResourceExhausted,
                  fmt::format("manifest of {} bytes exceeds the {} byte limit", bytes.size(),
                              kMaxManifestBytes));
  }
  Json json = Json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return malformed("manifest", "not a JSON object");
  if (const auto version = json.find("schemaVersion");
      version != json.end() && version->is_number_integer() && version->get<int64_t>() == 1) {
    return Status(StatusCode::kFailedPrecondition,
                  "the image uses a Docker schema1 manifest, which is deprecated and not "
                  "supported; push it again with a current client");
  }
  std::string mediaType = stringField(json, "mediaType");
  if (mediaType.empty()) {
    // OCI allows documents without mediaType: the header, then the shape decides.
    const std::string_view header = contentType.substr(0, contentType.find(';'));
    if (header == mediatype::kOciIndex || header == mediatype::kOciManifest ||
        header == mediatype::kDockerManifest || header == mediatype::kDockerManifestList) {
      mediaType = header;
    } else if (json.contains("manifests")) {
      mediaType = mediatype::kOciIndex;
    } else if (json.contains("config") && json.contains("layers")) {
      mediaType = mediatype::kOciManifest;
    }
  }
  if (mediaType == mediatype::kOciIndex || mediaType == mediatype::kDockerManifestList) {
    Index index{mediaType, {}};
    const auto manifests = json.find("manifests");
    if (manifests == json.end() || !manifests->is_array()) {
      return malformed("index", "it has no manifests array");
    }
    for (const auto& entry : *manifests) {
      Descriptor descriptor;
      if (Status s = readDescriptor(entry, "index", descriptor); !s.isOk()) return s;
      index.manifests.push_back(std::move(descriptor));
    }
    out = std::move(index);
    return Status::ok();
  }
  if (mediaType == mediatype::kOciManifest || mediaType == mediatype::kDockerManifest) {
    Manifest manifest{mediaType, {}, {}};
    const auto config = json.find("config");
    const auto layers = json.find("layers");
    if (config == json.end()) return malformed("manifest", "it has no config");
    if (Status s = readDescriptor(*config, "manifest config", manifest.config); !s.isOk()) return s;
    if (manifest.config.mediaType != mediatype::kOciConfig &&
        manifest.config.mediaType != mediatype::kDockerConfig) {
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("the manifest's config is a '{}', not a container image config "
                                "(an OCI artifact is not a container image)",
                                manifest.config.mediaType.substr(0, 200)));
    }
    if (layers == json.end() || !layers->is_array()) {
      return malformed("manifest", "it has no layers array");
    }
    for (const auto& entry : *layers) {
      Descriptor layer;
      if (Status s = readDescriptor(entry, "manifest layer", layer); !s.isOk()) return s;
      if (!isLayerMediaType(layer.mediaType)) {
        return Status(StatusCode::kFailedPrecondition,
                      fmt::format("layer {} has media type '{}', which is not a container "
                                  "filesystem layer",
                                  layer.digest.str(), layer.mediaType.substr(0, 200)));
      }
      manifest.layers.push_back(std::move(layer));
    }
    out = std::move(manifest);
    return Status::ok();
  }
  return Status(StatusCode::kFailedPrecondition,
                fmt::format("unsupported manifest media type '{}'",
                            mediaType.empty() ? std::string(contentType.substr(0, 200))
                                              : mediaType.substr(0, 200)));
}

Status selectPlatform(const Index& index, const Platform& platform, Descriptor& out) {
  int bestRank = -1;
  std::string offered;
  for (const auto& entry : index.manifests) {
    if (!entry.platform) continue;
    offered += (offered.empty() ? "" : ", ") + entry.platform->string();
    const int rank = variantRank(platform, *entry.platform);
    if (rank >= 0 && (bestRank < 0 || rank < bestRank)) {
      bestRank = rank;
      out = entry;
    }
  }
  if (bestRank >= 0) return Status::ok();
  return Status(StatusCode::kNotFound,
                fmt::format("the image index has no manifest for {} (it offers: {})",
                            platform.string(), offered.empty() ? "none" : offered));
}

Status parseImageConfig(std::string_view bytes, ImageConfig& out) {
  if (bytes.size() > kMaxConfigBytes) {
    return Status(StatusCode::kResourceExhausted,
                  fmt::format("image config of {} bytes exceeds the {} byte limit", bytes.size(),
                              kMaxConfigBytes));
  }
  out = ImageConfig{};
  out.json = Json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (out.json.is_discarded() || !out.json.is_object()) {
    return malformed("image config", "not a JSON object");
  }
  const auto rootfs = out.json.find("rootfs");
  if (rootfs == out.json.end() || !rootfs->is_object() || !rootfs->contains("diff_ids") ||
      !(*rootfs)["diff_ids"].is_array()) {
    return malformed("image config", "it has no rootfs.diff_ids");
  }
  for (const auto& id : (*rootfs)["diff_ids"]) {
    std::string why;
    auto digest = id.is_string() ? Digest::parse(id.get<std::string>(), &why) : std::nullopt;
    if (!digest) return malformed("image config", "a diff_id is not a sha256 digest");
    out.diffIds.push_back(*digest);
  }
  out.platform.os = stringField(out.json, "os");
  out.platform.architecture = stringField(out.json, "architecture");
  out.platform.variant = stringField(out.json, "variant");
  if (auto config = out.json.find("config"); config != out.json.end() && config->is_object()) {
    if (auto user = config->find("User"); user != config->end() && user->is_string()) {
      out.user = user->get<std::string>();
    }
  }
  return Status::ok();
}

bool isLayerMediaType(std::string_view mediaType) {
  static constexpr std::array<std::string_view, 9> kLayers = {
      "application/vnd.oci.image.layer.v1.tar",
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.oci.image.layer.nondistributable.v1.tar",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
      "application/vnd.docker.image.rootfs.diff.tar",
      "application/vnd.docker.image.rootfs.diff.tar.gzip",
      "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  };
  return std::find(kLayers.begin(), kLayers.end(), mediaType) != kLayers.end();
}

}  // namespace monocri::oci
