#include "cri-bridge/grpc/GrpcClient.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cri-bridge/grpc/GrpcCompression.h"
#include "cri-bridge/grpc/GrpcTimeout.h"

namespace monocri::grpc {

namespace {
constexpr std::string_view kUserAgent = "monocri-grpc/0.1";
}

struct GrpcClient::Call {
  int32_t streamId = 0;
  std::string path;
  std::string request;  // framed
  size_t requestOffset = 0;
  MessageCallback onMessage;
  DoneCallback onDone;
  GrpcMessageDecoder decoder{kMaxMessageBytes};
  int httpStatus = 0;
  std::string encoding;
  std::optional<StatusCode> grpcStatus;
  std::string grpcMessage;
  std::string timeoutText;
  bool completed = false;
  loop::HandlePtr<loop::Timer> deadlineTimer;
};

std::unique_ptr<GrpcClient> GrpcClient::connect(loop::Loop& loop, std::string socketPath) {
  std::unique_ptr<GrpcClient> client(
      new GrpcClient(loop, loop::PipeStream::create(loop), std::move(socketPath)));
  client->stream_->connect(client->socketPath_,
                           [raw = client.get()](int status) { raw->onConnected(status); });
  return client;
}

std::unique_ptr<GrpcClient> GrpcClient::adopt(loop::Loop& loop, int fd, std::string name) {
  int error = 0;
  auto stream = loop::PipeStream::adopt(loop, fd, &error);
  if (!stream) return nullptr;
  std::unique_ptr<GrpcClient> client(new GrpcClient(loop, std::move(stream), std::move(name)));
  client->onConnected(0);
  return client;
}

GrpcClient::GrpcClient(loop::Loop& loop, loop::HandlePtr<loop::PipeStream> stream,
                       std::string socketPath)
    : Http2Transport(loop, std::move(stream)), socketPath_(std::move(socketPath)) {
  setConnected(false);
  stream_->setLabel("grpc client read");
  nghttp2_session_client_new(&session_, callbacks(), this);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamInitialWindowBytes)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindowBytes);
}

GrpcClient::~GrpcClient() = default;

void GrpcClient::onConnected(int status) {
  if (status != 0) {
    closeTransport(fmt::format("cannot connect to {}: {}", socketPath_, uv_strerror(status)));
    return;
  }
  setConnected(true);
  startReading();
  flush();
}

void GrpcClient::startCall(std::string_view path, std::string_view request,
                           const CallOptions& options, MessageCallback onMessage,
                           DoneCallback onDone) {
  if (closed()) {
    onDone(Status(StatusCode::kUnavailable,
                  closeReason_.empty() ? "connection closed" : closeReason_));
    return;
  }
  auto call = std::make_shared<Call>();
  call->path = path;
  call->onMessage = std::move(onMessage);
  call->onDone = std::move(onDone);
  if (options.gzipRequest) {
    appendGrpcMessage(call->request, gzip(request), /*compressed=*/true);
  } else {
    appendGrpcMessage(call->request, request);
  }
  std::vector<nghttp2_nv> headers = {
      makeHeader(":method", "POST"),
      makeHeader(":scheme", "http"),
      makeHeader(":path", call->path),
      makeHeader(":authority", "localhost"),
      makeHeader("content-type", "application/grpc"),
      makeHeader("te", "trailers"),
      makeHeader("user-agent", kUserAgent),
      makeHeader("grpc-accept-encoding", kAcceptedEncodings),
  };
  if (options.timeout.count() > 0) {
    call->timeoutText = formatGrpcTimeout(options.timeout);
    headers.push_back(makeHeader("grpc-timeout", call->timeoutText));
  }
  if (options.gzipRequest) headers.push_back(makeHeader("grpc-encoding", "gzip"));

  nghttp2_data_provider provider{};
  provider.source.ptr = call.get();
  provider.read_callback = readRequest;
  int32_t streamId =
      nghttp2_submit_request(session_, nullptr, headers.data(), headers.size(), &provider, nullptr);
  if (streamId < 0) {
    call->onDone(Status(StatusCode::kUnavailable,
                        fmt::format("cannot start a stream: {}", nghttp2_strerror(streamId))));
    return;
  }
  call->streamId = streamId;
  if (options.timeout.count() > 0) {
    call->deadlineTimer = loop::Timer::create(loop_, "grpc client deadline");
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(options.timeout).count();
    call->deadlineTimer->start(static_cast<uint64_t>(ms), 0, [this, raw = call.get()] {
      completeCall(*raw,
                   Status(StatusCode::kDeadlineExceeded,
                          fmt::format("deadline exceeded (timeout {})", raw->timeoutText)),
                   /*resetStream=*/true);
    });
  }
  calls_.emplace(streamId, std::move(call));
  scheduleFlush();
}

void GrpcClient::completeCall(Call& call, const Status& status, bool resetStream) {
  if (call.completed) return;
  call.completed = true;
  if (call.deadlineTimer) call.deadlineTimer->stop();
  if (resetStream && !closed() && call.streamId > 0) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, call.streamId, NGHTTP2_CANCEL);
    scheduleFlush();
  }
  auto onDone = std::move(call.onDone);
  onDone(status);
}

ssize_t GrpcClient::readRequest(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                uint32_t* dataFlags, nghttp2_data_source* source, void*) {
  auto* call = static_cast<Call*>(source->ptr);
  const size_t n = std::min(length, call->request.size() - call->requestOffset);
  std::memcpy(buf, call->request.data() + call->requestOffset, n);
  call->requestOffset += n;
  if (call->requestOffset == call->request.size()) {
    *dataFlags |= NGHTTP2_DATA_FLAG_EOF;
    call->request = std::string();  // sent: free it
    call->requestOffset = 0;
  }
  return static_cast<ssize_t>(n);
}

int GrpcClient::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                         size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                         void* self) {
  auto* client = static_cast<GrpcClient*>(self);
  auto it = client->calls_.find(frame->hd.stream_id);
  if (it == client->calls_.end()) return 0;
  Call& call = *it->second;
  std::string_view key(reinterpret_cast<const char*>(name), namelen);
  std::string_view val(reinterpret_cast<const char*>(value), valuelen);
  if (key == ":status") {
    call.httpStatus = 0;
    for (char c : val)
      call.httpStatus = call.httpStatus * 10 + (c - '0');
  } else if (key == "grpc-status") {
    call.grpcStatus = parseGrpcStatus(val);
    if (!call.grpcStatus) call.grpcStatus = StatusCode::kUnknown;
  } else if (key == "grpc-message") {
    call.grpcMessage = percentDecodeGrpcMessage(val);
  } else if (key == "grpc-encoding") {
    call.encoding = val;
  }
  return 0;
}

int GrpcClient::onDataChunkRecv(nghttp2_session*, uint8_t, int32_t streamId, const uint8_t* data,
                                size_t len, void* self) {
  auto* client = static_cast<GrpcClient*>(self);
  auto it = client->calls_.find(streamId);
  if (it == client->calls_.end() || it->second->completed) return 0;
  std::shared_ptr<Call> keep = it->second;
  Call& call = *keep;
  std::vector<GrpcMessageDecoder::Message> messages;
  auto error =
      call.decoder.decode(std::string_view(reinterpret_cast<const char*>(data), len), messages);
  if (error != GrpcMessageDecoder::Error::kNone) {
    client->completeCall(
        call,
        error == GrpcMessageDecoder::Error::kTooLarge
            ? Status(StatusCode::kResourceExhausted,
                     fmt::format("response message of {} bytes exceeds the {} byte "
                                 "limit",
                                 call.decoder.declaredLength(), kMaxMessageBytes))
            : Status(StatusCode::kInternal, "invalid gRPC message prefix"),
        /*resetStream=*/true);
    return 0;
  }
  for (auto& message : messages) {
    if (message.compressed) {
      bool tooLarge = false;
      auto inflated = call.encoding == "gzip" ? gunzip(message.bytes, kMaxMessageBytes, tooLarge)
                                              : std::nullopt;
      if (!inflated) {
        client->completeCall(
            call,
            Status(StatusCode::kInternal,
                   fmt::format("cannot decompress a response message (grpc-encoding "
                               "'{}')",
                               call.encoding)),
            /*resetStream=*/true);
        return 0;
      }
      message.bytes = std::move(*inflated);
    }
    call.onMessage(message.bytes);
    if (call.completed || client->closed()) break;
  }
  return 0;
}

int GrpcClient::onStreamClose(nghttp2_session*, int32_t streamId, uint32_t errorCode, void* self) {
  auto* client = static_cast<GrpcClient*>(self);
  auto it = client->calls_.find(streamId);
  if (it == client->calls_.end()) return 0;
  std::shared_ptr<Call> owned = std::move(it->second);
  client->calls_.erase(it);
  Call& call = *owned;
  if (call.completed) return 0;
  Status status;
  if (call.grpcStatus) {
    status = Status(*call.grpcStatus, call.grpcMessage);
  } else if (call.httpStatus != 0 && call.httpStatus != 200) {
    status = Status(statusCodeFromHttpStatus(call.httpStatus),
                    fmt::format("HTTP status {} without grpc-status", call.httpStatus));
  } else if (errorCode == NGHTTP2_REFUSED_STREAM) {
    status = Status(StatusCode::kUnavailable, "the server refused the stream");
  } else if (errorCode == NGHTTP2_CANCEL) {
    status = Status(StatusCode::kCancelled, "the server cancelled the stream");
  } else {
    status = Status(StatusCode::kInternal,
                    fmt::format("the stream ended without grpc-status (HTTP/2 error: {})",
                                nghttp2_http2_strerror(errorCode)));
  }
  if (status.isOk() && call.decoder.midMessage()) {
    status = Status(StatusCode::kInternal, "the response ended inside a message");
  }
  client->completeCall(call, status, /*resetStream=*/false);
  return 0;
}

void GrpcClient::close() {
  closeTransport("closed by the client");
}

void GrpcClient::onTransportClosed(std::string_view reason) {
  closeReason_ = reason;
  auto calls = std::move(calls_);
  calls_.clear();
  const bool byUs = reason == "closed by the client";
  for (auto& [id, call] : calls) {
    completeCall(*call,
                 byUs ? Status(StatusCode::kCancelled, "the client closed the connection")
                      : Status(StatusCode::kUnavailable, std::string(reason)),
                 /*resetStream=*/false);
  }
}

nghttp2_session_callbacks* GrpcClient::callbacks() {
  static nghttp2_session_callbacks* const callbacks = [] {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onDataChunkRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, onStreamClose);
    return cb;
  }();
  return callbacks;
}

}  // namespace monocri::grpc
