// The image store in the state dir:
//
//   <root>/image/blobs/sha256/<hex>       verified manifests, indexes and configs
//   <root>/image/ingest/                  downloads under way (never trusted; cleared at start)
//   <root>/image/layers/<diffid-hex>/     an unpacked layer, an overlayfs lower dir
//   <root>/image/layers/<diffid-hex>.json its record, written last: no record, not trusted
//   <root>/image/images/<id-hex>.json     an image: tags, digests, layers
//
// Layers are shared by the images that contain them and removed with the last one. Everything
// is written atomically; what a crash leaves half done is removed by load().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "oci/image/Digest.h"

namespace monocri::oci {

struct LayerRecord {
  Digest diffId = Digest::ofBytes("");  // sha256 of the uncompressed tar: the layer's identity
  Digest blobDigest = Digest::ofBytes("");
  std::string mediaType;
  int64_t blobSize = 0;
  uint64_t bytes = 0;  // disk space of the unpacked layer
  uint64_t inodes = 0;
};

struct ImageRecord {
  Digest id = Digest::ofBytes("");       // the config's digest
  std::vector<std::string> repoTags;     // "docker.io/library/busybox:latest"
  std::vector<std::string> repoDigests;  // "docker.io/library/busybox@sha256:..."
  Digest manifestDigest = Digest::ofBytes("");
  std::optional<Digest> indexDigest;  // when the image came from a multi-platform index
  std::vector<Digest> diffIds;        // bottom layer first
  int64_t size = 0;                   // config + compressed layers, as registries count it
  std::string user;                   // the config's User
  std::string platform;               // "linux/amd64"
  int64_t createdNs = 0;              // when this node got it
};

struct StoreUsage {
  uint64_t bytes = 0;
  uint64_t inodes = 0;
};

class ImageStore {
 public:
  explicit ImageStore(std::string stateRoot);

  // Reads the records, removes what is incomplete or unreferenced (ingest files, layers being
  // unpacked, layers without a record, records whose layers are gone). Returns "" or an error.
  std::string load(std::vector<std::string>& notes);

  const std::string& directory() const { return dir_; }
  std::string blobPath(const Digest& digest) const;
  std::string ingestPath(const Digest& digest) const;
  std::string layerPath(const Digest& diffId) const;
  std::string unpackingPath(const Digest& diffId) const;  // where a layer is unpacked first

  bool hasBlob(const Digest& digest) const;
  // Writes verified content (a manifest, a config) as a blob.
  std::string putBlob(const Digest& digest, std::string_view bytes);
  std::string readBlob(const Digest& digest, size_t maxBytes, std::string& out) const;

  const LayerRecord* layer(const Digest& diffId) const;
  // Records a layer whose directory is in place (after its rename from unpackingPath).
  std::string commitLayer(const LayerRecord& layer);

  // Finds an image by id ("sha256:<hex>" or the bare hex), by a full tag or digest reference,
  // or by a unique id prefix of at least 4 hex digits.
  const ImageRecord* find(const std::string& reference) const;
  const ImageRecord* findById(const Digest& id) const;
  std::vector<const ImageRecord*> list() const;

  // Stores `record` (merging with an existing record of the same id). Its tags are taken away
  // from any other image that had them.
  std::string commitImage(ImageRecord record);
  // Removes one tag from an image (the image stays).
  std::string untag(const Digest& id, const std::string& tag);
  // Removes the image record. Returns the directories and blobs no image uses any more, which
  // the caller deletes (on the worker pool: deleting a layer is a tree walk).
  std::string removeImage(const Digest& id, std::vector<std::string>& garbage);

  StoreUsage usage() const;

  // A pull in progress relies on layers and blobs that no image record names yet: while
  // leased, removeImage() does not collect them.
  void lease(const Digest& digest) { leases_.insert(digest.str()); }
  void release(const Digest& digest) {
    if (auto it = leases_.find(digest.str()); it != leases_.end()) leases_.erase(it);
  }

 private:
  std::string writeImage(const ImageRecord& record);
  std::set<std::string> referencedBlobs() const;

  std::string dir_;
  std::map<std::string, ImageRecord> images_;  // by id string
  std::map<std::string, LayerRecord> layers_;  // by diffId string
  std::multiset<std::string> leases_;
};

}  // namespace monocri::oci
