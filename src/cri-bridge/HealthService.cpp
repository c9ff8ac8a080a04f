#include "cri-bridge/HealthService.h"

#include <fmt/format.h>

namespace monocri::cri {

namespace health = ::grpc::health::v1;
using grpc::Status;
using grpc::StatusCode;

HealthService::HealthService(grpc::GrpcServer& server) {
  server.addUnary<health::HealthCheckRequest, health::HealthCheckResponse>(
      "/grpc.health.v1.Health/Check",
      [this](health::HealthCheckRequest&& request,
             grpc::UnaryResponder<health::HealthCheckResponse> responder) {
        if (!isKnownService(request.service())) {
          responder.fail(Status(StatusCode::kNotFound,
                                fmt::format("unknown service '{}'", request.service())));
          return;
        }
        health::HealthCheckResponse response;
        response.set_status(statusOf(request.service()));
        responder.finish(response);
      });

  server.addServerStreaming<health::HealthCheckRequest, health::HealthCheckResponse>(
      "/grpc.health.v1.Health/Watch",
      [this](health::HealthCheckRequest&& request,
             grpc::ServerWriter<health::HealthCheckResponse> writer) {
        health::HealthCheckResponse response;
        response.set_status(statusOf(request.service()));
        if (!writer.write(response)) return;
        if (!serving_) {
          writer.finish(Status(StatusCode::kUnavailable, "monocri is shutting down"));
          return;
        }
        const uint64_t id = nextWatcherId_++;
        auto& watcher =
            watchers_.emplace(id, Watcher{request.service(), std::move(writer)}).first->second;
        // The watcher leaves when the client goes away or the deadline passes.
        watcher.writer.onCancel([this, id] { watchers_.erase(id); });
      });
}

HealthService::~HealthService() {
  auto watchers = std::move(watchers_);
  watchers_.clear();
  for (auto& [id, watcher] : watchers) {
    watcher.writer.finish(Status(StatusCode::kUnavailable, "monocri is shutting down"));
  }
}

bool HealthService::isKnownService(const std::string& service) {
  return service.empty() || service == "runtime.v1.RuntimeService" ||
         service == "runtime.v1.ImageService";
}

HealthService::ServingStatus HealthService::statusOf(const std::string& service) const {
  if (!isKnownService(service)) return health::HealthCheckResponse::SERVICE_UNKNOWN;
  return serving_ ? health::HealthCheckResponse::SERVING : health::HealthCheckResponse::NOT_SERVING;
}

void HealthService::beginShutdown() {
  if (!serving_) return;
  serving_ = false;
  auto watchers = std::move(watchers_);
  watchers_.clear();
  for (auto& [id, watcher] : watchers) {
    health::HealthCheckResponse response;
    response.set_status(statusOf(watcher.service));
    watcher.writer.write(response);
    watcher.writer.finish(Status(StatusCode::kUnavailable, "monocri is shutting down"));
  }
}

}  // namespace monocri::cri
