#include "cri-bridge/grpc/GrpcFraming.h"

#include <algorithm>

namespace monocri::grpc {

namespace {
// A declared length reserves at most this much up front, so a prefix alone cannot make the
// server allocate a large buffer; the rest grows as bytes actually arrive.
constexpr size_t kMaxUpfrontReserve = 64 * 1024;
}  // namespace

void appendGrpcMessage(std::string& out, std::string_view message, bool compressed) {
  const auto length = static_cast<uint32_t>(message.size());
  const char header[kGrpcMessageHeaderBytes] = {
      static_cast<char>(compressed ? 1 : 0),    static_cast<char>(length >> 24),
      static_cast<char>((length >> 16) & 0xff), static_cast<char>((length >> 8) & 0xff),
      static_cast<char>(length & 0xff),
  };
  out.append(header, sizeof(header));
  out.append(message);
}

GrpcMessageDecoder::Error GrpcMessageDecoder::decode(std::string_view data,
                                                     std::vector<Message>& out) {
  while (state_ != State::kFailed) {
    if (state_ == State::kHeader) {
      const size_t take = std::min(data.size(), kGrpcMessageHeaderBytes - headerFilled_);
      std::copy_n(data.data(), take, header_ + headerFilled_);
      headerFilled_ += take;
      data.remove_prefix(take);
      if (headerFilled_ < kGrpcMessageHeaderBytes) return Error::kNone;
      headerFilled_ = 0;
      if (header_[0] > 1) {
        state_ = State::kFailed;
        return error_ = Error::kBadFlag;
      }
      compressed_ = header_[0] == 1;
      declaredLength_ = static_cast<uint32_t>(header_[1]) << 24 |
                        static_cast<uint32_t>(header_[2]) << 16 |
                        static_cast<uint32_t>(header_[3]) << 8 | static_cast<uint32_t>(header_[4]);
      if (declaredLength_ > maxMessageBytes_) {
        state_ = State::kFailed;
        return error_ = Error::kTooLarge;
      }
      message_.clear();
      message_.reserve(std::min<size_t>(declaredLength_, kMaxUpfrontReserve));
      state_ = State::kPayload;
    }
    // kPayload
    const size_t take = std::min(data.size(), declaredLength_ - message_.size());
    message_.append(data.data(), take);
    data.remove_prefix(take);
    if (message_.size() < declaredLength_) return Error::kNone;
    out.push_back(Message{compressed_, std::move(message_)});
    message_ = std::string();
    state_ = State::kHeader;
    if (data.empty()) return Error::kNone;
  }
  return error_;
}

}  // namespace monocri::grpc
