#include "cri-bridge/grpc/GrpcServer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>

#include "cri-bridge/grpc/ServerConnection.h"

namespace monocri::grpc {

namespace {
constexpr int kListenBacklog = 128;
}

GrpcServer::GrpcServer(loop::Loop& loop, Options options) : loop_(loop), options_(options) {
  // Requests that never arrive in full are ended; checked a few times per timeout period.
  const uint64_t interval = std::max<uint64_t>(options_.requestReceiveTimeoutMs / 4, 1);
  slowRequestSweep_ = loop::Timer::create(loop_, "grpc slow request sweep");
  slowRequestSweep_->start(interval, interval, [this] { expireSlowRequests(); });
  slowRequestSweep_->unref();
}

GrpcServer::~GrpcServer() {
  listener_.reset();
  connections_.clear();
  closedConnections_.clear();  // while this server, which they point to, still exists
}

bool GrpcServer::reserveRequestBytes(size_t bytes) {
  if (reservedRequestBytes_ + bytes > kMaxReservedRequestBytesTotal) return false;
  reservedRequestBytes_ += bytes;
  return true;
}

void GrpcServer::releaseRequestBytes(size_t bytes) {
  reservedRequestBytes_ -= bytes;
  // Calls waiting on other connections may fit now; one pass per loop turn at most.
  if (waitingConnections_.empty() || admissionScheduled_) return;
  admissionScheduled_ = true;
  loop_.defer(lifetime_.watch(), [this] {
    admissionScheduled_ = false;
    admitWaitingConnections();
  });
}

void GrpcServer::noteWaitingConnection(ServerConnection* connection) {
  if (std::find(waitingConnections_.begin(), waitingConnections_.end(), connection) ==
      waitingConnections_.end()) {
    waitingConnections_.push_back(connection);
  }
}

void GrpcServer::admitWaitingConnections() {
  auto waiting = std::move(waitingConnections_);
  waitingConnections_.clear();
  for (ServerConnection* connection : waiting) {
    if (!connections_.contains(connection)) continue;  // closed since
    connection->admitWaitingCalls();
    if (connection->hasWaitingCalls()) noteWaitingConnection(connection);
  }
}

void GrpcServer::expireSlowRequests() {
  const uint64_t now = uv_hrtime();
  const uint64_t timeoutNs = options_.requestReceiveTimeoutMs * 1'000'000;
  std::vector<ServerConnection*> open;
  for (auto& [raw, connection] : connections_)
    open.push_back(raw);
  for (ServerConnection* connection : open) {
    if (connections_.contains(connection)) connection->expireSlowRequests(now, timeoutNs);
  }
}

void GrpcServer::addMethod(
    std::string path,
    std::function<void(const std::shared_ptr<ServerCall>&, std::string_view)> invoke) {
  std::string label = "grpc " + path;
  std::string key = path;
  methods_.insert_or_assign(std::move(key),
                            MethodEntry{std::move(path), std::move(label), std::move(invoke)});
}

Status GrpcServer::invalidRequest(std::string_view path) {
  return Status(StatusCode::kInvalidArgument,
                fmt::format("the request of {} is not a valid protobuf message", path));
}

const MethodEntry* GrpcServer::findMethod(std::string_view path) const {
  auto it = methods_.find(path);
  return it == methods_.end() ? nullptr : &it->second;
}

std::string GrpcServer::listen(const std::string& path, mode_t mode) {
  listener_ = loop::PipeServer::create(loop_);
  std::string error = listener_->listen(
      path, mode, kListenBacklog,
      [this](loop::HandlePtr<loop::PipeStream> stream) { onConnection(std::move(stream)); });
  if (error.empty()) socketPath_ = path;
  return error;
}

void GrpcServer::onConnection(loop::HandlePtr<loop::PipeStream> stream) {
  if (shuttingDown_) return;  // closes the socket
  if (connections_.size() >= kMaxConnections) {
    ++stats_.connectionsRefused;
    if (stats_.connectionsRefused == 1 || stats_.connectionsRefused % 1000 == 0) {
      spdlog::warn("grpc: refusing connections over the limit of {} ({} refused so far)",
                   kMaxConnections, stats_.connectionsRefused);
    }
    return;
  }
  ++stats_.connectionsAccepted;
  auto connection =
      std::make_unique<ServerConnection>(*this, std::move(stream), nextConnectionId_++);
  ServerConnection* raw = connection.get();
  connections_.emplace(raw, std::move(connection));
  raw->start();
}

void GrpcServer::release(ServerConnection* connection) {
  // The connection's methods may be on the stack: free it once the current callback returns.
  auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  closedConnections_.push_back(std::move(it->second));
  connections_.erase(it);
  loop_.defer(lifetime_.watch(), [this] {
    closedConnections_.clear();
    if (shuttingDown_) maybeFinishShutdown();
  });
}

void GrpcServer::shutdown(std::chrono::milliseconds grace, std::function<void()> done) {
  if (shuttingDown_) return;
  shuttingDown_ = true;
  shutdownDone_ = std::move(done);
  listener_.reset();
  if (!socketPath_.empty()) unlink(socketPath_.c_str());
  spdlog::info("grpc: shutting down; {} connection(s) open, {} ms for calls in flight",
               connections_.size(), grace.count());
  std::vector<ServerConnection*> open;
  for (auto& [raw, connection] : connections_)
    open.push_back(raw);
  for (ServerConnection* connection : open)
    connection->beginShutdown();
  graceTimer_ = loop::Timer::create(loop_, "grpc shutdown grace");
  graceTimer_->start(static_cast<uint64_t>(grace.count()), 0, [this] { endGracePeriod(); });
  maybeFinishShutdown();
}

void GrpcServer::endGracePeriod() {
  if (!shuttingDown_) return;
  if (graceTimer_) graceTimer_->stop();
  std::vector<ServerConnection*> remaining;
  for (auto& [raw, connection] : connections_)
    remaining.push_back(raw);
  size_t calls = 0;
  for (ServerConnection* connection : remaining)
    calls += connection->activeCalls();
  if (calls != 0) spdlog::warn("grpc: failing {} call(s) still running at shutdown", calls);
  for (ServerConnection* connection : remaining) {
    if (connections_.contains(connection)) {
      connection->abortCalls(Status(StatusCode::kUnavailable, "monocri is shutting down"));
    }
  }
  // Their last frames get a moment to leave; a client that does not read them is dropped.
  drainTimer_ = loop::Timer::create(loop_, "grpc shutdown drain");
  drainTimer_->start(options_.shutdownDrainMs, 0, [this] {
    std::vector<ServerConnection*> stuck;
    for (auto& [raw, connection] : connections_)
      stuck.push_back(raw);
    if (!stuck.empty()) {
      spdlog::warn("grpc: closing {} connection(s) whose client does not read", stuck.size());
    }
    for (ServerConnection* connection : stuck) {
      if (connections_.contains(connection)) connection->forceClose("shutdown: client not reading");
    }
  });
}

void GrpcServer::maybeFinishShutdown() {
  if (!shuttingDown_ || !connections_.empty() || !shutdownDone_) return;
  graceTimer_.reset();
  drainTimer_.reset();
  auto done = std::move(shutdownDone_);
  shutdownDone_ = nullptr;
  done();
}

}  // namespace monocri::grpc
