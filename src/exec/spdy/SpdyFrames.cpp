#include "exec/spdy/SpdyFrames.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace monocri::exec::spdy {

namespace {

constexpr uint32_t kStreamIdMask = 0x7fffffff;

uint32_t readU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

void putU32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

// A control frame with room for `payloadBytes`, its 8-byte header written.
std::string controlFrame(ControlType type, uint8_t flags, size_t payloadBytes) {
  if (payloadBytes > kMaxFrameLength) std::abort();  // a caller's bug: see the header
  std::string frame(kFrameHeaderBytes + payloadBytes, '\0');
  putU32(frame.data(), 0x80000000u | (uint32_t{kSpdyVersion} << 16) | static_cast<uint16_t>(type));
  putU32(frame.data() + 4, (uint32_t{flags} << 24) | static_cast<uint32_t>(payloadBytes));
  return frame;
}

std::string streamBlockFrame(ControlType type, uint32_t streamId, bool fin,
                             std::string_view headerBlock) {
  std::string frame = controlFrame(type, fin ? kFlagFin : 0, 4 + headerBlock.size());
  putU32(frame.data() + 8, streamId & kStreamIdMask);
  std::memcpy(frame.data() + 12, headerBlock.data(), headerBlock.size());
  return frame;
}

std::string twoWordFrame(ControlType type, uint32_t first, uint32_t second) {
  std::string frame = controlFrame(type, 0, 8);
  putU32(frame.data() + 8, first);
  putU32(frame.data() + 12, second);
  return frame;
}

}  // namespace

std::string controlTypeName(uint16_t type) {
  switch (static_cast<ControlType>(type)) {
    case ControlType::kSynStream:
      return "SYN_STREAM";
    case ControlType::kSynReply:
      return "SYN_REPLY";
    case ControlType::kRstStream:
      return "RST_STREAM";
    case ControlType::kSettings:
      return "SETTINGS";
    case ControlType::kPing:
      return "PING";
    case ControlType::kGoaway:
      return "GOAWAY";
    case ControlType::kHeaders:
      return "HEADERS";
    case ControlType::kWindowUpdate:
      return "WINDOW_UPDATE";
  }
  return "type " + std::to_string(type);
}

std::string rstStatusName(uint32_t status) {
  switch (status) {
    case kProtocolError:
      return "PROTOCOL_ERROR";
    case kInvalidStream:
      return "INVALID_STREAM";
    case kRefusedStream:
      return "REFUSED_STREAM";
    case 4:
      return "UNSUPPORTED_VERSION";
    case kCancel:
      return "CANCEL";
    case kInternalError:
      return "INTERNAL_ERROR";
    case 7:
      return "FLOW_CONTROL_ERROR";
    case kStreamInUse:
      return "STREAM_IN_USE";
    case kStreamAlreadyClosed:
      return "STREAM_ALREADY_CLOSED";
    case 10:
      return "INVALID_CREDENTIALS";
    case kFrameTooLarge:
      return "FRAME_TOO_LARGE";
  }
  return std::to_string(status);
}

// ---- parser ----

SpdyFrameParser::SpdyFrameParser(Handler& handler) : handler_(handler) {}

bool SpdyFrameParser::fail(std::string message) {
  state_ = State::kFailed;
  error_ = std::move(message);
  return false;
}

bool SpdyFrameParser::feed(std::string_view bytes) {
  if (feeding_) std::abort();  // feed() from a handler's callback: see Handler
  if (state_ == State::kFailed) return false;
  feeding_ = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{feeding_};

  while (!stopped_) {
    switch (state_) {
      case State::kHeader: {
        if (bytes.empty()) return true;
        const size_t n = std::min(kFrameHeaderBytes - headerFilled_, bytes.size());
        std::memcpy(header_ + headerFilled_, bytes.data(), n);
        headerFilled_ += n;
        bytes.remove_prefix(n);
        if (headerFilled_ < kFrameHeaderBytes) return true;
        headerFilled_ = 0;
        if (!beginFrame()) return false;
        break;
      }
      case State::kControlPayload: {
        if (control_.empty() && bytes.size() >= length_) {
          // The whole payload is here: no copy.
          const std::string_view payload = bytes.substr(0, length_);
          bytes.remove_prefix(length_);
          state_ = State::kHeader;
          if (!dispatchControl(payload)) return false;
          break;
        }
        if (bytes.empty()) return true;
        const size_t n = std::min<size_t>(length_ - control_.size(), bytes.size());
        control_.append(bytes.data(), n);
        bytes.remove_prefix(n);
        if (control_.size() < length_) return true;
        state_ = State::kHeader;
        const bool ok = dispatchControl(control_);
        if (control_.capacity() > 4096) {
          std::string().swap(control_);  // keep no large buffer between frames
        } else {
          control_.clear();
        }
        if (!ok) return false;
        break;
      }
      case State::kSkipPayload: {
        const size_t n = std::min<size_t>(remaining_, bytes.size());
        remaining_ -= static_cast<uint32_t>(n);
        bytes.remove_prefix(n);
        if (remaining_ != 0) return true;
        state_ = State::kHeader;
        break;
      }
      case State::kDataPayload: {
        if (bytes.empty()) return true;
        const size_t n = std::min<size_t>(remaining_, bytes.size());
        remaining_ -= static_cast<uint32_t>(n);
        const std::string_view piece = bytes.substr(0, n);
        bytes.remove_prefix(n);
        const bool last = remaining_ == 0;
        if (last) state_ = State::kHeader;
        handler_.onData(streamId_, piece, last && (flags_ & kFlagFin) != 0);
        break;
      }
      case State::kFailed:
        return false;
    }
  }
  return true;
}

bool SpdyFrameParser::beginFrame() {
  const char* h = reinterpret_cast<const char*>(header_);
  const uint32_t word = readU32(h);
  flags_ = header_[4];
  length_ = readU32(h + 4) & kMaxFrameLength;

  if ((word & 0x80000000u) == 0) {
    streamId_ = word & kStreamIdMask;
    if (streamId_ == 0) return fail("SPDY: DATA frame on stream 0");
    if (length_ == 0) {
      state_ = State::kHeader;
      handler_.onData(streamId_, {}, (flags_ & kFlagFin) != 0);
      return true;
    }
    remaining_ = length_;
    state_ = State::kDataPayload;
    return true;
  }

  const uint32_t version = (word >> 16) & 0x7fff;
  type_ = static_cast<uint16_t>(word);
  if (version != kSpdyVersion) {
    return fail("SPDY: control frame version " + std::to_string(version) + ", want " +
                std::to_string(kSpdyVersion));
  }
  if (length_ > kMaxControlFrameBytes) {
    return fail("SPDY: " + controlTypeName(type_) + " frame of " + std::to_string(length_) +
                " bytes, limit " + std::to_string(kMaxControlFrameBytes));
  }
  switch (static_cast<ControlType>(type_)) {
    case ControlType::kSynStream:
    case ControlType::kSynReply:
    case ControlType::kRstStream:
    case ControlType::kSettings:
    case ControlType::kPing:
    case ControlType::kGoaway:
    case ControlType::kHeaders:
    case ControlType::kWindowUpdate:
      state_ = State::kControlPayload;
      return true;
  }
  // Another type (CREDENTIAL, SPDY/2's NOOP, an extension): ignored, as the spec says.
  remaining_ = length_;
  state_ = State::kSkipPayload;
  return true;
}

bool SpdyFrameParser::decodeBlock(std::string_view block, HeaderList& headers) {
  std::string error;
  if (inflater_.decode(block, headers, error)) return true;
  return fail("SPDY: " + controlTypeName(type_) + ": " + error);
}

bool SpdyFrameParser::dispatchControl(std::string_view payload) {
  const std::string name = controlTypeName(type_);
  const bool fin = (flags_ & kFlagFin) != 0;
  auto lengthIs = [&](size_t want) {
    if (payload.size() == want) return true;
    fail("SPDY: " + name + " length " + std::to_string(payload.size()) + ", want " +
         std::to_string(want));
    return false;
  };
  auto lengthAtLeast = [&](size_t want) {
    if (payload.size() >= want) return true;
    fail("SPDY: " + name + " length " + std::to_string(payload.size()) + ", want at least " +
         std::to_string(want));
    return false;
  };
  auto streamIdAt = [&](size_t offset) { return readU32(payload.data() + offset) & kStreamIdMask; };
  auto onStream0 = [&] { return fail("SPDY: " + name + " on stream 0"); };

  switch (static_cast<ControlType>(type_)) {
    case ControlType::kSynStream: {
      if (!lengthAtLeast(kSynStreamFixedBytes)) return false;
      const uint32_t streamId = streamIdAt(0);
      if (streamId == 0) return onStream0();
      const uint32_t associatedId = streamIdAt(4);
      const uint8_t priority = static_cast<uint8_t>(payload[8]) >> 5;
      HeaderList headers;
      if (!decodeBlock(payload.substr(kSynStreamFixedBytes), headers)) return false;
      handler_.onSynStream(streamId, associatedId, priority, fin,
                           (flags_ & kFlagUnidirectional) != 0, std::move(headers));
      return true;
    }
    case ControlType::kSynReply:
    case ControlType::kHeaders: {
      if (!lengthAtLeast(4)) return false;
      const uint32_t streamId = streamIdAt(0);
      if (streamId == 0) return onStream0();
      HeaderList headers;
      if (!decodeBlock(payload.substr(4), headers)) return false;
      if (static_cast<ControlType>(type_) == ControlType::kSynReply) {
        handler_.onSynReply(streamId, fin, std::move(headers));
      } else {
        handler_.onHeaders(streamId, fin, std::move(headers));
      }
      return true;
    }
    case ControlType::kRstStream: {
      if (!lengthIs(8)) return false;
      const uint32_t streamId = streamIdAt(0);
      if (streamId == 0) return onStream0();
      handler_.onRstStream(streamId, readU32(payload.data() + 4));
      return true;
    }
    case ControlType::kSettings: {
      if (!lengthAtLeast(4)) return false;
      const uint32_t count = readU32(payload.data());
      // Checked against the bytes present before anything is allocated for the entries.
      if ((payload.size() - 4) % 8 != 0 || (payload.size() - 4) / 8 != count) {
        return fail("SPDY: SETTINGS length " + std::to_string(payload.size()) + " does not hold " +
                    std::to_string(count) + " entries");
      }
      std::vector<std::pair<uint32_t, uint32_t>> idValues;
      idValues.reserve(count);
      for (size_t at = 4; at < payload.size(); at += 8) {
        idValues.emplace_back(readU32(payload.data() + at) & 0x00ffffff,
                              readU32(payload.data() + at + 4));
      }
      handler_.onSettings(std::move(idValues));
      return true;
    }
    case ControlType::kPing:
      if (!lengthIs(4)) return false;
      handler_.onPing(readU32(payload.data()));
      return true;
    case ControlType::kGoaway:
      if (!lengthIs(8)) return false;
      handler_.onGoaway(streamIdAt(0), readU32(payload.data() + 4));
      return true;
    case ControlType::kWindowUpdate: {
      if (!lengthIs(8)) return false;
      const uint32_t streamId = streamIdAt(0);
      const uint32_t delta = readU32(payload.data() + 4) & 0x7fffffff;
      if (delta == 0) {
        return fail("SPDY: WINDOW_UPDATE on stream " + std::to_string(streamId) + " with delta 0");
      }
      handler_.onWindowUpdate(streamId, delta);
      return true;
    }
  }
  return true;  // not reached: other types are skipped in beginFrame()
}

// ---- writers ----

std::string synStreamFrame(uint32_t streamId, uint32_t associatedId, uint8_t priority, bool fin,
                           std::string_view headerBlock, bool unidirectional) {
  const uint8_t flags = (fin ? kFlagFin : 0) | (unidirectional ? kFlagUnidirectional : 0);
  std::string frame =
      controlFrame(ControlType::kSynStream, flags, kSynStreamFixedBytes + headerBlock.size());
  putU32(frame.data() + 8, streamId & kStreamIdMask);
  putU32(frame.data() + 12, associatedId & kStreamIdMask);
  frame[16] = static_cast<char>((priority & 0x07) << 5);
  frame[17] = 0;  // slot
  std::memcpy(frame.data() + 8 + kSynStreamFixedBytes, headerBlock.data(), headerBlock.size());
  return frame;
}

std::string synReplyFrame(uint32_t streamId, bool fin, std::string_view headerBlock) {
  return streamBlockFrame(ControlType::kSynReply, streamId, fin, headerBlock);
}

std::string headersFrame(uint32_t streamId, bool fin, std::string_view headerBlock) {
  return streamBlockFrame(ControlType::kHeaders, streamId, fin, headerBlock);
}

std::string rstStreamFrame(uint32_t streamId, uint32_t status) {
  return twoWordFrame(ControlType::kRstStream, streamId & kStreamIdMask, status);
}

std::string settingsFrame(const std::vector<std::pair<uint32_t, uint32_t>>& idValues) {
  std::string frame = controlFrame(ControlType::kSettings, 0, 4 + 8 * idValues.size());
  putU32(frame.data() + 8, static_cast<uint32_t>(idValues.size()));
  char* p = frame.data() + 12;
  for (const auto& [id, value] : idValues) {
    putU32(p, id & 0x00ffffff);  // entry flags 0
    putU32(p + 4, value);
    p += 8;
  }
  return frame;
}

std::string pingFrame(uint32_t id) {
  std::string frame = controlFrame(ControlType::kPing, 0, 4);
  putU32(frame.data() + 8, id);
  return frame;
}

std::string goawayFrame(uint32_t lastGoodStreamId, uint32_t status) {
  return twoWordFrame(ControlType::kGoaway, lastGoodStreamId & kStreamIdMask, status);
}

std::string windowUpdateFrame(uint32_t streamId, uint32_t delta) {
  return twoWordFrame(ControlType::kWindowUpdate, streamId & kStreamIdMask, delta & 0x7fffffff);
}

std::array<char, kFrameHeaderBytes> dataFrameHeader(uint32_t streamId, uint32_t length, bool fin) {
  if (length > kMaxFrameLength) std::abort();  // a caller's bug: see the header
  std::array<char, kFrameHeaderBytes> header;
  putU32(header.data(), streamId & kStreamIdMask);
  putU32(header.data() + 4, (fin ? uint32_t{kFlagFin} << 24 : 0u) | length);
  return header;
}

std::string dataFrame(uint32_t streamId, std::string_view payload, bool fin) {
  if (payload.size() > kMaxFrameLength) std::abort();
  const auto header = dataFrameHeader(streamId, static_cast<uint32_t>(payload.size()), fin);
  std::string frame;
  frame.reserve(kFrameHeaderBytes + payload.size());
  frame.append(header.data(), header.size());
  frame.append(payload);
  return frame;
}

}  // namespace monocri::exec::spdy
