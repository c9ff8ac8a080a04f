// Unpacks a layer blob (tar, gzip or zstd) into a directory that overlayfs can use as a lower
// layer. Layers are hostile input: no entry may create, change or read anything outside the
// directory - not through "../", absolute paths, symlinks planted by earlier entries, nor
// hardlinks to outside files. Every path is resolved with openat2(RESOLVE_BENEATH) and final
// components are never followed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "oci/image/Digest.h"

namespace monocri::oci {

struct LayerUnpackResult {
  grpc::Status status;
  Digest diffId = Digest::ofBytes("");  // sha256 of the uncompressed tar stream
  uint64_t bytes = 0;                   // disk space used (allocated blocks)
  uint64_t inodes = 0;
  uint64_t entries = 0;
  std::vector<std::string> warnings;  // things skipped that a user may want to know (a few)
};

// Unpacks the blob at `blobPath` into `destDir`, an existing empty directory. OCI whiteouts
// (".wh.name", ".wh..wh..opq") become overlayfs whiteouts (a 0:0 character device, the
// trusted.overlay.opaque xattr). Blocking: for the worker pool, never the loop.
LayerUnpackResult unpackLayer(const std::string& blobPath, const std::string& destDir);

}  // namespace monocri::oci
