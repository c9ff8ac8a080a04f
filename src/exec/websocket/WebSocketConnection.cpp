#include "exec/websocket/WebSocketConnection.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <utility>

namespace monocri::exec::ws {

namespace {

// A server's close frame for a protocol error: FIN + close opcode, unmasked, 2 bytes, 1002.
constexpr char kProtocolErrorClose[] = {'\x88', '\x02', '\x03', '\xea'};

[[noreturn]] void outOfMemory(const char* operation) {
  std::fprintf(stderr, "websocket: %s: out of memory\n", operation);
  std::abort();
}

bool isBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// At most `limit` bytes of `text`, not cutting a UTF-8 character in two.
std::string_view cutUtf8(std::string_view text, size_t limit) {
  if (text.size() <= limit) return text;
  size_t n = limit;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xc0) == 0x80)
    --n;
  return text.substr(0, n);
}

// The start of a frame, RFC 6455 section 5.2: 2 bytes, the extended payload length (2 or 8
// bytes) if the 7-bit one is 126 or 127, the masking key (4 bytes) if the mask bit is set.
size_t headerBytes(std::string_view frame) {
  const uint8_t b1 = static_cast<uint8_t>(frame[1]);
  const uint8_t length7 = b1 & 0x7f;
  return 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
}

uint64_t payloadBytes(std::string_view header) {
  const uint8_t length7 = static_cast<uint8_t>(header[1]) & 0x7f;
  if (length7 < 126) return length7;
  uint64_t length = 0;
  for (size_t i = 0; i < (length7 == 126 ? 2u : 8u); ++i)
    length = length << 8 | static_cast<uint8_t>(header[2 + i]);
  return length;
}

// How much of a frame feed() gathers before handing it to wslay: the header, and a control
// frame's payload with it (one over 125 bytes wslay refuses on its header).
size_t bytesToGather(std::string_view frame) {
  if (frame.size() < 2) return 2;
  const size_t header = headerBytes(frame);
  const bool control = static_cast<uint8_t>(frame[0]) & 0x08;
  const uint8_t length7 = static_cast<uint8_t>(frame[1]) & 0x7f;
  return control && length7 <= 125 ? header + length7 : header;
}

std::string_view bytesOf(const uint8_t* data, size_t length) {
  if (length == 0) return {};
  return {reinterpret_cast<const char*>(data), length};
}

}  // namespace

std::string acceptKey(std::string_view secWebSocketKey) {
  std::string input(secWebSocketKey);
  input += kAcceptGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];  // with EVP's NUL
  const int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<size_t>(n));
}

bool validKey(std::string_view secWebSocketKey) {
  // 16 bytes are 5 groups of 3 (20 characters) and one byte (2 characters and "=="). The last
  // character's 4 unused bits are not required to be zero: the key still decodes to 16 bytes.
  if (secWebSocketKey.size() != 24 || secWebSocketKey.substr(22) != "==") return false;
  return std::all_of(secWebSocketKey.begin(), secWebSocketKey.begin() + 22, isBase64Char);
}

// wslay's callbacks. None may throw into wslay's C code: the handler's exceptions are caught and
// fail the connection; running out of memory while appending output terminates (noexcept), as
// everywhere else in the daemon.
struct WslayCallbacks {
  static WebSocketConnection& self(void* userData) {
    return *static_cast<WebSocketConnection*>(userData);
  }

  // Hands wslay the bytes of the feed() in progress; "would block" once they are all taken.
  static ssize_t recv(wslay_event_context_ptr ctx, uint8_t* buf, size_t len, int /*flags*/,
                      void* userData) noexcept {
    WebSocketConnection& c = self(userData);
    if (c.input_.empty()) {
      wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }
    const size_t n = std::min(len, c.input_.size());
    std::memcpy(buf, c.input_.data(), n);
    c.input_.remove_prefix(n);
    return static_cast<ssize_t>(n);
  }

  // Takes everything: output is kept until takeOutput(), the owner watches pendingBytes().
  static ssize_t send(wslay_event_context_ptr /*ctx*/, const uint8_t* data, size_t len,
                      int /*flags*/, void* userData) noexcept {
    self(userData).output_.append(reinterpret_cast<const char*>(data), len);
    return static_cast<ssize_t>(len);
  }

  // Only a client masks its frames: never called for a server context.
  static int genmask(wslay_event_context_ptr /*ctx*/, uint8_t* buf, size_t len,
                     void* /*userData*/) noexcept {
    std::memset(buf, 0, len);
    return 0;
  }

  // A whole message. The replies wslay queued for it (pong, close) and whatever the handler sent
  // are framed before the next message is read: output does not depend on how input was split,
  // and a close queued later cannot overtake them (wslay sends queued control frames first and
  // drops the rest of its queue once a close is out).
  static void onMessage(wslay_event_context_ptr /*ctx*/, const wslay_event_on_msg_recv_arg* arg,
                        void* userData) noexcept {
    WebSocketConnection& c = self(userData);
    const std::string_view payload = bytesOf(arg->msg, arg->msg_length);
    try {
      switch (arg->opcode) {
        case WSLAY_TEXT_FRAME:
          c.handler_.onMessage(false, payload);
          break;
        case WSLAY_BINARY_FRAME:
          c.handler_.onMessage(true, payload);
          break;
        case WSLAY_CONNECTION_CLOSE:
          c.handler_.onPeerClose(arg->status_code == 0 ? kCloseNoStatus : arg->status_code,
                                 payload.size() > 2 ? payload.substr(2) : std::string_view());
          break;
        default:  // a ping (wslay queued the pong) or a pong
          break;
      }
    } catch (const std::exception& e) {
      failInternally(c, std::string("handler failed: ") + e.what());
    } catch (...) {
      failInternally(c, "handler failed: unknown exception");
    }
    c.flush();
  }

  // Fails the connection from inside wslay_event_recv: close 1011, and no more reading.
  static void failInternally(WebSocketConnection& c, std::string error) {
    if (c.failed_) return;
    c.fail(std::move(error));
    const int rv = wslay_event_queue_close(c.ctx_, kCloseInternalError, nullptr, 0);
    if (rv == WSLAY_ERR_NOMEM) outOfMemory("wslay_event_queue_close");
    wslay_event_shutdown_read(c.ctx_);  // ends wslay_event_recv's loop
  }
};

WebSocketConnection::WebSocketConnection(Handler& handler, size_t maxMessageBytes)
    : handler_(handler), maxMessageBytes_(maxMessageBytes) {
  wslay_event_callbacks callbacks{};
  callbacks.recv_callback = &WslayCallbacks::recv;
  callbacks.send_callback = &WslayCallbacks::send;
  callbacks.genmask_callback = &WslayCallbacks::genmask;
  callbacks.on_msg_recv_callback = &WslayCallbacks::onMessage;
  if (wslay_event_context_server_init(&ctx_, &callbacks, this) != 0) {
    outOfMemory("wslay_event_context_server_init");
  }
  wslay_event_config_set_max_recv_msg_length(ctx_, maxMessageBytes_);
}

WebSocketConnection::~WebSocketConnection() {
  wslay_event_context_free(ctx_);
}

// wslay is handed each frame's header in one piece and each control frame whole, and a data
// frame's payload as it comes. A frame's header then never shares wslay's 4 KiB read buffer with
// an earlier frame's payload, so a control frame reaches wslay's message layer in one chunk. This
// matters for close frames: wslay 1.1.1 checks the reason's UTF-8 from the third byte of each
// chunk rather than of the payload, and would otherwise refuse a valid close whose reason was
// split (or take an invalid one) depending on how the bytes arrived.
bool WebSocketConnection::feed(std::string_view bytes) {
  if (failed_) return false;
  if (inFeed_) {
    std::fprintf(stderr, "websocket: feed() called from a handler callback\n");
    std::abort();
  }
  inFeed_ = true;
  // Reading stops after the peer's close (later bytes are ignored) or a failure.
  while (!failed_ && wslay_event_get_read_enabled(ctx_)) {
    if (payloadLeft_ > 0) {
      if (bytes.empty()) break;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(payloadLeft_, bytes.size()));
      payloadLeft_ -= n;
      receive(bytes.substr(0, n));
      bytes.remove_prefix(n);
      continue;
    }
    for (size_t need = bytesToGather(held_); held_.size() < need && !bytes.empty();
         need = bytesToGather(held_)) {
      const size_t n = std::min(need - held_.size(), bytes.size());
      held_.append(bytes.substr(0, n));
      bytes.remove_prefix(n);
    }
    if (held_.size() < bytesToGather(held_)) break;  // the rest comes with a later feed()
    payloadLeft_ = payloadBytes(held_) - (held_.size() - headerBytes(held_));
    receive(held_);
    held_.clear();
  }
  inFeed_ = false;
  flush();
  noticeWslayFailure();
  return !failed_;
}

void WebSocketConnection::receive(std::string_view piece) {
  input_ = piece;
  // wslay_event_recv reads until the recv callback would block (every byte taken) or reading is
  // disabled.
  const int rv = wslay_event_recv(ctx_);
  const size_t left = input_.size();
  input_ = {};
  if (rv == WSLAY_ERR_NOMEM) outOfMemory("wslay_event_recv");
  if (rv != 0) {
    // WSLAY_ERR_CALLBACK_FAILURE, though the recv callback never fails: wslay's frame parser
    // refused a header (a control frame over 125 bytes or fragmented, a length not in its
    // shortest form or over 2^63). wslay queued a close without a code for it; the peer is told
    // 1002 instead, by a frame written here, after which wslay writes nothing more.
    if (!failed_ && !closeSent()) {
      wslay_event_shutdown_write(ctx_);
      output_.append(kProtocolErrorClose, sizeof(kProtocolErrorClose));
      manualCloseSent_ = true;
    }
    if (!failed_) {
      fail(
          "protocol error: a control frame over 125 bytes or fragmented, or a payload length "
          "not in its shortest form");
    }
    return;
  }
  if (left > 0 && !failed_ && wslay_event_get_read_enabled(ctx_)) {
    // wslay's read buffer is empty when a piece starts, and no piece it must take whole is
    // bigger than it: not expected, but the frame stream would be lost from here.
    WslayCallbacks::failInternally(*this, "internal error: wslay left bytes unread");
  }
}

void WebSocketConnection::noticeWslayFailure() {
  if (failed_ || wslay_event_get_read_enabled(ctx_) || wslay_event_get_close_received(ctx_)) {
    return;
  }
  // wslay stopped reading on its own: it queued a close with the code of the failure (flushed
  // by now), unless ours had been queued before.
  if (ownCloseQueued_) {
    fail("protocol error from the peer during the closing handshake");
    return;
  }
  const uint16_t code = wslay_event_get_status_code_sent(ctx_);
  switch (code) {
    case kCloseProtocolError:
      fail(
          "protocol error: an unmasked frame, a reserved bit or opcode, a misplaced "
          "continuation frame, or an invalid close code (close 1002)");
      break;
    case kCloseInvalidPayload:
      fail("invalid UTF-8 in a text message or a close reason (close 1007)");
      break;
    case kCloseMessageTooBig:
      fail("a message over the limit of " + std::to_string(maxMessageBytes_) +
           " bytes (close 1009)");
      break;
    default:
      fail("wslay failed the connection (close " + std::to_string(code) + ")");
      break;
  }
}

void WebSocketConnection::fail(std::string error) {
  failed_ = true;
  error_ = std::move(error);
}

void WebSocketConnection::flush() {
  if (!wslay_event_want_write(ctx_)) return;
  // The send callback takes every byte, so one call frames everything queued.
  if (wslay_event_send(ctx_) != 0) outOfMemory("wslay_event_send");
}

void WebSocketConnection::queue(uint8_t opcode, std::string_view payload) {
  if (failed_) return;
  wslay_event_msg msg{opcode, reinterpret_cast<const uint8_t*>(payload.data()), payload.size()};
  const int rv = wslay_event_queue_msg(ctx_, &msg);
  if (rv == WSLAY_ERR_NOMEM) outOfMemory("wslay_event_queue_msg");
  // WSLAY_ERR_NO_MORE_MSG: a close was queued, nothing may follow it.
  if (rv == 0) flush();
}

void WebSocketConnection::sendBinary(std::string_view payload) {
  queue(WSLAY_BINARY_FRAME, payload);
}

void WebSocketConnection::sendText(std::string_view payload) {
  queue(WSLAY_TEXT_FRAME, payload);
}

void WebSocketConnection::sendPing(std::string_view payload) {
  queue(WSLAY_PING, payload.substr(0, kMaxControlPayloadBytes));
}

void WebSocketConnection::sendClose(uint16_t code, std::string_view reason) {
  if (failed_) return;
  reason = code == 0 ? std::string_view() : cutUtf8(reason, kMaxCloseReasonBytes);
  const int rv = wslay_event_queue_close(
      ctx_, code, reinterpret_cast<const uint8_t*>(reason.data()), reason.size());
  if (rv == WSLAY_ERR_NOMEM) outOfMemory("wslay_event_queue_close");
  if (rv == 0) {  // else WSLAY_ERR_NO_MORE_MSG: a close was queued already
    ownCloseQueued_ = true;
    flush();
  }
}

std::string WebSocketConnection::takeOutput() {
  flush();
  return std::exchange(output_, std::string());
}

// Everything queued is framed into output_ at once: wslay's queue is empty between calls.
size_t WebSocketConnection::pendingBytes() const {
  return output_.size();
}

bool WebSocketConnection::closeSent() const {
  return manualCloseSent_ || wslay_event_get_close_sent(ctx_) != 0;
}

bool WebSocketConnection::closeReceived() const {
  return wslay_event_get_close_received(ctx_) != 0;
}

bool WebSocketConnection::finished() const {
  return failed_ || (closeSent() && closeReceived());
}

}  // namespace monocri::exec::ws
