// grpc.health.v1.Health: lets probes and tools ask whether the daemon serves the CRI.
// "" (the whole server), "runtime.v1.RuntimeService" and "runtime.v1.ImageService" are known.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "cri-bridge/grpc/GrpcServer.h"
#include "health.pb.h"

namespace monocri::cri {

class HealthService {
 public:
  explicit HealthService(grpc::GrpcServer& server);
  ~HealthService();

  // Daemon shutdown: every service turns NOT_SERVING; watchers are told, then their streams end
  // so that they do not hold the shutdown for its whole grace period.
  void beginShutdown();

 private:
  using ServingStatus = ::grpc::health::v1::HealthCheckResponse::ServingStatus;
  struct Watcher {
    std::string service;
    grpc::ServerWriter<::grpc::health::v1::HealthCheckResponse> writer;
  };
  static bool isKnownService(const std::string& service);
  ServingStatus statusOf(const std::string& service) const;

  bool serving_ = true;
  uint64_t nextWatcherId_ = 0;
  std::map<uint64_t, Watcher> watchers_;
};

}  // namespace monocri::cri
