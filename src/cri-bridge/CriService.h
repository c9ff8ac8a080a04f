// The CRI services kubelet calls (runtime.v1 RuntimeService and ImageService), mapped onto the
// runtime's parts. Holds no container state of its own: every answer comes from its owners.
// Methods not registered here answer UNIMPLEMENTED until their part of monocri lands.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "cri-bridge/grpc/GrpcServer.h"

namespace monocri::net {
class PodNetwork;
}
namespace monocri::oci {
class OciRuntimeBinary;
}

namespace monocri::cri {

inline constexpr const char* kRuntimeName = "monocri";
inline constexpr const char* kRuntimeApiVersion = "v1";
// VersionResponse.version: the version of the kubelet–runtime API, "0.1.0" for every runtime.
inline constexpr const char* kKubeletApiVersion = "0.1.0";

struct CriServiceOptions {
  std::string runtimeVersion;  // monocri's version
  std::string gitCommit;
  nlohmann::json config;  // effective configuration, shown by verbose Status
  // The OCI runtime client's counters (calls, time inside the runtime), shown by verbose Status:
  // what the start-latency benchmark subtracts to get the daemon's own share.
  std::function<nlohmann::json()> runtimeCallStats;
  // The container log write thread's counters (batches, bytes, queued, the longest write).
  std::function<nlohmann::json()> logWriteStats;
  std::function<nlohmann::json()> netnsPoolStats;  // the pool of ready network namespaces
};

class CriService {
 public:
  CriService(grpc::GrpcServer& server, CriServiceOptions options, oci::OciRuntimeBinary& runtime,
             net::PodNetwork& network);

 private:
  nlohmann::json verboseInfo() const;

  grpc::GrpcServer& server_;
  CriServiceOptions options_;
  oci::OciRuntimeBinary& runtime_;
  net::PodNetwork& network_;
  uint64_t startedAtMs_;
};

}  // namespace monocri::cri
