// The server's side of WebSocket (RFC 6455): client frames are built here by an encoder of the
// test's own (section 5.2), server frames checked by a decoder of its own, and, when Debian's
// python3-websocket is there, both by an independent client library.
#include "exec/websocket/WebSocketConnection.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace monocri::exec::ws {
namespace {

constexpr uint8_t kContinuation = 0x0;
constexpr uint8_t kText = 0x1;
constexpr uint8_t kBinary = 0x2;
constexpr uint8_t kClose = 0x8;
constexpr uint8_t kPing = 0x9;
constexpr uint8_t kPong = 0xa;

// ---- a client's frames, RFC 6455 section 5.2 ----
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-------+-+-------------+-------------------------------+
//  |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//  |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//  |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//  | |1|2|3|       |K|             |                               |
//  +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//  |     Extended payload length continued, if payload len == 127  |
//  + - - - - - - - - - - - - - - - +-------------------------------+
//  |                               |Masking-key, if MASK set to 1  |
//  +-------------------------------+-------------------------------+
//  | Masking-key (continued)       |          Payload Data         |
//  +-------------------------------- - - - - - - - - - - - - - - - +
struct FrameOptions {
  bool fin = true;
  uint8_t rsv = 0;  // RSV1..3 as bits 2..0
  bool masked = true;
  std::array<uint8_t, 4> key{0x37, 0xfa, 0x21, 0x3d};
  int extendedLengthBytes = -1;  // 0, 2 or 8; -1: the shortest form
};

std::string frame(uint8_t opcode, std::string_view payload, FrameOptions options = {}) {
  std::string out;
  out += static_cast<char>((options.fin ? 0x80 : 0) | (options.rsv << 4) | opcode);
  const uint64_t n = payload.size();
  int ext = options.extendedLengthBytes;
  if (ext < 0) ext = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const uint8_t mask = options.masked ? 0x80 : 0;
  if (ext == 0) {
    out += static_cast<char>(mask | n);
  } else {
    out += static_cast<char>(mask | (ext == 2 ? 126 : 127));
    for (int i = ext - 1; i >= 0; --i)
      out += static_cast<char>((n >> (8 * i)) & 0xff);
  }
  if (options.masked) {
    for (uint8_t b : options.key)
      out += static_cast<char>(b);
  }
  for (size_t i = 0; i < payload.size(); ++i) {
    const uint8_t b = static_cast<uint8_t>(payload[i]);
    out += static_cast<char>(options.masked ? b ^ options.key[i % 4] : b);
  }
  return out;
}

std::string closePayload(uint16_t code, std::string_view reason = {}) {
  std::string out{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
  out += reason;
  return out;
}

// ---- the server's frames, decoded and checked against what RFC 6455 requires of them ----
struct ServerFrame {
  bool fin = false;
  uint8_t rsv = 0;
  uint8_t opcode = 0;
  size_t headerBytes = 0;
  std::string payload;

  uint16_t closeCode() const {
    if (payload.size() < 2) return 1005;
    return static_cast<uint16_t>(static_cast<uint8_t>(payload[0]) << 8 |
                                 static_cast<uint8_t>(payload[1]));
  }
  std::string closeReason() const { return payload.size() > 2 ? payload.substr(2) : ""; }
};

std::vector<ServerFrame> decode(std::string_view bytes) {
  std::vector<ServerFrame> frames;
  size_t at = 0;
  while (at < bytes.size()) {
    auto byte = [&](size_t i) { return static_cast<uint8_t>(bytes[at + i]); };
    if (bytes.size() - at < 2) {
      ADD_FAILURE() << "a cut frame header";
      break;
    }
    ServerFrame f;
    f.fin = byte(0) & 0x80;
    f.rsv = (byte(0) >> 4) & 7;
    f.opcode = byte(0) & 0x0f;
    EXPECT_EQ(byte(1) & 0x80, 0) << "a server's frame is never masked";
    uint64_t n = byte(1) & 0x7f;
    size_t header = 2;
    if (n == 126 || n == 127) {
      const size_t ext = n == 126 ? 2 : 8;
      if (bytes.size() - at < 2 + ext) {
        ADD_FAILURE() << "a cut extended length";
        break;
      }
      n = 0;
      for (size_t i = 0; i < ext; ++i)
        n = n << 8 | byte(2 + i);
      EXPECT_GE(n, ext == 2 ? 126u : 65536u) << "a length not in its shortest form";
      header += ext;
    }
    if (bytes.size() - at - header < n) {
      ADD_FAILURE() << "a cut payload";
      break;
    }
    f.headerBytes = header;
    f.payload = std::string(bytes.substr(at + header, n));
    if (f.opcode >= 8) {
      EXPECT_LE(n, 125u) << "a control frame over 125 bytes";
    }
    at += header + n;
    frames.push_back(std::move(f));
  }
  return frames;
}

// ---- the handler ----
struct Event {
  enum Kind { kTextMessage, kBinaryMessage, kPeerClose } kind;
  std::string payload;  // or the close reason
  uint16_t code = 0;
  bool operator==(const Event&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Event& e) {
  return os << "{kind " << e.kind << ", " << e.payload.size() << " bytes, code " << e.code << "}";
}

class Recorder : public WebSocketConnection::Handler {
 public:
  void onMessage(bool binary, std::string_view payload) override {
    events.push_back({binary ? Event::kBinaryMessage : Event::kTextMessage, std::string(payload)});
    if (whenMessage) whenMessage(binary, payload);
  }
  void onPeerClose(uint16_t code, std::string_view reason) override {
    events.push_back({Event::kPeerClose, std::string(reason), code});
    if (whenPeerClose) whenPeerClose();
  }

  std::vector<Event> events;
  std::function<void(bool, std::string_view)> whenMessage;
  std::function<void()> whenPeerClose;
};

Event text(std::string s) {
  return {Event::kTextMessage, std::move(s)};
}
Event binary(std::string s) {
  return {Event::kBinaryMessage, std::move(s)};
}
Event peerClose(uint16_t code, std::string reason = "") {
  return {Event::kPeerClose, std::move(reason), code};
}

// Feeds `bytes` in pieces of `piece` bytes (0: whole); false if a feed() said so.
bool feedInPieces(WebSocketConnection& c, std::string_view bytes, size_t piece) {
  if (piece == 0) return c.feed(bytes);
  bool ok = true;
  for (size_t at = 0; at < bytes.size(); at += piece)
    ok = c.feed(bytes.substr(at, piece)) && ok;
  return ok;
}

std::string pattern(size_t n, uint32_t seed = 1) {
  std::minstd_rand random(seed);
  std::string out(n, '\0');
  for (char& c : out)
    c = static_cast<char>(random());
  return out;
}

// A connection that failed: feed() said so, and the one thing left to write is a close frame
// with `code`.
void expectFailedWith(WebSocketConnection& c, uint16_t code) {
  EXPECT_TRUE(c.failed());
  EXPECT_TRUE(c.finished());
  EXPECT_TRUE(c.closeSent());
  EXPECT_FALSE(c.error().empty());
  const auto frames = decode(c.takeOutput());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, kClose);
  EXPECT_EQ(frames[0].closeCode(), code) << c.error();
  EXPECT_EQ(c.takeOutput(), "");
  EXPECT_EQ(c.pendingBytes(), 0u);
}

// ---- the handshake's keys ----

TEST(WebSocketKey, AcceptKeyIsRfc6455sExample) {
  // RFC 6455 sections 1.3 and 4.2.2 (and Python's hashlib/base64 agree).
  EXPECT_EQ(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketKey, AcceptKeyOfAnotherKey) {
  // From Python: base64.b64encode(hashlib.sha1(b"x3JJHMbDL1EzLkh9GBhXDw==" + GUID).digest())
  EXPECT_EQ(acceptKey("x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST(WebSocketKey, ValidIsBase64OfSixteenBytes) {
  EXPECT_TRUE(validKey("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_TRUE(validKey("AAAAAAAAAAAAAAAAAAAAAA=="));
  EXPECT_TRUE(validKey("+/+/+/+/+/+/+/+/+/+/+w=="));
  EXPECT_FALSE(validKey(""));
  EXPECT_FALSE(validKey("dGhlIHNhbXBsZSBub25jZQ="));    // 23 characters
  EXPECT_FALSE(validKey("dGhlIHNhbXBsZSBub25jZQ==="));  // 25
  EXPECT_FALSE(validKey("dGhlIHNhbXBsZSBub25jZQAA"));   // 18 bytes, no padding
  EXPECT_FALSE(validKey("dGhlIHNhbXBsZSBub25jZWE="));   // 17 bytes
  EXPECT_FALSE(validKey("dGhlIHNhbXBsZSBub25j=Q=="));   // '=' inside
  EXPECT_FALSE(validKey("dGhlIHNhbXBsZSBub25jZ-=="));   // base64url, not base64
  EXPECT_FALSE(validKey(" dGhlIHNhbXBsZSBub25jZQ=="));  // whitespace is the HTTP parser's
  EXPECT_FALSE(validKey("dGhlIHNhbXBsZSBub25jZQ==\r"));
}

// ---- messages from the client ----

TEST(WebSocketConnection, TakesMaskedMessagesWholeAndByteByByte) {
  const std::string bytes = frame(kText, "hello") + frame(kBinary, std::string("\0\x01\xff", 3)) +
                            frame(kText, "") + frame(kBinary, pattern(300)) +
                            frame(kText, "caf\xc3\xa9 \xe2\x82\xac", {.key = {0, 0, 0, 0}});
  const std::vector<Event> expected{text("hello"), binary(std::string("\0\x01\xff", 3)), text(""),
                                    binary(pattern(300)), text("caf\xc3\xa9 \xe2\x82\xac")};
  for (size_t piece : {0, 1, 2, 3, 7, 64}) {
    Recorder handler;
    WebSocketConnection c(handler);
    EXPECT_TRUE(feedInPieces(c, bytes, piece));
    EXPECT_EQ(handler.events, expected) << "pieces of " << piece;
    EXPECT_FALSE(c.failed());
    EXPECT_FALSE(c.finished());
    EXPECT_EQ(c.takeOutput(), "");
  }
}

TEST(WebSocketConnection, JoinsA200KiBMessageSentInThreeFragments) {
  const std::string message = pattern(200 * 1024, 7);
  const std::string bytes =
      frame(kBinary, std::string_view(message).substr(0, 1000), {.fin = false}) +
      frame(kContinuation, std::string_view(message).substr(1000, 130000), {.fin = false}) +
      frame(kContinuation, std::string_view(message).substr(131000), {.key = {1, 2, 3, 4}});
  for (size_t piece : {0, 1, 4096, 65537}) {
    Recorder handler;
    WebSocketConnection c(handler);
    EXPECT_TRUE(feedInPieces(c, bytes, piece));
    ASSERT_EQ(handler.events.size(), 1u) << "pieces of " << piece;
    EXPECT_TRUE(handler.events[0] == binary(message));
  }
}

TEST(WebSocketConnection, JoinsATextMessageWhoseCharactersStraddleFragments) {
  // "é€" with each character cut between two fragments.
  const std::string bytes = frame(kText, "caf\xc3", {.fin = false}) +
                            frame(kContinuation, "\xa9\xe2\x82", {.fin = false}) +
                            frame(kContinuation, "\xac!");
  Recorder handler;
  WebSocketConnection c(handler);
  EXPECT_TRUE(feedInPieces(c, bytes, 1));
  EXPECT_EQ(handler.events, std::vector<Event>{text("caf\xc3\xa9\xe2\x82\xac!")});
}

TEST(WebSocketConnection, AnswersAPingWithAPongCarryingItsPayload) {
  for (const std::string& payload : {std::string(), std::string("are you there"), pattern(125)}) {
    Recorder handler;
    WebSocketConnection c(handler);
    EXPECT_TRUE(c.feed(frame(kPing, payload)));
    EXPECT_GT(c.pendingBytes(), 0u);
    const auto frames = decode(c.takeOutput());
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].opcode, kPong);
    EXPECT_TRUE(frames[0].fin);
    EXPECT_EQ(frames[0].payload, payload);
    EXPECT_TRUE(handler.events.empty());
    EXPECT_EQ(c.pendingBytes(), 0u);
  }
}

TEST(WebSocketConnection, AnswersAPingBetweenTheFragmentsOfAMessage) {
  const std::string bytes = frame(kText, "one ", {.fin = false}) + frame(kPing, "p") +
                            frame(kPong, "unsolicited") + frame(kContinuation, "two");
  for (size_t piece : {0, 1}) {
    Recorder handler;
    WebSocketConnection c(handler);
    EXPECT_TRUE(feedInPieces(c, bytes, piece));
    EXPECT_EQ(handler.events, std::vector<Event>{text("one two")});
    const auto frames = decode(c.takeOutput());
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].opcode, kPong);
    EXPECT_EQ(frames[0].payload, "p");
  }
}

// ---- messages to the client ----

TEST(WebSocketConnection, FramesMessagesUnmaskedInTheShortestLengthForm) {
  struct Case {
    size_t size;
    size_t headerBytes;
  };
  for (const Case& tc : {Case{0, 2}, Case{1, 2}, Case{125, 2}, Case{126, 4}, Case{65535, 4},
                         Case{65536, 10}, Case{200000, 10}}) {
    Recorder handler;
    WebSocketConnection c(handler);
    const std::string payload = pattern(tc.size, static_cast<uint32_t>(tc.size));
    c.sendBinary(payload);
    c.sendText("t");
    EXPECT_EQ(c.pendingBytes(), tc.headerBytes + tc.size + 3);
    const std::string out = c.takeOutput();
    EXPECT_EQ(out.size(), tc.headerBytes + tc.size + 3);
    const auto frames = decode(out);
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0].opcode, kBinary);
    EXPECT_TRUE(frames[0].fin);
    EXPECT_EQ(frames[0].rsv, 0);
    EXPECT_EQ(frames[0].headerBytes, tc.headerBytes) << tc.size << " bytes";
    EXPECT_TRUE(frames[0].payload == payload);
    EXPECT_EQ(frames[1].opcode, kText);
    EXPECT_EQ(frames[1].payload, "t");
    EXPECT_EQ(c.pendingBytes(), 0u);
    EXPECT_EQ(c.takeOutput(), "");
  }
}

TEST(WebSocketConnection, SendsPingsCutToAControlFramesSize) {
  Recorder handler;
  WebSocketConnection c(handler);
  c.sendPing("keepalive");
  c.sendPing(pattern(300));
  const auto frames = decode(c.takeOutput());
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].opcode, kPing);
  EXPECT_EQ(frames[0].payload, "keepalive");
  EXPECT_EQ(frames[1].payload, pattern(300).substr(0, 125));
  EXPECT_TRUE(c.feed(frame(kPong, "keepalive")));  // not reported
  EXPECT_TRUE(handler.events.empty());
}

TEST(WebSocketConnection, KeepsTheOrderOfWhatWasSent) {
  Recorder handler;
  WebSocketConnection c(handler);
  c.sendText("first");
  EXPECT_TRUE(c.feed(frame(kPing, "ping")));
  c.sendBinary("second");
  c.sendClose(1000, "done");
  c.sendBinary("after the close: dropped");
  c.sendPing("dropped too");
  const auto frames = decode(c.takeOutput());
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0].payload, "first");
  EXPECT_EQ(frames[1].opcode, kPong);
  EXPECT_EQ(frames[2].payload, "second");
  EXPECT_EQ(frames[3].opcode, kClose);
  EXPECT_EQ(frames[3].closeCode(), 1000);
  EXPECT_EQ(frames[3].closeReason(), "done");
}

// ---- closing ----

TEST(WebSocketConnection, AnswersThePeersClose) {
  for (size_t piece : {0, 1}) {
    Recorder handler;
    WebSocketConnection c(handler);
    c.sendText("before");
    EXPECT_TRUE(feedInPieces(c, frame(kClose, closePayload(1001, "going away")), piece));
    EXPECT_EQ(handler.events, std::vector<Event>{peerClose(1001, "going away")});
    EXPECT_TRUE(c.closeReceived());
    EXPECT_TRUE(c.closeSent());
    EXPECT_TRUE(c.finished());
    EXPECT_FALSE(c.failed());
    const auto frames = decode(c.takeOutput());
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0].payload, "before");
    EXPECT_EQ(frames[1].opcode, kClose);
    EXPECT_EQ(frames[1].closeCode(), 1001);  // echoed
    c.sendBinary("too late");
    c.sendClose(1000, "");
    EXPECT_EQ(c.takeOutput(), "");
  }
}

// wslay checks a close reason's UTF-8 from the third byte of each piece of the payload it reads,
// not from the third byte of the payload: a control frame is handed to it whole.
TEST(WebSocketConnection, TakesACloseWhoseReasonIsSplitAnywhere) {
  const std::string reason = "caf\xc3\xa9 \xe2\x82\xac";
  for (size_t piece : {1, 2, 3, 5, 7}) {
    Recorder handler;
    WebSocketConnection c(handler);
    EXPECT_TRUE(
        feedInPieces(c, frame(kText, "x") + frame(kClose, closePayload(4000, reason)), piece))
        << "pieces of " << piece << ": " << c.error();
    EXPECT_EQ(handler.events, (std::vector<Event>{text("x"), peerClose(4000, reason)}));
    EXPECT_FALSE(c.failed());
    EXPECT_TRUE(c.finished());
  }
  for (size_t piece : {1, 2, 3, 4}) {  // and an invalid one is refused however it comes
    Recorder handler;
    WebSocketConnection c(handler);
    EXPECT_FALSE(feedInPieces(c, frame(kClose, closePayload(1000, "ab\xff")), piece));
    expectFailedWith(c, 1007);
  }
}

TEST(WebSocketConnection, ReportsACloseWithoutACodeAs1005) {
  Recorder handler;
  WebSocketConnection c(handler);
  EXPECT_TRUE(c.feed(frame(kClose, "")));
  EXPECT_EQ(handler.events, std::vector<Event>{peerClose(1005)});
  const auto frames = decode(c.takeOutput());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, kClose);
  EXPECT_EQ(frames[0].payload, "");  // a close without a code answers it
  EXPECT_TRUE(c.finished());
}

TEST(WebSocketConnection, ClosesFirstAndWaitsForThePeersClose) {
  Recorder handler;
  WebSocketConnection c(handler);
  c.sendClose(1000, "exit 0");
  EXPECT_TRUE(c.closeSent());
  EXPECT_FALSE(c.finished());
  auto frames = decode(c.takeOutput());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, kClose);
  EXPECT_EQ(frames[0].closeCode(), 1000);
  EXPECT_EQ(frames[0].closeReason(), "exit 0");
  // The peer may still send before its close; its pings are no longer answered.
  EXPECT_TRUE(c.feed(frame(kText, "late") + frame(kPing, "x")));
  EXPECT_FALSE(c.finished());
  EXPECT_TRUE(c.feed(frame(kClose, closePayload(1000))));
  EXPECT_TRUE(c.finished());
  EXPECT_FALSE(c.failed());
  EXPECT_EQ(handler.events, (std::vector<Event>{text("late"), peerClose(1000)}));
  EXPECT_EQ(c.takeOutput(), "");  // no second close
}

TEST(WebSocketConnection, CutsALongCloseReasonAtACharacterBoundary) {
  Recorder handler;
  WebSocketConnection c(handler);
  std::string reason(121, 'r');
  reason += "\xe2\x82\xac\xe2\x82\xac";  // "€€": 121 + 3 > 123
  c.sendClose(1011, reason);
  const auto frames = decode(c.takeOutput());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].closeCode(), 1011);
  EXPECT_EQ(frames[0].closeReason(), std::string(121, 'r'));
}

TEST(WebSocketConnection, IgnoresWhatTheClientSendsAfterItsClose) {
  for (size_t piece : {0, 1}) {
    Recorder handler;
    WebSocketConnection c(handler);
    EXPECT_TRUE(feedInPieces(c,
                             frame(kText, "a") + frame(kClose, closePayload(1000)) +
                                 frame(kText, "b") + frame(kPing, "p"),
                             piece));
    EXPECT_TRUE(c.feed(frame(kText, "c") + "garbage"));
    EXPECT_EQ(handler.events, (std::vector<Event>{text("a"), peerClose(1000)}));
    const auto frames = decode(c.takeOutput());
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].opcode, kClose);
    EXPECT_TRUE(c.finished());
    EXPECT_FALSE(c.failed());
  }
}

// ---- the handler's sends and failures ----

TEST(WebSocketConnection, AnswersFromTheHandlerGoOutBeforeTheCloseReply) {
  Recorder handler;
  WebSocketConnection c(handler);
  handler.whenMessage = [&](bool, std::string_view payload) {
    c.sendBinary("echo " + std::string(payload));
  };
  EXPECT_TRUE(c.feed(frame(kText, "1") + frame(kPing, "p") + frame(kText, "2") +
                     frame(kClose, closePayload(1000))));
  const auto frames = decode(c.takeOutput());
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0].payload, "echo 1");
  EXPECT_EQ(frames[1].opcode, kPong);
  EXPECT_EQ(frames[2].payload, "echo 2");
  EXPECT_EQ(frames[3].opcode, kClose);
}

TEST(WebSocketConnection, TheHandlerMayCloseFromItsCallback) {
  Recorder handler;
  WebSocketConnection c(handler);
  handler.whenMessage = [&](bool, std::string_view) { c.sendClose(1008, "no"); };
  EXPECT_TRUE(c.feed(frame(kText, "1") + frame(kText, "2") + frame(kClose, "")));
  EXPECT_TRUE(c.finished());
  EXPECT_FALSE(c.failed());
  const auto frames = decode(c.takeOutput());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].closeCode(), 1008);
  EXPECT_EQ(handler.events, (std::vector<Event>{text("1"), text("2"), peerClose(1005)}));
}

TEST(WebSocketConnection, TheHandlerMayTakeOutputFromItsCallbacks) {
  Recorder handler;
  WebSocketConnection c(handler);
  std::string written;
  handler.whenMessage = [&](bool, std::string_view payload) {
    c.sendText(payload);
    written += c.takeOutput();
  };
  handler.whenPeerClose = [&] { written += c.takeOutput(); };  // the close reply is there
  EXPECT_TRUE(c.feed(frame(kText, "a") + frame(kPing, "p") + frame(kText, "b") +
                     frame(kClose, closePayload(1000))));
  EXPECT_EQ(c.takeOutput(), "");
  const auto frames = decode(written);
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0].payload, "a");
  EXPECT_EQ(frames[1].opcode, kPong);
  EXPECT_EQ(frames[2].payload, "b");
  EXPECT_EQ(frames[3].opcode, kClose);
  EXPECT_TRUE(c.finished());
}

TEST(WebSocketConnection, AHandlerThatThrowsFailsTheConnectionWith1011) {
  Recorder handler;
  WebSocketConnection c(handler);
  handler.whenMessage = [](bool, std::string_view) { throw std::runtime_error("boom"); };
  EXPECT_FALSE(c.feed(frame(kText, "1") + frame(kText, "2")));
  EXPECT_EQ(handler.events, std::vector<Event>{text("1")});
  EXPECT_NE(c.error().find("boom"), std::string::npos) << c.error();
  expectFailedWith(c, 1011);
}

// ---- failures ----

TEST(WebSocketConnection, AnUnmaskedFrameIsAProtocolError) {
  for (size_t piece : {0, 1}) {
    Recorder handler;
    WebSocketConnection c(handler);
    EXPECT_FALSE(feedInPieces(c, frame(kText, "hi", {.masked = false}), piece));
    EXPECT_TRUE(handler.events.empty());
    expectFailedWith(c, 1002);
    EXPECT_FALSE(c.feed(frame(kText, "after")));  // nothing more is taken
    EXPECT_TRUE(handler.events.empty());
    EXPECT_EQ(c.takeOutput(), "");
  }
}

TEST(WebSocketConnection, ProtocolErrorsAreAnsweredWith1002) {
  const std::vector<std::pair<const char*, std::string>> cases{
      {"RSV1", frame(kText, "x", {.rsv = 4})},
      {"RSV2", frame(kBinary, "x", {.rsv = 2})},
      {"RSV3 on a ping", frame(kPing, "x", {.rsv = 1})},
      {"reserved data opcode", frame(0x3, "x")},
      {"reserved control opcode", frame(0xb, "x")},
      {"continuation first", frame(kContinuation, "x")},
      {"new message inside a fragmented one",
       frame(kText, "a", {.fin = false}) + frame(kText, "b")},
      {"control frame over 125 bytes", frame(kPing, pattern(126))},
      {"fragmented control frame", frame(kPing, "x", {.fin = false})},
      {"16-bit length for 5 bytes", frame(kText, "hello", {.extendedLengthBytes = 2})},
      {"64-bit length for 200 bytes", frame(kBinary, pattern(200), {.extendedLengthBytes = 8})},
      {"close code 1005", frame(kClose, closePayload(1005))},
      {"close code 999", frame(kClose, closePayload(999))},
  };
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    for (size_t piece : {0, 1}) {
      Recorder handler;
      WebSocketConnection c(handler);
      EXPECT_FALSE(feedInPieces(c, bytes + frame(kText, "after"), piece));
      EXPECT_TRUE(handler.events.empty());
      EXPECT_FALSE(c.closeReceived());
      expectFailedWith(c, 1002);
    }
  }
}

TEST(WebSocketConnection, AMessageOverTheLimitIsAnsweredWith1009) {
  const std::vector<std::pair<const char*, std::string>> cases{
      {"one frame", frame(kBinary, pattern(1001))},
      {"fragments",
       frame(kBinary, pattern(600), {.fin = false}) + frame(kContinuation, pattern(401))},
      // wslay looks at a frame's length once its first payload byte is there.
      {"a length of 2^62", std::string("\x82\xff\x40\0\0\0\0\0\0\0\x01\x02\x03\x04x", 15)},
  };
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    Recorder handler;
    WebSocketConnection c(handler, 1000);
    EXPECT_TRUE(c.feed(frame(kBinary, pattern(1000))));  // at the limit: taken
    EXPECT_FALSE(c.feed(bytes));
    EXPECT_EQ(handler.events, std::vector<Event>{binary(pattern(1000))});
    EXPECT_NE(c.error().find("1000 bytes"), std::string::npos) << c.error();
    expectFailedWith(c, 1009);
  }
}

TEST(WebSocketConnection, InvalidUtf8IsAnsweredWith1007) {
  const std::vector<std::pair<const char*, std::string>> cases{
      {"a lone continuation byte", frame(kText, "a\x80")},
      {"an overlong encoding", frame(kText, "\xc0\xaf")},
      {"a surrogate", frame(kText, "\xed\xa0\x80")},
      {"a character cut at the end",
       frame(kText, "ab\xe2\x82", {.fin = false}) + frame(kContinuation, "c")},
      {"in a close reason", frame(kClose, closePayload(1000, "\xff"))},
  };
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    Recorder handler;
    WebSocketConnection c(handler);
    EXPECT_FALSE(c.feed(bytes));
    EXPECT_TRUE(handler.events.empty());
    expectFailedWith(c, 1007);
  }
}

TEST(WebSocketConnection, GarbageFailsTheConnection) {
  // What a confused client might send: HTTP instead of frames, or random bytes.
  Recorder handler;
  WebSocketConnection c(handler);
  EXPECT_FALSE(c.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  expectFailedWith(c, 1002);

  std::mt19937 random(5);
  for (int run = 0; run < 200; ++run) {
    Recorder h;
    WebSocketConnection r(h, 4096);
    std::string bytes(1 + random() % 300, '\0');
    for (char& b : bytes)
      b = static_cast<char>(random());
    const bool ok = feedInPieces(r, bytes, 1 + random() % 16);
    EXPECT_EQ(ok, !r.failed());
    if (r.failed()) {
      EXPECT_TRUE(r.finished());
      EXPECT_TRUE(r.closeSent());
    }
    for (const ServerFrame& f : decode(r.takeOutput()))
      EXPECT_TRUE(f.opcode == kPong || f.opcode == kClose);
  }
}

TEST(WebSocketConnection, AFailureAfterOurCloseSendsNothingMore) {
  Recorder handler;
  WebSocketConnection c(handler);
  c.sendClose(1000, "");
  c.takeOutput();
  EXPECT_FALSE(c.feed(frame(kText, "x", {.masked = false})));
  EXPECT_TRUE(c.failed());
  EXPECT_TRUE(c.finished());
  EXPECT_EQ(c.takeOutput(), "");
  Recorder handler2;
  WebSocketConnection c2(handler2);
  c2.sendClose(1000, "");
  c2.takeOutput();
  EXPECT_FALSE(c2.feed(frame(kPing, pattern(126))));  // refused by wslay's frame parser
  EXPECT_TRUE(c2.finished());
  EXPECT_EQ(c2.takeOutput(), "");
}

// ---- interop: Debian's python3-websocket builds the client's frames and parses ours ----

std::string runPython(const std::string& script, const std::string& input) {
  char dir[] = "/tmp/websocket-test-XXXXXX";
  if (mkdtemp(dir) == nullptr) return "";
  const std::string scriptPath = std::string(dir) + "/script.py";
  const std::string inputPath = std::string(dir) + "/input";
  const std::string outputPath = std::string(dir) + "/output";
  std::ofstream(scriptPath) << script;
  std::ofstream(inputPath, std::ios::binary) << input;
  const std::string command =
      "/usr/bin/python3 " + scriptPath + " < " + inputPath + " > " + outputPath;
  const int status = std::system(command.c_str());
  std::stringstream out;
  out << std::ifstream(outputPath, std::ios::binary).rdbuf();
  unlink(scriptPath.c_str());
  unlink(inputPath.c_str());
  unlink(outputPath.c_str());
  rmdir(dir);
  return status == 0 ? out.str() : "";
}

TEST(WebSocketInterop, PythonWebsocketClientsFramesAndOurs) {
  // python3-websocket is one of `make deps`' packages: its absence is a broken setup, not a
  // reason to pass without checking.
  ASSERT_EQ(access("/usr/bin/python3", X_OK), 0) << "no /usr/bin/python3: run make deps";
  ASSERT_EQ(std::system("/usr/bin/python3 -c 'import websocket' 2>/dev/null"), 0)
      << "/usr/bin/python3 has no websocket module (python3-websocket): run make deps";
  const std::string clientFrames = runPython(R"(
import struct, sys
from websocket import ABNF
frames = [
    ABNF.create_frame("hello", ABNF.OPCODE_TEXT),
    ABNF.create_frame(b"\x00\x01\xfe\xff" * 50000, ABNF.OPCODE_BINARY),
    ABNF.create_frame("frag", ABNF.OPCODE_TEXT, 0),
    ABNF.create_frame(b"ping!", ABNF.OPCODE_PING),
    ABNF.create_frame("mented", ABNF.OPCODE_CONT, 1),
    ABNF.create_frame(struct.pack("!H", 1000) + b"bye", ABNF.OPCODE_CLOSE),
]
sys.stdout.buffer.write(b"".join(f.format() for f in frames))
)",
                                             "");
  ASSERT_FALSE(clientFrames.empty());
  Recorder handler;
  WebSocketConnection c(handler);
  handler.whenMessage = [&](bool binary, std::string_view payload) {
    if (binary) {
      c.sendBinary(payload);
    } else {
      c.sendText(std::string(payload) + "!");
    }
  };
  EXPECT_TRUE(feedInPieces(c, clientFrames, 1000));
  std::string big;
  for (int i = 0; i < 50000; ++i)
    big += std::string("\x00\x01\xfe\xff", 4);
  EXPECT_EQ(handler.events, (std::vector<Event>{text("hello"), binary(big), text("fragmented"),
                                                peerClose(1000, "bye")}));
  EXPECT_TRUE(c.finished());

  const std::string parsed = runPython(R"(
import io, sys
from websocket._abnf import frame_buffer
data = io.BytesIO(sys.stdin.buffer.read())
buf = frame_buffer(data.read, False)
while data.tell() < len(data.getbuffer()):
    f = buf.recv_frame()
    f.validate()
    print(f.opcode, f.fin, f.mask, len(f.data), f.data[:12])
)",
                                       c.takeOutput());
  EXPECT_EQ(parsed,
            "1 1 0 6 b'hello!'\n"
            "2 1 0 200000 b'\\x00\\x01\\xfe\\xff\\x00\\x01\\xfe\\xff\\x00\\x01\\xfe\\xff'\n"
            "10 1 0 5 b'ping!'\n"
            "1 1 0 11 b'fragmented!'\n"
            "8 1 0 5 b'\\x03\\xe8bye'\n");
}

}  // namespace
}  // namespace monocri::exec::ws
