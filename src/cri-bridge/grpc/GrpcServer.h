// The gRPC server: HTTP/2 with prior knowledge (h2c) over a unix socket, on the loop.
//
//   server.addUnary<VersionRequest, VersionResponse>("/runtime.v1.RuntimeService/Version",
//       [](VersionRequest&& request, UnaryResponder<VersionResponse> responder) { ... });
//
// Requests for a path nobody registered are answered UNIMPLEMENTED.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cri-bridge/grpc/ServerCall.h"
#include "loop/Loop.h"
#include "loop/PipeServer.h"
#include "loop/Timer.h"

namespace monocri::grpc {

// A registered method: decodes the request and starts its handler.
struct MethodEntry {
  std::string path;
  std::string activityLabel;  // "grpc <path>", what the stall detector reports
  std::function<void(const std::shared_ptr<ServerCall>& call, std::string_view request)> invoke;
};

// Counters for tests, the benchmark and `monoctl info`.
struct ServerStats {
  uint64_t connectionsAccepted = 0;
  uint64_t connectionsRefused = 0;
  uint64_t callsStarted = 0;
  uint64_t callsFailed = 0;  // ended with a status other than OK
};

// One method's calls and the time the daemon spent on them, from the request's last byte to the
// response's trailers (its own work and what it waited for, none of the client's).
struct MethodStats {
  uint64_t calls = 0;
  uint64_t handlingNanos = 0;
};

class ServerConnection;

class GrpcServer {
 public:
  // Timings a test may shorten; the defaults are the named limits of Http2Limits.h.
  struct Options {
    uint64_t requestReceiveTimeoutMs = kRequestReceiveTimeoutMs;
    uint64_t shutdownDrainMs = kShutdownDrainMs;
  };

  explicit GrpcServer(loop::Loop& loop) : GrpcServer(loop, Options{}) {}
  GrpcServer(loop::Loop& loop, Options options);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  template <typename Request, typename Response>
  void addUnary(std::string path,
                std::function<void(Request&&, UnaryResponder<Response>)> handler) {
    addTyped<Request, UnaryResponder<Response>>(std::move(path), std::move(handler));
  }

  template <typename Request, typename Response>
  void addServerStreaming(std::string path,
                          std::function<void(Request&&, ServerWriter<Response>)> handler) {
    addTyped<Request, ServerWriter<Response>>(std::move(path), std::move(handler));
  }

  // Listens on a unix socket (stale socket replaced). Returns "" or an error message.
  std::string listen(const std::string& path, mode_t mode);

  // Serves a connection accepted elsewhere (an inherited socket, a socketpair in a test).
  void adoptConnection(loop::HandlePtr<loop::PipeStream> stream) {
    onConnection(std::move(stream));
  }

  // Stops accepting and sends GOAWAY on every connection. Calls in flight may finish within
  // `grace`; then the rest end with UNAVAILABLE. `done` runs once every connection is closed.
  void shutdown(std::chrono::milliseconds grace, std::function<void()> done);
  bool shuttingDown() const { return shuttingDown_; }
  // Ends the grace period now (a second SIGTERM).
  void endGracePeriod();

  const MethodEntry* findMethod(std::string_view path) const;
  size_t connectionCount() const { return connections_.size(); }
  size_t openCalls() const { return openCalls_; }
  size_t reservedRequestBytes() const { return reservedRequestBytes_; }
  const ServerStats& stats() const { return stats_; }
  // By method path; only the methods called so far.
  const std::map<std::string, MethodStats>& methodStats() const { return methodStats_; }
  loop::Loop& loop() const { return loop_; }

 private:
  friend class ServerConnection;
  // Decodes the request (INVALID_ARGUMENT if it is not a `Request`), then runs the handler.
  template <typename Request, typename Responder, typename Handler>
  void addTyped(std::string path, Handler handler) {
    addMethod(std::move(path),
              [handler = std::move(handler)](const std::shared_ptr<ServerCall>& call,
                                             std::string_view bytes) {
                Request request;
                if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
                  call->finish(invalidRequest(call->path()));
                  return;
                }
                handler(std::move(request), Responder(call));
              });
  }
  void addMethod(std::string path,
                 std::function<void(const std::shared_ptr<ServerCall>&, std::string_view)> invoke);
  static Status invalidRequest(std::string_view path);
  void onConnection(loop::HandlePtr<loop::PipeStream> stream);
  // Called by a connection once it has closed; it is freed after the current callback.
  void release(ServerConnection* connection);
  void maybeFinishShutdown();
  // The request budget over all connections (kMaxReservedRequestBytesTotal).
  bool reserveRequestBytes(size_t bytes);
  void releaseRequestBytes(size_t bytes);
  void noteWaitingConnection(ServerConnection* connection);
  void admitWaitingConnections();
  void expireSlowRequests();

  loop::Loop& loop_;
  const Options options_;
  std::map<std::string, MethodEntry, std::less<>> methods_;
  loop::HandlePtr<loop::PipeServer> listener_;
  std::string socketPath_;
  std::unordered_map<ServerConnection*, std::unique_ptr<ServerConnection>> connections_;
  // Closed, freed after the callback that closed them (their methods may be on the stack).
  std::vector<std::unique_ptr<ServerConnection>> closedConnections_;
  uint64_t nextConnectionId_ = 1;
  ServerStats stats_;
  std::map<std::string, MethodStats> methodStats_;
  size_t openCalls_ = 0;
  size_t reservedRequestBytes_ = 0;
  std::vector<ServerConnection*> waitingConnections_;  // may hold closed ones: checked on use
  bool admissionScheduled_ = false;
  loop::HandlePtr<loop::Timer> slowRequestSweep_;

  loop::LifetimeGuard lifetime_;
  bool shuttingDown_ = false;
  loop::HandlePtr<loop::Timer> graceTimer_;
  loop::HandlePtr<loop::Timer> drainTimer_;
  std::function<void()> shutdownDone_;
};

}  // namespace monocri::grpc
