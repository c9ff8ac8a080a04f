#include "cri-bridge/grpc/GrpcFraming.h"

#include <gtest/gtest.h>

#include <random>

namespace monocri::grpc {
namespace {

using Message = GrpcMessageDecoder::Message;

TEST(GrpcFraming, PrefixIsFlagThenBigEndianLength) {
  std::string out;
  appendGrpcMessage(out, std::string(0x010203, 'x'));
  ASSERT_EQ(out.size(), 5u + 0x010203);
  EXPECT_EQ(static_cast<unsigned char>(out[0]), 0);
  EXPECT_EQ(static_cast<unsigned char>(out[1]), 0x00);
  EXPECT_EQ(static_cast<unsigned char>(out[2]), 0x01);
  EXPECT_EQ(static_cast<unsigned char>(out[3]), 0x02);
  EXPECT_EQ(static_cast<unsigned char>(out[4]), 0x03);

  std::string compressed;
  appendGrpcMessage(compressed, "ab", /*compressed=*/true);
  EXPECT_EQ(compressed, std::string("\x01\x00\x00\x00\x02"
                                    "ab",
                                    7));
}

TEST(GrpcFraming, EmptyMessageIsFiveZeroBytes) {
  // What crictl sends for an empty VersionRequest (fixtures/grpc/version).
  GrpcMessageDecoder decoder(1024);
  std::vector<Message> out;
  EXPECT_EQ(decoder.decode(std::string(5, '\0'), out), GrpcMessageDecoder::Error::kNone);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].bytes.empty());
  EXPECT_FALSE(out[0].compressed);
  EXPECT_FALSE(decoder.midMessage());
}

TEST(GrpcFraming, DecodesAnySplitOfSeveralMessages) {
  std::vector<std::string> messages = {"", "a", std::string(70000, 'b'), "\x00\x01\xff"};
  std::string wire;
  for (const auto& m : messages)
    appendGrpcMessage(wire, m);

  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    GrpcMessageDecoder decoder(1 << 20);
    std::vector<Message> out;
    size_t pos = 0;
    while (pos < wire.size()) {
      size_t chunk = std::min<size_t>(wire.size() - pos, 1 + rng() % (round < 100 ? 7 : 9000));
      ASSERT_EQ(decoder.decode(std::string_view(wire).substr(pos, chunk), out),
                GrpcMessageDecoder::Error::kNone);
      pos += chunk;
    }
    ASSERT_EQ(out.size(), messages.size());
    for (size_t i = 0; i < messages.size(); ++i)
      EXPECT_EQ(out[i].bytes, messages[i]);
    EXPECT_FALSE(decoder.midMessage());
  }
}

TEST(GrpcFraming, TruncatedMessageIsMidMessage) {
  std::string wire;
  appendGrpcMessage(wire, "hello");
  GrpcMessageDecoder decoder(1024);
  std::vector<Message> out;
  decoder.decode(std::string_view(wire).substr(0, 3), out);
  EXPECT_TRUE(decoder.midMessage());
  EXPECT_FALSE(decoder.inPayload());
  decoder.decode(std::string_view(wire).substr(3, 4), out);
  EXPECT_TRUE(decoder.inPayload());
  EXPECT_EQ(decoder.declaredLength(), 5u);
  EXPECT_TRUE(out.empty());
}

TEST(GrpcFraming, OversizedMessageRefusedFromItsPrefixWithoutBuffering) {
  GrpcMessageDecoder decoder(16 * 1024 * 1024);
  std::vector<Message> out;
  const std::string prefix("\x00\x06\x40\x00\x00", 5);  // 100 MiB
  EXPECT_EQ(decoder.decode(prefix + std::string(1000, 'x'), out),
            GrpcMessageDecoder::Error::kTooLarge);
  EXPECT_EQ(decoder.declaredLength(), 100u * 1024 * 1024);
  EXPECT_LT(decoder.bufferedBytes(), 1024u);
  // Stays failed: nothing more is taken.
  EXPECT_EQ(decoder.decode(std::string(10, '\0'), out), GrpcMessageDecoder::Error::kTooLarge);
  EXPECT_TRUE(out.empty());
}

TEST(GrpcFraming, DeclaredLengthDoesNotReserveMemoryUpFront) {
  GrpcMessageDecoder decoder(16 * 1024 * 1024);
  std::vector<Message> out;
  const std::string prefix("\x00\x00\xff\x00\x00", 5);  // 16 MiB - 64 KiB, only the prefix sent
  EXPECT_EQ(decoder.decode(prefix, out), GrpcMessageDecoder::Error::kNone);
  EXPECT_LE(decoder.bufferedBytes(), 128u * 1024);
}

TEST(GrpcFraming, BadCompressedFlagIsAnError) {
  GrpcMessageDecoder decoder(1024);
  std::vector<Message> out;
  EXPECT_EQ(decoder.decode(std::string("\x02\x00\x00\x00\x00", 5), out),
            GrpcMessageDecoder::Error::kBadFlag);
  EXPECT_EQ(decoder.error(), GrpcMessageDecoder::Error::kBadFlag);
}

TEST(GrpcFraming, CompressedFlagIsReported) {
  GrpcMessageDecoder decoder(1024);
  std::vector<Message> out;
  std::string wire;
  appendGrpcMessage(wire, "zz", true);
  decoder.decode(wire, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].compressed);
}

}  // namespace
}  // namespace monocri::grpc
