// The gRPC server and client of src/cri-bridge/grpc/ against each other over a real unix socket.
// Interop with an independent implementation is proven by tests/interop (Python grpcio).
#include "cri-bridge/grpc/GrpcServer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <functional>
#include <optional>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcClient.h"
#include "loop/Timer.h"

namespace monocri::grpc {
namespace {

namespace v1 = runtime::v1;
using std::chrono::milliseconds;

constexpr const char* kVersion = "/runtime.v1.RuntimeService/Version";
constexpr const char* kParked = "/test.Service/Parked";  // answered only when the test says
constexpr const char* kEcho = "/test.Service/Echo";      // answers with the request's size
constexpr const char* kStream = "/test.Service/Stream";

// As in the daemon: a peer that hangs up costs a write error (EPIPE), not the process.
const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

struct CallResult {
  std::optional<Status> status;
  v1::VersionResponse response;
  std::vector<std::string> messages;
};

class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/monocri-grpc-XXXXXX";
    dir_ = mkdtemp(tmpl);
    socket_ = dir_ + "/grpc.sock";
    server_.addUnary<v1::VersionRequest, v1::VersionResponse>(
        kVersion, [](v1::VersionRequest&& request, UnaryResponder<v1::VersionResponse> r) {
          v1::VersionResponse response;
          response.set_runtime_name("test");
          response.set_version(request.version());
          r.finish(response);
        });
    server_.addUnary<v1::VersionRequest, v1::VersionResponse>(
        kParked, [this](v1::VersionRequest&& request, UnaryResponder<v1::VersionResponse> r) {
          parkedSizes_.push_back(request.version().size());
          r.onCancel([this] { ++cancellations_; });
          parked_.push_back(std::move(r));
        });
    server_.addUnary<v1::VersionRequest, v1::VersionResponse>(
        kEcho, [](v1::VersionRequest&& request, UnaryResponder<v1::VersionResponse> r) {
          v1::VersionResponse response;
          response.set_runtime_version(std::to_string(request.version().size()));
          r.finish(response);
        });
    server_.addServerStreaming<v1::VersionRequest, v1::VersionResponse>(
        kStream, [](v1::VersionRequest&&, ServerWriter<v1::VersionResponse> writer) {
          for (int i = 0; i < 3; ++i) {
            v1::VersionResponse response;
            response.set_runtime_version(std::to_string(i));
            writer.write(response);
          }
          writer.finish();
        });
    ASSERT_EQ(server_.listen(socket_, 0660), "");
  }

  void TearDown() override {
    parked_.clear();
    clients_.clear();
    if (!server_.shuttingDown()) {
      bool done = false;
      server_.shutdown(milliseconds(0), [&] { done = true; });
      runUntil([&] { return done; });
    }
    runUntil([&] { return server_.connectionCount() == 0; });
    std::system(("rm -rf " + dir_).c_str());
  }

  GrpcClient& newClient() {
    clients_.push_back(GrpcClient::connect(loop_, socket_));
    return *clients_.back();
  }

  std::shared_ptr<CallResult> call(GrpcClient& client, const char* path, const std::string& version,
                                   CallOptions options = {}) {
    v1::VersionRequest request;
    request.set_version(version);
    return callRaw(client, path, request.SerializeAsString(), options);
  }

  std::shared_ptr<CallResult> callRaw(GrpcClient& client, const char* path,
                                      const std::string& bytes, CallOptions options = {}) {
    auto result = std::make_shared<CallResult>();
    client.startCall(
        path, bytes, options,
        [result](std::string_view message) {
          result->messages.emplace_back(message);
          result->response.ParseFromArray(message.data(), static_cast<int>(message.size()));
        },
        [result](const Status& status) { result->status = status; });
    return result;
  }

  void runUntil(const std::function<bool()>& done, uint64_t timeoutMs = 10'000) {
    const uint64_t deadline = uv_hrtime() + timeoutMs * 1'000'000;
    auto tick = loop::Timer::create(loop_);
    tick->start(5, 5, [] {});
    while (!done()) {
      ASSERT_LT(uv_hrtime(), deadline) << "timed out";
      uv_run(loop_.raw(), UV_RUN_ONCE);
    }
  }
  void runFor(uint64_t ms) {
    bool elapsed = false;
    auto timer = loop::Timer::create(loop_);
    timer->start(ms, 0, [&] { elapsed = true; });
    runUntil([&] { return elapsed; });
  }

  loop::Loop loop_;
  GrpcServer server_{loop_};
  std::string dir_;
  std::string socket_;
  std::vector<std::unique_ptr<GrpcClient>> clients_;
  std::vector<UnaryResponder<v1::VersionResponse>> parked_;
  std::vector<size_t> parkedSizes_;
  int cancellations_ = 0;
};

TEST_F(GrpcServerTest, SocketHasTheRequestedMode) {
  struct stat st {};
  ASSERT_EQ(stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(GrpcServerTest, UnaryRoundTrip) {
  auto& client = newClient();
  auto result = call(client, kVersion, "v1");
  runUntil([&] { return result->status.has_value(); });
  EXPECT_TRUE(result->status->isOk()) << result->status->toString();
  EXPECT_EQ(result->response.runtime_name(), "test");
  EXPECT_EQ(result->response.version(), "v1");
  EXPECT_EQ(server_.stats().callsStarted, 1u);
}

TEST_F(GrpcServerTest, UnknownMethodsAreUnimplemented) {
  auto& client = newClient();
  auto unknown = call(client, "/no.Such/Method", "");
  auto cri = call(client, "/runtime.v1.RuntimeService/RunPodSandbox", "");
  runUntil([&] { return unknown->status && cri->status; });
  EXPECT_EQ(unknown->status->code(), StatusCode::kUnimplemented);
  EXPECT_NE(unknown->status->message().find("unknown method /no.Such/Method"), std::string::npos);
  EXPECT_EQ(cri->status->code(), StatusCode::kUnimplemented);
  EXPECT_NE(cri->status->message().find("does not implement"), std::string::npos);
}

TEST_F(GrpcServerTest, GarbageProtobufIsInvalidArgument) {
  auto& client = newClient();
  auto result = callRaw(client, kVersion, "\xff\xff\xff\xff\xff");
  runUntil([&] { return result->status.has_value(); });
  EXPECT_EQ(result->status->code(), StatusCode::kInvalidArgument);
}

TEST_F(GrpcServerTest, HandlersMayAnswerLater) {
  auto& client = newClient();
  auto result = call(client, kParked, "later");
  runUntil([&] { return parked_.size() == 1; });
  runFor(20);
  EXPECT_FALSE(result->status.has_value());
  v1::VersionResponse response;
  response.set_runtime_name("answered late");
  parked_[0].finish(response);
  runUntil([&] { return result->status.has_value(); });
  EXPECT_TRUE(result->status->isOk());
  EXPECT_EQ(result->response.runtime_name(), "answered late");
}

TEST_F(GrpcServerTest, DeadlineEndsTheCallAndCancelsTheHandler) {
  auto& client = newClient();
  CallOptions options;
  options.timeout = milliseconds(50);
  auto result = call(client, kParked, "", options);
  runUntil([&] { return result->status && cancellations_ == 1; });
  EXPECT_EQ(result->status->code(), StatusCode::kDeadlineExceeded);
  ASSERT_EQ(parked_.size(), 1u);
  EXPECT_TRUE(parked_[0].cancelled());
  parked_[0].finish(v1::VersionResponse());  // too late: ignored
  runFor(10);
}

TEST_F(GrpcServerTest, DroppedResponderAnswersInternal) {
  auto& client = newClient();
  auto result = call(client, kParked, "");
  runUntil([&] { return parked_.size() == 1; });
  parked_.clear();
  runUntil([&] { return result->status.has_value(); });
  EXPECT_EQ(result->status->code(), StatusCode::kInternal);
  EXPECT_NE(result->status->message().find("dropped the call"), std::string::npos);
}

TEST_F(GrpcServerTest, ClientThatVanishesCancelsItsCalls) {
  auto& client = newClient();
  auto a = call(client, kParked, "");
  auto b = call(client, kParked, "");
  runUntil([&] { return parked_.size() == 2; });
  client.close();
  runUntil([&] { return cancellations_ == 2; });
  EXPECT_EQ(a->status->code(), StatusCode::kCancelled);
  EXPECT_TRUE(parked_[0].cancelled());
  runUntil([&] { return server_.connectionCount() == 0; });
}

TEST_F(GrpcServerTest, OversizedRequestIsResourceExhausted) {
  auto& client = newClient();
  auto result = call(client, kEcho, std::string(kMaxMessageBytes + 1, 'a'));
  runUntil([&] { return result->status.has_value(); });
  EXPECT_EQ(result->status->code(), StatusCode::kResourceExhausted);
  // The connection is still usable.
  auto next = call(client, kVersion, "after");
  runUntil([&] { return next->status.has_value(); });
  EXPECT_TRUE(next->status->isOk());
}

TEST_F(GrpcServerTest, GzipRequestsAreDecompressed) {
  auto& client = newClient();
  CallOptions options;
  options.gzipRequest = true;
  auto result = call(client, kEcho, std::string(100000, 'z'), options);
  runUntil([&] { return result->status.has_value(); });
  ASSERT_TRUE(result->status->isOk()) << result->status->toString();
  EXPECT_EQ(result->response.runtime_version(), "100000");
}

TEST_F(GrpcServerTest, ServerStreamingSendsEveryMessageThenStatus) {
  auto& client = newClient();
  auto result = call(client, kStream, "");
  runUntil([&] { return result->status.has_value(); });
  EXPECT_TRUE(result->status->isOk());
  ASSERT_EQ(result->messages.size(), 3u);
}

TEST_F(GrpcServerTest, ManyConnectionsAndConcurrentStreams) {
  std::vector<std::shared_ptr<CallResult>> results;
  for (int c = 0; c < 10; ++c) {
    auto& client = newClient();
    for (int i = 0; i < 100; ++i)
      results.push_back(call(client, kVersion, std::to_string(i)));
  }
  runUntil([&] {
    for (auto& r : results) {
      if (!r->status) return false;
    }
    return true;
  });
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i]->status->isOk());
    EXPECT_EQ(results[i]->response.version(), std::to_string(i % 100));
  }
}

TEST_F(GrpcServerTest, LargeRequestsWaitForBudgetHeldBySlowHandlers) {
  // Each request reserves its size until its handler answers; two 12 MiB requests fill the
  // 32 MiB budget, so the third is not even received until one of them is answered.
  auto& client = newClient();
  const std::string big(12 * 1024 * 1024, 'x');
  auto a = call(client, kParked, big);
  auto b = call(client, kParked, big);
  runUntil([&] { return parked_.size() == 2; });
  auto c = call(client, kParked, big);
  runFor(300);
  EXPECT_EQ(parked_.size(), 2u) << "the third request was buffered past the budget";
  parked_[0].finish(v1::VersionResponse());
  runUntil([&] { return parked_.size() == 3; });
  EXPECT_EQ(parkedSizes_[2], big.size());
  parked_[1].finish(v1::VersionResponse());
  parked_[2].finish(v1::VersionResponse());
  runUntil([&] { return a->status && b->status && c->status; });
  EXPECT_TRUE(c->status->isOk());
}

TEST_F(GrpcServerTest, GracefulShutdownLetsCallsInFlightFinish) {
  auto& client = newClient();
  auto result = call(client, kParked, "");
  runUntil([&] { return parked_.size() == 1; });
  bool done = false;
  server_.shutdown(milliseconds(5000), [&] { done = true; });
  struct stat st {};
  EXPECT_NE(stat(socket_.c_str(), &st), 0) << "the socket is removed at shutdown";
  runFor(20);
  EXPECT_FALSE(done);
  parked_[0].finish(v1::VersionResponse());
  runUntil([&] { return done && result->status.has_value(); });
  EXPECT_TRUE(result->status->isOk());
}

TEST_F(GrpcServerTest, CallsStillRunningAfterTheGracePeriodAreUnavailable) {
  auto& client = newClient();
  auto result = call(client, kParked, "");
  runUntil([&] { return parked_.size() == 1; });
  bool done = false;
  server_.shutdown(milliseconds(30), [&] { done = true; });
  runUntil([&] { return done && result->status.has_value(); });
  EXPECT_EQ(result->status->code(), StatusCode::kUnavailable);
  EXPECT_EQ(cancellations_, 1);
}

TEST_F(GrpcServerTest, ClientReportsAMissingSocketAsUnavailable) {
  auto client = GrpcClient::connect(loop_, dir_ + "/nothing.sock");
  auto result = call(*client, kVersion, "");
  runUntil([&] { return result->status.has_value(); });
  EXPECT_EQ(result->status->code(), StatusCode::kUnavailable);
  EXPECT_NE(result->status->message().find("nothing.sock"), std::string::npos);
}

}  // namespace
}  // namespace monocri::grpc
