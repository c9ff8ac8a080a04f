// Pulls images into the store, on the loop: resolves the reference (registries.conf: aliases,
// search registries, mirrors), fetches and verifies the manifest, index and config, and makes
// every layer available. Layers are downloaded a bounded number at a time, each streamed to
// disk while its sha256 is computed, retried with backoff and resumed with Range, then
// unpacked on the worker pool. Two pulls needing the same layer share one download and unpack.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "loop/Loop.h"
#include "oci/image/Credentials.h"
#include "oci/image/ImageManifest.h"
#include "oci/image/ImageStore.h"
#include "oci/image/ImageWorkerClient.h"
#include "oci/image/RegistriesConf.h"

namespace monocri::oci {

// Where a pull stands, for progress displays.
struct PullProgress {
  enum class LayerState { kWaiting, kDownloading, kUnpacking, kDone, kPresent };
  struct Layer {
    Digest digest = Digest::ofBytes("");
    int64_t size = 0;
    int64_t downloaded = 0;
    LayerState state = LayerState::kWaiting;
  };
  std::string reference;  // the image as resolved, once known
  std::vector<Layer> layers;
};

struct PullerOptions {
  size_t maxConcurrentDownloads = 3;
  Platform platform = nodePlatform();
};

class ImagePuller {
 public:
  ImagePuller(loop::Loop& loop, ImageStore& store, ImageWorkerClient& worker,
              PullerOptions options);
  ~ImagePuller();

  class Pull;
  using Done = std::function<void(grpc::Status, Digest imageId)>;
  // Pulls `image` (as kubelet writes it). `conf` is copied: a reload does not disturb pulls.
  std::shared_ptr<Pull> pull(const std::string& image, const RegistriesConf& conf,
                             const Credentials& credentials, Done done);

  size_t layersInProgress() const { return layerJobs_.size(); }

 private:
  struct LayerJob;
  friend class Pull;
  std::shared_ptr<LayerJob> ensureLayer(const PullSource& source, const Credentials& credentials,
                                        const Descriptor& blob, const Digest& diffId);
  void startDownloads();
  void downloadFinished(const std::shared_ptr<LayerJob>& job, grpc::Status status);
  void finishLayer(const std::shared_ptr<LayerJob>& job, grpc::Status status);

  loop::Loop& loop_;
  ImageStore& store_;
  ImageWorkerClient& worker_;
  PullerOptions options_;
  std::map<std::string, std::shared_ptr<LayerJob>> layerJobs_;  // by diffId
  std::deque<std::shared_ptr<LayerJob>> waitingForSlot_;
  size_t downloading_ = 0;
  loop::LifetimeGuard lifetime_;
};

// One pull under way. Holding it is optional: the pull goes on without it.
class ImagePuller::Pull : public std::enable_shared_from_this<ImagePuller::Pull> {
 public:
  PullProgress progress() const;

 private:
  friend class ImagePuller;
  Pull(ImagePuller& puller, RegistriesConf conf, Credentials credentials, Done done)
      : puller_(puller),
        conf_(std::move(conf)),
        credentials_(std::move(credentials)),
        done_(std::move(done)) {}
  void start(const std::string& image);
  void tryCandidate();
  void gotManifest(std::string body, std::string contentType, bool topLevel);
  void gotConfig(std::string body);
  void layerReady(size_t index, grpc::Status status);
  void finish(grpc::Status status);

  ImagePuller& puller_;
  RegistriesConf conf_;
  Credentials credentials_;
  Credentials sourceCredentials_;  // credentials_, or none for a registry they are not for
  Done done_;
  // The places to try, in order, and the errors met so far.
  std::vector<PullSource> sources_;
  std::vector<ImageReference> names_;  // the image's own name, for each entry of sources_
  size_t sourceIndex_ = 0;
  std::vector<grpc::Status> failures_;
  PullSource source_;
  ImageReference name_;
  std::string reference_;
  Digest topDigest_ = Digest::ofBytes("");
  std::optional<Digest> indexDigest_;
  Manifest manifest_;
  Digest manifestDigest_ = Digest::ofBytes("");
  ImageConfig config_;
  std::vector<std::shared_ptr<LayerJob>> jobs_;  // for progress; null when already present
  std::vector<Digest> leased_;
  size_t layersPending_ = 0;
  bool finished_ = false;
};

}  // namespace monocri::oci
