#include "cri-bridge/CriPodService.h"

#include <fmt/format.h>

#include <memory>

#include "api.pb.h"
#include "cri-bridge/CriContainerService.h"
#include "cri-bridge/CriMethods.h"
#include "pods/ContainerManager.h"
#include "pods/PodManager.h"

namespace monocri::cri {

namespace v1 = runtime::v1;
using grpc::Status;
using grpc::StatusCode;
using grpc::UnaryResponder;

namespace {

v1::PodSandboxState stateOf(const pods::PodSandbox& pod) {
  return pod.state == pods::PodState::kReady ? v1::SANDBOX_READY : v1::SANDBOX_NOTREADY;
}

Status needId(const std::string& id) {
  return id.empty() ? Status(StatusCode::kInvalidArgument, "pod_sandbox_id is required")
                    : Status::ok();
}

}  // namespace

CriPodService::CriPodService(grpc::GrpcServer& server, pods::PodManager& pods,
                             pods::ContainerManager& containers)
    : pods_(pods), containers_(containers) {
  server.addUnary<v1::RunPodSandboxRequest, v1::RunPodSandboxResponse>(
      runtimeMethod("RunPodSandbox"),
      [this](v1::RunPodSandboxRequest&& request, UnaryResponder<v1::RunPodSandboxResponse> r) {
        if (!request.has_config()) {
          return r.fail(Status(StatusCode::kInvalidArgument, "RunPodSandbox needs a config"));
        }
        auto responder = shareResponder(r);
        pods_.run(request.config(), request.runtime_handler(),
                  [responder](Status status, const std::string& id) {
                    if (!status.isOk()) return responder->fail(status);
                    v1::RunPodSandboxResponse response;
                    response.set_pod_sandbox_id(id);
                    responder->finish(response);
                  });
      });

  server.addUnary<v1::StopPodSandboxRequest, v1::StopPodSandboxResponse>(
      runtimeMethod("StopPodSandbox"),
      [this](v1::StopPodSandboxRequest&& request, UnaryResponder<v1::StopPodSandboxResponse> r) {
        if (Status s = needId(request.pod_sandbox_id()); !s.isOk()) return r.fail(s);
        pods_.stop(request.pod_sandbox_id(), answerEmptyWhenDone(r));
      });

  server.addUnary<v1::RemovePodSandboxRequest, v1::RemovePodSandboxResponse>(
      runtimeMethod("RemovePodSandbox"), [this](v1::RemovePodSandboxRequest&& request,
                                                UnaryResponder<v1::RemovePodSandboxResponse> r) {
        if (Status s = needId(request.pod_sandbox_id()); !s.isOk()) return r.fail(s);
        pods_.remove(request.pod_sandbox_id(), answerEmptyWhenDone(r));
      });

  server.addUnary<v1::PodSandboxStatusRequest, v1::PodSandboxStatusResponse>(
      runtimeMethod("PodSandboxStatus"), [this](v1::PodSandboxStatusRequest&& request,
                                                UnaryResponder<v1::PodSandboxStatusResponse> r) {
        if (Status s = needId(request.pod_sandbox_id()); !s.isOk()) return r.fail(s);
        const pods::PodSandbox* pod = pods_.find(request.pod_sandbox_id());
        if (pod == nullptr) {
          return r.fail(Status(StatusCode::kNotFound,
                               fmt::format("pod sandbox {} not found", request.pod_sandbox_id())));
        }
        v1::PodSandboxStatusResponse response;
        auto* status = response.mutable_status();
        status->set_id(pod->id);
        *status->mutable_metadata() = pod->config.metadata();
        status->set_state(stateOf(*pod));
        status->set_created_at(pod->createdAtNs);
        // The addresses of its CNI attachment, IPv4 first: kubelet takes the first as the pod
        // IP. None for a host-network pod (kubelet uses the node's) or after StopPodSandbox.
        auto* network = status->mutable_network();
        for (size_t i = 0; i < pod->podIps.size(); ++i) {
          if (i == 0) {
            network->set_ip(pod->podIps[i]);
          } else {
            network->add_additional_ips()->set_ip(pod->podIps[i]);
          }
        }
        auto* options = status->mutable_linux()->mutable_namespaces()->mutable_options();
        options->set_network(pod->networkMode);
        options->set_pid(pod->pidMode);
        options->set_ipc(pod->ipcMode);
        *status->mutable_labels() = pod->config.labels();
        *status->mutable_annotations() = pod->config.annotations();
        status->set_runtime_handler(pod->runtimeHandler);
        // kubelet's evented PLEG reads the pod's containers from here.
        for (const pods::Container* c : containers_.ofPod(pod->id)) {
          if (c->state == pods::ContainerState::kCreating) continue;
          fillContainerStatus(*c, *response.add_containers_statuses());
        }
        if (request.verbose()) {
          (*response.mutable_info())["info"] = pods_.verboseInfo(*pod).dump();
        }
        response.set_timestamp(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
        r.finish(response);
      });

  server.addUnary<v1::ListPodSandboxRequest, v1::ListPodSandboxResponse>(
      runtimeMethod("ListPodSandbox"),
      [this](v1::ListPodSandboxRequest&& request, UnaryResponder<v1::ListPodSandboxResponse> r) {
        v1::ListPodSandboxResponse response;
        for (const pods::PodSandbox* pod : pods_.list(request.filter())) {
          auto* item = response.add_items();
          item->set_id(pod->id);
          *item->mutable_metadata() = pod->config.metadata();
          item->set_state(stateOf(*pod));
          item->set_created_at(pod->createdAtNs);
          *item->mutable_labels() = pod->config.labels();
          *item->mutable_annotations() = pod->config.annotations();
          item->set_runtime_handler(pod->runtimeHandler);
        }
        r.finish(response);
      });
}

}  // namespace monocri::cri
