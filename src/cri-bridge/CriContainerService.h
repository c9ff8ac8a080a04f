// The container methods of runtime.v1.RuntimeService, answered by the container manager.
#pragma once

#include "cri-bridge/grpc/GrpcServer.h"

namespace monocri::pods {
class ContainerManager;
class PodManager;
}  // namespace monocri::pods

namespace monocri::cri {

class CriContainerService {
 public:
  CriContainerService(grpc::GrpcServer& server, pods::ContainerManager& containers,
                      pods::PodManager& pods);

 private:
  pods::ContainerManager& containers_;
  pods::PodManager& pods_;
};

}  // namespace monocri::cri
