// gRPC's Length-Prefixed-Message framing, shared by the server and the client.
//
//   0        1                               5
//   +--------+-------------------------------+--------------------------------+
//   | flag   |  length (uint32, big-endian)  |  message: `length` bytes       |
//   +--------+-------------------------------+--------------------------------+
//   flag: 0 = message as is, 1 = compressed with the call's grpc-encoding.
//
// Messages may span any number of HTTP/2 DATA frames and a DATA frame may hold several.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace monocri::grpc {

inline constexpr size_t kGrpcMessageHeaderBytes = 5;

// Appends the 5-byte prefix and `message` to `out`.
void appendGrpcMessage(std::string& out, std::string_view message, bool compressed = false);

// Resumable decoder: feed it bytes as they arrive, split anywhere.
class GrpcMessageDecoder {
 public:
  struct Message {
    bool compressed = false;
    std::string bytes;
  };
  enum class Error {
    kNone,
    kTooLarge,  // declared length over the limit: refused from the prefix, never buffered
    kBadFlag,   // compressed-flag neither 0 nor 1
  };

  explicit GrpcMessageDecoder(size_t maxMessageBytes) : maxMessageBytes_(maxMessageBytes) {}

  // Consumes `data`, appending each completed message to `out`. After an error the decoder
  // stays failed and consumes nothing more.
  Error decode(std::string_view data, std::vector<Message>& out);

  Error error() const { return error_; }
  // True when part of a message has arrived: an end of stream here truncates it.
  bool midMessage() const { return headerFilled_ != 0 || state_ == State::kPayload; }
  // The prefix of the current message has arrived: declaredLength() is its length.
  bool inPayload() const { return state_ == State::kPayload; }
  // Memory held for the message being assembled.
  size_t bufferedBytes() const { return message_.capacity(); }
  // The length the current (or last completed, or refused) message declared.
  uint32_t declaredLength() const { return declaredLength_; }

 private:
  enum class State { kHeader, kPayload, kFailed };

  size_t maxMessageBytes_;
  State state_ = State::kHeader;
  Error error_ = Error::kNone;
  unsigned char header_[kGrpcMessageHeaderBytes] = {};
  size_t headerFilled_ = 0;
  bool compressed_ = false;
  uint32_t declaredLength_ = 0;
  std::string message_;
};

}  // namespace monocri::grpc
