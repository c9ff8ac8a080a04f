// The CRI ImageService (runtime.v1) and monocri's own image calls (monocri.v1.Images), mapped
// onto the ImageManager. Holds no image state of its own.
#pragma once

#include "cri-bridge/grpc/GrpcServer.h"
#include "oci/image/ImageManager.h"

namespace monocri::cri {

class CriImageService {
 public:
  CriImageService(grpc::GrpcServer& server, oci::ImageManager& images);

 private:
  oci::ImageManager& images_;
};

}  // namespace monocri::cri
