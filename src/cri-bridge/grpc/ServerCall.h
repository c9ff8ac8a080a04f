// One gRPC call on the server, and the objects a handler answers it through.
//
// A handler receives the decoded request and a responder (UnaryResponder or ServerWriter). It
// may answer at once or keep the responder and answer later, from any loop callback: most CRI
// calls wait on child processes. A call ends once: by its answer, by its deadline
// (DEADLINE_EXCEEDED), by the client resetting the stream or closing the connection
// (cancelled), or by daemon shutdown (UNAVAILABLE). Whatever comes later is ignored, so a
// handler never needs to know which happened first; it may ask cancelled() or register
// onCancel() to stop work early.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cri-bridge/grpc/GrpcFraming.h"
#include "cri-bridge/grpc/GrpcStatus.h"
#include "cri-bridge/grpc/Http2Limits.h"
#include "loop/Timer.h"

namespace monocri::grpc {

class ServerConnection;
struct MethodEntry;

class ServerCall : public std::enable_shared_from_this<ServerCall> {
 public:
  ServerCall(ServerConnection& connection, int32_t streamId);
  ~ServerCall();
  ServerCall(const ServerCall&) = delete;
  ServerCall& operator=(const ServerCall&) = delete;

  // For handlers.
  std::string_view path() const { return path_; }
  bool ended() const { return ended_; }
  bool cancelled() const { return cancelled_; }
  void onCancel(std::function<void()> callback);
  std::optional<std::chrono::steady_clock::time_point> deadline() const { return deadline_; }

  // Queues one response message (already serialized). False if the call has ended.
  bool sendMessage(std::string_view serialized);
  // Ends the call with `status` after any queued messages. No effect once ended.
  void finish(const Status& status);

 private:
  friend class ServerConnection;

  // Ends the call with `status` and runs the cancel callbacks (deadline, shutdown).
  void abort(const Status& status);
  // The stream is gone (client reset or connection closed): nothing can be sent any more.
  void detach();
  void runCancelCallbacks();

  ServerConnection* connection_;  // null once the stream is closed
  const int32_t streamId_;
  const uint64_t startNs_;
  uint64_t receiveSinceNs_;  // the request must arrive in full within a timeout from here

  // Request side, filled by the connection.
  std::string path_;
  std::string httpMethod_;
  std::string contentType_;
  std::string encoding_;
  std::string timeoutHeader_;
  size_t headerBytes_ = 0;
  bool headersInvalid_ = false;
  const MethodEntry* method_ = nullptr;
  GrpcMessageDecoder decoder_{kMaxMessageBytes};
  std::vector<GrpcMessageDecoder::Message> messages_;
  size_t reservedBytes_ = 0;    // this call's share of the connection's request budget
  size_t unconsumedBytes_ = 0;  // received while waiting for budget: no WINDOW_UPDATE yet
  bool waitingForBudget_ = false;
  bool requestComplete_ = false;  // END_STREAM received
  bool dispatched_ = false;
  uint64_t dispatchedNs_ = 0;  // when the handler got the request

  // Response side.
  int httpStatus_ = 200;  // other than 200 only for requests that are not gRPC at all
  bool ended_ = false;
  bool cancelled_ = false;
  bool headersSubmitted_ = false;
  bool trailersSubmitted_ = false;
  Status finalStatus_;
  std::string output_;  // framed messages not yet taken by nghttp2
  size_t outputOffset_ = 0;
  std::vector<std::function<void()>> cancelCallbacks_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  loop::HandlePtr<loop::Timer> deadlineTimer_;
};

// Shared by the responders: a strong reference to the call and its cancellation.
class CallHandle {
 public:
  explicit CallHandle(std::shared_ptr<ServerCall> call) : call_(std::move(call)) {}
  CallHandle(CallHandle&&) noexcept = default;
  CallHandle& operator=(CallHandle&&) noexcept = default;

  bool cancelled() const { return call_ == nullptr || call_->cancelled(); }
  void onCancel(std::function<void()> callback) {
    if (call_) call_->onCancel(std::move(callback));
  }
  std::string_view path() const { return call_ ? call_->path() : std::string_view(); }
  std::optional<std::chrono::steady_clock::time_point> deadline() const {
    return call_ ? call_->deadline() : std::nullopt;
  }

 protected:
  // A responder dropped without an answer is a handler bug: the client learns so at once
  // instead of waiting for its deadline.
  void finishIfUnanswered() {
    if (call_ && !call_->ended()) {
      call_->finish(Status(StatusCode::kInternal, "monocri: the handler of " +
                                                      std::string(call_->path()) +
                                                      " dropped the call without answering"));
    }
  }

  std::shared_ptr<ServerCall> call_;
};

// Answers a unary call once: finish(response) or fail(status).
template <typename Response>
class UnaryResponder : public CallHandle {
 public:
  explicit UnaryResponder(std::shared_ptr<ServerCall> call) : CallHandle(std::move(call)) {}
  UnaryResponder(UnaryResponder&&) noexcept = default;
  UnaryResponder& operator=(UnaryResponder&& other) noexcept {
    finishIfUnanswered();
    CallHandle::operator=(std::move(other));
    return *this;
  }
  ~UnaryResponder() { finishIfUnanswered(); }

  void finish(const Response& response) {
    if (!call_) return;
    std::string bytes;
    response.SerializeToString(&bytes);
    if (call_->sendMessage(bytes)) call_->finish(Status::ok());
    call_.reset();
  }
  void fail(const Status& status) {
    if (!call_) return;
    call_->finish(status);
    call_.reset();
  }
};

// Writes the messages of a server-streaming call, then its status.
template <typename Response>
class ServerWriter : public CallHandle {
 public:
  explicit ServerWriter(std::shared_ptr<ServerCall> call) : CallHandle(std::move(call)) {}
  ServerWriter(ServerWriter&&) noexcept = default;
  ServerWriter& operator=(ServerWriter&& other) noexcept {
    finishIfUnanswered();
    CallHandle::operator=(std::move(other));
    return *this;
  }
  ~ServerWriter() { finishIfUnanswered(); }

  // False once the call has ended (the client went away or the deadline passed).
  bool write(const Response& response) {
    if (!call_) return false;
    std::string bytes;
    response.SerializeToString(&bytes);
    return call_->sendMessage(bytes);
  }
  void finish(const Status& status = Status::ok()) {
    if (!call_) return;
    call_->finish(status);
    call_.reset();
  }
};

}  // namespace monocri::grpc
