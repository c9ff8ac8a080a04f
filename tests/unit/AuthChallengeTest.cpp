// WWW-Authenticate challenges as registries send them, and what hostile headers yield.
#include "oci/image/AuthChallenge.h"

#include <gtest/gtest.h>

#include <string>

namespace monocri::oci {
namespace {

TEST(AuthChallengeTest, DockerHubBearerChallenge) {
  auto challenges = parseWwwAuthenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",)"
      R"(scope="repository:library/busybox:pull")");
  ASSERT_EQ(challenges.size(), 1u);
  EXPECT_EQ(challenges[0].scheme, "bearer");
  EXPECT_EQ(challenges[0].params.size(), 3u);
  EXPECT_EQ(challenges[0].param("realm"), "https://auth.docker.io/token");
  EXPECT_EQ(challenges[0].param("service"), "registry.docker.io");
  EXPECT_EQ(challenges[0].param("scope"), "repository:library/busybox:pull");
  EXPECT_EQ(challenges[0].param("error"), "");
}

TEST(AuthChallengeTest, NamesAreCaseInsensitiveValuesKeptAsWritten) {
  auto challenges = parseWwwAuthenticate("BASIC Realm=\"My Registry\"");
  ASSERT_EQ(challenges.size(), 1u);
  EXPECT_EQ(challenges[0].scheme, "basic");
  EXPECT_EQ(challenges[0].param("realm"), "My Registry");
}

TEST(AuthChallengeTest, TokenValuesSpacesAndEmptyParams) {
  auto challenges =
      parseWwwAuthenticate("  Bearer   realm = my-realm.1 ,, service=reg , scope=\"\"");
  ASSERT_EQ(challenges.size(), 1u);
  EXPECT_EQ(challenges[0].param("realm"), "my-realm.1");
  EXPECT_EQ(challenges[0].param("service"), "reg");
  ASSERT_EQ(challenges[0].params.count("scope"), 1u);
  EXPECT_EQ(challenges[0].param("scope"), "");
}

TEST(AuthChallengeTest, EscapedQuotesAndCommasInQuotedValues) {
  auto challenges = parseWwwAuthenticate(
      R"(Bearer realm="https://a/t?x=\"y\"",scope="repository:a:pull,push",error="in\\valid")");
  ASSERT_EQ(challenges.size(), 1u);
  EXPECT_EQ(challenges[0].param("realm"), "https://a/t?x=\"y\"");
  EXPECT_EQ(challenges[0].param("scope"), "repository:a:pull,push");
  EXPECT_EQ(challenges[0].param("error"), "in\\valid");
}

TEST(AuthChallengeTest, SeveralChallengesInOneHeader) {
  auto challenges = parseWwwAuthenticate(
      "Basic realm=\"r1\", Bearer realm=\"https://auth/t\",service=\"s\", Negotiate");
  ASSERT_EQ(challenges.size(), 3u);
  EXPECT_EQ(challenges[0].scheme, "basic");
  EXPECT_EQ(challenges[0].param("realm"), "r1");
  EXPECT_EQ(challenges[0].params.size(), 1u);
  EXPECT_EQ(challenges[1].scheme, "bearer");
  EXPECT_EQ(challenges[1].param("realm"), "https://auth/t");
  EXPECT_EQ(challenges[1].param("service"), "s");
  EXPECT_EQ(challenges[2].scheme, "negotiate");
  EXPECT_TRUE(challenges[2].params.empty());
}

TEST(AuthChallengeTest, Token68CredentialEndsTheParse) {
  // "Negotiate YIIB==" carries a token68, not name=value pairs; what precedes it stays.
  auto challenges = parseWwwAuthenticate("Basic realm=\"x\", Negotiate YIIB==");
  ASSERT_EQ(challenges.size(), 2u);
  EXPECT_EQ(challenges[0].scheme, "basic");
  EXPECT_EQ(challenges[0].param("realm"), "x");
  EXPECT_EQ(challenges[1].scheme, "negotiate");
}

TEST(AuthChallengeTest, UnterminatedQuoteDropsTheMalformedChallenge) {
  EXPECT_TRUE(parseWwwAuthenticate("Bearer realm=\"https://a/t").empty());
  EXPECT_TRUE(parseWwwAuthenticate("Bearer realm=\"abc\\\"").empty());
  auto challenges = parseWwwAuthenticate("Basic realm=\"ok\", Bearer realm=\"never closed");
  ASSERT_EQ(challenges.size(), 1u);
  EXPECT_EQ(challenges[0].scheme, "basic");
  EXPECT_EQ(challenges[0].param("realm"), "ok");
}

TEST(AuthChallengeTest, EmptyAndGarbageGiveNothingOrLess) {
  EXPECT_TRUE(parseWwwAuthenticate("").empty());
  EXPECT_TRUE(parseWwwAuthenticate("   ,,, \t ").empty());
  EXPECT_TRUE(parseWwwAuthenticate("\"quoted\"").empty());
  EXPECT_TRUE(parseWwwAuthenticate("=").empty());
  EXPECT_TRUE(parseWwwAuthenticate(std::string("\0\xff\x01", 3)).empty());
  // Garbage after a good challenge ends the parse, keeping what came before.
  auto challenges = parseWwwAuthenticate("Basic realm=\"a\" @@@ Bearer realm=\"b\"");
  ASSERT_EQ(challenges.size(), 1u);
  EXPECT_EQ(challenges[0].param("realm"), "a");
}

TEST(AuthChallengeTest, LongRepetitiveHeadersEnd) {
  // Every shape that could make a scanner stand still, repeated: each must finish.
  for (const std::string unit : {"a=", "a=,", "=", "a b ", "\"", "a=\"\\", ",", "a=b=c "}) {
    std::string header;
    for (int i = 0; i < 20000; ++i)
      header += unit;
    auto challenges = parseWwwAuthenticate(header);
    EXPECT_LE(challenges.size(), header.size()) << unit;
  }
  std::string many;
  for (int i = 0; i < 1000; ++i)
    many += "Basic realm=\"r" + std::to_string(i) + "\", ";
  auto challenges = parseWwwAuthenticate(many);
  ASSERT_EQ(challenges.size(), 1000u);
  EXPECT_EQ(challenges[999].param("realm"), "r999");
}

}  // namespace
}  // namespace monocri::oci
