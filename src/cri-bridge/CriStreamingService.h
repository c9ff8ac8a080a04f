// Exec, Attach and PortForward of runtime.v1.RuntimeService: each checks the request, leaves it
// with the streaming server and answers with the URL kubelet is to dial.
#pragma once

#include "cri-bridge/grpc/GrpcServer.h"

namespace monocri::exec {
class StreamingServer;
}
namespace monocri::pods {
class ContainerStreams;
}

namespace monocri::cri {

class CriStreamingService {
 public:
  CriStreamingService(grpc::GrpcServer& server, exec::StreamingServer& streaming,
                      pods::ContainerStreams& streams);

 private:
  exec::StreamingServer& streaming_;
  pods::ContainerStreams& streams_;
};

}  // namespace monocri::cri
