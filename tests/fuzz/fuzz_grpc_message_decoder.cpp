// The gRPC message decoder on hostile bytes: never crashes, never holds more than the limit,
// and for any valid stream decode(encode(messages)) == messages however the bytes are split.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "cri-bridge/grpc/GrpcFraming.h"

using monocri::grpc::GrpcMessageDecoder;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kLimit = 4096;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // 1. Arbitrary bytes, fed in chunks whose sizes come from the input itself.
  GrpcMessageDecoder decoder(kLimit);
  std::vector<GrpcMessageDecoder::Message> out;
  size_t pos = 0;
  while (pos < input.size()) {
    size_t chunk = 1 + static_cast<unsigned char>(input[pos]) % 32;
    chunk = std::min(chunk, input.size() - pos);
    if (decoder.decode(input.substr(pos, chunk), out) != GrpcMessageDecoder::Error::kNone) break;
    pos += chunk;
  }
  for (const auto& m : out) {
    if (m.bytes.size() > kLimit) std::abort();
  }
  if (decoder.bufferedBytes() > 64 * 1024 + kLimit) std::abort();

  // 2. Round trip: the input cut into messages, framed, then decoded byte by byte.
  std::vector<std::string> messages;
  for (size_t i = 0; i < input.size();) {
    size_t len = std::min<size_t>(static_cast<unsigned char>(input[i]), input.size() - i);
    messages.emplace_back(input.substr(i, len));
    i += len + 1;
  }
  std::string wire;
  for (const auto& m : messages)
    monocri::grpc::appendGrpcMessage(wire, m);
  GrpcMessageDecoder roundTrip(kLimit);
  std::vector<GrpcMessageDecoder::Message> decoded;
  for (char c : wire) {
    if (roundTrip.decode(std::string_view(&c, 1), decoded) != GrpcMessageDecoder::Error::kNone) {
      std::abort();
    }
  }
  if (decoded.size() != messages.size() || roundTrip.midMessage()) std::abort();
  for (size_t i = 0; i < messages.size(); ++i) {
    if (decoded[i].bytes != messages[i]) std::abort();
  }
  return 0;
}
