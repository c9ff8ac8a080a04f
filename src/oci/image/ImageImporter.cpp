#include "oci/image/ImageImporter.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>

#include "loop/WorkQueue.h"
#include "oci/image/ImportReader.h"
#include "oci/image/LayerInstall.h"
#include "state/StateFiles.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;

namespace {

// The worker's plan, back from JSON; every document is parsed again here, in the daemon.
Status parseImportPlan(const std::string& text, ImportPlan& out) {
  auto fail = [] {
    return Status(StatusCode::kInternal, "import: the image worker's plan is unreadable");
  };
  Json json = Json::parse(text, nullptr, false);
  if (!json.is_object() || !json.contains("images") || !json["images"].is_array()) return fail();
  try {
    for (const auto& entry : json["images"]) {
      ImportedImage image;
      image.repoTags = entry.at("repoTags").get<std::vector<std::string>>();
      image.repoDigests = entry.at("repoDigests").get<std::vector<std::string>>();
      image.manifestBytes = entry.at("manifest").get<std::string>();
      image.configBytes = entry.at("config").get<std::string>();
      image.manifestDigest = Digest::ofBytes(image.manifestBytes);
      image.configDigest = Digest::ofBytes(image.configBytes);
      if (image.manifestDigest.str() != entry.at("manifestDigest").get<std::string>() ||
          image.configDigest.str() != entry.at("configDigest").get<std::string>()) {
        return fail();
      }
      if (Status s = parseImageConfig(image.configBytes, image.config); !s.isOk()) return s;
      if (entry.contains("index")) {
        image.indexBytes = entry.at("index").get<std::string>();
        image.indexDigest = Digest::ofBytes(image.indexBytes);
      }
      image.size = entry.at("size").get<int64_t>();
      for (const auto& layer : entry.at("layers")) {
        auto digest = Digest::parse(layer.at("digest").get<std::string>());
        auto diffId = Digest::parse(layer.at("diffId").get<std::string>());
        if (!digest || !diffId) return fail();
        ImportedLayer imported;
        imported.path = layer.at("path").get<std::string>();
        imported.blob.mediaType = layer.at("mediaType").get<std::string>();
        imported.blob.digest = *digest;
        imported.blob.size = layer.at("size").get<int64_t>();
        imported.diffId = *diffId;
        image.layers.push_back(std::move(imported));
      }
      out.images.push_back(std::move(image));
    }
  } catch (const Json::exception&) {
    return fail();
  }
  return Status::ok();
}

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Records the images of `plan` one after another: blobs, missing layers, then the record.
struct Importer : std::enable_shared_from_this<Importer> {
  loop::Loop& loop;
  ImageWorkerClient& worker;
  ImageStore& store;
  ImportPlan plan;
  std::string scratch;
  std::function<void(Status, std::vector<Digest>)> done;
  std::vector<Digest> imported;
  std::vector<Digest> leased;
  size_t imageIndex = 0;
  size_t layerIndex = 0;

  Importer(loop::Loop& l, ImageWorkerClient& w, ImageStore& s) : loop(l), worker(w), store(s) {}

  void next() {
    if (imageIndex == plan.images.size()) {
      finish(Status::ok());
      return;
    }
    ImportedImage& image = plan.images[imageIndex];
    if (layerIndex == 0) {
      for (auto& [digest, bytes] : std::vector<std::pair<Digest, std::string*>>{
               {image.configDigest, &image.configBytes},
               {image.manifestDigest, &image.manifestBytes}}) {
        if (std::string error = store.putBlob(digest, *bytes); !error.empty()) {
          finish(Status(StatusCode::kInternal, error));
          return;
        }
        store.lease(digest);
        leased.push_back(digest);
      }
      if (image.indexDigest) {
        store.putBlob(*image.indexDigest, image.indexBytes);
        store.lease(*image.indexDigest);
        leased.push_back(*image.indexDigest);
      }
      for (const auto& layer : image.layers) {
        store.lease(layer.diffId);
        leased.push_back(layer.diffId);
      }
    }
    while (layerIndex < image.layers.size() && store.layer(image.layers[layerIndex].diffId)) {
      ++layerIndex;
    }
    if (layerIndex < image.layers.size()) {
      const ImportedLayer& layer = image.layers[layerIndex];
      installLayer(worker, store, layer.path, layer.blob, layer.diffId,
                   [self = shared_from_this()](Status status) {
                     if (!status.isOk()) {
                       self->finish(status);
                       return;
                     }
                     ++self->layerIndex;
                     self->next();
                   });
      return;
    }
    ImageRecord record;
    record.id = image.configDigest;
    record.repoTags = image.repoTags;
    record.repoDigests = image.repoDigests;
    record.manifestDigest = image.manifestDigest;
    record.indexDigest = image.indexDigest;
    record.diffIds = image.config.diffIds;
    record.size = image.size;
    record.user = image.config.user;
    record.platform = image.config.platform.string();
    record.createdNs = nowNs();
    if (std::string error = store.commitImage(record); !error.empty()) {
      finish(Status(StatusCode::kInternal, error));
      return;
    }
    imported.push_back(image.configDigest);
    ++imageIndex;
    layerIndex = 0;
    next();
  }

  void finish(Status status) {
    for (const auto& digest : leased)
      store.release(digest);
    leased.clear();
    loop::queueWork(
        loop, "import scratch removed", [scratch = scratch] { state::removeTree(scratch); },
        nullptr);
    done(status, status.isOk() ? imported : std::vector<Digest>());
  }
};

}  // namespace

void importImages(ImageWorkerClient& worker, ImageStore& store, const std::string& path,
                  const std::string& name, const Platform& platform,
                  std::function<void(Status, std::vector<Digest>)> done) {
  static uint64_t imports = 0;
  auto importer = std::make_shared<Importer>(worker.loop(), worker, store);
  importer->scratch = fmt::format("{}/ingest/import-{}-{}", store.directory(), getpid(), ++imports);
  importer->done = std::move(done);
  worker.readImport(path, name, platform, importer->scratch,
                    [importer](Status status, std::string plan) {
                      if (status.isOk()) status = parseImportPlan(plan, importer->plan);
                      if (!status.isOk()) {
                        importer->finish(status);
                        return;
                      }
                      importer->next();
                    });
}

}  // namespace monocri::oci
