// One client connection of the gRPC server: an nghttp2 server session and its calls.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

#include "cri-bridge/grpc/Http2Transport.h"
#include "cri-bridge/grpc/ServerCall.h"
#include "loop/Timer.h"

namespace monocri::grpc {

class GrpcServer;

class ServerConnection : public Http2Transport {
 public:
  ServerConnection(GrpcServer& server, loop::HandlePtr<loop::PipeStream> stream, uint64_t id);
  ~ServerConnection() override;

  void start();
  // GOAWAY: calls in flight continue, new streams are refused; the connection closes when idle.
  void beginShutdown();
  // Ends every call still open with `status` (end of the shutdown grace period).
  void abortCalls(const Status& status);
  size_t activeCalls() const { return calls_.size(); }
  // Ends calls whose request has not fully arrived `timeoutNs` after its headers.
  void expireSlowRequests(uint64_t nowNs, uint64_t timeoutNs);
  // Request budget freed elsewhere on the server: admits what waits here, if it now fits.
  void admitWaitingCalls();
  bool hasWaitingCalls() const { return waitingCalls_ != 0; }
  // Closes at once, writes or not (a client that does not read its last frames).
  void forceClose(std::string_view reason);

 private:
  friend class ServerCall;

  // Called by ServerCall when it has output or has ended.
  void pushOutput(ServerCall& call);
  void callEnded(ServerCall& call);

  // nghttp2 callbacks and options, shared by every server session.
  static nghttp2_session_callbacks* callbacks();
  static nghttp2_option* options();
  static int onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* self);
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* self);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int onDataChunkRecv(nghttp2_session*, uint8_t flags, int32_t streamId, const uint8_t* data,
                             size_t len, void* self);
  static int onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int onStreamClose(nghttp2_session*, int32_t streamId, uint32_t errorCode, void* self);
  static ssize_t readOutput(nghttp2_session*, int32_t streamId, uint8_t* buf, size_t length,
                            uint32_t* dataFlags, nghttp2_data_source* source, void* self);

  ServerCall* findCall(int32_t streamId) const;
  void onRequestHeaders(ServerCall& call);
  void onRequestData(ServerCall& call, std::string_view data);
  void onRequestComplete(ServerCall& call);
  void dispatch(ServerCall& call);
  // Answers with an HTTP status and no gRPC body (the request is not gRPC at all).
  void respondHttpError(ServerCall& call, int httpStatus, const Status& status);
  void submitTrailers(ServerCall& call, bool trailersOnly);
  void consume(ServerCall& call, size_t bytes);
  bool tryReserve(ServerCall& call);
  void stopWaiting(ServerCall& call);
  void releaseBudget(ServerCall& call);
  void releaseAllCalls();

  void onTransportClosed(std::string_view reason) override;
  bool onFirstBytes(std::string_view data) override;

  GrpcServer& server_;
  const uint64_t id_;
  pid_t peerPid_ = 0;
  uid_t peerUid_ = 0;
  std::unordered_map<int32_t, std::shared_ptr<ServerCall>> calls_;
  size_t reservedRequestBytes_ = 0;
  std::deque<int32_t> waitingForBudget_;  // streams whose message waits for budget, in order
  size_t waitingCalls_ = 0;
  bool handshakeDone_ = false;
  loop::HandlePtr<loop::Timer> handshakeTimer_;
};

}  // namespace monocri::grpc
