#include "oci/image/worker/ImageWorkerService.h"

#include <fmt/format.h>

#include "imageworker.pb.h"
#include "loop/Timer.h"
#include "loop/WorkQueue.h"
#include "oci/image/ImageWorkerProtocol.h"
#include "oci/image/ImportReader.h"
#include "oci/image/LayerUnpacker.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
namespace wire = monocri::imageworker::v1;

namespace {

// Download progress goes to the daemon at most this often.
constexpr uint64_t kProgressIntervalMs = 200;

Status sourceOf(const wire::Source& wire, PullSource& out) {
  auto ref = parseImageReference(wire.domain() + "/" + wire.path() + ":x");
  if (!ref || ref->shortName) {
    return Status(StatusCode::kInvalidArgument, "the request names no valid repository");
  }
  out.ref = ref->at(wire.domain(), wire.path());
  out.insecure = wire.insecure();
  return Status::ok();
}

// Manifests and configs are retried like blobs: a registry's passing 5xx, 429 or reset should
// not fail a pull. `attempt(done)` is run again on UNAVAILABLE, after a growing wait.
constexpr int kFetchAttempts = 4;
constexpr uint64_t kFetchRetryDelaysMs[] = {500, 1000, 2000};

void withRetries(
    loop::Loop& loop,
    std::function<void(std::function<void(Status, RegistryClient::ManifestResponse)>)> attempt,
    std::function<void(Status, RegistryClient::ManifestResponse)> done, int attemptNumber = 1) {
  attempt([&loop, attempt, done = std::move(done), attemptNumber](
              Status status, RegistryClient::ManifestResponse answer) mutable {
    if (status.code() != StatusCode::kUnavailable || attemptNumber >= kFetchAttempts) {
      done(status, std::move(answer));
      return;
    }
    auto timer = std::shared_ptr<loop::Timer>(loop::Timer::create(loop, "fetch retry").release(),
                                              loop::HandleCloser());
    timer->start(kFetchRetryDelaysMs[attemptNumber - 1], 0,
                 [&loop, attempt, done = std::move(done), attemptNumber, timer]() mutable {
                   timer.reset();  // the timer held itself through this closure: let it go
                   withRetries(loop, attempt, std::move(done), attemptNumber + 1);
                 });
  });
}

Credentials credentialsOf(const wire::Credentials& wire) {
  return Credentials{
      wire.username(), wire.password(), wire.identity_token(), wire.registry_token(), {}};
}

}  // namespace

ImageWorkerService::ImageWorkerService(loop::Loop& loop, grpc::GrpcServer& server,
                                       RegistryClient& registry)
    : loop_(loop), registry_(registry) {
  server.addUnary<wire::FetchRequest, wire::FetchResponse>(
      imageWorkerMethod("FetchManifest"),
      [this](wire::FetchRequest&& request, grpc::UnaryResponder<wire::FetchResponse> responder) {
        PullSource source;
        if (Status s = sourceOf(request.source(), source); !s.isOk()) return responder.fail(s);
        auto shared =
            std::make_shared<grpc::UnaryResponder<wire::FetchResponse>>(std::move(responder));
        withRetries(
            loop_,
            [this, source, credentials = credentialsOf(request.credentials()),
             reference = request.reference()](auto callback) {
              registry_.getManifest(source, credentials, reference, std::move(callback));
            },
            [shared](Status status, RegistryClient::ManifestResponse answer) {
              if (!status.isOk()) return shared->fail(status);
              wire::FetchResponse response;
              response.set_body(std::move(answer.body));
              response.set_content_type(std::move(answer.contentType));
              shared->finish(response);
            });
      });

  server.addUnary<wire::FetchRequest, wire::FetchResponse>(
      imageWorkerMethod("FetchBlob"),
      [this](wire::FetchRequest&& request, grpc::UnaryResponder<wire::FetchResponse> responder) {
        PullSource source;
        if (Status s = sourceOf(request.source(), source); !s.isOk()) return responder.fail(s);
        std::string why;
        auto digest = Digest::parse(request.reference(), &why);
        if (!digest) return responder.fail(Status(StatusCode::kInvalidArgument, why));
        auto shared =
            std::make_shared<grpc::UnaryResponder<wire::FetchResponse>>(std::move(responder));
        withRetries(
            loop_,
            [this, source, credentials = credentialsOf(request.credentials()), digest = *digest,
             maxBytes = request.max_bytes()](auto callback) {
              registry_.getSmallBlob(
                  source, credentials, digest, maxBytes,
                  [callback](Status status, std::string body) {
                    callback(status, RegistryClient::ManifestResponse{std::move(body), {}});
                  });
            },
            [shared](Status status, RegistryClient::ManifestResponse answer) {
              if (!status.isOk()) return shared->fail(status);
              wire::FetchResponse response;
              response.set_body(std::move(answer.body));
              shared->finish(response);
            });
      });

  server.addServerStreaming<wire::DownloadRequest, wire::DownloadProgress>(
      imageWorkerMethod("DownloadBlob"),
      [this](wire::DownloadRequest&& request, grpc::ServerWriter<wire::DownloadProgress> writer) {
        PullSource source;
        if (Status s = sourceOf(request.source(), source); !s.isOk()) return writer.finish(s);
        std::string why;
        auto digest = Digest::parse(request.digest(), &why);
        if (!digest || request.size() < 0) {
          return writer.finish(Status(StatusCode::kInvalidArgument, "invalid blob descriptor"));
        }
        struct Call {
          grpc::ServerWriter<wire::DownloadProgress> writer;
          std::shared_ptr<BlobDownload> download;
          loop::HandlePtr<loop::Timer> ticker;
          int64_t downloaded = 0;
          int64_t reported = -1;
        };
        auto call = std::make_shared<Call>(Call{std::move(writer), nullptr, nullptr});
        Descriptor blob;
        blob.digest = *digest;
        blob.size = request.size();
        call->ticker = loop::Timer::create(loop_, "download progress");
        call->ticker->start(kProgressIntervalMs, kProgressIntervalMs, [raw = call.get()] {
          if (raw->downloaded == raw->reported) return;
          raw->reported = raw->downloaded;
          wire::DownloadProgress progress;
          progress.set_downloaded(raw->downloaded);
          raw->writer.write(progress);
        });
        call->download = BlobDownload::start(
            loop_, registry_, source, credentialsOf(request.credentials()), blob, request.path(),
            [raw = call.get()](int64_t downloaded) { raw->downloaded = downloaded; },
            [call](Status status) {
              call->ticker.reset();
              call->writer.finish(status);
              call->download.reset();  // ends the cycle call -> download -> callback -> call
            });
        // The daemon gave up on it (it went away): stop downloading.
        call->writer.onCancel([weak = std::weak_ptr<Call>(call)] {
          if (auto dropped = weak.lock()) {
            dropped->ticker.reset();
            if (dropped->download) dropped->download->drop();
            dropped->download.reset();
          }
        });
      });

  server.addUnary<wire::UnpackRequest, wire::UnpackResponse>(
      imageWorkerMethod("UnpackLayer"),
      [this](wire::UnpackRequest&& request, grpc::UnaryResponder<wire::UnpackResponse> responder) {
        auto shared =
            std::make_shared<grpc::UnaryResponder<wire::UnpackResponse>>(std::move(responder));
        auto result = std::make_shared<LayerUnpackResult>();
        loop::queueWork(
            loop_, "layer unpacked",
            [result, blob = request.blob_path(), directory = request.directory()] {
              *result = unpackLayer(blob, directory);
            },
            [shared, result] {
              if (!result->status.isOk()) return shared->fail(result->status);
              wire::UnpackResponse response;
              response.set_diff_id(result->diffId.str());
              response.set_bytes(result->bytes);
              response.set_inodes(result->inodes);
              response.set_entries(result->entries);
              for (const auto& warning : result->warnings)
                response.add_warnings(warning);
              shared->finish(response);
            });
      });

  server.addUnary<wire::ReadImportRequest, wire::ReadImportResponse>(
      imageWorkerMethod("ReadImport"),
      [this](wire::ReadImportRequest&& request,
             grpc::UnaryResponder<wire::ReadImportResponse> responder) {
        auto shared =
            std::make_shared<grpc::UnaryResponder<wire::ReadImportResponse>>(std::move(responder));
        struct Result {
          Status status;
          std::string plan;
        };
        auto result = std::make_shared<Result>();
        const Platform platform{request.platform_os(), request.platform_architecture(),
                                request.platform_variant()};
        loop::queueWork(
            loop_, "import read",
            [result, request, platform] {
              result->status = readImportPlan(request.path(), request.name(), platform,
                                              request.scratch(), result->plan);
            },
            [shared, result] {
              if (!result->status.isOk()) return shared->fail(result->status);
              wire::ReadImportResponse response;
              response.set_plan(std::move(result->plan));
              shared->finish(response);
            });
      });
}

}  // namespace monocri::oci
