#include "oci/image/ImportReader.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "oci/image/ArchiveRead.h"
#include "oci/image/ImageReference.h"
#include "state/StateFiles.h"
#include "state/UniqueFd.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;

namespace {

constexpr std::string_view kRefNameAnnotation = "org.opencontainers.image.ref.name";
constexpr size_t kMaxIndexBytes = 4 * 1024 * 1024;

Status bad(std::string_view why) {
  return Status(StatusCode::kInvalidArgument, fmt::format("import: {}", why));
}

// The files of the source: a directory's, or a tar's extracted under numbered names (an entry
// name from the tar is only ever a key here, never a path).
class ImportSource {
 public:
  Status open(const std::string& path, const std::string& scratch) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      return Status(StatusCode::kNotFound,
                    fmt::format("import: {}: {}", path, std::strerror(errno)));
    }
    if (S_ISDIR(st.st_mode)) {
      directory_ = path;
      return Status::ok();
    }
    if (!S_ISREG(st.st_mode)) return bad(fmt::format("{} is neither a directory nor a file", path));
    ArchiveReader a(archive_read_new());
    archive_read_support_format_tar(a.get());
    archive_read_support_format_gnutar(a.get());
    archive_read_support_filter_gzip(a.get());
    archive_read_support_filter_zstd(a.get());
    if (archive_read_open_filename(a.get(), path.c_str(), 256 * 1024) != ARCHIVE_OK) {
      return bad(fmt::format("{} is not a tar archive: {}", path, archiveError(a.get())));
    }
    archive_entry* entry;
    int rc;
    while ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
      if (archive_entry_filetype(entry) != AE_IFREG) continue;
      std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
      while (name.starts_with("./"))
        name.erase(0, 2);
      const std::string stored = fmt::format("{}/{}", scratch, files_.size());
      state::UniqueFd file(::open(stored.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (!file.valid())
        return Status(StatusCode::kInternal,
                      fmt::format("create {}: {}", stored, std::strerror(errno)));
      const int copied = archive_read_data_into_fd(a.get(), file.get());
      if (copied != ARCHIVE_OK) {
        return bad(fmt::format("{}: damaged at '{}': {}", path, name.substr(0, 200),
                               archiveError(a.get())));
      }
      files_[name] = stored;
    }
    if (rc != ARCHIVE_EOF) {
      return bad(fmt::format("{} is damaged: {}", path, archiveError(a.get())));
    }
    return Status::ok();
  }

  std::optional<std::string> file(const std::string& name) const {
    if (!directory_.empty()) {
      // Names come from the source's own JSON: they stay inside its directory.
      if (name.empty() || name.front() == '/' || name == ".." || name.starts_with("../") ||
          name.find("/../") != std::string::npos || name.ends_with("/..")) {
        return std::nullopt;
      }
      const std::string path = directory_ + "/" + name;
      struct stat st {};
      if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return path;
      return std::nullopt;
    }
    auto it = files_.find(name);
    return it == files_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }

  Status read(const std::string& name, size_t maxBytes, std::string& out) const {
    auto path = file(name);
    if (!path) return bad(fmt::format("'{}' is missing", name.substr(0, 200)));
    if (std::string error = state::readFile(*path, maxBytes, out); !error.empty())
      return bad(error);
    return Status::ok();
  }

 private:
  std::string directory_;
  std::map<std::string, std::string> files_;
};

// sha256 and size of a file.
Status hashFile(const std::string& path, Digest& digest, int64_t& size) {
  state::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid())
    return Status(StatusCode::kInternal, fmt::format("open {}: {}", path, std::strerror(errno)));
  Sha256 hasher;
  std::string buffer(256 * 1024, '\0');
  size = 0;
  ssize_t n;
  while ((n = read(fd.get(), buffer.data(), buffer.size())) > 0) {
    hasher.update(std::string_view(buffer.data(), static_cast<size_t>(n)));
    size += n;
  }
  if (n < 0)
    return Status(StatusCode::kInternal, fmt::format("read {}: {}", path, std::strerror(errno)));
  digest = hasher.finish();
  return Status::ok();
}

// A blob of an OCI layout, checked against its descriptor.
Status layoutBlob(const ImportSource& source, const Descriptor& descriptor, std::string& path) {
  auto file = source.file("blobs/sha256/" + std::string(descriptor.digest.hex()));
  if (!file) return bad(fmt::format("blob {} is missing", descriptor.digest.str()));
  Digest digest = Digest::ofBytes("");
  int64_t size = 0;
  if (Status s = hashFile(*file, digest, size); !s.isOk()) return s;
  if (digest != descriptor.digest || size != descriptor.size) {
    return Status(
        StatusCode::kDataLoss,
        fmt::format("import: blob {} does not match its digest and size", descriptor.digest.str()));
  }
  path = *file;
  return Status::ok();
}

// The tag an OCI layout gives its image: a full reference, or a bare tag completed by `name`.
std::optional<std::string> layoutTag(const std::string& annotation, const std::string& name) {
  if (annotation.empty()) return std::nullopt;
  const bool bareTag = annotation.find_first_of("/:@") == std::string::npos;
  auto ref =
      parseImageReference(bareTag ? (name.empty() ? "" : name + ":" + annotation) : annotation);
  if (!ref || ref->digest) return std::nullopt;
  return ref->name() + ":" + ref->tag;
}

Status readImage(const ImportSource& source, const std::string& manifestBytes,
                 const Digest& manifestDigest, ImportedImage& image) {
  std::variant<Manifest, Index> document;
  if (Status s = parseManifestDocument(manifestBytes, "", document); !s.isOk()) return s;
  if (!std::holds_alternative<Manifest>(document)) return bad("an index inside an index");
  const Manifest& manifest = std::get<Manifest>(document);
  image.manifestDigest = manifestDigest;
  image.manifestBytes = manifestBytes;
  std::string configPath;
  if (Status s = layoutBlob(source, manifest.config, configPath); !s.isOk()) return s;
  if (std::string error = state::readFile(configPath, kMaxConfigBytes, image.configBytes);
      !error.empty()) {
    return bad(error);
  }
  image.configDigest = manifest.config.digest;
  if (Status s = parseImageConfig(image.configBytes, image.config); !s.isOk()) return s;
  if (image.config.diffIds.size() != manifest.layers.size()) {
    return bad("the image config and its manifest disagree on the number of layers");
  }
  image.size = manifest.config.size;
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    ImportedLayer layer{{}, manifest.layers[i], image.config.diffIds[i]};
    if (Status s = layoutBlob(source, layer.blob, layer.path); !s.isOk()) return s;
    image.size += layer.blob.size;
    image.layers.push_back(std::move(layer));
  }
  return Status::ok();
}

ImportPlan readOciLayout(const ImportSource& source, const std::string& name,
                         const Platform& platform) {
  ImportPlan plan;
  std::string text;
  if (plan.status = source.read("index.json", kMaxIndexBytes, text); !plan.status.isOk()) {
    return plan;
  }
  Json index = Json::parse(text, nullptr, false);
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array()) {
    plan.status = bad("index.json has no manifests");
    return plan;
  }
  std::variant<Manifest, Index> top;
  if (plan.status = parseManifestDocument(text, std::string(mediatype::kOciIndex), top);
      !plan.status.isOk()) {
    return plan;
  }
  const auto& entries = std::get<Index>(top).manifests;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Json& raw = index["manifests"][i];
    std::string annotation;
    if (raw.contains("annotations") && raw["annotations"].is_object()) {
      auto it = raw["annotations"].find(std::string(kRefNameAnnotation));
      if (it != raw["annotations"].end() && it->is_string()) annotation = it->get<std::string>();
    }
    ImportedImage image;
    std::string path;
    if (plan.status = layoutBlob(source, entries[i], path); !plan.status.isOk()) return plan;
    std::string bytes;
    if (std::string error = state::readFile(path, kMaxManifestBytes, bytes); !error.empty()) {
      plan.status = bad(error);
      return plan;
    }
    Digest manifestDigest = entries[i].digest;
    std::variant<Manifest, Index> document;
    if (plan.status = parseManifestDocument(bytes, entries[i].mediaType, document);
        !plan.status.isOk()) {
      return plan;
    }
    if (auto* nested = std::get_if<Index>(&document)) {
      Descriptor chosen;
      if (plan.status = selectPlatform(*nested, platform, chosen); !plan.status.isOk()) return plan;
      image.indexDigest = entries[i].digest;
      image.indexBytes = bytes;
      if (plan.status = layoutBlob(source, chosen, path); !plan.status.isOk()) return plan;
      if (std::string error = state::readFile(path, kMaxManifestBytes, bytes); !error.empty()) {
        plan.status = bad(error);
        return plan;
      }
      manifestDigest = chosen.digest;
    }
    if (plan.status = readImage(source, bytes, manifestDigest, image); !plan.status.isOk()) {
      return plan;
    }
    if (auto tag = layoutTag(annotation, name)) {
      image.repoTags.push_back(*tag);
      image.repoDigests.push_back(tag->substr(0, tag->rfind(':')) + "@" + entries[i].digest.str());
    }
    plan.images.push_back(std::move(image));
  }
  return plan;
}

ImportPlan readDockerArchive(const ImportSource& source) {
  ImportPlan plan;
  std::string text;
  if (plan.status = source.read("manifest.json", kMaxIndexBytes, text); !plan.status.isOk()) {
    return plan;
  }
  Json manifest = Json::parse(text, nullptr, false);
  if (!manifest.is_array()) {
    plan.status = bad("manifest.json is not a list of images");
    return plan;
  }
  for (const auto& entry : manifest) {
    if (!entry.is_object() || !entry.contains("Config") || !entry["Config"].is_string() ||
        !entry.contains("Layers") || !entry["Layers"].is_array()) {
      plan.status = bad("a manifest.json entry lacks Config or Layers");
      return plan;
    }
    ImportedImage image;
    if (plan.status =
            source.read(entry["Config"].get<std::string>(), kMaxConfigBytes, image.configBytes);
        !plan.status.isOk()) {
      return plan;
    }
    image.configDigest = Digest::ofBytes(image.configBytes);
    if (plan.status = parseImageConfig(image.configBytes, image.config); !plan.status.isOk()) {
      return plan;
    }
    if (image.config.diffIds.size() != entry["Layers"].size()) {
      plan.status = bad("the image config and manifest.json disagree on the number of layers");
      return plan;
    }
    // A docker-archive has no registry manifest: one is written for the image, Docker schema2.
    Json layers = Json::array();
    image.size = static_cast<int64_t>(image.configBytes.size());
    for (size_t i = 0; i < entry["Layers"].size(); ++i) {
      const Json& name = entry["Layers"][i];
      auto path = name.is_string() ? source.file(name.get<std::string>()) : std::nullopt;
      if (!path) {
        plan.status = bad("a layer named in manifest.json is missing");
        return plan;
      }
      ImportedLayer layer{*path, {}, image.config.diffIds[i]};
      if (plan.status = hashFile(layer.path, layer.blob.digest, layer.blob.size);
          !plan.status.isOk()) {
        return plan;
      }
      unsigned char magic[2] = {};
      if (state::UniqueFd fd(::open(layer.path.c_str(), O_RDONLY | O_CLOEXEC)); fd.valid()) {
        (void)!::read(fd.get(), magic, sizeof(magic));
      }
      layer.blob.mediaType = magic[0] == 0x1f && magic[1] == 0x8b
                                 ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
                                 : "application/vnd.docker.image.rootfs.diff.tar";
      layers.push_back({{"mediaType", layer.blob.mediaType},
                        {"size", layer.blob.size},
                        {"digest", layer.blob.digest.str()}});
      image.size += layer.blob.size;
      image.layers.push_back(std::move(layer));
    }
    image.manifestBytes = Json{
        {"schemaVersion", 2},
        {"mediaType", mediatype::kDockerManifest},
        {"config",
         {{"mediaType", mediatype::kDockerConfig},
          {"size", image.configBytes.size()},
          {"digest", image.configDigest.str()}}},
        {"layers", layers}}.dump();
    image.manifestDigest = Digest::ofBytes(image.manifestBytes);
    if (entry.contains("RepoTags") && entry["RepoTags"].is_array()) {
      for (const auto& tag : entry["RepoTags"]) {
        auto ref = tag.is_string() ? parseImageReference(tag.get<std::string>()) : std::nullopt;
        if (ref && !ref->digest) image.repoTags.push_back(ref->name() + ":" + ref->tag);
      }
    }
    plan.images.push_back(std::move(image));
  }
  return plan;
}

Json toJson(const ImportPlan& plan) {
  Json images = Json::array();
  for (const auto& image : plan.images) {
    Json layers = Json::array();
    for (const auto& layer : image.layers) {
      layers.push_back({{"path", layer.path},
                        {"mediaType", layer.blob.mediaType},
                        {"digest", layer.blob.digest.str()},
                        {"size", layer.blob.size},
                        {"diffId", layer.diffId.str()}});
    }
    Json entry{{"repoTags", image.repoTags},
               {"repoDigests", image.repoDigests},
               {"manifestDigest", image.manifestDigest.str()},
               {"manifest", image.manifestBytes},
               {"configDigest", image.configDigest.str()},
               {"config", image.configBytes},
               {"size", image.size},
               {"layers", layers}};
    if (image.indexDigest) {
      entry["indexDigest"] = image.indexDigest->str();
      entry["index"] = image.indexBytes;
    }
    images.push_back(std::move(entry));
  }
  return Json{{"images", images}};
}

}  // namespace

Status readImportPlan(const std::string& path, const std::string& name, const Platform& platform,
                      const std::string& scratch, std::string& planJson) {
  if (std::string error = state::makeDirectories(scratch, 0700); !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  ImportSource source;
  if (Status s = source.open(path, scratch); !s.isOk()) return s;
  ImportPlan plan;
  if (source.file("oci-layout")) {
    plan = readOciLayout(source, name, platform);
  } else if (source.file("manifest.json")) {
    plan = readDockerArchive(source);
  } else {
    return bad(fmt::format("{} is neither an OCI image layout nor a docker-archive", path));
  }
  if (!plan.status.isOk()) return plan.status;
  planJson = toJson(plan).dump(-1, ' ', false, Json::error_handler_t::replace);
  return Status::ok();
}

}  // namespace monocri::oci
