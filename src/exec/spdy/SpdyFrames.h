// SPDY/3.1 framing: a resumable parser of a connection's byte stream (either direction) and the
// frame writers. No sessions, streams or flow control here: those belong to the streaming
// server. Every frame starts with an 8-byte header (integers big-endian):
//
//   control frame                           data frame
//   +-+-------------+---------------+       +-+-----------------------------+
//   |1| version (15)|   type (16)   |       |0|       stream id (31)        |
//   +-+-------------+---------------+       +-+-----------------------------+
//   | flags (8)   |   length (24)   |       | flags (8)   |   length (24)   |
//   +-------------+-----------------+       +-------------+-----------------+
//   |   payload: `length` bytes     |       |   payload: `length` bytes     |
//
// Control payloads (31-bit ids, the top bit reserved and ignored):
//   SYN_STREAM    stream id, associated stream id, priority (3 bits) + 5 unused, slot (8),
//                 header block                                       flags FIN, UNIDIRECTIONAL
//   SYN_REPLY     stream id, header block                            flag FIN
//   RST_STREAM    stream id, status (32)                             8 bytes
//   SETTINGS      count (32), count * [flags (8), id (24), value (32)]
//   PING          id (32)                                            4 bytes
//   GOAWAY        last good stream id, status (32)                   8 bytes
//   HEADERS       stream id, header block                            flag FIN
//   WINDOW_UPDATE stream id (0: the connection), delta (31, not 0)   8 bytes
// Data flags: FIN. Header blocks: see SpdyHeaderBlock.h.
//
// What the Kubernetes peers use (fixtures/README.md): SYN_STREAM, SYN_REPLY, DATA, RST_STREAM,
// PING and GOAWAY. Both write frames field by field, so a frame often arrives in 2-4 byte pieces.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exec/spdy/SpdyHeaderBlock.h"

namespace monocri::exec::spdy {

inline constexpr uint16_t kSpdyVersion = 3;
inline constexpr size_t kFrameHeaderBytes = 8;
// A frame's length is a 24-bit field.
inline constexpr uint32_t kMaxFrameLength = (1u << 24) - 1;
// Fixed part of a SYN_STREAM payload before its header block (stream ids, priority, slot).
inline constexpr size_t kSynStreamFixedBytes = 10;

enum class ControlType : uint16_t {
  kSynStream = 1,
  kSynReply = 2,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoaway = 7,
  kHeaders = 8,
  kWindowUpdate = 9,
};
// "SYN_STREAM", ... or "type N" for others.
std::string controlTypeName(uint16_t type);

// Frame flags.
inline constexpr uint8_t kFlagFin = 0x01;
inline constexpr uint8_t kFlagUnidirectional = 0x02;  // SYN_STREAM only

// RST_STREAM status codes (the ones monocri sends or may receive).
inline constexpr uint32_t kProtocolError = 1;
inline constexpr uint32_t kInvalidStream = 2;
inline constexpr uint32_t kRefusedStream = 3;
inline constexpr uint32_t kCancel = 5;  // what CRI-O sends for every stream at the end of exec
inline constexpr uint32_t kInternalError = 6;
inline constexpr uint32_t kStreamInUse = 8;
inline constexpr uint32_t kStreamAlreadyClosed = 9;
inline constexpr uint32_t kFrameTooLarge = 11;
// "CANCEL", ... or the number for others (for logs).
std::string rstStatusName(uint32_t status);

// GOAWAY status codes.
inline constexpr uint32_t kGoawayOk = 0;
inline constexpr uint32_t kGoawayProtocolError = 1;
inline constexpr uint32_t kGoawayInternalError = 2;

// Incremental parser of one direction's frames (the server parses the client's, a client or a
// test the server's). Input may be split anywhere; nothing but an unfinished frame header and
// an unfinished control frame (at most kMaxControlFrameBytes) is ever buffered: DATA payloads
// are handed over as they arrive.
class SpdyFrameParser {
 public:
  // The parser's events, each called once a frame (or, for DATA, a piece of one) is complete.
  // A handler may call back into its owner and may call stop(), but must not destroy the parser
  // nor call feed() from inside a callback (a reentrant feed() aborts the process).
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void onSynStream(uint32_t streamId, uint32_t associatedId, uint8_t priority, bool fin,
                             bool unidirectional, HeaderList headers) = 0;
    virtual void onSynReply(uint32_t streamId, bool fin, HeaderList headers) = 0;
    virtual void onHeaders(uint32_t streamId, bool fin, HeaderList headers) = 0;
    virtual void onRstStream(uint32_t streamId, uint32_t status) = 0;
    // Entries in frame order: id (24-bit) -> value; the per-entry flags are dropped.
    virtual void onSettings(std::vector<std::pair<uint32_t, uint32_t>> idValues) = 0;
    virtual void onPing(uint32_t id) = 0;
    virtual void onGoaway(uint32_t lastGoodStreamId, uint32_t status) = 0;
    // streamId 0 is the connection's window (SPDY/3.1); delta is 1 .. 2^31-1.
    virtual void onWindowUpdate(uint32_t streamId, uint32_t delta) = 0;
    // A DATA frame's payload as it arrives: one or more calls per frame, each with the bytes
    // that came (never buffered whole, never an empty call except as said here); `fin` is true
    // only on the last call of a frame with FIN, which may carry 0 bytes. A 0-length frame
    // gives exactly one call, with no bytes. `bytes` is valid during the call only.
    virtual void onData(uint32_t streamId, std::string_view bytes, bool fin) = 0;
  };

  // A control frame longer than this is a protocol error (kubectl's are under 100 bytes).
  static constexpr size_t kMaxControlFrameBytes = 64 * 1024;

  explicit SpdyFrameParser(Handler& handler);
  SpdyFrameParser(const SpdyFrameParser&) = delete;
  SpdyFrameParser& operator=(const SpdyFrameParser&) = delete;

  // Consumes all of `bytes`, calling the handler for each event. Returns false on a protocol
  // error; error() says what ("SPDY: ..."), no further input is accepted and every later feed()
  // returns false. Errors: control frame version other than 3; control frame longer than
  // kMaxControlFrameBytes; stream id 0 on SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS or DATA;
  // a length that does not fit the frame type (RST_STREAM 8, PING 4, GOAWAY 8, WINDOW_UPDATE 8,
  // SETTINGS 4 + 8 * count, SYN_STREAM >= 10, SYN_REPLY and HEADERS >= 4); a header block that
  // does not decode (see HeaderBlockInflater::decode); WINDOW_UPDATE with delta 0. Control
  // frames of other types are skipped unbuffered (the spec says to ignore them). An unfinished
  // frame at the end of `bytes` is not an error: the parser waits for the rest (midFrame()).
  // After stop(), returns true right after the callback that stopped it, ignoring the rest of
  // `bytes`, and every later feed() returns true and consumes nothing. `bytes` must stay valid
  // and unchanged until feed() returns (callbacks included): DATA and whole control frames are
  // read from it in place.
  bool feed(std::string_view bytes);

  // Callable from a handler: the current feed() returns (true) once the callback returns.
  void stop() { stopped_ = true; }
  bool stopped() const { return stopped_; }

  const std::string& error() const { return error_; }
  bool failed() const { return state_ == State::kFailed; }
  // True when part of a frame has been consumed: a connection that ends here ends mid-frame.
  bool midFrame() const { return headerFilled_ != 0 || state_ != State::kHeader; }
  // Bytes held for an unfinished frame header or control frame.
  size_t bufferedBytes() const { return headerFilled_ + control_.size(); }

 private:
  enum class State {
    kHeader,          // filling header_
    kControlPayload,  // filling control_ (or taking the payload straight from the input)
    kSkipPayload,     // an unknown control type: dropping remaining_ bytes
    kDataPayload,     // handing remaining_ bytes of DATA to the handler
    kFailed,
  };

  bool beginFrame();  // header_ is complete
  bool dispatchControl(std::string_view payload);
  bool decodeBlock(std::string_view block, HeaderList& headers);
  bool fail(std::string message);

  Handler& handler_;
  HeaderBlockInflater inflater_;
  State state_ = State::kHeader;
  bool stopped_ = false;
  bool feeding_ = false;
  unsigned char header_[kFrameHeaderBytes] = {};
  size_t headerFilled_ = 0;
  // The frame being read.
  uint16_t type_ = 0;
  uint8_t flags_ = 0;
  uint32_t length_ = 0;
  uint32_t streamId_ = 0;   // DATA
  uint32_t remaining_ = 0;  // DATA, skipped control frames
  std::string control_;
  std::string error_;
};

// Writers: whole frames, exactly the SPDY/3 layout. Stream ids are taken modulo 2^31; the
// caller keeps header blocks and payloads under 2^24 bytes (a larger one aborts: a bug).
// `headerBlock` is HeaderBlockDeflater::encode()'s output, on the connection's one deflater.
std::string synStreamFrame(uint32_t streamId, uint32_t associatedId, uint8_t priority, bool fin,
                           std::string_view headerBlock, bool unidirectional = false);
std::string synReplyFrame(uint32_t streamId, bool fin, std::string_view headerBlock);
std::string headersFrame(uint32_t streamId, bool fin, std::string_view headerBlock);
std::string rstStreamFrame(uint32_t streamId, uint32_t status);
std::string settingsFrame(const std::vector<std::pair<uint32_t, uint32_t>>& idValues);
std::string pingFrame(uint32_t id);
std::string goawayFrame(uint32_t lastGoodStreamId, uint32_t status);
std::string windowUpdateFrame(uint32_t streamId, uint32_t delta);
// The 8-byte header of a DATA frame whose `length` (< 2^24) payload bytes the caller writes
// after it (so that payloads are not copied).
std::array<char, kFrameHeaderBytes> dataFrameHeader(uint32_t streamId, uint32_t length, bool fin);
std::string dataFrame(uint32_t streamId, std::string_view payload, bool fin);

}  // namespace monocri::exec::spdy
