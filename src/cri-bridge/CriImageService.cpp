#include "cri-bridge/CriImageService.h"

#include "cri-bridge/CriMethods.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "api.pb.h"
#include "cri-bridge/CriMethods.h"
#include "loop/Timer.h"
#include "monocri.pb.h"

namespace monocri::cri {

namespace v1 = runtime::v1;
using grpc::ServerWriter;
using grpc::Status;
using grpc::StatusCode;
using grpc::UnaryResponder;

namespace {

constexpr std::string_view kImageService = "/runtime.v1.ImageService/";
constexpr std::string_view kImages = "/monocri.v1.Images/";
// monoctl's progress display is refreshed at this pace.
constexpr uint64_t kProgressIntervalMs = 250;

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The CRI's view of an image record.
void toCri(const oci::ImageRecord& record, bool pinned, v1::Image& out) {
  out.set_id(record.id.str());
  for (const auto& tag : record.repoTags)
    out.add_repo_tags(tag);
  for (const auto& digest : record.repoDigests)
    out.add_repo_digests(digest);
  out.set_size(static_cast<uint64_t>(record.size));
  out.mutable_spec()->set_image(record.id.str());
  out.set_pinned(pinned);
  // config.User is "user[:group]": a number is a uid, anything else a name to resolve later.
  const std::string user = record.user.substr(0, record.user.find(':'));
  if (!user.empty() && user.find_first_not_of("0123456789") == std::string::npos &&
      user.size() < 11) {
    out.mutable_uid()->set_value(std::stoll(user));
  } else if (!user.empty()) {
    out.set_username(user);
  }
}

Status credentialsOf(const v1::AuthConfig& auth, oci::Credentials& out) {
  return oci::Credentials::fromAuthConfig(auth.username(), auth.password(), auth.auth(),
                                          auth.identity_token(), auth.registry_token(),
                                          auth.server_address(), out);
}

void fillProgress(const oci::PullProgress& progress, monocri::v1::PullProgress& out) {
  out.set_reference(progress.reference);
  for (const auto& layer : progress.layers) {
    auto* item = out.add_layers();
    item->set_digest(layer.digest.str());
    item->set_size(layer.size);
    item->set_downloaded(layer.downloaded);
    item->set_state(static_cast<monocri::v1::LayerProgress::State>(layer.state));
  }
}

}  // namespace

CriImageService::CriImageService(grpc::GrpcServer& server, oci::ImageManager& images)
    : images_(images) {
  auto path = [](std::string_view service, std::string_view method) {
    return std::string(service) + std::string(method);
  };

  server.addUnary<v1::PullImageRequest, v1::PullImageResponse>(
      path(kImageService, "PullImage"),
      [this](v1::PullImageRequest&& request, UnaryResponder<v1::PullImageResponse> responder) {
        oci::Credentials credentials;
        if (Status s = credentialsOf(request.auth(), credentials); !s.isOk()) {
          responder.fail(s);
          return;
        }
        const std::string image = request.image().image();
        if (image.empty()) {
          responder.fail(Status(StatusCode::kInvalidArgument, "PullImage needs an image"));
          return;
        }
        auto shared = shareResponder(responder);
        // A client that gives up does not stop the pull: kubelet asks again and finds it done.
        images_.pull(image, credentials,
                     [shared, image](Status status, const oci::ImageRecord* record) {
                       if (!status.isOk()) {
                         spdlog::info("pull {}: {}", image, status.toString());
                         shared->fail(status);
                         return;
                       }
                       spdlog::info("pulled {} as {}", image, record->id.str());
                       v1::PullImageResponse response;
                       response.set_image_ref(record->id.str());
                       shared->finish(response);
                     });
      });

  server.addUnary<v1::ListImagesRequest, v1::ListImagesResponse>(
      path(kImageService, "ListImages"),
      [this](v1::ListImagesRequest&& request, UnaryResponder<v1::ListImagesResponse> responder) {
        v1::ListImagesResponse response;
        const std::string& filter = request.filter().image().image();
        if (!filter.empty()) {
          if (const oci::ImageRecord* record = images_.resolve(filter)) {
            toCri(*record, images_.isPinned(*record), *response.add_images());
          }
        } else {
          for (const oci::ImageRecord* record : images_.list()) {
            toCri(*record, images_.isPinned(*record), *response.add_images());
          }
        }
        responder.finish(response);
      });

  server.addUnary<v1::ImageStatusRequest, v1::ImageStatusResponse>(
      path(kImageService, "ImageStatus"),
      [this](v1::ImageStatusRequest&& request, UnaryResponder<v1::ImageStatusResponse> responder) {
        v1::ImageStatusResponse response;
        // An image this node does not have is not an error: the response has no image.
        const oci::ImageRecord* record = images_.resolve(request.image().image());
        if (record == nullptr) {
          responder.finish(response);
          return;
        }
        toCri(*record, images_.isPinned(*record), *response.mutable_image());
        if (request.verbose()) {
          oci::ImageConfig config;
          nlohmann::json layers = nlohmann::json::array();
          for (const auto& diffId : record->diffIds) {
            const oci::LayerRecord* layer = images_.store().layer(diffId);
            layers.push_back({{"diffId", diffId.str()},
                              {"digest", layer ? layer->blobDigest.str() : ""},
                              {"mediaType", layer ? layer->mediaType : ""},
                              {"size", layer ? layer->blobSize : 0},
                              {"unpackedBytes", layer ? layer->bytes : 0},
                              {"path", images_.store().layerPath(diffId)}});
          }
          nlohmann::json info{{"manifestDigest", record->manifestDigest.str()},
                              {"platform", record->platform},
                              {"pulledAtNs", record->createdNs},
                              {"layers", layers}};
          if (record->indexDigest) info["indexDigest"] = record->indexDigest->str();
          if (images_.readConfig(*record, config).isOk()) info["imageSpec"] = config.json;
          (*response.mutable_info())["info"] = info.dump();
        }
        responder.finish(response);
      });

  server.addUnary<v1::RemoveImageRequest, v1::RemoveImageResponse>(
      path(kImageService, "RemoveImage"),
      [this](v1::RemoveImageRequest&& request, UnaryResponder<v1::RemoveImageResponse> responder) {
        auto shared = shareResponder(responder);
        const std::string image = request.image().image();
        images_.remove(image, [shared, image](Status status) {
          if (!status.isOk()) {
            shared->fail(status);
            return;
          }
          spdlog::info("removed image {}", image);
          shared->finish(v1::RemoveImageResponse());
        });
      });

  server.addUnary<v1::ImageFsInfoRequest, v1::ImageFsInfoResponse>(
      path(kImageService, "ImageFsInfo"),
      [this](v1::ImageFsInfoRequest&&, UnaryResponder<v1::ImageFsInfoResponse> responder) {
        const oci::StoreUsage usage = images_.store().usage();
        v1::ImageFsInfoResponse response;
        auto* fs = response.add_image_filesystems();
        fs->set_timestamp(nowNs());
        fs->mutable_fs_id()->set_mountpoint(images_.store().directory());
        fs->mutable_used_bytes()->set_value(usage.bytes);
        fs->mutable_inodes_used()->set_value(usage.inodes);
        responder.finish(response);
      });

  server.addServerStreaming<v1::PullImageRequest, monocri::v1::PullProgress>(
      path(kImages, "PullWithProgress"),
      [this](v1::PullImageRequest&& request, ServerWriter<monocri::v1::PullProgress> writer) {
        oci::Credentials credentials;
        if (Status s = credentialsOf(request.auth(), credentials); !s.isOk()) {
          writer.finish(s);
          return;
        }
        struct Watch {
          ServerWriter<monocri::v1::PullProgress> writer;
          loop::HandlePtr<loop::Timer> timer;
          std::shared_ptr<oci::ImagePuller::Pull> pull;
        };
        auto watch = std::make_shared<Watch>(Watch{std::move(writer), nullptr, nullptr});
        watch->pull = images_.pull(request.image().image(), credentials,
                                   [watch](Status status, const oci::ImageRecord* record) {
                                     watch->timer.reset();
                                     if (status.isOk()) {
                                       monocri::v1::PullProgress last;
                                       fillProgress(watch->pull->progress(), last);
                                       last.set_image_ref(record->id.str());
                                       watch->writer.write(last);
                                     }
                                     watch->writer.finish(status);
                                     watch->pull.reset();
                                   });
        if (!watch->pull) return;  // finished at once
        watch->timer = loop::Timer::create(images_.loop(), "pull progress");
        watch->timer->start(kProgressIntervalMs, kProgressIntervalMs, [raw = watch.get()] {
          monocri::v1::PullProgress progress;
          fillProgress(raw->pull->progress(), progress);
          if (!raw->writer.write(progress)) raw->timer->stop();  // the client went away
        });
      });

  server.addUnary<monocri::v1::ImportRequest, monocri::v1::ImportResponse>(
      path(kImages, "Import"), [this](monocri::v1::ImportRequest&& request,
                                      UnaryResponder<monocri::v1::ImportResponse> responder) {
        if (request.path().empty() || request.path().front() != '/') {
          responder.fail(Status(StatusCode::kInvalidArgument, "Import needs an absolute path"));
          return;
        }
        auto shared = shareResponder(responder);
        images_.importImages(
            request.path(), request.name(),
            [this, shared, path = request.path()](Status status, std::vector<oci::Digest> ids) {
              if (!status.isOk()) {
                shared->fail(status);
                return;
              }
              monocri::v1::ImportResponse response;
              for (const auto& id : ids) {
                if (const oci::ImageRecord* record = images_.store().findById(id)) {
                  toCri(*record, images_.isPinned(*record), *response.add_images());
                }
              }
              spdlog::info("imported {} image(s) from {}", ids.size(), path);
              shared->finish(response);
            });
      });
}

}  // namespace monocri::cri
