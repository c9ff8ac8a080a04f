#include "oci/image/ImageStore.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "oci/image/ImageReference.h"
#include "state/StateFiles.h"

namespace monocri::oci {

using Json = nlohmann::json;

namespace {

constexpr size_t kMaxRecordBytes = 1 << 20;

std::vector<std::string> listDirectory(const std::string& path) {
  std::vector<std::string> names;
  if (DIR* dir = opendir(path.c_str())) {
    while (dirent* entry = readdir(dir)) {
      std::string_view name = entry->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    closedir(dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool isHexDigest(std::string_view hex) {
  return hex.size() == 64 && hex.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::optional<Digest> digestField(const Json& json, const char* key) {
  auto it = json.find(key);
  if (it == json.end() || !it->is_string()) return std::nullopt;
  return Digest::parse(it->get<std::string>());
}

std::vector<std::string> stringsField(const Json& json, const char* key) {
  std::vector<std::string> out;
  auto it = json.find(key);
  if (it == json.end() || !it->is_array()) return out;
  for (const auto& item : *it) {
    if (item.is_string()) out.push_back(item.get<std::string>());
  }
  return out;
}

Json toJson(const LayerRecord& layer) {
  return Json{{"diffId", layer.diffId.str()}, {"blobDigest", layer.blobDigest.str()},
              {"mediaType", layer.mediaType}, {"blobSize", layer.blobSize},
              {"bytes", layer.bytes},         {"inodes", layer.inodes}};
}

std::optional<LayerRecord> layerFromJson(const Json& json) {
  auto diffId = digestField(json, "diffId");
  auto blob = digestField(json, "blobDigest");
  if (!diffId || !blob) return std::nullopt;
  LayerRecord layer;
  layer.diffId = *diffId;
  layer.blobDigest = *blob;
  layer.mediaType = json.value("mediaType", "");
  layer.blobSize = json.value("blobSize", int64_t{0});
  layer.bytes = json.value("bytes", uint64_t{0});
  layer.inodes = json.value("inodes", uint64_t{0});
  return layer;
}

Json toJson(const ImageRecord& image) {
  Json diffIds = Json::array();
  for (const auto& id : image.diffIds)
    diffIds.push_back(id.str());
  Json json{{"id", image.id.str()},
            {"repoTags", image.repoTags},
            {"repoDigests", image.repoDigests},
            {"manifestDigest", image.manifestDigest.str()},
            {"diffIds", diffIds},
            {"size", image.size},
            {"user", image.user},
            {"platform", image.platform},
            {"createdNs", image.createdNs}};
  if (image.indexDigest) json["indexDigest"] = image.indexDigest->str();
  return json;
}

std::optional<ImageRecord> imageFromJson(const Json& json) {
  auto id = digestField(json, "id");
  auto manifest = digestField(json, "manifestDigest");
  if (!id || !manifest) return std::nullopt;
  ImageRecord image;
  image.id = *id;
  image.manifestDigest = *manifest;
  image.indexDigest = digestField(json, "indexDigest");
  image.repoTags = stringsField(json, "repoTags");
  image.repoDigests = stringsField(json, "repoDigests");
  for (const auto& text : stringsField(json, "diffIds")) {
    auto diffId = Digest::parse(text);
    if (!diffId) return std::nullopt;
    image.diffIds.push_back(*diffId);
  }
  image.size = json.value("size", int64_t{0});
  image.user = json.value("user", "");
  image.platform = json.value("platform", "");
  image.createdNs = json.value("createdNs", int64_t{0});
  return image;
}

template <typename Record>
std::optional<Record> readRecord(const std::string& path,
                                 std::optional<Record> (*parse)(const Json&)) {
  std::string text;
  if (!state::readFile(path, kMaxRecordBytes, text).empty()) return std::nullopt;
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  try {
    return parse(json);
  } catch (const Json::exception&) {  // a field of the wrong type
    return std::nullopt;
  }
}

}  // namespace

ImageStore::ImageStore(std::string stateRoot) : dir_(std::move(stateRoot) + "/image") {}

std::string ImageStore::blobPath(const Digest& digest) const {
  return dir_ + "/blobs/sha256/" + std::string(digest.hex());
}
std::string ImageStore::ingestPath(const Digest& digest) const {
  return dir_ + "/ingest/" + std::string(digest.hex());
}
std::string ImageStore::layerPath(const Digest& diffId) const {
  return dir_ + "/layers/" + std::string(diffId.hex());
}
std::string ImageStore::unpackingPath(const Digest& diffId) const {
  return dir_ + "/layers/" + std::string(diffId.hex()) + ".unpacking";
}

std::string ImageStore::load(std::vector<std::string>& notes) {
  for (const char* sub : {"blobs/sha256", "ingest", "layers", "images"}) {
    if (std::string error = state::makeDirectories(dir_ + "/" + sub, 0700); !error.empty()) {
      return error;
    }
  }
  images_.clear();
  layers_.clear();
  // Downloads under way when the daemon stopped: never trusted, started again if needed.
  for (const auto& name : listDirectory(dir_ + "/ingest")) {
    state::removeTree(dir_ + "/ingest/" + name);
  }
  // Layers: a directory counts only with its record beside it.
  const std::string layersDir = dir_ + "/layers";
  const auto layerNames = listDirectory(layersDir);
  for (const auto& name : layerNames) {
    if (name.ends_with(".json") && isHexDigest(name.substr(0, name.size() - 5))) {
      const std::string hex = name.substr(0, name.size() - 5);
      auto layer = readRecord<LayerRecord>(layersDir + "/" + name, layerFromJson);
      struct stat st {};
      if (layer && layer->diffId.hex() == hex && stat((layersDir + "/" + hex).c_str(), &st) == 0 &&
          S_ISDIR(st.st_mode)) {
        layers_.emplace(layer->diffId.str(), *layer);
      }
    }
  }
  for (const auto& name : layerNames) {
    const std::string hex = name.ends_with(".json") ? name.substr(0, name.size() - 5) : name;
    if (!layers_.contains("sha256:" + hex)) {
      notes.push_back(fmt::format("removed incomplete layer {}", name));
      state::removeTree(layersDir + "/" + name);
    }
  }
  // Images: a record counts only if all its layers and blobs are there.
  const std::string imagesDir = dir_ + "/images";
  for (const auto& name : listDirectory(imagesDir)) {
    const std::string path = imagesDir + "/" + name;
    auto image =
        name.ends_with(".json") ? readRecord<ImageRecord>(path, imageFromJson) : std::nullopt;
    bool complete = image.has_value() && hasBlob(image->id) && hasBlob(image->manifestDigest);
    for (size_t i = 0; complete && i < image->diffIds.size(); ++i) {
      complete = layers_.contains(image->diffIds[i].str());
    }
    if (!complete) {
      notes.push_back(fmt::format("removed incomplete image record {}", name));
      unlink(path.c_str());
      continue;
    }
    images_.emplace(image->id.str(), std::move(*image));
  }
  // A tag on two images (a crash between two record writes): the newer image keeps it.
  std::map<std::string, std::string> tagOwner;
  for (auto& [id, image] : images_) {
    for (const auto& tag : image.repoTags) {
      auto [it, inserted] = tagOwner.emplace(tag, id);
      if (!inserted && images_.at(it->second).createdNs < image.createdNs) it->second = id;
    }
  }
  for (auto& [id, image] : images_) {
    const auto before = image.repoTags.size();
    std::erase_if(image.repoTags,
                  [&, &owner = id](const std::string& tag) { return tagOwner[tag] != owner; });
    if (image.repoTags.size() != before) writeImage(image);
  }
  // What no image uses: left by pulls that did not finish.
  std::set<std::string> usedLayers;
  for (const auto& [id, image] : images_) {
    for (const auto& diffId : image.diffIds)
      usedLayers.insert(diffId.str());
  }
  for (auto it = layers_.begin(); it != layers_.end();) {
    if (usedLayers.contains(it->first)) {
      ++it;
      continue;
    }
    notes.push_back(fmt::format("removed unused layer {}", it->first));
    unlink((layerPath(it->second.diffId) + ".json").c_str());
    state::removeTree(layerPath(it->second.diffId));
    it = layers_.erase(it);
  }
  const auto blobs = referencedBlobs();
  for (const auto& hex : listDirectory(dir_ + "/blobs/sha256")) {
    if (!blobs.contains("sha256:" + hex)) state::removeTree(dir_ + "/blobs/sha256/" + hex);
  }
  return {};
}

bool ImageStore::hasBlob(const Digest& digest) const {
  struct stat st {};
  return stat(blobPath(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string ImageStore::putBlob(const Digest& digest, std::string_view bytes) {
  if (hasBlob(digest)) return {};
  return state::writeFileAtomically(blobPath(digest), bytes, 0644);
}

std::string ImageStore::readBlob(const Digest& digest, size_t maxBytes, std::string& out) const {
  return state::readFile(blobPath(digest), maxBytes, out);
}

const LayerRecord* ImageStore::layer(const Digest& diffId) const {
  auto it = layers_.find(diffId.str());
  return it == layers_.end() ? nullptr : &it->second;
}

std::string ImageStore::commitLayer(const LayerRecord& layer) {
  if (std::string error =
          state::writeFileAtomically(layerPath(layer.diffId) + ".json", toJson(layer).dump());
      !error.empty()) {
    return error;
  }
  layers_[layer.diffId.str()] = layer;
  return {};
}

const ImageRecord* ImageStore::findById(const Digest& id) const {
  auto it = images_.find(id.str());
  return it == images_.end() ? nullptr : &it->second;
}

const ImageRecord* ImageStore::find(const std::string& reference) const {
  if (auto digest = Digest::parse(reference)) {
    if (const ImageRecord* image = findById(*digest)) return image;
  }
  if (isHexDigest(reference)) {
    if (const ImageRecord* image = findById(*Digest::parse("sha256:" + reference))) return image;
  }
  for (const auto& [id, image] : images_) {
    if (std::find(image.repoTags.begin(), image.repoTags.end(), reference) !=
            image.repoTags.end() ||
        std::find(image.repoDigests.begin(), image.repoDigests.end(), reference) !=
            image.repoDigests.end()) {
      return &image;
    }
  }
  // A unique prefix of an id, as users copy it from `monoctl images`.
  std::string_view prefix = reference;
  if (prefix.starts_with("sha256:")) prefix.remove_prefix(7);
  if (prefix.size() >= 4 &&
      prefix.find_first_not_of("0123456789abcdef") == std::string_view::npos) {
    const ImageRecord* match = nullptr;
    for (const auto& [id, image] : images_) {
      if (image.id.hex().starts_with(prefix)) {
        if (match != nullptr) return nullptr;  // ambiguous
        match = &image;
      }
    }
    return match;
  }
  return nullptr;
}

std::vector<const ImageRecord*> ImageStore::list() const {
  std::vector<const ImageRecord*> out;
  for (const auto& [id, image] : images_)
    out.push_back(&image);
  return out;
}

std::string ImageStore::writeImage(const ImageRecord& record) {
  return state::writeFileAtomically(dir_ + "/images/" + std::string(record.id.hex()) + ".json",
                                    toJson(record).dump());
}

std::string ImageStore::commitImage(ImageRecord record) {
  auto merge = [](std::vector<std::string>& into, const std::vector<std::string>& from) {
    for (const auto& item : from) {
      if (std::find(into.begin(), into.end(), item) == into.end()) into.push_back(item);
    }
  };
  // Tags move: the image that had one of these tags before loses it.
  for (auto& [id, other] : images_) {
    if (id == record.id.str()) continue;
    const auto before = other.repoTags.size();
    std::erase_if(other.repoTags, [&](const std::string& tag) {
      return std::find(record.repoTags.begin(), record.repoTags.end(), tag) !=
             record.repoTags.end();
    });
    if (other.repoTags.size() != before) {
      if (std::string error = writeImage(other); !error.empty()) return error;
    }
  }
  if (auto it = images_.find(record.id.str()); it != images_.end()) {
    merge(it->second.repoTags, record.repoTags);
    merge(it->second.repoDigests, record.repoDigests);
    record.repoTags = it->second.repoTags;
    record.repoDigests = it->second.repoDigests;
    record.createdNs = it->second.createdNs;
  }
  if (std::string error = writeImage(record); !error.empty()) return error;
  images_[record.id.str()] = std::move(record);
  return {};
}

std::string ImageStore::untag(const Digest& id, const std::string& tag) {
  auto it = images_.find(id.str());
  if (it == images_.end()) return {};
  std::erase(it->second.repoTags, tag);
  return writeImage(it->second);
}

std::set<std::string> ImageStore::referencedBlobs() const {
  std::set<std::string> blobs(leases_.begin(), leases_.end());
  for (const auto& [id, image] : images_) {
    blobs.insert(image.id.str());
    blobs.insert(image.manifestDigest.str());
    if (image.indexDigest) blobs.insert(image.indexDigest->str());
  }
  return blobs;
}

std::string ImageStore::removeImage(const Digest& id, std::vector<std::string>& garbage) {
  auto it = images_.find(id.str());
  if (it == images_.end()) return {};
  const std::string path = dir_ + "/images/" + std::string(id.hex()) + ".json";
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fmt::format("remove {}: {}", path, std::strerror(errno));
  }
  const ImageRecord removed = std::move(it->second);
  images_.erase(it);

  std::set<std::string> usedLayers(leases_.begin(), leases_.end());
  for (const auto& [otherId, image] : images_) {
    for (const auto& diffId : image.diffIds)
      usedLayers.insert(diffId.str());
  }
  for (const auto& diffId : removed.diffIds) {
    auto layerIt = layers_.find(diffId.str());
    if (layerIt == layers_.end() || usedLayers.contains(diffId.str())) continue;
    // The record goes first: a directory without one is never trusted again.
    unlink((layerPath(diffId) + ".json").c_str());
    garbage.push_back(layerPath(diffId));
    layers_.erase(layerIt);
  }
  const auto blobs = referencedBlobs();
  std::vector<Digest> candidates = {removed.id, removed.manifestDigest};
  if (removed.indexDigest) candidates.push_back(*removed.indexDigest);
  for (const auto& digest : candidates) {
    if (!blobs.contains(digest.str())) garbage.push_back(blobPath(digest));
  }
  return {};
}

StoreUsage ImageStore::usage() const {
  StoreUsage usage;
  for (const auto& [id, layer] : layers_) {
    usage.bytes += layer.bytes;
    usage.inodes += layer.inodes;
  }
  for (const auto& blob : referencedBlobs()) {
    struct stat st {};
    if (auto digest = Digest::parse(blob); digest && stat(blobPath(*digest).c_str(), &st) == 0) {
      usage.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
      usage.inodes += 1;
    }
  }
  return usage;
}

}  // namespace monocri::oci
