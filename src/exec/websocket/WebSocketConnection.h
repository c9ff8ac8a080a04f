// The server's side of a WebSocket connection (RFC 6455), on wslay's event API, without I/O of
// its own: the owner (the streaming server) feeds it the bytes it reads from the socket and
// writes to the socket the bytes takeOutput() gives. Used for `kubectl exec/attach/port-forward`
// over WebSocket (Kubernetes' channel.k8s.io protocols), after the HTTP/1.1 upgrade.
//
//   socket bytes ──feed()──▶ wslay (unmask, reassemble, check) ──▶ Handler::onMessage/onPeerClose
//                                 │ pongs, close replies, failure closes
//   send*() ──▶ wslay (frame) ────┴──▶ output ──takeOutput()──▶ socket
//
// What is answered without the owner: a ping with a pong carrying its payload; the peer's close
// with a close echoing its code; a protocol error (unmasked frame, reserved bit or opcode,
// misplaced continuation, malformed control frame or length, invalid close code) with close 1002;
// a message over maxMessageBytes with close 1009; invalid UTF-8 in a text message or close reason
// with close 1007. After a failure the connection takes no more bytes: the owner writes what
// takeOutput() gives and closes the socket.
//
// Output is serialized eagerly: whatever a call queues (a send, or a message fed, with what its
// handler sent) is framed before the call returns, so the bytes on the wire follow the order of
// the calls and a close never overtakes data sent before it.
//
// One thread; the handler may call send*() and takeOutput() from its callbacks, but must not
// call feed() or destroy the connection from them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

struct wslay_event_context;

namespace monocri::exec::ws {

// RFC 6455 section 1.3: the GUID appended to the client's key before hashing.
inline constexpr std::string_view kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Close codes (RFC 6455 section 7.4.1).
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseGoingAway = 1001;
inline constexpr uint16_t kCloseProtocolError = 1002;
inline constexpr uint16_t kCloseNoStatus = 1005;  // reported for a close without a code; not sent
inline constexpr uint16_t kCloseInvalidPayload = 1007;
inline constexpr uint16_t kClosePolicyViolation = 1008;
inline constexpr uint16_t kCloseMessageTooBig = 1009;
inline constexpr uint16_t kCloseInternalError = 1011;

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (the field value as received, without
// surrounding whitespace): base64(SHA-1(key + kAcceptGuid)).
std::string acceptKey(std::string_view secWebSocketKey);
// Whether a Sec-WebSocket-Key is valid: base64 of exactly 16 bytes (24 characters, "==" last).
bool validKey(std::string_view secWebSocketKey);

class WebSocketConnection {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // A whole message (wslay reassembles fragments), binary or text (valid UTF-8, checked);
    // bytes valid during the call.
    virtual void onMessage(bool binary, std::string_view payload) = 0;
    // The peer sent a close frame (already answered); code 1005 if it carried none.
    virtual void onPeerClose(uint16_t code, std::string_view reason) = 0;
  };

  // The largest message taken from the peer: a longer one fails the connection with close 1009.
  // wslay holds a message whole before handing it on (twice over while joining its fragments).
  static constexpr size_t kDefaultMaxMessageBytes = 1024 * 1024;
  // A control frame carries at most 125 bytes (RFC 6455 section 5.5); a close, 2 of them the code.
  static constexpr size_t kMaxControlPayloadBytes = 125;
  static constexpr size_t kMaxCloseReasonBytes = kMaxControlPayloadBytes - 2;

  // The server's side: incoming frames must be masked (wslay enforces it), outgoing are not.
  explicit WebSocketConnection(Handler& handler, size_t maxMessageBytes = kDefaultMaxMessageBytes);
  ~WebSocketConnection();
  WebSocketConnection(const WebSocketConnection&) = delete;
  WebSocketConnection& operator=(const WebSocketConnection&) = delete;

  // Feeds bytes read from the socket (split anywhere). Returns false once the connection failed;
  // error() says why, and takeOutput() gives the close frame with the matching code. Bytes after
  // the peer's close frame are ignored.
  bool feed(std::string_view bytes);

  // Queue a message (one frame). Dropped once a close was sent or the connection failed. A text
  // payload must be valid UTF-8 (not checked).
  void sendBinary(std::string_view payload);
  void sendText(std::string_view payload);
  // A ping (payload cut to kMaxControlPayloadBytes); the peer's pong is not reported.
  void sendPing(std::string_view payload);
  // Starts the closing handshake: no message is sent after it. Code 0 sends a close without a
  // code; the reason is cut to kMaxCloseReasonBytes (at a UTF-8 character boundary).
  void sendClose(uint16_t code, std::string_view reason);

  // Bytes to write to the socket now: whole frames for everything queued so far, pongs and
  // closes included; empty when nothing is pending.
  std::string takeOutput();
  // Bytes not yet returned by takeOutput (for back-pressure by the owner).
  size_t pendingBytes() const;

  // A close frame was sent (by sendClose(), as a reply to the peer's, or for a failure).
  bool closeSent() const;
  // The peer's close frame was received.
  bool closeReceived() const;
  // The close handshake is over (close both sent and received), or the connection failed: the
  // owner closes the socket once takeOutput() is empty.
  bool finished() const;
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }

 private:
  friend struct WslayCallbacks;

  // Hands wslay one piece of the frame stream: a frame's header, a whole control frame, or part of
  // a data frame's payload (see feed()).
  void receive(std::string_view piece);
  void queue(uint8_t opcode, std::string_view payload);
  // Frames everything wslay has queued into output_.
  void flush();
  void fail(std::string error);
  // After wslay_event_recv: a failure that wslay answered on its own (read disabled, no close
  // received) is recorded with the code of the close it queued.
  void noticeWslayFailure();

  Handler& handler_;
  const size_t maxMessageBytes_;
  wslay_event_context* ctx_ = nullptr;
  std::string_view input_;  // the piece being handed to wslay, what it has not taken yet
  // Where feed() is in the client's frame stream: the start of a frame being gathered (its header,
  // a control frame whole: at most 14 + 125 bytes), or the payload of a data frame.
  std::string held_;
  uint64_t payloadLeft_ = 0;
  std::string output_;
  bool inFeed_ = false;
  bool ownCloseQueued_ = false;   // sendClose() queued a close (before any failure)
  bool manualCloseSent_ = false;  // the close for a frame-level error, written here (see .cpp)
  bool failed_ = false;
  std::string error_;
};

}  // namespace monocri::exec::ws
