// A gRPC client over a unix socket, on the loop: monoctl, the benchmark and tests use it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cri-bridge/grpc/GrpcFraming.h"
#include "cri-bridge/grpc/GrpcStatus.h"
#include "cri-bridge/grpc/Http2Limits.h"
#include "cri-bridge/grpc/Http2Transport.h"
#include "loop/Timer.h"

namespace monocri::grpc {

struct CallOptions {
  std::chrono::nanoseconds timeout{0};  // 0: no deadline
  bool gzipRequest = false;             // send the request compressed (grpc-encoding: gzip)
};

class GrpcClient : public Http2Transport {
 public:
  // Connects to the socket at `socketPath`; calls started before the connection is up wait
  // for it, and fail with UNAVAILABLE if it cannot be made.
  static std::unique_ptr<GrpcClient> connect(loop::Loop& loop, std::string socketPath);
  // Speaks on an already connected socket (a socketpair to a child process); owns `fd`.
  static std::unique_ptr<GrpcClient> adopt(loop::Loop& loop, int fd, std::string name);
  ~GrpcClient() override;

  using MessageCallback = std::function<void(std::string_view message)>;
  using DoneCallback = std::function<void(const Status& status)>;

  // One request message; `onMessage` for each response message, then `onDone` exactly once.
  void startCall(std::string_view path, std::string_view request, const CallOptions& options,
                 MessageCallback onMessage, DoneCallback onDone);

  template <typename Request, typename Response>
  void unary(std::string_view path, const Request& request, const CallOptions& options,
             std::function<void(const Status&, Response&&)> done) {
    struct State {
      Response response;
      int messages = 0;
      bool parsed = false;
    };
    auto state = std::make_shared<State>();
    startCall(
        path, request.SerializeAsString(), options,
        [state](std::string_view bytes) {
          if (state->messages++ == 0) {
            state->parsed =
                state->response.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
          }
        },
        [state, done = std::move(done)](const Status& status) {
          if (!status.isOk()) return done(status, Response());
          if (state->messages != 1) {
            return done(Status(StatusCode::kInternal, "a unary call got " +
                                                          std::to_string(state->messages) +
                                                          " response messages"),
                        Response());
          }
          if (!state->parsed) {
            return done(Status(StatusCode::kInternal, "the response is not a valid message"),
                        Response());
          }
          done(status, std::move(state->response));
        });
  }

  // Ends every call with CANCELLED and closes the connection. May be called from a callback;
  // destroying the client from one is not allowed (close, then drop it later).
  void close();
  const std::string& socketPath() const { return socketPath_; }

 private:
  struct Call;
  GrpcClient(loop::Loop& loop, loop::HandlePtr<loop::PipeStream> stream, std::string socketPath);
  void onConnected(int status);
  // Reports the call's outcome once; the call itself lives until its stream closes.
  void completeCall(Call& call, const Status& status, bool resetStream);
  void onTransportClosed(std::string_view reason) override;

  static nghttp2_session_callbacks* callbacks();
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* self);
  static int onDataChunkRecv(nghttp2_session*, uint8_t flags, int32_t streamId, const uint8_t* data,
                             size_t len, void* self);
  static int onStreamClose(nghttp2_session*, int32_t streamId, uint32_t errorCode, void* self);
  static ssize_t readRequest(nghttp2_session*, int32_t streamId, uint8_t* buf, size_t length,
                             uint32_t* dataFlags, nghttp2_data_source* source, void* self);

  std::string socketPath_;
  std::string closeReason_;
  // Shared: a callback may close the client, which releases every call, while one of them is
  // still being delivered.
  std::unordered_map<int32_t, std::shared_ptr<Call>> calls_;
};

}  // namespace monocri::grpc
