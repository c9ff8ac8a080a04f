#include "cri-bridge/grpc/Http2Transport.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cri-bridge/grpc/Http2Limits.h"

namespace monocri::grpc {

nghttp2_nv makeHeader(std::string_view name, std::string_view value) {
  return nghttp2_nv{
      reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())),
      name.size(),
      value.size(),
      NGHTTP2_NV_FLAG_NONE,
  };
}

Http2Transport::Http2Transport(loop::Loop& loop, loop::HandlePtr<loop::PipeStream> stream)
    : loop_(loop), stream_(std::move(stream)) {}

Http2Transport::~Http2Transport() {
  stream_.reset();
  if (session_ != nullptr) nghttp2_session_del(session_);
}

void Http2Transport::startReading() {
  int rc = stream_->startReading(
      [this](std::string_view data) { onRead(data); },
      [this](int status) {
        closeTransport(status == UV_EOF ? std::string("peer closed the connection")
                                        : fmt::format("read: {}", uv_strerror(status)));
      });
  if (rc != 0) closeTransport(fmt::format("start reading: {}", uv_strerror(rc)));
}

void Http2Transport::onRead(std::string_view data) {
  SendScope scope(*this);
  if (!receivedAnyBytes_) {
    receivedAnyBytes_ = true;
    if (onFirstBytes(data)) return;
  }
  ssize_t consumed = nghttp2_session_mem_recv(
      session_, reinterpret_cast<const uint8_t*>(data.data()), data.size());
  if (consumed >= 0 || closed_) return;
  // Fatal for the session (bad preface, flood, memory): nothing more can be said on it.
  closeTransport(fmt::format("HTTP/2: {}", nghttp2_strerror(static_cast<int>(consumed))));
}

void Http2Transport::scheduleFlush() {
  if (closed_ || flushScheduled_ || sendScopeDepth_ > 0) return;
  flushScheduled_ = true;
  loop_.defer(lifetime_.watch(), [this] {
    flushScheduled_ = false;
    flush();
  });
}

void Http2Transport::flush() {
  if (closed_ || closingAfterWrites_ || !connected_ || sendScopeDepth_ > 0) return;
  std::string out;
  while (stream_->writeQueueBytes() + out.size() < kMaxPendingWriteBytes) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (closed_) return;
    if (n < 0) {
      closeTransport(fmt::format("HTTP/2 send: {}", nghttp2_strerror(static_cast<int>(n))));
      return;
    }
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  if (!out.empty()) {
    if (int rc = stream_->write(std::move(out), [this](int status) { onWriteDone(status); });
        rc != 0) {
      closeTransport(fmt::format("write: {}", uv_strerror(rc)));
      return;
    }
  }
  if (stream_->writeQueueBytes() >= kMaxPendingWriteBytes) pauseReadingForWrites();
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
    closeAfterWrites("HTTP/2 session finished");
  }
}

void Http2Transport::pauseReadingForWrites() {
  if (readingPausedForWrites_) return;
  readingPausedForWrites_ = true;
  stream_->stopReading();
}

void Http2Transport::onWriteDone(int status) {
  if (closed_) return;
  if (status != 0) {
    closeTransport(fmt::format("write: {}", uv_strerror(status)));
    return;
  }
  if (readingPausedForWrites_ && stream_->writeQueueBytes() < kMaxPendingWriteBytes / 2) {
    readingPausedForWrites_ = false;
    if (!closingAfterWrites_) stream_->resumeReading();
  }
  flush();
}

void Http2Transport::writeRaw(std::string bytes) {
  if (closed_) return;
  if (int rc = stream_->write(std::move(bytes)); rc != 0) {
    closeTransport(fmt::format("write: {}", uv_strerror(rc)));
  }
}

void Http2Transport::closeAfterWrites(std::string_view reason) {
  if (closed_ || closingAfterWrites_) return;
  closingAfterWrites_ = true;
  closeReason_ = reason;
  stream_->stopReading();
  int rc = stream_->shutdown([this](int) { closeTransport(closeReason_); });
  if (rc != 0) {
    closeTransport(closeReason_);
    return;
  }
  // uv_shutdown waits for queued writes, which a peer that does not read never takes.
  closeDrainTimer_ = loop::Timer::create(loop_, "http2 close drain");
  closeDrainTimer_->start(kCloseDrainTimeoutMs, 0, [this] {
    closeReason_ += " (the peer did not read its last frames)";
    closeTransport(closeReason_);
  });
}

void Http2Transport::closeTransport(std::string_view reason) {
  if (closed_) return;
  closed_ = true;
  std::string why(reason);  // `reason` may point into closeReason_ or the stream
  stream_.reset();
  closeDrainTimer_.reset();
  onTransportClosed(why);
}

}  // namespace monocri::grpc
