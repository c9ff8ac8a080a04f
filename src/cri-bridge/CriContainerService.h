// The container methods of runtime.v1.RuntimeService, answered by the container manager.
#pragma once

#include "cri-bridge/grpc/GrpcServer.h"

namespace monocri::pods {
class ContainerManager;
class PodManager;
struct Container;
}  // namespace monocri::pods
namespace runtime::v1 {
class ContainerStatus;
}

namespace monocri::cri {

// A container's CRI status (ContainerStatus, and PodSandboxStatus' containers_statuses).
void fillContainerStatus(const pods::Container& container, runtime::v1::ContainerStatus& status);

class CriContainerService {
 public:
  CriContainerService(grpc::GrpcServer& server, pods::ContainerManager& containers,
                      pods::PodManager& pods);

 private:
  pods::ContainerManager& containers_;
  pods::PodManager& pods_;
};

}  // namespace monocri::cri
