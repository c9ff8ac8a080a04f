#include "cri-bridge/grpc/GrpcCompression.h"

#include <gtest/gtest.h>

namespace monocri::grpc {
namespace {

TEST(GrpcCompression, GzipRoundTrip) {
  std::string data;
  for (int i = 0; i < 10000; ++i)
    data += std::to_string(i);
  bool tooLarge = true;
  auto back = gunzip(gzip(data), 1 << 20, tooLarge);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, data);
  EXPECT_FALSE(tooLarge);
}

TEST(GrpcCompression, RefusesOutputOverTheLimit) {
  // 64 MiB of zeros compresses to about 64 KiB: a bomb for a 16 MiB limit.
  std::string bomb = gzip(std::string(64 << 20, '\0'));
  EXPECT_LT(bomb.size(), 100u * 1024);
  bool tooLarge = false;
  EXPECT_FALSE(gunzip(bomb, 16 << 20, tooLarge));
  EXPECT_TRUE(tooLarge);
}

TEST(GrpcCompression, RejectsCorruptTruncatedAndTrailingBytes) {
  std::string good = gzip("hello hello hello");
  bool tooLarge = false;
  EXPECT_FALSE(gunzip("not gzip at all", 1024, tooLarge));
  EXPECT_FALSE(tooLarge);
  EXPECT_FALSE(gunzip(good.substr(0, good.size() - 4), 1024, tooLarge));
  EXPECT_FALSE(gunzip(good + "junk", 1024, tooLarge));
  EXPECT_FALSE(gunzip("", 1024, tooLarge));
}

TEST(GrpcCompression, SupportedEncodings) {
  EXPECT_TRUE(isSupportedEncoding("gzip"));
  EXPECT_TRUE(isSupportedEncoding("identity"));
  EXPECT_FALSE(isSupportedEncoding("snappy"));
  EXPECT_FALSE(isSupportedEncoding("deflate"));
}

}  // namespace
}  // namespace monocri::grpc
