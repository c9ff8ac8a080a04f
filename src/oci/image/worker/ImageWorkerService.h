// The calls monocri-image-worker serves to the daemon (imageworker.proto): registry fetches,
// blob downloads and layer unpacks, on this process's own loop and worker threads.
#pragma once

#include <map>
#include <memory>

#include "cri-bridge/grpc/GrpcServer.h"
#include "oci/image/BlobDownload.h"
#include "oci/image/RegistryClient.h"

namespace monocri::oci {

class ImageWorkerService {
 public:
  ImageWorkerService(loop::Loop& loop, grpc::GrpcServer& server, RegistryClient& registry);

 private:
  loop::Loop& loop_;
  RegistryClient& registry_;
};

}  // namespace monocri::oci
