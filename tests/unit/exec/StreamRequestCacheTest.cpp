// The streaming server's tokens: unguessable, single-use, expiring, bounded in number.
#include "exec/StreamRequestCache.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace monocri::exec {
namespace {

ExecStreamRequest execOf(const std::string& id) {
  ExecStreamRequest request;
  request.containerId = id;
  request.cmd = {"true"};
  return request;
}

TEST(StreamToken, Is128RandomBitsAsUrlSafeBase64) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string token = newStreamToken();
    ASSERT_EQ(token.size(), 22u);  // ceil(128 / 6)
    ASSERT_EQ(
        token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        std::string::npos)
        << token;
    seen.insert(token);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(StreamRequestCache, ATokenWorksOnce) {
  StreamRequestCache cache;
  std::string token;
  ASSERT_TRUE(cache.insert(execOf("c1"), 1000, token).isOk());
  auto taken = cache.take(token, 1001);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(std::get<ExecStreamRequest>(*taken).containerId, "c1");
  EXPECT_FALSE(cache.take(token, 1002).has_value());
  EXPECT_FALSE(cache.take("not-a-token", 1002).has_value());
  EXPECT_EQ(cache.waiting(), 0u);
}

TEST(StreamRequestCache, ATokenExpiresAfterAMinute) {
  StreamRequestCache cache;
  std::string early, late;
  ASSERT_TRUE(cache.insert(execOf("early"), 0, early).isOk());
  ASSERT_TRUE(cache.insert(execOf("late"), 30'000, late).isOk());
  // One millisecond before its minute is up a token still works; at the minute it does not.
  EXPECT_FALSE(cache.take(early, StreamRequestCache::kTokenLifetimeMs).has_value());
  EXPECT_TRUE(cache.take(late, 30'000 + StreamRequestCache::kTokenLifetimeMs - 1).has_value());
  // Expired requests are dropped, not kept until someone asks.
  std::string other;
  ASSERT_TRUE(cache.insert(execOf("x"), 0, other).isOk());
  ASSERT_TRUE(cache.insert(execOf("y"), 10 * StreamRequestCache::kTokenLifetimeMs, other).isOk());
  EXPECT_EQ(cache.waiting(), 1u);
}

TEST(StreamRequestCache, WaitingRequestsAreBounded) {
  StreamRequestCache cache;
  std::string token;
  for (size_t i = 0; i < StreamRequestCache::kMaxWaiting; ++i)
    ASSERT_TRUE(cache.insert(execOf("c"), 0, token).isOk());
  const grpc::Status full = cache.insert(execOf("c"), 0, token);
  EXPECT_EQ(full.code(), grpc::StatusCode::kResourceExhausted);
  // Used tokens make room; so does time.
  ASSERT_TRUE(cache.take(token, 1).has_value());
  EXPECT_TRUE(cache.insert(execOf("c"), 1, token).isOk());
  EXPECT_TRUE(cache.insert(execOf("c"), StreamRequestCache::kTokenLifetimeMs, token).isOk());
  EXPECT_EQ(cache.waiting(), 2u);
}

}  // namespace
}  // namespace monocri::exec
