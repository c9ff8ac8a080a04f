#include "cri-bridge/CriContainerService.h"

#include <fmt/format.h>

#include <chrono>
#include <memory>

#include "api.pb.h"
#include "cri-bridge/CriMethods.h"
#include "pods/ContainerManager.h"
#include "pods/PodManager.h"

namespace monocri::cri {

namespace v1 = runtime::v1;
using grpc::Status;
using grpc::StatusCode;
using grpc::UnaryResponder;

namespace {

v1::ContainerState criState(pods::ContainerState state) {
  switch (state) {
    case pods::ContainerState::kCreated:
      return v1::CONTAINER_CREATED;
    case pods::ContainerState::kRunning:
      return v1::CONTAINER_RUNNING;
    case pods::ContainerState::kExited:
      return v1::CONTAINER_EXITED;
    default:
      return v1::CONTAINER_UNKNOWN;
  }
}

Status needId(const std::string& id) {
  return id.empty() ? Status(StatusCode::kInvalidArgument, "container_id is required")
                    : Status::ok();
}

}  // namespace

void fillContainerStatus(const pods::Container& c, v1::ContainerStatus& s) {
  s.set_id(c.id);
  *s.mutable_metadata() = c.config.metadata();
  s.set_state(criState(c.state));
  s.set_created_at(c.createdAtNs);
  s.set_started_at(c.startedAtNs);
  s.set_finished_at(c.finishedAtNs);
  s.set_exit_code(c.exitCode);
  s.mutable_image()->set_image(c.image);
  s.set_image_ref(c.imageRef);
  s.set_image_id(c.imageId);
  s.set_reason(c.reason);
  s.set_message(c.message);
  *s.mutable_labels() = c.config.labels();
  *s.mutable_annotations() = c.config.annotations();
  *s.mutable_mounts() = c.config.mounts();
  s.set_log_path(c.logPath);
  auto* user = s.mutable_user()->mutable_linux();
  user->set_uid(c.uid);
  user->set_gid(c.gid);
  for (uint32_t group : c.additionalGids)
    user->add_supplemental_groups(group);
  // As created, or as UpdateContainerResources last set them.
  if (c.config.linux().has_resources()) {
    *s.mutable_resources()->mutable_linux() = c.config.linux().resources();
  }
}

CriContainerService::CriContainerService(grpc::GrpcServer& server,
                                         pods::ContainerManager& containers, pods::PodManager& pods)
    : containers_(containers), pods_(pods) {
  server.addUnary<v1::CreateContainerRequest, v1::CreateContainerResponse>(
      runtimeMethod("CreateContainer"),
      [this](v1::CreateContainerRequest&& request, UnaryResponder<v1::CreateContainerResponse> r) {
        if (request.pod_sandbox_id().empty() || !request.has_config()) {
          return r.fail(Status(StatusCode::kInvalidArgument,
                               "CreateContainer needs a pod_sandbox_id and a config"));
        }
        auto responder = shareResponder(r);
        containers_.create(request.pod_sandbox_id(), request.config(), request.sandbox_config(),
                           [responder](Status status, const std::string& id) {
                             if (!status.isOk()) return responder->fail(status);
                             v1::CreateContainerResponse response;
                             response.set_container_id(id);
                             responder->finish(response);
                           });
      });

  server.addUnary<v1::StartContainerRequest, v1::StartContainerResponse>(
      runtimeMethod("StartContainer"),
      [this](v1::StartContainerRequest&& request, UnaryResponder<v1::StartContainerResponse> r) {
        if (Status s = needId(request.container_id()); !s.isOk()) return r.fail(s);
        containers_.start(request.container_id(), answerEmptyWhenDone(r));
      });

  server.addUnary<v1::StopContainerRequest, v1::StopContainerResponse>(
      runtimeMethod("StopContainer"),
      [this](v1::StopContainerRequest&& request, UnaryResponder<v1::StopContainerResponse> r) {
        if (Status s = needId(request.container_id()); !s.isOk()) return r.fail(s);
        containers_.stop(request.container_id(), request.timeout(), answerEmptyWhenDone(r));
      });

  server.addUnary<v1::RemoveContainerRequest, v1::RemoveContainerResponse>(
      runtimeMethod("RemoveContainer"),
      [this](v1::RemoveContainerRequest&& request, UnaryResponder<v1::RemoveContainerResponse> r) {
        if (Status s = needId(request.container_id()); !s.isOk()) return r.fail(s);
        containers_.remove(request.container_id(), answerEmptyWhenDone(r));
      });

  server.addUnary<v1::ExecSyncRequest, v1::ExecSyncResponse>(
      runtimeMethod("ExecSync"),
      [this](v1::ExecSyncRequest&& request, UnaryResponder<v1::ExecSyncResponse> r) {
        if (Status s = needId(request.container_id()); !s.isOk()) return r.fail(s);
        auto responder = shareResponder(r);
        containers_.execSync(request.container_id(), {request.cmd().begin(), request.cmd().end()},
                             request.timeout(),
                             [responder](Status status, exec::ExecSyncResult result) {
                               if (!status.isOk()) return responder->fail(status);
                               v1::ExecSyncResponse response;
                               response.set_exit_code(result.exitCode);
                               response.set_stdout(std::move(result.stdoutBytes));
                               response.set_stderr(std::move(result.stderrBytes));
                               responder->finish(response);
                             });
      });

  server.addUnary<v1::ReopenContainerLogRequest, v1::ReopenContainerLogResponse>(
      runtimeMethod("ReopenContainerLog"),
      [this](v1::ReopenContainerLogRequest&& request,
             UnaryResponder<v1::ReopenContainerLogResponse> r) {
        if (Status s = needId(request.container_id()); !s.isOk()) return r.fail(s);
        containers_.reopenLog(request.container_id(), answerEmptyWhenDone(r));
      });

  server.addUnary<v1::ContainerStatusRequest, v1::ContainerStatusResponse>(
      runtimeMethod("ContainerStatus"),
      [this](v1::ContainerStatusRequest&& request, UnaryResponder<v1::ContainerStatusResponse> r) {
        if (Status s = needId(request.container_id()); !s.isOk()) return r.fail(s);
        const pods::Container* c = containers_.find(request.container_id());
        if (c == nullptr) {
          return r.fail(Status(StatusCode::kNotFound,
                               fmt::format("container {} not found", request.container_id())));
        }
        v1::ContainerStatusResponse response;
        fillContainerStatus(*c, *response.mutable_status());
        if (request.verbose()) {
          (*response.mutable_info())["info"] = containers_.verboseInfo(*c).dump();
        }
        r.finish(response);
      });

  server.addUnary<v1::UpdateContainerResourcesRequest, v1::UpdateContainerResourcesResponse>(
      runtimeMethod("UpdateContainerResources"),
      [this](v1::UpdateContainerResourcesRequest&& request,
             UnaryResponder<v1::UpdateContainerResourcesResponse> r) {
        if (Status s = needId(request.container_id()); !s.isOk()) return r.fail(s);
        if (!request.has_linux()) {
          return r.fail(Status(StatusCode::kInvalidArgument,
                               "UpdateContainerResources needs linux resources (windows ones do "
                               "not apply on this node)"));
        }
        containers_.updateResources(request.container_id(), request.linux(),
                                    answerEmptyWhenDone(r));
      });

  server.addUnary<v1::ListContainersRequest, v1::ListContainersResponse>(
      runtimeMethod("ListContainers"),
      [this](v1::ListContainersRequest&& request, UnaryResponder<v1::ListContainersResponse> r) {
        v1::ListContainersResponse response;
        for (const pods::Container* c : containers_.list(request.filter())) {
          auto* item = response.add_containers();
          item->set_id(c->id);
          item->set_pod_sandbox_id(c->podId);
          *item->mutable_metadata() = c->config.metadata();
          item->mutable_image()->set_image(c->image);
          item->set_image_ref(c->imageRef);
          item->set_image_id(c->imageId);
          item->set_state(criState(c->state));
          item->set_created_at(c->createdAtNs);
          *item->mutable_labels() = c->config.labels();
          *item->mutable_annotations() = c->config.annotations();
        }
        r.finish(response);
      });
}

}  // namespace monocri::cri
