// What the streaming server runs: execs in running containers, attachments to their stdio
// (monitor::ContainerIo's taps, so that the CRI log is not disturbed), and connections into
// pods' network namespaces for port-forward.
#pragma once

#include "exec/RemoteCommand.h"
#include "loop/Loop.h"
#include "monitor/ExitMonitor.h"
#include "oci/runtime-client/OciRuntimeClient.h"
#include "pods/ContainerManager.h"
#include "pods/PodManager.h"

namespace monocri::pods {

class ContainerStreams final : public exec::StreamBackend {
 public:
  ContainerStreams(loop::Loop& loop, ContainerManager& containers, PodManager& pods,
                   oci::OciRuntimeClient& runtime, monitor::ExitMonitor& exits)
      : loop_(loop), containers_(containers), pods_(pods), runtime_(runtime), exits_(exits) {}

  std::unique_ptr<exec::RemoteCommand> exec(const exec::ExecStreamRequest& request,
                                            exec::CommandClient& client,
                                            grpc::Status& error) override;
  std::unique_ptr<exec::RemoteCommand> attach(const exec::AttachStreamRequest& request,
                                              exec::CommandClient& client,
                                              grpc::Status& error) override;
  void connectPort(const std::string& podId, uint16_t port, Connected done) override;

  // The checks Exec, Attach and PortForward make before they hand out a URL.
  grpc::Status checkExec(const std::string& containerId, bool tty) const;
  grpc::Status checkAttach(const std::string& containerId) const;
  grpc::Status checkPortForward(const std::string& podId) const;

 private:
  loop::Loop& loop_;
  ContainerManager& containers_;
  PodManager& pods_;
  oci::OciRuntimeClient& runtime_;
  monitor::ExitMonitor& exits_;
};

}  // namespace monocri::pods
