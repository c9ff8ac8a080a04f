// Moves bytes between a unix socket and an nghttp2 session; the base of the server's and the
// client's connections.
//
// Output is batched: nghttp2_submit_* calls made inside a SendScope, or any number of them in
// one loop turn (scheduleFlush), leave in one socket write. Writes are bounded: past
// kMaxPendingWriteBytes the transport stops reading and producing frames until the peer reads.
#pragma once

#include <nghttp2/nghttp2.h>

#include <memory>
#include <string>
#include <string_view>

#include "loop/Loop.h"
#include "loop/PipeStream.h"
#include "loop/Timer.h"

namespace monocri::grpc {

class Http2Transport {
 public:
  Http2Transport(const Http2Transport&) = delete;
  Http2Transport& operator=(const Http2Transport&) = delete;

  bool closed() const { return closed_; }
  // The peer has sent at least one byte.
  bool peerSpoke() const { return receivedAnyBytes_; }
  loop::Loop& loop() const { return loop_; }

 protected:
  Http2Transport(loop::Loop& loop, loop::HandlePtr<loop::PipeStream> stream);
  virtual ~Http2Transport();

  // Starts reading once the subclass has created session_ (its callbacks' user_data = this).
  void startReading();
  // Client side: the socket is not connected yet; output waits until it is.
  void setConnected(bool connected) { connected_ = connected; }

  // Everything submitted while a scope is open leaves in one write when the outermost closes.
  class SendScope {
   public:
    explicit SendScope(Http2Transport& transport) : transport_(transport) {
      ++transport_.sendScopeDepth_;
    }
    ~SendScope() {
      if (--transport_.sendScopeDepth_ == 0) transport_.flush();
    }
    SendScope(const SendScope&) = delete;
    SendScope& operator=(const SendScope&) = delete;

   private:
    Http2Transport& transport_;
  };

  // After a submit made outside a SendScope: flushes at the end of the loop turn.
  void scheduleFlush();
  void flush();

  // Closes the socket at once (pending output is dropped) and calls onTransportClosed once.
  void closeTransport(std::string_view reason);
  // Writes what is pending, then closes.
  void closeAfterWrites(std::string_view reason);
  // Writes raw bytes, bypassing nghttp2 (used for an HTTP/1.1 answer before closing).
  void writeRaw(std::string bytes);

  // The connection is gone: calls must be failed or cancelled, and the owner told.
  virtual void onTransportClosed(std::string_view reason) = 0;
  // The first bytes the peer sent, before nghttp2 sees them. Return true if the subclass took
  // over the connection (e.g. answered an HTTP/1.1 request).
  virtual bool onFirstBytes(std::string_view /*data*/) { return false; }

  loop::Loop& loop_;
  nghttp2_session* session_ = nullptr;
  loop::HandlePtr<loop::PipeStream> stream_;

 private:
  void onRead(std::string_view data);
  void onWriteDone(int status);
  void pauseReadingForWrites();

  std::string closeReason_;
  loop::HandlePtr<loop::Timer> closeDrainTimer_;  // bounds closeAfterWrites for non-readers
  loop::LifetimeGuard lifetime_;                  // deferred flushes may outlive the transport
  bool connected_ = true;
  bool closed_ = false;
  bool closingAfterWrites_ = false;
  bool readingPausedForWrites_ = false;
  bool flushScheduled_ = false;
  bool receivedAnyBytes_ = false;
  int sendScopeDepth_ = 0;
};

// nghttp2 header field from two views (nghttp2 copies names and values on submit).
nghttp2_nv makeHeader(std::string_view name, std::string_view value);

}  // namespace monocri::grpc
