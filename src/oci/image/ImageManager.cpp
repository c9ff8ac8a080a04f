#include "oci/image/ImageManager.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>

#include "loop/WorkQueue.h"
#include "oci/image/ImageImporter.h"
#include "state/StateFiles.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;

namespace {

int64_t mtimeNs(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;  // absent: defaults
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

ImageManager::ImageManager(loop::Loop& loop, ImageManagerOptions options)
    : loop_(loop),
      options_(std::move(options)),
      store_(options_.stateRoot),
      worker_(loop, options_.worker),
      puller_(loop, store_, worker_, PullerOptions{options_.maxConcurrentDownloads}) {}

ImageManager::~ImageManager() = default;

std::string ImageManager::start(std::vector<std::string>& notes) {
  if (std::string error = store_.load(notes); !error.empty()) return error;
  std::vector<std::string> warnings;
  if (std::string error = RegistriesConf::load(options_.registriesConf, registries_, warnings);
      !error.empty()) {
    return error;
  }
  registriesMtimeNs_ = mtimeNs(options_.registriesConf);
  notes.insert(notes.end(), warnings.begin(), warnings.end());
  for (const auto& text : options_.pinned) {
    std::string why;
    auto ref = parseImageReference(text, &why);
    if (!ref) return "pinned_images: " + why;
    for (const auto& qualified : registries_.qualify(*ref))
      pinned_.push_back(qualified);
  }
  return {};
}

void ImageManager::reloadRegistriesIfChanged() {
  const int64_t mtime = mtimeNs(options_.registriesConf);
  if (mtime == registriesMtimeNs_) return;
  registriesMtimeNs_ = mtime;
  RegistriesConf fresh;
  std::vector<std::string> warnings;
  if (std::string error = RegistriesConf::load(options_.registriesConf, fresh, warnings);
      !error.empty()) {
    spdlog::error("registries.conf changed but cannot be used, keeping the previous one: {}",
                  error);
    return;
  }
  for (const auto& warning : warnings)
    spdlog::warn("{}", warning);
  registries_ = std::move(fresh);
  spdlog::info("reloaded {}", options_.registriesConf);
}

const RegistriesConf& ImageManager::registries() {
  reloadRegistriesIfChanged();
  return registries_;
}

const ImageRecord* ImageManager::resolve(const std::string& image) const {
  if (const ImageRecord* found = store_.find(image)) return found;
  auto ref = parseImageReference(image);
  if (!ref) return nullptr;
  for (const auto& candidate : registries_.qualify(*ref)) {
    if (const ImageRecord* found = store_.find(candidate.string())) return found;
  }
  return nullptr;
}

bool ImageManager::isPinned(const ImageRecord& image) const {
  for (const auto& pin : pinned_) {
    if (contains(image.repoTags, pin.string()) || contains(image.repoDigests, pin.string())) {
      return true;
    }
    if (pin.digest && (contains(image.repoDigests, pin.name() + "@" + pin.digest->str()) ||
                       image.id == *pin.digest)) {
      return true;
    }
  }
  return false;
}

std::shared_ptr<ImagePuller::Pull> ImageManager::pull(const std::string& image,
                                                      const Credentials& credentials,
                                                      PullDone done) {
  return puller_.pull(image, registries(), credentials,
                      [this, done = std::move(done)](Status status, Digest id) {
                        done(status, status.isOk() ? store_.findById(id) : nullptr);
                      });
}

void ImageManager::remove(const std::string& image, std::function<void(Status)> done) {
  const ImageRecord* found = resolve(image);
  if (found == nullptr) {
    done(Status::ok());
    return;
  }
  if (isPinned(*found)) {
    done(Status(StatusCode::kFailedPrecondition,
                fmt::format("image {} is pinned by monocri's configuration (pinned_images)",
                            found->id.str())));
    return;
  }
  // Named by one of several tags: only that tag goes.
  std::string tag;
  if (contains(found->repoTags, image)) {
    tag = image;
  } else if (auto ref = parseImageReference(image); ref && !ref->digest) {
    for (const auto& candidate : registries_.qualify(*ref)) {
      if (contains(found->repoTags, candidate.string())) tag = candidate.string();
    }
  }
  if (!tag.empty() && found->repoTags.size() > 1) {
    const std::string error = store_.untag(found->id, tag);
    done(error.empty() ? Status::ok() : Status(StatusCode::kInternal, error));
    return;
  }
  if (inUse_) {
    if (auto users = inUse_(found->id); !users.empty()) {
      done(Status(StatusCode::kFailedPrecondition,
                  fmt::format("image {} is in use by container {}{}", found->id.str(), users[0],
                              users.size() > 1 ? fmt::format(" and {} more", users.size() - 1)
                                               : std::string())));
      return;
    }
  }
  std::vector<std::string> garbage;
  if (std::string error = store_.removeImage(found->id, garbage); !error.empty()) {
    done(Status(StatusCode::kInternal, error));
    return;
  }
  // The record is gone: the image no longer exists for anyone. Its files are renamed out of
  // the way at once (a new pull may unpack the same layer again) and deleted off the loop.
  for (auto& path : garbage) {
    const std::string doomed = fmt::format("{}.removing-{}", path, ++removals_);
    if (rename(path.c_str(), doomed.c_str()) == 0) path = doomed;
  }
  loop::queueWork(
      loop_, "image files removed",
      [garbage] {
        for (const auto& path : garbage) {
          if (std::string error = state::removeTree(path); !error.empty()) {
            spdlog::warn("removing image files: {}", error);
          }
        }
      },
      nullptr);
  done(Status::ok());
}

void ImageManager::importImages(const std::string& path, const std::string& name,
                                std::function<void(Status, std::vector<Digest>)> done) {
  oci::importImages(worker_, store_, path, name, nodePlatform(), std::move(done));
}

Status ImageManager::readConfig(const ImageRecord& image, ImageConfig& out) const {
  std::string bytes;
  if (std::string error = store_.readBlob(image.id, kMaxConfigBytes, bytes); !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  return parseImageConfig(bytes, out);
}

}  // namespace monocri::oci
