// The pod sandbox methods of runtime.v1.RuntimeService, answered by the pod manager.
#pragma once

#include "cri-bridge/grpc/GrpcServer.h"

namespace monocri::pods {
class PodManager;
}

namespace monocri::cri {

class CriPodService {
 public:
  CriPodService(grpc::GrpcServer& server, pods::PodManager& pods);

 private:
  pods::PodManager& pods_;
};

}  // namespace monocri::cri
