// The error and resize streams of Kubernetes' remotecommand protocols, against what CRI-O sent
// kubectl in the fixtures and what kubectl sends.
#include "exec/RemoteCommandProtocol.h"

#include <gtest/gtest.h>

#include <vector>

namespace monocri::exec {
namespace {

TEST(ErrorStream, V4StatusIsByteForByteWhatKubectlGotFromCriO) {
  // exec-echo.s2c.bin and exec-exit-code.s2c.bin.
  EXPECT_EQ(errorStreamMessage(CommandOutcome{grpc::Status::ok(), 0}, 4),
            R"({"metadata":{},"status":"Success"})");
  EXPECT_EQ(errorStreamMessage(CommandOutcome{grpc::Status::ok(), 3}, 4),
            R"({"metadata":{},"status":"Failure","message":"command terminated with non-zero exit )"
            R"(code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":)"
            R"("ExitCode","message":"3"}]}})");
}

TEST(ErrorStream, FailuresToRunAreInternalErrorsWithTheReason) {
  const std::string v4 = errorStreamMessage(
      CommandOutcome{grpc::Status(grpc::StatusCode::kInternal, "exec: \"nope\": not found"), 0}, 5);
  EXPECT_NE(v4.find(R"("reason":"InternalError")"), std::string::npos) << v4;
  EXPECT_NE(v4.find(R"(exec: \"nope\": not found)"), std::string::npos) << v4;
  // Before v4 the stream holds plain text, and nothing for a success.
  EXPECT_EQ(errorStreamMessage(CommandOutcome{grpc::Status::ok(), 0}, 2), "");
  EXPECT_EQ(errorStreamMessage(CommandOutcome{grpc::Status::ok(), 7}, 1),
            "command terminated with non-zero exit code: exit status 7");
}

TEST(Protocols, OnlyThoseTheServerSpeaks) {
  EXPECT_EQ(commandProtocol("v4.channel.k8s.io", false)->version, 4);
  EXPECT_EQ(commandProtocol("v5.channel.k8s.io", true)->version, 5);
  EXPECT_TRUE(commandProtocol("v4.base64.channel.k8s.io", true)->base64);
  EXPECT_FALSE(commandProtocol("base64.channel.k8s.io", false).has_value());  // WebSocket only
  EXPECT_FALSE(commandProtocol("v6.channel.k8s.io", false).has_value());
  EXPECT_FALSE(commandProtocol("", true).has_value());
}

TEST(ResizeDecoder, EventsSplitAnywhere) {
  const std::string events = "{\"Width\":100,\"Height\":30}\n{\"Width\":120,\"Height\":40}\n";
  for (size_t piece = 1; piece <= events.size(); ++piece) {
    ResizeDecoder decoder;
    std::vector<std::pair<uint16_t, uint16_t>> seen;
    for (size_t at = 0; at < events.size(); at += piece) {
      ASSERT_TRUE(decoder.feed(std::string_view(events).substr(at, piece),
                               [&](uint16_t w, uint16_t h) { seen.emplace_back(w, h); }));
    }
    EXPECT_EQ(seen, (std::vector<std::pair<uint16_t, uint16_t>>{{100, 30}, {120, 40}}));
  }
}

TEST(ResizeDecoder, HostileEventsAreRefused) {
  auto ignore = [](uint16_t, uint16_t) {};
  for (const char* bad : {"not json\n", "[1,2]\n", "{\"Width\":-1}\n", "{\"Width\":70000}\n",
                          "{\"Height\":\"x\"}\n"}) {
    ResizeDecoder decoder;
    EXPECT_FALSE(decoder.feed(bad, ignore)) << bad;
  }
  ResizeDecoder endless;
  EXPECT_FALSE(endless.feed(std::string(5000, ' '), ignore));
  ResizeDecoder message;
  std::pair<uint16_t, uint16_t> got{};
  EXPECT_TRUE(message.feedMessage(R"({"Width":80,"Height":24})", [&](uint16_t w, uint16_t h) {
    got = {w, h};
  }));
  EXPECT_EQ(got, (std::pair<uint16_t, uint16_t>{80, 24}));
}

}  // namespace
}  // namespace monocri::exec
