#include "oci/image/ImageWorkerClient.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "imageworker.pb.h"
#include "oci/image/ImageWorkerProtocol.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
namespace wire = monocri::imageworker::v1;

namespace {

void fill(const PullSource& source, wire::Source& out) {
  out.set_domain(source.ref.domain);
  out.set_path(source.ref.path);
  out.set_insecure(source.insecure);
}

void fill(const Credentials& credentials, wire::Credentials& out) {
  out.set_username(credentials.username);
  out.set_password(credentials.password);
  out.set_identity_token(credentials.identityToken);
  out.set_registry_token(credentials.registryToken);
}

}  // namespace

ImageWorkerClient::ImageWorkerClient(loop::Loop& loop, ImageWorkerOptions options)
    : loop_(loop), options_(std::move(options)) {}

ImageWorkerClient::~ImageWorkerClient() {
  client_.reset();
  process_.reset();  // kills and reaps a worker still running
}

grpc::GrpcClient* ImageWorkerClient::connection(Status& error) {
  if (client_ && !client_->closed() && process_ && !process_->exited()) return client_.get();
  client_.reset();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    error = Status(StatusCode::kInternal, fmt::format("socketpair: {}", std::strerror(errno)));
    return nullptr;
  }
  loop::ChildProcess::Options spawn;
  spawn.argv = {options_.executable,
                "--fd",
                "3",
                "--stall-timeout-ms",
                std::to_string(options_.stallTimeoutMs),
                "--connect-timeout-ms",
                std::to_string(options_.connectTimeoutMs),
                "--user-agent",
                options_.userAgent,
                "--log-level",
                options_.logLevel};
  spawn.fds = {{fds[1], 3}};
  std::string why;
  auto process = loop::ChildProcess::spawn(
      loop_, spawn,
      [this, alive = lifetime_.watch()](loop::ChildExit exit) {
        if (alive.expired()) return;
        if (exit.signaled || exit.code != 0) {
          spdlog::warn("image worker (pid {}) ended with {}", pid(), exit.describe());
        } else {
          spdlog::debug("image worker (pid {}) exited", pid());
        }
        // Not from inside its own exit callback: the process object goes next turn.
        loop_.defer(lifetime_.watch(), [this] {
          if (process_ && process_->exited()) process_.reset();
        });
      },
      why);
  ::close(fds[1]);
  if (!process) {
    ::close(fds[0]);
    error = Status(StatusCode::kInternal, "cannot start the image worker: " + why);
    return nullptr;
  }
  process_ = std::move(process);
  ++starts_;
  client_ = grpc::GrpcClient::adopt(loop_, fds[0], "image worker");
  if (!client_) {
    error = Status(StatusCode::kInternal, "cannot talk to the image worker");
    return nullptr;
  }
  spdlog::debug("started image worker (pid {})", process_->pid());
  return client_.get();
}

void ImageWorkerClient::callStarted() {
  ++callsInFlight_;
  if (idleTimer_) idleTimer_->stop();
}

void ImageWorkerClient::callEnded() {
  if (--callsInFlight_ != 0) return;
  if (!idleTimer_) {
    idleTimer_ = loop::Timer::create(loop_, "image worker idle");
    idleTimer_->unref();
  }
  idleTimer_->start(options_.idleMs, 0, [this] { letGo(); });
}

void ImageWorkerClient::shutdown() {
  idleTimer_.reset();
  if (client_) client_->close();
}

void ImageWorkerClient::letGo() {
  if (callsInFlight_ != 0 || !client_) return;
  // Closing the connection tells the worker to exit; its exit is reaped as it comes.
  client_->close();
}

void ImageWorkerClient::getManifest(const PullSource& source, const Credentials& credentials,
                                    const std::string& reference,
                                    std::function<void(Status, std::string, std::string)> done) {
  Status error;
  grpc::GrpcClient* client = connection(error);
  if (client == nullptr) return done(error, {}, {});
  wire::FetchRequest request;
  fill(source, *request.mutable_source());
  fill(credentials, *request.mutable_credentials());
  request.set_reference(reference);
  request.set_max_bytes(kMaxManifestBytes);
  callStarted();
  client->unary<wire::FetchRequest, wire::FetchResponse>(
      imageWorkerMethod("FetchManifest"), request, {},
      [this, done = std::move(done), alive = lifetime_.watch()](const Status& status,
                                                                wire::FetchResponse&& response) {
        if (alive.expired()) return;
        callEnded();
        done(status, std::move(*response.mutable_body()),
             std::move(*response.mutable_content_type()));
      });
}

void ImageWorkerClient::getSmallBlob(const PullSource& source, const Credentials& credentials,
                                     const Digest& digest, size_t maxBytes,
                                     std::function<void(Status, std::string)> done) {
  Status error;
  grpc::GrpcClient* client = connection(error);
  if (client == nullptr) return done(error, {});
  wire::FetchRequest request;
  fill(source, *request.mutable_source());
  fill(credentials, *request.mutable_credentials());
  request.set_reference(digest.str());
  request.set_max_bytes(maxBytes);
  callStarted();
  client->unary<wire::FetchRequest, wire::FetchResponse>(
      imageWorkerMethod("FetchBlob"), request, {},
      [this, done = std::move(done), alive = lifetime_.watch()](const Status& status,
                                                                wire::FetchResponse&& response) {
        if (alive.expired()) return;
        callEnded();
        done(status, std::move(*response.mutable_body()));
      });
}

void ImageWorkerClient::downloadBlob(const PullSource& source, const Credentials& credentials,
                                     const Descriptor& blob, const std::string& path,
                                     std::function<void(int64_t)> progress,
                                     std::function<void(Status)> done) {
  Status error;
  grpc::GrpcClient* client = connection(error);
  if (client == nullptr) return done(error);
  wire::DownloadRequest request;
  fill(source, *request.mutable_source());
  fill(credentials, *request.mutable_credentials());
  request.set_digest(blob.digest.str());
  request.set_size(blob.size);
  request.set_path(path);
  callStarted();
  client->startCall(
      imageWorkerMethod("DownloadBlob"), request.SerializeAsString(), {},
      [progress = std::move(progress)](std::string_view message) {
        wire::DownloadProgress update;
        if (update.ParseFromArray(message.data(), static_cast<int>(message.size()))) {
          progress(update.downloaded());
        }
      },
      [this, done = std::move(done), alive = lifetime_.watch()](const Status& status) {
        if (alive.expired()) return;
        callEnded();
        done(status);
      });
}

void ImageWorkerClient::unpackLayer(const std::string& blobPath, const std::string& directory,
                                    std::function<void(LayerUnpackResult)> done) {
  Status error;
  grpc::GrpcClient* client = connection(error);
  if (client == nullptr) {
    LayerUnpackResult result;
    result.status = error;
    return done(result);
  }
  wire::UnpackRequest request;
  request.set_blob_path(blobPath);
  request.set_directory(directory);
  callStarted();
  client->unary<wire::UnpackRequest, wire::UnpackResponse>(
      imageWorkerMethod("UnpackLayer"), request, {},
      [this, done = std::move(done), alive = lifetime_.watch()](const Status& status,
                                                                wire::UnpackResponse&& response) {
        if (alive.expired()) return;
        callEnded();
        LayerUnpackResult result;
        result.status = status;
        if (status.isOk()) {
          auto diffId = Digest::parse(response.diff_id());
          if (!diffId) {
            result.status = Status(StatusCode::kInternal, "the image worker gave no diff_id");
          } else {
            result.diffId = *diffId;
          }
          result.bytes = response.bytes();
          result.inodes = response.inodes();
          result.entries = response.entries();
          result.warnings.assign(response.warnings().begin(), response.warnings().end());
        }
        done(std::move(result));
      });
}

void ImageWorkerClient::readImport(const std::string& path, const std::string& name,
                                   const Platform& platform, const std::string& scratch,
                                   std::function<void(Status, std::string)> done) {
  Status error;
  grpc::GrpcClient* client = connection(error);
  if (client == nullptr) return done(error, {});
  wire::ReadImportRequest request;
  request.set_path(path);
  request.set_name(name);
  request.set_scratch(scratch);
  request.set_platform_os(platform.os);
  request.set_platform_architecture(platform.architecture);
  request.set_platform_variant(platform.variant);
  callStarted();
  client->unary<wire::ReadImportRequest, wire::ReadImportResponse>(
      imageWorkerMethod("ReadImport"), request, {},
      [this, done = std::move(done), alive = lifetime_.watch()](
          const Status& status, wire::ReadImportResponse&& response) {
        if (alive.expired()) return;
        callEnded();
        done(status, std::move(*response.mutable_plan()));
      });
}

}  // namespace monocri::oci
