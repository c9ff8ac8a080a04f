// What the CRI services share: the gRPC paths of the methods they register, and the plumbing of
// a call answered later, from an asynchronous completion.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "cri-bridge/grpc/GrpcServer.h"

namespace monocri::cri {

inline constexpr std::string_view kRuntimeServicePath = "/runtime.v1.RuntimeService/";

// "/runtime.v1.RuntimeService/<method>"
inline std::string runtimeMethod(std::string_view method) {
  return std::string(kRuntimeServicePath) + std::string(method);
}

// A responder a completion callback can hold (UnaryResponder only moves; callbacks are copied).
template <typename Response>
std::shared_ptr<grpc::UnaryResponder<Response>> shareResponder(
    grpc::UnaryResponder<Response>& responder) {
  return std::make_shared<grpc::UnaryResponder<Response>>(std::move(responder));
}

// The completion of a call whose answer is an empty message: the error, or that empty answer.
template <typename Response>
std::function<void(grpc::Status)> answerEmptyWhenDone(grpc::UnaryResponder<Response>& responder) {
  return [shared = shareResponder(responder)](grpc::Status status) {
    if (!status.isOk()) return shared->fail(status);
    shared->finish(Response());
  };
}

}  // namespace monocri::cri
