// The token bucket of the log rate limit, on a clock the test moves.
#include "logging/TokenBucket.h"

#include <gtest/gtest.h>

namespace monocri::logging {
namespace {

TEST(TokenBucketTest, StartsFullAndGivesNoMoreThanTheBurst) {
  TokenBucket bucket(1000, 5000, 0);
  EXPECT_EQ(bucket.available(0), 5000u);
  EXPECT_EQ(bucket.take(3000, 0), 3000u);
  EXPECT_EQ(bucket.take(3000, 0), 2000u);
  EXPECT_EQ(bucket.take(1, 0), 0u);
}

TEST(TokenBucketTest, RefillsAtTheRateWithoutLosingFractions) {
  TokenBucket bucket(1500, 1500, 100);
  EXPECT_EQ(bucket.take(1500, 100), 1500u);
  // 1.5 bytes a millisecond: 1 ms gives 1 whole byte, the half is kept for the next.
  EXPECT_EQ(bucket.take(10, 101), 1u);
  EXPECT_EQ(bucket.take(10, 102), 2u);
  // Taken one millisecond at a time over a second, exactly the rate passes.
  uint64_t total = 0;
  for (uint64_t ms = 103; ms <= 1102; ++ms)
    total += bucket.take(UINT64_MAX, ms);
  EXPECT_EQ(total, 1500u);
}

TEST(TokenBucketTest, AQuietSpellFillsItToTheBurstAndNoMore) {
  TokenBucket bucket(10, 100, 0);
  EXPECT_EQ(bucket.take(100, 0), 100u);
  EXPECT_EQ(bucket.available(5'000), 50u);
  EXPECT_EQ(bucket.available(UINT64_MAX), 100u);  // no overflow, however long the spell
}

TEST(TokenBucketTest, AClockGoingBackAddsNothing) {
  TokenBucket bucket(1000, 1000, 5'000);
  EXPECT_EQ(bucket.take(1000, 5'000), 1000u);
  EXPECT_EQ(bucket.take(1000, 1'000), 0u);
  EXPECT_EQ(bucket.take(1000, 5'100), 100u);
}

TEST(TokenBucketTest, TheLargestRateAndBurstDoNotOverflow) {
  TokenBucket bucket(TokenBucket::kMaxBytes, TokenBucket::kMaxBytes, 0);
  EXPECT_EQ(bucket.take(UINT64_MAX, 0), TokenBucket::kMaxBytes);
  EXPECT_EQ(bucket.available(1), TokenBucket::kMaxBytes / 1000);
  EXPECT_EQ(bucket.available(1'000'000), TokenBucket::kMaxBytes);
}

}  // namespace
}  // namespace monocri::logging
