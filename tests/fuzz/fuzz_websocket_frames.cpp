// The server's side of a WebSocket connection on a client's bytes. Beyond not crashing:
// - however the bytes are split, the handler sees the same messages and close, the connection
//   writes the same bytes and reaches the same verdict (failed, finished, error);
// - what it writes is well-formed server frames: unmasked, RSV 0, a known opcode, FIN set,
//   lengths in their shortest form, control frames of at most 125 bytes, one close at most and
//   nothing after it;
// - messages are at most maxMessageBytes, text ones valid UTF-8, nothing after the peer's close;
// - feed() returns !failed(); a failed connection is finished, has sent its close, and takes
//   nothing more; finished() and failed() never go back to false;
// - output never grows beyond what came in plus what was sent (pongs and close replies are no
//   bigger than the frames they answer).
// A third run adds the server's own sends (messages, pings, closes) between the pieces.
//
// Input: [options] [split seed], then the client's bytes, raw (options bit 0 clear) or as frame
// recipes that this target encodes, masked, so that random input reaches past the header checks:
//   [byte 0 of the frame header: FIN, RSV, opcode]
//   [bit 7: unmasked, bit 6: a longer length form than needed, bits 0-5: the length: 0-59, or
//    60: the next byte, 61: the next two, 62: the next byte × 256, 63: 2^62 (header only)]
//   [the payload: the next bytes, padded with 'a'..'z' where the input runs out]
// Unless options bit 6 is set, recipes are tidied so that most frames pass the frame checks and
// the fuzzer spends its time on message sequences: known opcodes (from the header byte's low 3
// bits), RSV bits cleared, always masked, lengths in their shortest form, control frames with FIN
// and at most 125 bytes.
// options: bits 1-3 choose maxMessageBytes, bit 4 makes the handler echo each message (sends
// from inside feed()), bit 5 makes it close (1008) on a message starting with 'C'.
#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "FuzzScratch.h"
#include "exec/websocket/WebSocketConnection.h"

using monocri::exec::ws::WebSocketConnection;

namespace {

constexpr std::array<size_t, 8> kMaxMessageBytes{16, 125, 126, 1000, 65535, 65536, 70000, 1 << 20};
constexpr size_t kMaxRecipePayload = 70000;
// Bytes the server writes around a payload: a header of at most 10 bytes.
constexpr size_t kMaxServerHeader = 10;

bool validUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const uint8_t b = static_cast<uint8_t>(s[i]);
    size_t n;
    uint32_t cp;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xe0) == 0xc0) {
      n = 1, cp = b & 0x1f;
    } else if ((b & 0xf0) == 0xe0) {
      n = 2, cp = b & 0x0f;
    } else if ((b & 0xf8) == 0xf0) {
      n = 3, cp = b & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const uint8_t c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xc0) != 0x80) return false;
      cp = cp << 6 | (c & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// The client's bytes from frame recipes.
std::string encodeRecipes(std::string_view in, uint32_t seed, bool tidy) {
  std::minstd_rand random(seed);
  std::string out;
  size_t at = 0;
  auto next = [&]() -> uint8_t { return at < in.size() ? static_cast<uint8_t>(in[at++]) : 0; };
  while (at + 2 <= in.size()) {
    uint8_t b0 = next();
    const uint8_t b1 = next();
    if (tidy) {  // known opcodes only, RSV cleared, FIN on control frames
      static constexpr uint8_t kOpcodes[] = {0x0, 0x1, 0x2, 0x8, 0x9, 0xa, 0x1, 0x2};
      b0 = (b0 & 0x80) | kOpcodes[b0 & 7];
      if (b0 & 0x08) b0 |= 0x80;
    }
    const bool control = b0 & 0x08;
    const bool masked = tidy || !(b1 & 0x80);
    const bool longForm = !tidy && (b1 & 0x40);
    uint64_t length = b1 & 0x3f;
    bool headerOnly = false;
    if (length == 60) {
      length = next();
    } else if (length == 61) {
      length = static_cast<uint64_t>(next()) << 8;
      length |= next();
    } else if (length == 62) {
      length = static_cast<uint64_t>(next()) << 8;
    } else if (length == 63) {
      length = (uint64_t{1} << 62) + next();
      headerOnly = true;
    }
    length = headerOnly ? length : std::min<uint64_t>(length, kMaxRecipePayload);
    if (tidy && control) {
      length = std::min<uint64_t>(length, 125);
      headerOnly = false;
    }
    out += static_cast<char>(b0);
    int ext = length < 126 ? 0 : length < 65536 ? 2 : 8;
    if (longForm) ext = ext == 0 ? 2 : 8;
    const char maskBit = masked ? '\x80' : 0;
    if (ext == 0) {
      out += static_cast<char>(maskBit | static_cast<char>(length));
    } else {
      out += static_cast<char>(maskBit | (ext == 2 ? 126 : 127));
      for (int i = ext - 1; i >= 0; --i)
        out += static_cast<char>((length >> (8 * i)) & 0xff);
    }
    std::array<uint8_t, 4> key{};
    if (masked) {
      for (uint8_t& k : key) {
        k = static_cast<uint8_t>(random());
        out += static_cast<char>(k);
      }
    }
    if (headerOnly) break;
    for (uint64_t i = 0; i < length; ++i) {
      const uint8_t b = at < in.size() ? next() : static_cast<uint8_t>('a' + i % 26);
      out += static_cast<char>(b ^ key[i % 4]);
    }
  }
  return out;
}

struct Event {
  int kind;  // 0 text, 1 binary, 2 close
  std::string payload;
  uint16_t code;
  bool operator==(const Event&) const = default;
};

class Handler : public WebSocketConnection::Handler {
 public:
  Handler(size_t maxMessageBytes, bool echo, bool closeOnC)
      : maxMessageBytes_(maxMessageBytes), echo_(echo), closeOnC_(closeOnC) {}
  void onMessage(bool binary, std::string_view payload) override {
    CHECK(!closed);
    CHECK(payload.size() <= maxMessageBytes_);
    CHECK(binary || validUtf8(payload));
    events.push_back({binary ? 1 : 0, std::string(payload), 0});
    if (echo_) {
      sentBytes += payload.size() + kMaxServerHeader;
      if (binary) {
        connection->sendBinary(payload);
      } else {
        connection->sendText(payload);
      }
    }
    if (closeOnC_ && !payload.empty() && payload[0] == 'C') {
      sentBytes += 2 + kMaxServerHeader;
      connection->sendClose(1008, "C");
    }
  }
  void onPeerClose(uint16_t code, std::string_view reason) override {
    CHECK(!closed);
    CHECK(reason.size() <= 123);
    CHECK(validUtf8(reason));
    CHECK(code == 1005 || (code >= 1000 && code <= 4999));
    closed = true;
    events.push_back({2, std::string(reason), code});
  }

  WebSocketConnection* connection = nullptr;
  std::vector<Event> events;
  bool closed = false;
  size_t sentBytes = 0;  // payloads sent, with a header's worth each

 private:
  const size_t maxMessageBytes_;
  const bool echo_;
  const bool closeOnC_;
};

// Checks the server's frames as they come out of takeOutput(), across calls.
struct OutputChecker {
  std::string all;
  size_t total = 0;
  bool closeSeen = false;

  void take(WebSocketConnection& c) {
    const size_t pending = c.pendingBytes();
    const std::string out = c.takeOutput();
    CHECK(out.size() == pending);
    CHECK(c.pendingBytes() == 0);
    total += out.size();
    for (size_t at = 0; at < out.size();) {
      CHECK(!closeSeen);  // nothing after a close
      CHECK(out.size() - at >= 2);
      const uint8_t b0 = static_cast<uint8_t>(out[at]);
      const uint8_t b1 = static_cast<uint8_t>(out[at + 1]);
      CHECK(b0 & 0x80);         // FIN: messages go out in one frame
      CHECK((b0 & 0x70) == 0);  // RSV
      const uint8_t opcode = b0 & 0x0f;
      CHECK(opcode == 1 || opcode == 2 || opcode == 8 || opcode == 9 || opcode == 10);
      CHECK(!(b1 & 0x80));  // unmasked
      uint64_t n = b1 & 0x7f;
      size_t header = 2;
      if (n >= 126) {
        const size_t ext = n == 126 ? 2 : 8;
        CHECK(out.size() - at >= 2 + ext);
        n = 0;
        for (size_t i = 0; i < ext; ++i)
          n = n << 8 | static_cast<uint8_t>(out[at + 2 + i]);
        CHECK(n >= (ext == 2 ? 126u : 65536u));
        header += ext;
      }
      CHECK(out.size() - at - header >= n);
      if (opcode >= 8) CHECK(n <= 125);
      if (opcode == 8) {
        CHECK(n != 1);
        closeSeen = true;
      }
      at += header + n;
    }
    all += out;
  }
};

struct Verdict {
  bool failed, finished, closeSent, closeReceived;
  std::string error;
  bool operator==(const Verdict&) const = default;
};

Verdict verdictOf(const WebSocketConnection& c) {
  return {c.failed(), c.finished(), c.closeSent(), c.closeReceived(), c.error()};
}

// One feed with the checks that hold after any of them.
void feedChecked(WebSocketConnection& c, Handler& h, OutputChecker& out, std::string_view piece,
                 size_t& fed) {
  const bool wasFailed = c.failed();
  const bool wasFinished = c.finished();
  const size_t eventsBefore = h.events.size();
  const bool ok = c.feed(piece);
  fed += piece.size();
  CHECK(ok == !c.failed());
  CHECK(!wasFailed || c.failed());
  CHECK(!wasFinished || c.finished());
  if (wasFailed) {
    CHECK(h.events.size() == eventsBefore);
    CHECK(c.pendingBytes() == 0);
  }
  if (c.failed()) {
    CHECK(c.finished());
    CHECK(c.closeSent());
    CHECK(!c.error().empty());
  }
  if (c.finished() && !c.failed()) CHECK(c.closeSent() && c.closeReceived());
  CHECK(c.closeReceived() == h.closed);
  out.take(c);
  CHECK(out.closeSeen == c.closeSent());
  CHECK(out.total <= fed + h.sentBytes + 2 + 125);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t options = data[0];
  const uint8_t splitSeed = data[1];
  const std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);
  const size_t maxMessageBytes = kMaxMessageBytes[(options >> 1) & 7];
  const bool echo = options & 0x10;
  const bool closeOnC = options & 0x20;
  const std::string bytes =
      options & 1 ? encodeRecipes(body, splitSeed * 2654435761u + static_cast<uint32_t>(size),
                                  !(options & 0x40))
                  : std::string(body);

  // Whole.
  Handler wholeHandler(maxMessageBytes, echo, closeOnC);
  WebSocketConnection whole(wholeHandler, maxMessageBytes);
  wholeHandler.connection = &whole;
  OutputChecker wholeOut;
  size_t fed = 0;
  feedChecked(whole, wholeHandler, wholeOut, bytes, fed);
  feedChecked(whole, wholeHandler, wholeOut, "", fed);

  // In pieces: the same.
  std::minstd_rand random(splitSeed + 1u);
  auto pieceSize = [&]() -> size_t {
    switch (random() % 4) {
      case 0:
        return 1;
      case 1:
        return 1 + random() % 16;
      case 2:
        return 1 + random() % 300;
      default:
        return 1 + random() % 5000;
    }
  };
  {
    Handler handler(maxMessageBytes, echo, closeOnC);
    WebSocketConnection c(handler, maxMessageBytes);
    handler.connection = &c;
    OutputChecker out;
    size_t piecesFed = 0;
    for (size_t at = 0; at < bytes.size();) {
      const size_t n = std::min(bytes.size() - at, pieceSize());
      feedChecked(c, handler, out, std::string_view(bytes).substr(at, n), piecesFed);
      at += n;
    }
    CHECK(handler.events == wholeHandler.events);
    CHECK(out.all == wholeOut.all);
    CHECK(verdictOf(c) == verdictOf(whole));
  }

  // In pieces, with the server's own sends between them.
  {
    Handler handler(maxMessageBytes, echo, closeOnC);
    WebSocketConnection c(handler, maxMessageBytes);
    handler.connection = &c;
    OutputChecker out;
    size_t piecesFed = 0;
    for (size_t at = 0; at < bytes.size();) {
      const size_t n = std::min(bytes.size() - at, pieceSize());
      feedChecked(c, handler, out, std::string_view(bytes).substr(at, n), piecesFed);
      at += n;
      const std::string payload(random() % 200, static_cast<char>('a' + random() % 26));
      switch (random() % 8) {
        case 0:
          c.sendBinary(payload);
          handler.sentBytes += payload.size() + kMaxServerHeader;
          break;
        case 1:
          c.sendText(payload);
          handler.sentBytes += payload.size() + kMaxServerHeader;
          break;
        case 2:
          c.sendPing(payload);
          handler.sentBytes += std::min<size_t>(payload.size(), 125) + kMaxServerHeader;
          break;
        case 3:
          if (random() % 4 == 0) {
            c.sendClose(static_cast<uint16_t>(random() % 2 ? 1000 : 0), payload);
            handler.sentBytes += 125 + kMaxServerHeader;
          }
          break;
        default:
          break;
      }
      const bool closedBefore = out.closeSeen;
      out.take(c);
      CHECK(out.closeSeen == c.closeSent());
      CHECK(!closedBefore || c.closeSent());
      CHECK(out.total <= piecesFed + handler.sentBytes + 2 + 125);
    }
  }
  return 0;
}
