// Parsers of gRPC header values a client controls: grpc-timeout, grpc-status, grpc-message.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "cri-bridge/grpc/GrpcTimeout.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);

  if (auto timeout = monocri::grpc::parseGrpcTimeout(input)) {
    if (timeout->count() < 0) std::abort();
    // What we format must parse, and never to less than was asked.
    auto again = monocri::grpc::parseGrpcTimeout(monocri::grpc::formatGrpcTimeout(*timeout));
    if (!again || *again < *timeout) std::abort();
  }
  if (auto code = monocri::grpc::parseGrpcStatus(input)) {
    if (static_cast<int>(*code) < 0 || static_cast<int>(*code) > 16) std::abort();
  }
  const std::string encoded = monocri::grpc::percentEncodeGrpcMessage(input);
  for (unsigned char c : encoded) {
    if (c < 0x20 || c > 0x7e) std::abort();  // must be a valid HTTP/2 header value
  }
  if (monocri::grpc::percentDecodeGrpcMessage(encoded) != input) std::abort();
  (void)monocri::grpc::percentDecodeGrpcMessage(input);
  return 0;
}
