// monoctl's side of the streaming server's SPDY/3.1 protocol: what kubectl sends through
// kubelet (fixtures/README.md, "Notes for a SPDY/3.1 streaming server"). dial() connects to an
// Exec/Attach/PortForward URL and upgrades the connection; then the client opens streams,
// moves DATA and answers PINGs over a non-blocking socket driven by its owner's poll(2) loop:
//
//   for (;;) {
//     pollfd p{client.fd(), client.pollEvents(), 0};   // with the owner's other fds
//     poll(...);
//     client.handle(p.revents);                         // the Listener hears what came
//   }
//
// Neither side uses SPDY flow control (the Kubernetes peers do not), so back-pressure is the
// TCP window: the owner pauses reading while what it received is not yet written out, and stops
// feeding sendData() while queuedBytes() is high.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "exec/spdy/SpdyFrames.h"
#include "exec/spdy/SpdyHeaderBlock.h"
#include "monoctl/StreamTransport.h"

namespace monocri::monoctl {

// "http[s]://HOST[:PORT]/PATH": HOST a name, an IPv4 address or [an IPv6 address].
struct HttpUrl {
  bool tls = false;  // https
  std::string host;
  std::string port;  // "80" (https: "443") when the URL has none
  std::string path;  // from its '/', query included
};
// False with `error` set for anything else.
bool parseHttpUrl(std::string_view url, HttpUrl& out, std::string& error);

// An HTTP/1.1 response head: the status line and the header lines, CRLF-terminated.
struct HttpResponseHead {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // names as sent, values trimmed

  // The first value of `name` (compared case-insensitively), or nullptr.
  const std::string* find(std::string_view name) const;
};
// Parses `head` (up to and without the blank line's CRLF CRLF). Strict: "HTTP/1.x NNN reason",
// every line ends in CRLF, every header line is "token: value". False with `error` otherwise.
bool parseHttpResponseHead(std::string_view head, HttpResponseHead& out, std::string& error);

class SpdyClient final : private exec::spdy::SpdyFrameParser::Handler {
 public:
  // What the server says, stream by stream. Callbacks come from handle() (and start()); they
  // may call the client's senders, pauseReading() and goaway(), but must not destroy it.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void onReply(uint32_t streamId) = 0;
    // A DATA frame as it arrives, possibly in pieces; `fin` on the last piece of a FIN frame.
    virtual void onData(uint32_t streamId, std::string_view bytes, bool fin) = 0;
    virtual void onReset(uint32_t streamId, uint32_t status) = 0;
    virtual void onGoaway(uint32_t lastGoodStreamId, uint32_t status) = 0;
  };

  // The most a response head may take before the upgrade counts as failed.
  static constexpr size_t kMaxResponseHeadBytes = 16 * 1024;
  // The most of a refusal's body shown in the error.
  static constexpr size_t kMaxRefusalBodyBytes = 4 * 1024;
  // DATA payloads are sent in frames of at most this (kubectl: 32 KiB).
  static constexpr size_t kMaxDataFrameBytes = 32 * 1024;
  // Bytes read from the socket per handle().
  static constexpr size_t kReadChunkBytes = 64 * 1024;

  // Connects to `url` and asks to upgrade to SPDY/3.1 offering `protocols` (preference order,
  // one X-Stream-Protocol-Version line each), all within `timeout`. On success the client
  // speaks the version the server chose (protocol()); nullptr with `error` set otherwise:
  // "cannot connect to the streaming server at ...", "the streaming server refused: 404 Not
  // Found: ...", "... did not upgrade ...".
  // An https URL is dialed with TLS, checked as `tls` says.
  static std::unique_ptr<SpdyClient> dial(std::string_view url,
                                          const std::vector<std::string>& protocols,
                                          std::chrono::milliseconds timeout,
                                          const TlsClientOptions& tls, std::string& error);
  ~SpdyClient() override;
  SpdyClient(const SpdyClient&) = delete;
  SpdyClient& operator=(const SpdyClient&) = delete;

  const std::string& protocol() const { return protocol_; }

  // From here on the listener hears the server (frames that came with the 101 answer first).
  void start(Listener& listener);

  // Sends SYN_STREAM (flags 0, priority 0) on the next odd stream id, which it returns.
  uint32_t openStream(const exec::spdy::HeaderList& headers);
  // DATA on `streamId`; an empty `bytes` with `fin` is the half-close (one 0-length frame).
  void sendData(uint32_t streamId, std::string_view bytes, bool fin);
  void resetStream(uint32_t streamId, uint32_t status);
  // GOAWAY with last-good-stream 0 (the server opens no streams), as kubectl ends.
  void goaway();

  int fd() const { return transport_->fd(); }
  // POLLIN while reading (not paused, not at the end), POLLOUT while frames wait.
  short pollEvents() const;
  // Reads and parses what came, writes what waits, after poll() said `revents`.
  void handle(short revents);
  // Writes what waits, blocking up to `timeout`; true when all went out.
  bool flush(std::chrono::milliseconds timeout);

  void pauseReading(bool paused) { paused_ = paused; }
  size_t queuedBytes() const { return out_.size() - outOffset_; }

  // The server closed its side (EOF or reset), or what it sent could not be parsed.
  bool ended() const { return ended_; }
  // Why reading ended otherwise than by a clean EOF, for the user ("" for EOF).
  const std::string& endReason() const { return endReason_; }
  bool goawayReceived() const { return goawayReceived_; }
  // Writing failed (the server is gone): later frames are dropped.
  bool writeFailed() const { return writeFailed_; }

 private:
  SpdyClient(std::unique_ptr<StreamTransport> transport, std::string protocol, std::string early);

  void queue(std::string bytes);
  void writeSome();
  void readSome();
  void endReading(std::string reason);

  // ---- SpdyFrameParser::Handler ----
  void onSynStream(uint32_t streamId, uint32_t associatedId, uint8_t priority, bool fin,
                   bool unidirectional, exec::spdy::HeaderList headers) override;
  void onSynReply(uint32_t streamId, bool fin, exec::spdy::HeaderList headers) override;
  void onHeaders(uint32_t streamId, bool fin, exec::spdy::HeaderList headers) override;
  void onRstStream(uint32_t streamId, uint32_t status) override;
  void onSettings(std::vector<std::pair<uint32_t, uint32_t>> idValues) override;
  void onPing(uint32_t id) override;
  void onGoaway(uint32_t lastGoodStreamId, uint32_t status) override;
  void onWindowUpdate(uint32_t streamId, uint32_t delta) override;
  void onData(uint32_t streamId, std::string_view bytes, bool fin) override;

  std::unique_ptr<StreamTransport> transport_;
  std::string protocol_;
  std::string early_;  // bytes that came after the 101 head
  Listener* listener_ = nullptr;
  exec::spdy::SpdyFrameParser parser_;
  exec::spdy::HeaderBlockDeflater deflater_;
  uint32_t nextStreamId_ = 1;
  std::string out_;  // frames not yet written, from outOffset_
  size_t outOffset_ = 0;
  std::string readBuffer_;
  bool paused_ = false, ended_ = false, goawayReceived_ = false, goawaySent_ = false;
  bool writeFailed_ = false;
  std::string endReason_;
};

}  // namespace monocri::monoctl
