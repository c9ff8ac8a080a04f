// The images of this node, as the CRI ImageService and the rest of the daemon see them: pull,
// import, find, list, remove (refused for pinned images and images containers use), disk
// usage. Owns the store, the image worker and registries.conf (reloaded when it changes).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "loop/Loop.h"
#include "oci/image/ImagePuller.h"
#include "oci/image/ImageStore.h"
#include "oci/image/ImageWorkerClient.h"
#include "oci/image/RegistriesConf.h"

namespace monocri::oci {

struct ImageManagerOptions {
  std::string stateRoot;
  std::string registriesConf;       // containers-registries.conf path
  std::vector<std::string> pinned;  // references of images never removed
  size_t maxConcurrentDownloads = 3;
  ImageWorkerOptions worker;
};

class ImageManager {
 public:
  ImageManager(loop::Loop& loop, ImageManagerOptions options);
  ~ImageManager();

  // Loads the store and registries.conf. Returns "" or an error that stops the daemon.
  std::string start(std::vector<std::string>& notes);
  // Daemon shutdown: pulls under way fail, the image worker is let go.
  void shutdown() { worker_.shutdown(); }

  // An image by id, id prefix, or reference as kubelet writes it (short names resolved as a
  // pull would resolve them). Null if this node does not have it.
  const ImageRecord* resolve(const std::string& image) const;
  std::vector<const ImageRecord*> list() const { return store_.list(); }
  bool isPinned(const ImageRecord& image) const;

  using PullDone = std::function<void(grpc::Status, const ImageRecord*)>;
  std::shared_ptr<ImagePuller::Pull> pull(const std::string& image, const Credentials& credentials,
                                          PullDone done);

  // Removes an image by id, tag or digest. A tag of an image that has other tags is only
  // untagged. Succeeds if there is no such image (the CRI asks for idempotence).
  void remove(const std::string& image, std::function<void(grpc::Status)> done);

  // Whether a container uses an image: set by the part of the daemon that mounts rootfs.
  void setInUseCheck(std::function<std::vector<std::string>(const Digest& imageId)> check) {
    inUse_ = std::move(check);
  }

  // Imports the images of an OCI layout or docker-archive at `path` (see ImageImporter).
  void importImages(const std::string& path, const std::string& name,
                    std::function<void(grpc::Status, std::vector<Digest>)> done);

  // The image config document, for status and container specs.
  grpc::Status readConfig(const ImageRecord& image, ImageConfig& out) const;
  ImageStore& store() { return store_; }
  const RegistriesConf& registries();
  loop::Loop& loop() { return loop_; }

 private:
  void reloadRegistriesIfChanged();

  loop::Loop& loop_;
  ImageManagerOptions options_;
  ImageStore store_;
  ImageWorkerClient worker_;
  ImagePuller puller_;
  RegistriesConf registries_;
  int64_t registriesMtimeNs_ = -1;
  std::vector<ImageReference> pinned_;
  std::function<std::vector<std::string>(const Digest&)> inUse_;
  uint64_t removals_ = 0;
};

}  // namespace monocri::oci
