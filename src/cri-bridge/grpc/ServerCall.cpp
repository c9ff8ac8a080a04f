#include "cri-bridge/grpc/ServerCall.h"

#include <fmt/format.h>

#include "cri-bridge/grpc/ServerConnection.h"

namespace monocri::grpc {

ServerCall::ServerCall(ServerConnection& connection, int32_t streamId)
    : connection_(&connection),
      streamId_(streamId),
      startNs_(uv_hrtime()),
      receiveSinceNs_(startNs_) {}

ServerCall::~ServerCall() = default;

void ServerCall::onCancel(std::function<void()> callback) {
  if (cancelled_) {
    callback();
    return;
  }
  if (!ended_) cancelCallbacks_.push_back(std::move(callback));
}

bool ServerCall::sendMessage(std::string_view serialized) {
  if (ended_ || connection_ == nullptr) return false;
  if (serialized.size() > kMaxMessageBytes) {
    finish(Status(StatusCode::kResourceExhausted,
                  fmt::format("response message of {} bytes exceeds the {} byte limit",
                              serialized.size(), kMaxMessageBytes)));
    return false;
  }
  // A streaming client that stops reading must not make the daemon buffer without bound:
  // one maximum-size message may wait, not more.
  if (output_.size() - outputOffset_ + serialized.size() >
      kMaxMessageBytes + kGrpcMessageHeaderBytes) {
    abort(Status(StatusCode::kResourceExhausted,
                 "the client is not reading the stream's messages; monocri ended it"));
    return false;
  }
  appendGrpcMessage(output_, serialized);
  connection_->pushOutput(*this);
  return true;
}

void ServerCall::finish(const Status& status) {
  if (ended_) return;
  ended_ = true;
  finalStatus_ = status;
  cancelCallbacks_.clear();
  if (deadlineTimer_) deadlineTimer_->stop();
  if (connection_ != nullptr) {
    connection_->pushOutput(*this);
    connection_->callEnded(*this);
  }
}

void ServerCall::abort(const Status& status) {
  if (ended_) return;
  cancelled_ = true;
  auto callbacks = std::move(cancelCallbacks_);
  finish(status);
  for (auto& callback : callbacks)
    callback();
}

void ServerCall::detach() {
  connection_ = nullptr;
  if (deadlineTimer_) deadlineTimer_->stop();
  if (ended_) return;
  ended_ = true;
  cancelled_ = true;
  finalStatus_ = Status(StatusCode::kCancelled, "the client cancelled the call");
  auto callbacks = std::move(cancelCallbacks_);
  for (auto& callback : callbacks)
    callback();
}

}  // namespace monocri::grpc
