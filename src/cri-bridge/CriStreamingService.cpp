#include "cri-bridge/CriStreamingService.h"

#include <fmt/format.h>

#include "api.pb.h"
#include "cri-bridge/CriMethods.h"
#include "exec/StreamingServer.h"
#include "pods/ContainerStreams.h"

namespace monocri::cri {

namespace v1 = runtime::v1;
using grpc::Status;
using grpc::StatusCode;
using grpc::UnaryResponder;

namespace {

// What kubelet's own streaming server refuses too.
Status checkStdio(bool tty, bool stdin, bool stdout, bool stderr) {
  if (!stdin && !stdout && !stderr) {
    return Status(StatusCode::kInvalidArgument, "one of stdin, stdout or stderr must be set");
  }
  if (tty && stderr) {
    return Status(StatusCode::kInvalidArgument,
                  "tty and stderr cannot both be set: a terminal has one output");
  }
  return Status::ok();
}

// Leaves `request` with the streaming server and answers its URL.
template <typename Response>
void answerUrl(exec::StreamingServer& streaming, exec::StreamRequest request,
               UnaryResponder<Response>& responder) {
  std::string url;
  if (Status status = streaming.newUrl(std::move(request), url); !status.isOk()) {
    return responder.fail(status);
  }
  Response response;
  response.set_url(url);
  responder.finish(response);
}

}  // namespace

CriStreamingService::CriStreamingService(grpc::GrpcServer& server, exec::StreamingServer& streaming,
                                         pods::ContainerStreams& streams)
    : streaming_(streaming), streams_(streams) {
  server.addUnary<v1::ExecRequest, v1::ExecResponse>(
      runtimeMethod("Exec"), [this](v1::ExecRequest&& request, UnaryResponder<v1::ExecResponse> r) {
        if (request.cmd().empty()) {
          return r.fail(Status(StatusCode::kInvalidArgument, "Exec needs a cmd"));
        }
        Status status =
            checkStdio(request.tty(), request.stdin(), request.stdout(), request.stderr());
        if (status.isOk()) status = streams_.checkExec(request.container_id(), request.tty());
        if (!status.isOk()) return r.fail(status);
        exec::ExecStreamRequest stored;
        stored.containerId = request.container_id();
        stored.cmd.assign(request.cmd().begin(), request.cmd().end());
        stored.tty = request.tty();
        stored.stdin = request.stdin();
        stored.stdout = request.stdout();
        stored.stderr = request.stderr();
        answerUrl(streaming_, std::move(stored), r);
      });

  server.addUnary<v1::AttachRequest, v1::AttachResponse>(
      runtimeMethod("Attach"),
      [this](v1::AttachRequest&& request, UnaryResponder<v1::AttachResponse> r) {
        Status status =
            checkStdio(request.tty(), request.stdin(), request.stdout(), request.stderr());
        if (status.isOk()) status = streams_.checkAttach(request.container_id());
        if (!status.isOk()) return r.fail(status);
        exec::AttachStreamRequest stored;
        stored.containerId = request.container_id();
        stored.tty = request.tty();
        stored.stdin = request.stdin();
        stored.stdout = request.stdout();
        stored.stderr = request.stderr();
        answerUrl(streaming_, std::move(stored), r);
      });

  server.addUnary<v1::PortForwardRequest, v1::PortForwardResponse>(
      runtimeMethod("PortForward"),
      [this](v1::PortForwardRequest&& request, UnaryResponder<v1::PortForwardResponse> r) {
        Status status = streams_.checkPortForward(request.pod_sandbox_id());
        for (int32_t port : request.port()) {
          if (status.isOk() && (port <= 0 || port > 65535)) {
            status = Status(StatusCode::kInvalidArgument,
                            fmt::format("port {} is not a TCP port (1-65535)", port));
          }
        }
        if (!status.isOk()) return r.fail(status);
        exec::PortForwardStreamRequest stored;
        stored.podId = request.pod_sandbox_id();
        stored.ports.assign(request.port().begin(), request.port().end());
        answerUrl(streaming_, std::move(stored), r);
      });
}

}  // namespace monocri::cri
