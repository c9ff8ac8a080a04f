#include "cri-bridge/grpc/GrpcTimeout.h"

#include <gtest/gtest.h>

#include <limits>

namespace monocri::grpc {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

TEST(GrpcTimeout, ParsesEveryUnit) {
  EXPECT_EQ(parseGrpcTimeout("1998509u"), microseconds(1998509));  // crictl
  EXPECT_EQ(parseGrpcTimeout("120000m"), milliseconds(120000));    // kubelet
  EXPECT_EQ(parseGrpcTimeout("5S"), seconds(5));
  EXPECT_EQ(parseGrpcTimeout("2M"), minutes(2));
  EXPECT_EQ(parseGrpcTimeout("1H"), hours(1));
  EXPECT_EQ(parseGrpcTimeout("7n"), nanoseconds(7));
  EXPECT_EQ(parseGrpcTimeout("0m"), nanoseconds(0));
  EXPECT_EQ(parseGrpcTimeout("99999999S"), seconds(99999999));
}

TEST(GrpcTimeout, RejectsWhatTheGrammarForbids) {
  for (const char* bad : {"", "m", "10", "10x", "10s ", " 10S", "-5S", "+5S", "1.5S", "123456789S",
                          "10h", "1e3m", "10mm", "S10"}) {
    EXPECT_FALSE(parseGrpcTimeout(bad)) << "'" << bad << "'";
  }
}

TEST(GrpcTimeout, SaturatesInsteadOfOverflowing) {
  EXPECT_EQ(parseGrpcTimeout("99999999H"), nanoseconds(std::numeric_limits<int64_t>::max()));
}

TEST(GrpcTimeout, FormatsTheShortestValueNotShorterThanAsked) {
  EXPECT_EQ(formatGrpcTimeout(nanoseconds(1)), "1n");
  EXPECT_EQ(formatGrpcTimeout(milliseconds(1)), "1000000n");
  EXPECT_EQ(formatGrpcTimeout(seconds(2)), "2000000u");
  EXPECT_EQ(formatGrpcTimeout(seconds(120)), "120000m");
  EXPECT_EQ(formatGrpcTimeout(hours(24 * 365)), "31536000S");
  EXPECT_EQ(formatGrpcTimeout(nanoseconds(0)), "1n");
  // Rounded up, never down: a client must not ask for less time than it will wait.
  EXPECT_EQ(formatGrpcTimeout(nanoseconds(100'000'001)), "100001u");
  for (int64_t ns : {1LL, 999LL, 123456789LL, 99999999999LL, 3600LL * 1'000'000'000 * 30000}) {
    auto parsed = parseGrpcTimeout(formatGrpcTimeout(nanoseconds(ns)));
    ASSERT_TRUE(parsed);
    EXPECT_GE(parsed->count(), ns);
  }
}

}  // namespace
}  // namespace monocri::grpc
