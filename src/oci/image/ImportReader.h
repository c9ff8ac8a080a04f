// Reads what an import names - an OCI image layout (a directory or a tar of one) or a
// docker-archive tar - into a plan of images: the worker's half of an import (it parses the
// hostile tar). Blobs are checked against their digests; a tar's files are extracted under
// `scratch` with numbered names (an entry name is never used as a path).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "oci/image/ImageManifest.h"

namespace monocri::oci {

struct ImportedLayer {
  std::string path;
  Descriptor blob;
  Digest diffId = Digest::ofBytes("");
};

struct ImportedImage {
  std::vector<std::string> repoTags;
  std::vector<std::string> repoDigests;
  std::optional<Digest> indexDigest;
  std::string indexBytes;
  Digest manifestDigest = Digest::ofBytes("");
  std::string manifestBytes;
  Digest configDigest = Digest::ofBytes("");
  std::string configBytes;
  ImageConfig config;
  int64_t size = 0;
  std::vector<ImportedLayer> layers;
};

struct ImportPlan {
  grpc::Status status;
  std::vector<ImportedImage> images;
};

// The plan as JSON (manifest and config documents carried as strings).
grpc::Status readImportPlan(const std::string& path, const std::string& name,
                            const Platform& platform, const std::string& scratch,
                            std::string& planJson);

}  // namespace monocri::oci
