// Stop signals as kubelet's enum and images' StopSignal write them.
#include "oci/spec/StopSignal.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace monocri::oci {
namespace {

using Json = nlohmann::json;

TEST(StopSignalTest, CanonicalNames) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"SIGTERM", "SIGTERM"},   {"TERM", "SIGTERM"},       {"term", "SIGTERM"},
      {"15", "SIGTERM"},        {"9", "SIGKILL"},          {"SIGIOT", "SIGABRT"},
      {"SIGRTMIN", "SIGRTMIN"}, {"RTMIN+3", "SIGRTMIN+3"}, {"SIGRTMAX-1", "SIGRTMAX-1"},
      {"37", "SIGRTMIN+3"},     {"63", "SIGRTMAX-1"},      {"SIGWINCH", "SIGWINCH"},
  };
  for (const auto& [text, expected] : cases) {
    const auto name = canonicalSignalName(text);
    ASSERT_TRUE(name.has_value()) << text;
    EXPECT_EQ(*name, expected) << text;
  }
  for (const char* bad :
       {"", "SIGFOO", "0", "65", "32", "-9", "RTMIN+31", "RTMAX-31", "15x", "SIG"}) {
    EXPECT_FALSE(canonicalSignalName(bad).has_value()) << bad;
  }
}

TEST(StopSignalTest, NumbersAreLinuxs) {
  EXPECT_EQ(signalNumber("SIGTERM"), SIGTERM);
  EXPECT_EQ(signalNumber("SIGUSR1"), SIGUSR1);
  EXPECT_EQ(signalNumber("SIGRTMIN+1"), SIGRTMIN + 1);
  EXPECT_EQ(signalNumber("SIGRTMAX"), SIGRTMAX);
}

TEST(StopSignalTest, CriEnumNames) {
  EXPECT_EQ(criSignalName(runtime::v1::SIGNAL_RUNTIME_DEFAULT), "");
  EXPECT_EQ(criSignalName(runtime::v1::SIGNAL_SIGQUIT), "SIGQUIT");
  EXPECT_EQ(criSignalName(runtime::v1::SIGNAL_SIGRTMINPLUS5), "SIGRTMIN+5");
  EXPECT_EQ(criSignalName(runtime::v1::SIGNAL_SIGRTMAXMINUS2), "SIGRTMAX-2");
  EXPECT_EQ(criSignalName(runtime::v1::SIGNAL_SIGRTMAX), "SIGRTMAX");
  // Every enum value names a signal kill(2) knows.
  for (int value = runtime::v1::Signal_MIN + 1; value <= runtime::v1::Signal_MAX; ++value) {
    const auto name = criSignalName(static_cast<runtime::v1::Signal>(value));
    EXPECT_TRUE(signalNumber(name).has_value()) << value << " " << name;
  }
}

TEST(StopSignalTest, CriThenImageThenSigterm) {
  std::vector<std::string> warnings;
  EXPECT_EQ(
      resolveStopSignal(runtime::v1::SIGNAL_SIGINT, Json{{"StopSignal", "SIGQUIT"}}, warnings),
      "SIGINT");
  EXPECT_EQ(resolveStopSignal(runtime::v1::SIGNAL_RUNTIME_DEFAULT, Json{{"StopSignal", "SIGQUIT"}},
                              warnings),
            "SIGQUIT");
  EXPECT_EQ(
      resolveStopSignal(runtime::v1::SIGNAL_RUNTIME_DEFAULT, Json{{"StopSignal", "2"}}, warnings),
      "SIGINT");
  EXPECT_EQ(resolveStopSignal(runtime::v1::SIGNAL_RUNTIME_DEFAULT, Json(), warnings), "SIGTERM");
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(resolveStopSignal(runtime::v1::SIGNAL_RUNTIME_DEFAULT, Json{{"StopSignal", "SIGNOPE"}},
                              warnings),
            "SIGTERM");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("SIGNOPE"), std::string::npos);
}

}  // namespace
}  // namespace monocri::oci
