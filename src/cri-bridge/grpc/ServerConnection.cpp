#include "cri-bridge/grpc/ServerConnection.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "cri-bridge/grpc/GrpcCompression.h"
#include "cri-bridge/grpc/GrpcServer.h"
#include "cri-bridge/grpc/GrpcTimeout.h"

namespace monocri::grpc {

namespace {

constexpr std::string_view kGrpcContentType = "application/grpc";

static_assert(kMaxReservedRequestBytesPerConnection ==
                  2 * (kMaxMessageBytes + kGrpcMessageHeaderBytes),
              "room for two maximum-size messages with their prefixes");

// HPACK's accounting of a header field (RFC 7541 §4.1), as SETTINGS_MAX_HEADER_LIST_SIZE uses.
constexpr size_t kHeaderFieldOverhead = 32;

bool isGrpcContentType(std::string_view contentType) {
  // "application/grpc", optionally followed by "+proto", "+json", or parameters.
  if (contentType.substr(0, kGrpcContentType.size()) != kGrpcContentType) return false;
  return contentType.size() == kGrpcContentType.size() ||
         contentType[kGrpcContentType.size()] == '+' || contentType[kGrpcContentType.size()] == ';';
}

// The first bytes of an HTTP/1.x request: "GET / HTTP/1.1" and the like.
bool looksLikeHttp1(std::string_view bytes) {
  size_t space = bytes.find(' ');
  if (space == std::string_view::npos || space == 0 || space > 16) return false;
  for (char c : bytes.substr(0, space)) {
    if (c < 'A' || c > 'Z') return false;
  }
  return bytes.find(" HTTP/1.") != std::string_view::npos;
}

// Client-controlled text in a log line: no control characters (a forged newline would forge
// a log line), non-ASCII bytes escaped, length bounded.
std::string printableForLog(std::string_view text) {
  constexpr size_t kMaxLogged = 256;
  std::string out;
  for (unsigned char c : text.substr(0, kMaxLogged)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (text.size() > kMaxLogged) out += "...";
  return out;
}

}  // namespace

ServerConnection::ServerConnection(GrpcServer& server, loop::HandlePtr<loop::PipeStream> stream,
                                   uint64_t id)
    : Http2Transport(server.loop(), std::move(stream)), server_(server), id_(id) {
  stream_->setLabel("grpc connection read");
  if (int rc = nghttp2_session_server_new2(&session_, callbacks(), this, options()); rc != 0) {
    spdlog::critical("nghttp2_session_server_new2: {}", nghttp2_strerror(rc));
    std::abort();  // only fails when out of memory
  }
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(stream_->fd(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    peerPid_ = cred.pid;
    peerUid_ = cred.uid;
  }
}

ServerConnection::~ServerConnection() {
  // Responders may outlive the connection: their calls must stop pointing at it.
  releaseAllCalls();
}

void ServerConnection::start() {
  spdlog::debug("grpc connection {} from pid {} uid {}", id_, peerPid_, peerUid_);
  handshakeTimer_ = loop::Timer::create(loop_, "grpc handshake timeout");
  handshakeTimer_->start(kHandshakeTimeoutMs, 0, [this] {
    spdlog::warn("grpc connection {} (pid {}) sent no HTTP/2 preface in {} ms; closing it", id_,
                 peerPid_, kHandshakeTimeoutMs);
    closeTransport("handshake timeout");
  });
  startReading();
}

void ServerConnection::beginShutdown() {
  if (closed()) return;
  if (!peerSpoke()) {  // nothing said yet, nothing to finish: no SETTINGS, no GOAWAY
    closeTransport("shutting down");
    return;
  }
  SendScope scope(*this);
  constexpr std::string_view kReason = "monocri is shutting down";
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        reinterpret_cast<const uint8_t*>(kReason.data()), kReason.size());
}

void ServerConnection::abortCalls(const Status& status) {
  SendScope scope(*this);
  std::vector<std::shared_ptr<ServerCall>> calls;
  calls.reserve(calls_.size());
  for (auto& [id, call] : calls_)
    calls.push_back(call);
  for (auto& call : calls)
    call->abort(status);
}

ServerCall* ServerConnection::findCall(int32_t streamId) const {
  auto it = calls_.find(streamId);
  return it == calls_.end() ? nullptr : it->second.get();
}

// ---- request side ----

int ServerConnection::onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame,
                                     void* self) {
  auto* connection = static_cast<ServerConnection*>(self);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  if (connection->server_.openCalls_ >= kMaxOpenCallsTotal) {
    // No call is made: its headers and data are ignored, and the client may retry the stream.
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  connection->calls_.emplace(frame->hd.stream_id,
                             std::make_shared<ServerCall>(*connection, frame->hd.stream_id));
  ++connection->server_.openCalls_;
  ++connection->server_.stats_.callsStarted;
  return 0;
}

int ServerConnection::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                               size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                               void* self) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;  // client trailers carry nothing gRPC needs
  }
  auto* connection = static_cast<ServerConnection*>(self);
  ServerCall* call = connection->findCall(frame->hd.stream_id);
  if (call == nullptr) return 0;
  call->headerBytes_ += namelen + valuelen + kHeaderFieldOverhead;
  if (call->headerBytes_ > kMaxRequestHeaderListBytes) {
    call->headersInvalid_ = true;
    return 0;
  }
  std::string_view key(reinterpret_cast<const char*>(name), namelen);
  std::string_view val(reinterpret_cast<const char*>(value), valuelen);
  if (key == ":path") {
    call->path_ = val;
  } else if (key == ":method") {
    call->httpMethod_ = val;
  } else if (key == "content-type") {
    call->contentType_ = val;
  } else if (key == "grpc-encoding") {
    call->encoding_ = val;
  } else if (key == "grpc-timeout") {
    call->timeoutHeader_ = val;
  }
  return 0;
}

int ServerConnection::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* self) {
  auto* connection = static_cast<ServerConnection*>(self);
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
      if (!connection->handshakeDone_ && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        connection->handshakeDone_ = true;
        connection->handshakeTimer_.reset();
      }
      break;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
      ServerCall* call = connection->findCall(frame->hd.stream_id);
      if (call == nullptr) break;
      if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        connection->onRequestHeaders(*call);
      }
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) connection->onRequestComplete(*call);
      break;
    }
    default:
      break;
  }
  return 0;
}

void ServerConnection::onRequestHeaders(ServerCall& call) {
  if (call.headersInvalid_) {
    call.finish(Status(StatusCode::kResourceExhausted,
                       fmt::format("request headers exceed {} bytes", kMaxRequestHeaderListBytes)));
    return;
  }
  if (call.httpMethod_ != "POST") {
    respondHttpError(
        call, 405,
        Status(StatusCode::kInternal, fmt::format("gRPC requires POST, got {}", call.httpMethod_)));
    return;
  }
  if (!isGrpcContentType(call.contentType_)) {
    respondHttpError(
        call, 415,
        Status(StatusCode::kInternal,
               fmt::format("content-type '{}' is not application/grpc", call.contentType_)));
    return;
  }
  call.method_ = server_.findMethod(call.path_);
  if (call.method_ == nullptr) {
    std::string message = call.path_.starts_with("/runtime.v1.")
                              ? fmt::format("monocri does not implement {} yet", call.path_)
                              : fmt::format("unknown method {}", call.path_);
    call.finish(Status(StatusCode::kUnimplemented, std::move(message)));
    return;
  }
  if (!call.timeoutHeader_.empty()) {
    auto timeout = parseGrpcTimeout(call.timeoutHeader_);
    if (!timeout) {
      call.finish(Status(StatusCode::kInternal,
                         fmt::format("malformed grpc-timeout '{}'", call.timeoutHeader_)));
      return;
    }
    // Saturating: grpc-go sends 2562048H (INT64_MAX ns) for "no deadline".
    const auto now = std::chrono::steady_clock::now();
    const auto room = std::chrono::steady_clock::time_point::max() - now;
    call.deadline_ =
        *timeout >= room
            ? std::chrono::steady_clock::time_point::max()
            : now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(*timeout);
    // Whole milliseconds, rounded up, with a saturating cast for absurdly long timeouts.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(*timeout).count();
    call.deadlineTimer_ = loop::Timer::create(loop_, "grpc deadline");
    call.deadlineTimer_->start(
        static_cast<uint64_t>(ms), 0,
        [weak = std::weak_ptr<ServerCall>(call.shared_from_this()), header = call.timeoutHeader_] {
          if (auto expired = weak.lock()) {
            expired->abort(Status(StatusCode::kDeadlineExceeded,
                                  fmt::format("deadline exceeded (grpc-timeout {})", header)));
          }
        });
  }
}

int ServerConnection::onDataChunkRecv(nghttp2_session* session, uint8_t, int32_t streamId,
                                      const uint8_t* data, size_t len, void* self) {
  auto* connection = static_cast<ServerConnection*>(self);
  ServerCall* call = connection->findCall(streamId);
  if (call == nullptr || call->ended_) {
    nghttp2_session_consume(session, streamId, len);  // answered already: discard
    return 0;
  }
  connection->onRequestData(*call, std::string_view(reinterpret_cast<const char*>(data), len));
  return 0;
}

void ServerConnection::onRequestData(ServerCall& call, std::string_view data) {
  auto error = call.decoder_.decode(data, call.messages_);
  if (error != GrpcMessageDecoder::Error::kNone) {
    consume(call, data.size());
    if (error == GrpcMessageDecoder::Error::kTooLarge) {
      call.finish(Status(StatusCode::kResourceExhausted,
                         fmt::format("request message of {} bytes exceeds the {} byte limit",
                                     call.decoder_.declaredLength(), kMaxMessageBytes)));
    } else {
      call.finish(
          Status(StatusCode::kInternal, "invalid compressed-flag in a gRPC message prefix"));
    }
    return;
  }
  const size_t messagesSeen = call.messages_.size() + (call.decoder_.midMessage() ? 1 : 0);
  if (messagesSeen > 1) {
    consume(call, data.size());
    call.finish(
        Status(StatusCode::kInternal,
               fmt::format("{} takes one request message; the client sent more", call.path_)));
    return;
  }
  // The message's declared length is reserved in the request budgets as soon as it is known.
  // Until a reservation is had, the call waits: its bytes are released at the connection level
  // (the calls it waits for must still receive theirs) and held at its stream level.
  if (call.reservedBytes_ == 0 && !call.waitingForBudget_) {
    const bool lengthKnown = call.decoder_.inPayload() || !call.messages_.empty();
    if (lengthKnown && !tryReserve(call)) {
      if (waitingCalls_ >= kMaxWaitingCallsPerConnection) {
        consume(call, data.size());
        call.finish(Status(StatusCode::kResourceExhausted,
                           fmt::format("more than {} large requests are waiting for memory on "
                                       "this connection; retry later",
                                       kMaxWaitingCallsPerConnection)));
        return;
      }
      call.waitingForBudget_ = true;
      ++waitingCalls_;
      waitingForBudget_.push_back(call.streamId_);
      server_.noteWaitingConnection(this);
    }
  }
  if (call.waitingForBudget_) {
    nghttp2_session_consume_connection(session_, data.size());
    call.unconsumedBytes_ += data.size();
  } else {
    consume(call, data.size());
  }
}

void ServerConnection::consume(ServerCall& call, size_t bytes) {
  if (bytes != 0) nghttp2_session_consume(session_, call.streamId_, bytes);
}

bool ServerConnection::tryReserve(ServerCall& call) {
  const size_t need = call.decoder_.declaredLength() + kGrpcMessageHeaderBytes;
  if (reservedRequestBytes_ + need > kMaxReservedRequestBytesPerConnection) return false;
  if (!server_.reserveRequestBytes(need)) return false;
  call.reservedBytes_ = need;
  reservedRequestBytes_ += need;
  return true;
}

void ServerConnection::stopWaiting(ServerCall& call) {
  call.waitingForBudget_ = false;
  call.receiveSinceNs_ = uv_hrtime();  // the client's time to send the rest starts now
  --waitingCalls_;
  // Its connection-level share was consumed as it arrived; now its stream's.
  if (call.unconsumedBytes_ != 0) {
    nghttp2_session_consume_stream(session_, call.streamId_, call.unconsumedBytes_);
  }
  call.unconsumedBytes_ = 0;
}

void ServerConnection::releaseBudget(ServerCall& call) {
  if (call.waitingForBudget_) stopWaiting(call);
  if (call.reservedBytes_ == 0) return;
  reservedRequestBytes_ -= call.reservedBytes_;
  server_.releaseRequestBytes(call.reservedBytes_);
  call.reservedBytes_ = 0;
  admitWaitingCalls();
}

void ServerConnection::admitWaitingCalls() {
  while (!waitingForBudget_.empty()) {
    ServerCall* call = findCall(waitingForBudget_.front());
    if (call == nullptr || !call->waitingForBudget_) {
      waitingForBudget_.pop_front();
      continue;
    }
    if (!tryReserve(*call)) break;
    waitingForBudget_.pop_front();
    stopWaiting(*call);
    scheduleFlush();  // the WINDOW_UPDATE
  }
}

void ServerConnection::onRequestComplete(ServerCall& call) {
  call.requestComplete_ = true;
  if (call.ended_ || call.dispatched_) return;
  dispatch(call);
}

void ServerConnection::dispatch(ServerCall& call) {
  call.dispatched_ = true;
  call.dispatchedNs_ = uv_hrtime();
  if (call.decoder_.midMessage()) {
    call.finish(Status(StatusCode::kInternal, "the request ended inside a gRPC message"));
    return;
  }
  if (call.messages_.size() != 1) {
    call.finish(Status(StatusCode::kInternal,
                       fmt::format("{} takes one request message; the client sent {}", call.path_,
                                   call.messages_.size())));
    return;
  }
  GrpcMessageDecoder::Message message = std::move(call.messages_.front());
  call.messages_.clear();
  if (message.compressed) {
    if (call.encoding_.empty() || call.encoding_ == "identity") {
      call.finish(Status(StatusCode::kInternal,
                         "compressed message without a grpc-encoding to decompress it with"));
      return;
    }
    if (!isSupportedEncoding(call.encoding_)) {
      call.finish(Status(StatusCode::kUnimplemented,
                         fmt::format("grpc-encoding '{}' is not supported (supported: {})",
                                     call.encoding_, kAcceptedEncodings)));
      return;
    }
    bool tooLarge = false;
    auto inflated = gunzip(message.bytes, kMaxMessageBytes, tooLarge);
    if (!inflated) {
      call.finish(tooLarge ? Status(StatusCode::kResourceExhausted,
                                    fmt::format("decompressed request exceeds the {} byte limit",
                                                kMaxMessageBytes))
                           : Status(StatusCode::kInternal, "request message is not valid gzip"));
      return;
    }
    message.bytes = std::move(*inflated);
  }
  loop::Loop::Activity activity(loop_, call.method_->activityLabel);
  call.method_->invoke(call.shared_from_this(), message.bytes);
}

// ---- response side ----

void ServerConnection::respondHttpError(ServerCall& call, int httpStatus, const Status& status) {
  call.httpStatus_ = httpStatus;
  call.finish(status);
}

void ServerConnection::pushOutput(ServerCall& call) {
  if (closed() || call.trailersSubmitted_) return;
  if (!call.headersSubmitted_) {
    call.headersSubmitted_ = true;
    if (call.ended_ && call.output_.empty()) {
      submitTrailers(call, /*trailersOnly=*/true);
    } else {
      const nghttp2_nv headers[] = {
          makeHeader(":status", "200"),
          makeHeader("content-type", kGrpcContentType),
          makeHeader("grpc-accept-encoding", kAcceptedEncodings),
      };
      nghttp2_data_provider provider{};
      provider.source.ptr = &call;
      provider.read_callback = readOutput;
      nghttp2_submit_response(session_, call.streamId_, headers, std::size(headers), &provider);
    }
  } else {
    nghttp2_session_resume_data(session_, call.streamId_);
  }
  scheduleFlush();
}

ssize_t ServerConnection::readOutput(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                     uint32_t* dataFlags, nghttp2_data_source* source, void* self) {
  auto* call = static_cast<ServerCall*>(source->ptr);
  const size_t available = call->output_.size() - call->outputOffset_;
  const size_t n = std::min(length, available);
  std::memcpy(buf, call->output_.data() + call->outputOffset_, n);
  call->outputOffset_ += n;
  if (call->outputOffset_ == call->output_.size()) {
    call->output_.clear();
    call->outputOffset_ = 0;
    if (call->ended_) {
      *dataFlags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      static_cast<ServerConnection*>(self)->submitTrailers(*call, /*trailersOnly=*/false);
    } else if (n == 0) {
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return static_cast<ssize_t>(n);
}

void ServerConnection::submitTrailers(ServerCall& call, bool trailersOnly) {
  call.trailersSubmitted_ = true;
  const Status& status = call.finalStatus_;
  const std::string code = std::to_string(static_cast<int>(status.code()));
  const std::string message = percentEncodeGrpcMessage(status.message());
  const std::string httpStatus = std::to_string(call.httpStatus_);
  nghttp2_nv fields[6];
  size_t n = 0;
  if (trailersOnly) {
    fields[n++] = makeHeader(":status", httpStatus);
    fields[n++] = makeHeader("content-type", kGrpcContentType);
    fields[n++] = makeHeader("grpc-accept-encoding", kAcceptedEncodings);
  }
  fields[n++] = makeHeader("grpc-status", code);
  if (!message.empty()) fields[n++] = makeHeader("grpc-message", message);
  if (trailersOnly) {
    nghttp2_submit_response(session_, call.streamId_, fields, n, nullptr);
  } else {
    nghttp2_submit_trailer(session_, call.streamId_, fields, n);
  }
}

int ServerConnection::onFrameSend(nghttp2_session* session, const nghttp2_frame* frame,
                                  void* self) {
  if (frame->hd.type != NGHTTP2_HEADERS || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  auto* connection = static_cast<ServerConnection*>(self);
  ServerCall* call = connection->findCall(frame->hd.stream_id);
  // Answered before the client finished sending (an error, a deadline): tell it to stop
  // (RFC 9113 §8.1: RST_STREAM with NO_ERROR after a complete response).
  if (call != nullptr && !call->requestComplete_) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
  }
  return 0;
}

int ServerConnection::onStreamClose(nghttp2_session*, int32_t streamId, uint32_t errorCode,
                                    void* self) {
  auto* connection = static_cast<ServerConnection*>(self);
  auto it = connection->calls_.find(streamId);
  if (it == connection->calls_.end()) return 0;
  std::shared_ptr<ServerCall> call = std::move(it->second);
  connection->calls_.erase(it);
  --connection->server_.openCalls_;
  connection->releaseBudget(*call);
  if (!call->ended_) {
    spdlog::debug("grpc {} on connection {}: client cancelled (stream error {})",
                  printableForLog(call->path_), connection->id_, nghttp2_http2_strerror(errorCode));
  }
  call->detach();
  return 0;
}

void ServerConnection::callEnded(ServerCall& call) {
  const Status& status = call.finalStatus_;
  if (!status.isOk()) ++server_.stats_.callsFailed;
  if (call.method_ != nullptr && call.dispatchedNs_ != 0) {
    MethodStats& method = server_.methodStats_[call.method_->path];
    ++method.calls;
    method.handlingNanos += uv_hrtime() - call.dispatchedNs_;
  }
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("grpc {} on connection {}: {} in {:.3f} ms", printableForLog(call.path_), id_,
                  printableForLog(status.toString()),
                  static_cast<double>(uv_hrtime() - call.startNs_) / 1e6);
  }
  releaseBudget(call);
}

// ---- connection ----

bool ServerConnection::onFirstBytes(std::string_view data) {
  // The server preface (SETTINGS) goes out once the client has spoken, in the same write as
  // the answers to its first frames: clients send their preface first (RFC 9113 §3.4), and
  // someone who typed an HTTP/1.1 request at the socket gets a plain answer, not binary frames.
  if (looksLikeHttp1(data)) {
    constexpr std::string_view kBody =
        "monocri serves gRPC over HTTP/2 with prior knowledge (h2c) on this socket, not "
        "HTTP/1.1\n";
    writeRaw(
        fmt::format("HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain\r\n"
                    "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                    kBody.size(), kBody));
    closeAfterWrites("HTTP/1.1 request on the gRPC socket");
    return true;
  }
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamInitialWindowBytes)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kMaxRequestHeaderListBytes},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindowBytes);
  return false;
}

void ServerConnection::onTransportClosed(std::string_view reason) {
  spdlog::debug("grpc connection {} closed: {}", id_, printableForLog(reason));
  handshakeTimer_.reset();
  releaseAllCalls();
  server_.release(this);
}

void ServerConnection::releaseAllCalls() {
  auto calls = std::move(calls_);
  calls_.clear();
  server_.openCalls_ -= calls.size();
  for (auto& [id, call] : calls) {
    if (call->reservedBytes_ != 0) server_.releaseRequestBytes(call->reservedBytes_);
    call->reservedBytes_ = 0;
    call->detach();
  }
  reservedRequestBytes_ = 0;
  waitingCalls_ = 0;
  waitingForBudget_.clear();
}

void ServerConnection::expireSlowRequests(uint64_t nowNs, uint64_t timeoutNs) {
  std::vector<std::shared_ptr<ServerCall>> slow;
  for (auto& [id, call] : calls_) {
    // A call waiting for request budget waits on the server, not on its client.
    if (!call->dispatched_ && !call->ended_ && !call->waitingForBudget_ &&
        nowNs - call->receiveSinceNs_ > timeoutNs) {
      slow.push_back(call);
    }
  }
  if (slow.empty()) return;
  SendScope scope(*this);
  for (auto& call : slow) {
    call->abort(Status(
        StatusCode::kDeadlineExceeded,
        fmt::format("the request did not arrive in full within {} ms", timeoutNs / 1'000'000)));
  }
}

void ServerConnection::forceClose(std::string_view reason) {
  closeTransport(reason);
}

nghttp2_session_callbacks* ServerConnection::callbacks() {
  static nghttp2_session_callbacks* const callbacks = [] {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onDataChunkRecv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, onFrameSend);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, onStreamClose);
    return cb;
  }();
  return callbacks;
}

nghttp2_option* ServerConnection::options() {
  static nghttp2_option* const options = [] {
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    // Window updates follow consumption, so a connection's buffered requests stay bounded.
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, kMaxOutboundAcks);
    nghttp2_option_set_max_settings(opt, kMaxSettingsEntries);
    nghttp2_option_set_max_continuations(opt, kMaxContinuations);
    nghttp2_option_set_stream_reset_rate_limit(opt, kStreamResetBurst, kStreamResetRatePerSecond);
    // No priority tree of closed streams: memory per connection stays proportional to open ones.
    nghttp2_option_set_no_closed_streams(opt, 1);
    // grpc-go clients on unix sockets (kubelet 1.26, crictl) send the socket path as :authority;
    // nghttp2's HTTP semantics checks reset such streams ('/' is not an authority character, see
    // tests/integration/test_fixture_replay.py). gRPC needs none of those checks: the request is
    // validated here instead (POST, a gRPC content-type, a known :path).
    nghttp2_option_set_no_http_messaging(opt, 1);
    return opt;
  }();
  return options;
}

}  // namespace monocri::grpc
