#include "oci/image/ImagePuller.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "oci/image/LayerInstall.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;

namespace {

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// A layer being downloaded and unpacked, shared by every pull that needs it.
struct ImagePuller::LayerJob {
  Digest diffId = Digest::ofBytes("");
  Descriptor blob;
  PullSource source;
  Credentials credentials;
  std::vector<std::function<void(Status)>> waiters;
  PullProgress::LayerState state = PullProgress::LayerState::kWaiting;
  int64_t downloaded = 0;
};

ImagePuller::ImagePuller(loop::Loop& loop, ImageStore& store, ImageWorkerClient& worker,
                         PullerOptions options)
    : loop_(loop), store_(store), worker_(worker), options_(std::move(options)) {
  if (options_.maxConcurrentDownloads == 0) options_.maxConcurrentDownloads = 1;
}

ImagePuller::~ImagePuller() = default;

std::shared_ptr<ImagePuller::Pull> ImagePuller::pull(const std::string& image,
                                                     const RegistriesConf& conf,
                                                     const Credentials& credentials, Done done) {
  std::shared_ptr<Pull> pull(new Pull(*this, conf, credentials, std::move(done)));
  pull->start(image);
  return pull;
}

// ---- a pull ----

void ImagePuller::Pull::start(const std::string& image) {
  std::string why;
  auto ref = parseImageReference(image, &why);
  if (!ref) {
    finish(Status(StatusCode::kInvalidArgument, why));
    return;
  }
  for (const auto& candidate : conf_.qualify(*ref)) {
    std::vector<PullSource> sources;
    if (std::string error = conf_.sources(candidate, sources); !error.empty()) {
      failures_.push_back(Status(StatusCode::kPermissionDenied, error));
      continue;
    }
    sources_.insert(sources_.end(), sources.begin(), sources.end());
    names_.insert(names_.end(), sources.size(), candidate);
  }
  tryCandidate();
}

void ImagePuller::Pull::tryCandidate() {
  if (sourceIndex_ >= sources_.size()) {
    // Report the most telling failure: anything but "not found" beats "not found".
    Status worst(StatusCode::kNotFound, "no registry to pull from");
    std::string places;
    for (const auto& failure : failures_) {
      if (worst.code() == StatusCode::kNotFound) worst = failure;
    }
    for (const auto& source : sources_) {
      places += (places.empty() ? "" : ", ") + source.ref.domain;
    }
    if (worst.code() == StatusCode::kNotFound && sources_.size() > 1) {
      worst = Status(StatusCode::kNotFound, fmt::format("image not found at any of: {} (last: {})",
                                                        places, worst.message()));
    }
    finish(worst);
    return;
  }
  name_ = names_[sourceIndex_];
  source_ = sources_[sourceIndex_++];
  reference_ = source_.ref.manifestReference();
  sourceCredentials_ = credentials_.appliesTo(source_.ref.domain) ? credentials_ : Credentials{};
  puller_.worker_.getManifest(
      source_, sourceCredentials_, reference_,
      [self = shared_from_this()](Status status, std::string body, std::string contentType) {
        if (!status.isOk()) {
          if (self->source_.mirror) {
            spdlog::info("pull {}: mirror {} failed ({}); trying the next place",
                         self->source_.ref.string(), self->source_.ref.domain, status.toString());
          }
          self->failures_.push_back(status);
          self->tryCandidate();
          return;
        }
        self->gotManifest(std::move(body), std::move(contentType), true);
      });
}

void ImagePuller::Pull::gotManifest(std::string body, std::string contentType, bool topLevel) {
  const Digest digest = Digest::ofBytes(body);
  // A manifest asked for by digest must be that digest, byte for byte.
  const std::optional<Digest> expected =
      topLevel ? source_.ref.digest : std::optional<Digest>(manifestDigest_);
  if (expected && *expected != digest) {
    finish(Status(StatusCode::kDataLoss,
                  fmt::format("the manifest {} from {} does not match its digest (got {})",
                              expected->str(), source_.ref.domain, digest.str())));
    return;
  }
  std::variant<Manifest, Index> document;
  if (Status s = parseManifestDocument(body, contentType, document); !s.isOk()) {
    finish(s);
    return;
  }
  if (topLevel) topDigest_ = digest;
  if (std::string error = puller_.store_.putBlob(digest, body); !error.empty()) {
    finish(Status(StatusCode::kInternal, error));
    return;
  }
  puller_.store_.lease(digest);
  leased_.push_back(digest);

  if (auto* index = std::get_if<Index>(&document)) {
    if (!topLevel) {
      finish(Status(StatusCode::kFailedPrecondition, "an index inside an index is not supported"));
      return;
    }
    Descriptor chosen;
    if (Status s = selectPlatform(*index, puller_.options_.platform, chosen); !s.isOk()) {
      finish(s);
      return;
    }
    indexDigest_ = digest;
    manifestDigest_ = chosen.digest;
    puller_.worker_.getManifest(
        source_, sourceCredentials_, chosen.digest.str(),
        [self = shared_from_this()](Status status, std::string body, std::string contentType) {
          if (!status.isOk()) {
            self->finish(status);
            return;
          }
          self->gotManifest(std::move(body), std::move(contentType), false);
        });
    return;
  }
  manifest_ = std::get<Manifest>(document);
  manifestDigest_ = digest;
  const Descriptor config = manifest_.config;
  puller_.worker_.getSmallBlob(
      source_, sourceCredentials_, config.digest, kMaxConfigBytes,
      [self = shared_from_this(), config](Status status, std::string body) {
        if (!status.isOk()) {
          self->finish(status);
          return;
        }
        if (Digest::ofBytes(body) != config.digest) {
          self->finish(Status(StatusCode::kDataLoss,
                              fmt::format("the image config from {} does not match its digest {}",
                                          self->source_.ref.domain, config.digest.str())));
          return;
        }
        self->gotConfig(std::move(body));
      });
}

void ImagePuller::Pull::gotConfig(std::string body) {
  if (Status s = parseImageConfig(body, config_); !s.isOk()) {
    finish(s);
    return;
  }
  if (config_.diffIds.size() != manifest_.layers.size()) {
    finish(Status(StatusCode::kFailedPrecondition,
                  fmt::format("the image config lists {} layers, its manifest {}",
                              config_.diffIds.size(), manifest_.layers.size())));
    return;
  }
  const Platform& node = puller_.options_.platform;
  if (!config_.platform.architecture.empty() &&
      (config_.platform.os != node.os || config_.platform.architecture != node.architecture)) {
    spdlog::warn("pull {}: the image is for {}, this node is {}", source_.ref.string(),
                 config_.platform.string(), node.string());
  }
  const Digest configDigest = manifest_.config.digest;
  if (std::string error = puller_.store_.putBlob(configDigest, body); !error.empty()) {
    finish(Status(StatusCode::kInternal, error));
    return;
  }
  puller_.store_.lease(configDigest);
  leased_.push_back(configDigest);

  layersPending_ = manifest_.layers.size();
  jobs_.assign(manifest_.layers.size(), nullptr);
  for (size_t i = 0; i < manifest_.layers.size(); ++i) {
    puller_.store_.lease(config_.diffIds[i]);
    leased_.push_back(config_.diffIds[i]);
  }
  if (layersPending_ == 0) {
    finish(Status::ok());
    return;
  }
  for (size_t i = 0; i < manifest_.layers.size() && !finished_; ++i) {
    if (puller_.store_.layer(config_.diffIds[i]) != nullptr) {
      layerReady(i, Status::ok());
      continue;
    }
    auto job =
        puller_.ensureLayer(source_, sourceCredentials_, manifest_.layers[i], config_.diffIds[i]);
    jobs_[i] = job;
    job->waiters.push_back(
        [self = shared_from_this(), i](Status status) { self->layerReady(i, status); });
  }
  puller_.startDownloads();
}

void ImagePuller::Pull::layerReady(size_t, Status status) {
  if (finished_) return;
  if (!status.isOk()) {
    finish(status);
    return;
  }
  if (--layersPending_ == 0) finish(Status::ok());
}

void ImagePuller::Pull::finish(Status status) {
  if (finished_) return;
  finished_ = true;
  Digest imageId = manifest_.config.digest;
  if (status.isOk()) {
    ImageRecord record;
    record.id = imageId;
    // The image's own name, not a mirror's. A reference with a digest pins no tag.
    if (!name_.digest) record.repoTags.push_back(name_.name() + ":" + name_.tag);
    record.repoDigests.push_back(name_.name() + "@" + topDigest_.str());
    record.manifestDigest = manifestDigest_;
    record.indexDigest = indexDigest_;
    record.diffIds = config_.diffIds;
    record.size = manifest_.config.size;
    for (const auto& layer : manifest_.layers)
      record.size += layer.size;
    record.user = config_.user;
    record.platform = config_.platform.string();
    record.createdNs = nowNs();
    if (std::string error = puller_.store_.commitImage(std::move(record)); !error.empty()) {
      status = Status(StatusCode::kInternal, error);
    }
  }
  for (const auto& digest : leased_)
    puller_.store_.release(digest);
  leased_.clear();
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(status, imageId);
}

PullProgress ImagePuller::Pull::progress() const {
  PullProgress progress;
  progress.reference = name_.domain.empty() ? std::string() : name_.string();
  for (size_t i = 0; i < manifest_.layers.size(); ++i) {
    PullProgress::Layer layer;
    layer.digest = manifest_.layers[i].digest;
    layer.size = manifest_.layers[i].size;
    if (i < jobs_.size() && jobs_[i]) {
      layer.state = jobs_[i]->state;
      layer.downloaded = jobs_[i]->downloaded;
    } else if (i < jobs_.size()) {
      layer.state = PullProgress::LayerState::kPresent;
      layer.downloaded = layer.size;
    }
    progress.layers.push_back(layer);
  }
  return progress;
}

// ---- layers, shared between pulls ----

std::shared_ptr<ImagePuller::LayerJob> ImagePuller::ensureLayer(const PullSource& source,
                                                                const Credentials& credentials,
                                                                const Descriptor& blob,
                                                                const Digest& diffId) {
  if (auto it = layerJobs_.find(diffId.str()); it != layerJobs_.end()) return it->second;
  auto job = std::make_shared<LayerJob>();
  job->diffId = diffId;
  job->blob = blob;
  job->source = source;
  job->credentials = credentials;
  layerJobs_[diffId.str()] = job;
  waitingForSlot_.push_back(job);
  return job;
}

void ImagePuller::startDownloads() {
  while (downloading_ < options_.maxConcurrentDownloads && !waitingForSlot_.empty()) {
    auto job = std::move(waitingForSlot_.front());
    waitingForSlot_.pop_front();
    ++downloading_;
    job->state = PullProgress::LayerState::kDownloading;
    worker_.downloadBlob(
        job->source, job->credentials, job->blob, store_.ingestPath(job->blob.digest),
        [job](int64_t downloaded) { job->downloaded = downloaded; },
        [this, job, alive = lifetime_.watch()](Status status) {
          if (!alive.expired()) downloadFinished(job, status);
        });
  }
}

void ImagePuller::downloadFinished(const std::shared_ptr<LayerJob>& job, Status status) {
  --downloading_;
  startDownloads();  // the slot is free
  if (!status.isOk()) {
    finishLayer(job, status);
    return;
  }
  // Digest and size were checked while it streamed, in the worker.
  job->downloaded = job->blob.size;
  job->state = PullProgress::LayerState::kUnpacking;
  installLayer(worker_, store_, store_.ingestPath(job->blob.digest), job->blob, job->diffId,
               [this, job, alive = lifetime_.watch()](Status result) {
                 if (!alive.expired()) finishLayer(job, result);
               });
}

void ImagePuller::finishLayer(const std::shared_ptr<LayerJob>& job, Status status) {
  layerJobs_.erase(job->diffId.str());
  job->state = status.isOk() ? PullProgress::LayerState::kDone : job->state;
  // The downloaded blob is not kept: the unpacked layer is what containers use.
  unlink(store_.ingestPath(job->blob.digest).c_str());
  if (!status.isOk()) {
    spdlog::warn("layer {}: {}", job->blob.digest.str(), status.toString());
  }
  auto waiters = std::move(job->waiters);
  for (auto& waiter : waiters)
    waiter(status);
}

}  // namespace monocri::oci
