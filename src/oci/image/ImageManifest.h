// The JSON documents of an image: OCI image manifests and indexes, Docker schema2 manifests and
// manifest lists, and image configs. Parsed defensively: they come from registries.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "oci/image/Digest.h"

namespace monocri::oci {

namespace mediatype {
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
// What a manifest request accepts, in order of preference.
inline constexpr std::string_view kManifestAccept =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json";
}  // namespace mediatype

// Largest manifest or index accepted (containerd's limit); more is refused unread.
inline constexpr size_t kMaxManifestBytes = 4 * 1024 * 1024;
// Largest image config accepted.
inline constexpr size_t kMaxConfigBytes = 8 * 1024 * 1024;

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string string() const;  // "linux/arm64/v8"
};

// This node's platform (linux, and the architecture this binary runs on).
Platform nodePlatform();

enum class LayerCompression { kNone, kGzip, kZstd };

struct Descriptor {
  std::string mediaType;
  Digest digest = Digest::ofBytes("");
  int64_t size = 0;
  std::optional<Platform> platform;  // index entries
};

struct Manifest {
  std::string mediaType;
  Descriptor config;
  std::vector<Descriptor> layers;
};

struct Index {
  std::string mediaType;
  std::vector<Descriptor> manifests;
};

// Parses a manifest or an index. `contentType` (the HTTP header) decides only when the document
// does not name its media type. Schema1 and unknown types are errors that say so.
grpc::Status parseManifestDocument(std::string_view bytes, std::string_view contentType,
                                   std::variant<Manifest, Index>& out);

// The entry of `index` that suits `platform`, or an error listing what the index offers.
grpc::Status selectPlatform(const Index& index, const Platform& platform, Descriptor& out);

struct ImageConfig {
  nlohmann::json json;  // the whole document, for verbose status and container specs
  std::vector<Digest> diffIds;
  Platform platform;
  std::string user;  // config.User: "1000", "1000:1000", "app", "app:group" or ""
};

grpc::Status parseImageConfig(std::string_view bytes, ImageConfig& out);

// Whether a layer media type is a container filesystem layer monocri can unpack.
bool isLayerMediaType(std::string_view mediaType);

}  // namespace monocri::oci
