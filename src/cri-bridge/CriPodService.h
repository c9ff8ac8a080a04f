// The pod sandbox methods of runtime.v1.RuntimeService, answered by the pod manager.
#pragma once

#include "cri-bridge/grpc/GrpcServer.h"

namespace monocri::pods {
class ContainerManager;
class PodManager;
}  // namespace monocri::pods

namespace monocri::cri {

class CriPodService {
 public:
  CriPodService(grpc::GrpcServer& server, pods::PodManager& pods,
                pods::ContainerManager& containers);

 private:
  pods::PodManager& pods_;
  pods::ContainerManager& containers_;
};

}  // namespace monocri::cri
