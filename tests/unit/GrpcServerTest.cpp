// The gRPC server and client of src/cri-bridge/grpc/ against each other over a real unix socket.
// Interop with an independent implementation is proven by tests/interop (Python grpcio).
#include "cri-bridge/grpc/GrpcServer.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <list>
#include <map>
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
constexpr const char* kBigStream = "/test.Service/BigStream";  // 1 MiB, then stays open

// Sanitizer builds run several times slower: waits for progress stretch, not the checks.
#if defined(__SANITIZE_ADDRESS__)
constexpr uint64_t kSlowdown = 10;
#else
constexpr uint64_t kSlowdown = 1;
#endif

// The server under test ends requests that do not arrive in full within this time (the daemon:
// kRequestReceiveTimeoutMs). Long enough for a 12 MiB request through this loop.
constexpr uint64_t kReceiveTimeoutMs = 1000 * kSlowdown;

// As in the daemon: a peer that hangs up costs a write error (EPIPE), not the process.
const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

// HTTP/2 by hand (an nghttp2 client session over a plain socket), for what GrpcClient never
// does: leave a request unfinished, or never read the answers.
class HandRolledClient {
 public:
  explicit HandRolledClient(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    nghttp2_session_callbacks* callbacks;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(
        callbacks, [](nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* self) {
          if (std::string_view(reinterpret_cast<const char*>(name), namelen) == "grpc-status") {
            static_cast<HandRolledClient*>(self)->grpcStatus[frame->hd.stream_id] =
                std::string(reinterpret_cast<const char*>(value), valuelen);
          }
          return 0;
        });
    nghttp2_session_client_new(&session_, callbacks, this);
    nghttp2_session_callbacks_del(callbacks);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~HandRolledClient() {
    nghttp2_session_del(session_);
    close(fd_);
  }

  // Headers only, END_STREAM never comes; or, with `message`, a complete request.
  int32_t startRequest(const char* path, const std::string* message = nullptr) {
    const nghttp2_nv headers[] = {
        makeHeader(":method", "POST"),
        makeHeader(":scheme", "http"),
        makeHeader(":path", path),
        makeHeader(":authority", "localhost"),
        makeHeader("content-type", "application/grpc"),
    };
    nghttp2_data_provider provider{};
    provider.source.ptr = message ? &bodies_.emplace_back(*message) : nullptr;
    provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                uint32_t* flags, nghttp2_data_source* source, void*) -> ssize_t {
      if (source->ptr == nullptr) return NGHTTP2_ERR_DEFERRED;
      auto* body = static_cast<std::string*>(source->ptr);
      const size_t n = std::min(length, body->size());
      std::memcpy(buf, body->data(), n);
      body->erase(0, n);
      if (body->empty()) *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    };
    return nghttp2_submit_request(session_, nullptr, headers, std::size(headers), &provider,
                                  nullptr);
  }
  // Writes what nghttp2 has queued (as far as the socket takes it).
  void send() {
    const uint8_t* data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(session_, &data)) > 0) {
      out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    ssize_t written = write(fd_, out_.data(), out_.size());
    if (written > 0) out_.erase(0, static_cast<size_t>(written));
  }
  // Reads and decodes what the server sent.
  void receive() {
    char buf[65536];
    ssize_t n;
    while ((n = read(fd_, buf, sizeof(buf))) > 0) {
      nghttp2_session_mem_recv(session_, reinterpret_cast<uint8_t*>(buf), static_cast<size_t>(n));
    }
    serverClosed = serverClosed || n == 0;
  }

  std::map<int32_t, std::string> grpcStatus;
  bool serverClosed = false;

 private:
  int fd_ = -1;
  nghttp2_session* session_ = nullptr;
  std::string out_;
  std::list<std::string> bodies_;
};

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
    server_.addServerStreaming<v1::VersionRequest, v1::VersionResponse>(
        kBigStream, [this](v1::VersionRequest&&, ServerWriter<v1::VersionResponse> writer) {
          v1::VersionResponse response;
          response.set_runtime_version(std::string(1 << 20, 'v'));
          writer.write(response);
          openStreams_.push_back(std::move(writer));
        });
    ASSERT_EQ(server_.listen(socket_, 0660), "");
  }

  void TearDown() override {
    parked_.clear();
    openStreams_.clear();
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
    const uint64_t deadline = uv_hrtime() + timeoutMs * kSlowdown * 1'000'000;
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
  GrpcServer server_{loop_, GrpcServer::Options{kReceiveTimeoutMs, /*shutdownDrainMs=*/200}};
  std::string dir_;
  std::string socket_;
  std::vector<std::unique_ptr<GrpcClient>> clients_;
  std::vector<UnaryResponder<v1::VersionResponse>> parked_;
  std::vector<ServerWriter<v1::VersionResponse>> openStreams_;
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

TEST_F(GrpcServerTest, WaitingRequestsDoNotStarveTheOnesThatGotBudget) {
  // Two 12 MiB requests get the connection's budget, three more wait. The waiting ones must
  // not hold the connection window: the first two still arrive in full.
  auto& client = newClient();
  const std::string big(12 * 1024 * 1024, 'x');
  std::vector<std::shared_ptr<CallResult>> results;
  for (int i = 0; i < 5; ++i)
    results.push_back(call(client, kParked, big));
  runUntil([&] { return parked_.size() == 2; });
  runFor(300);
  EXPECT_EQ(parked_.size(), 2u);
  for (size_t answered = 0; answered < 5; ++answered) {
    runUntil([&] { return parked_.size() > answered; });
    parked_[answered].finish(v1::VersionResponse());
  }
  runUntil([&] {
    return std::all_of(results.begin(), results.end(), [](auto& r) { return r->status; });
  });
  for (auto& r : results)
    EXPECT_TRUE(r->status->isOk()) << r->status->toString();
  EXPECT_EQ(server_.reservedRequestBytes(), 0u);
}

TEST_F(GrpcServerTest, TwoMaximumSizeRequestsFitSideBySide) {
  auto& client = newClient();
  // A version string whose encoded request is exactly the message limit.
  const std::string version(kMaxMessageBytes - 5, 'x');
  v1::VersionRequest probe;
  probe.set_version(version);
  ASSERT_EQ(probe.ByteSizeLong(), kMaxMessageBytes);
  auto a = call(client, kParked, version);
  auto b = call(client, kParked, version);
  runUntil([&] { return parked_.size() == 2; });
  parked_.clear();
  runUntil([&] { return a->status && b->status; });
}

TEST_F(GrpcServerTest, TooManyWaitingRequestsAreRefused) {
  auto& client = newClient();
  const std::string big(12 * 1024 * 1024, 'x');
  std::vector<std::shared_ptr<CallResult>> results;
  // 2 get the budget, kMaxWaitingCallsPerConnection wait, the next is refused.
  for (size_t i = 0; i < 2 + kMaxWaitingCallsPerConnection + 1; ++i) {
    results.push_back(call(client, kParked, big));
  }
  runUntil([&] {
    return std::any_of(results.begin(), results.end(), [](auto& r) { return r->status; });
  });
  size_t refused = 0;
  for (auto& r : results) {
    if (r->status) {
      EXPECT_EQ(r->status->code(), StatusCode::kResourceExhausted);
      ++refused;
    }
  }
  EXPECT_EQ(refused, 1u);
  runUntil([&] { return parked_.size() == 2; });  // the two with budget still arrive in full
}

TEST_F(GrpcServerTest, RequestBudgetIsSharedByAllConnections) {
  // 12 MiB requests: two per connection fit a connection's budget, but the server's total
  // admits five. The sixth waits until a call on another connection finishes.
  const std::string big(12 * 1024 * 1024, 'x');
  std::vector<std::shared_ptr<CallResult>> results;
  for (int c = 0; c < 3; ++c) {
    auto& client = newClient();
    for (int i = 0; i < 2; ++i)
      results.push_back(call(client, kParked, big));
  }
  runUntil([&] { return parked_.size() == 5; });
  runFor(300);
  EXPECT_EQ(parked_.size(), 5u);
  EXPECT_LE(server_.reservedRequestBytes(), kMaxReservedRequestBytesTotal);
  parked_[0].finish(v1::VersionResponse());
  runUntil([&] { return parked_.size() == 6; });
  parked_.clear();
  runUntil([&] {
    return std::all_of(results.begin(), results.end(), [](auto& r) { return r->status; });
  });
  EXPECT_EQ(server_.reservedRequestBytes(), 0u);
}

TEST_F(GrpcServerTest, HugeTimeoutMeansNoDeadlineNotAnOverflow) {
  auto& client = newClient();
  CallOptions options;
  options.timeout = std::chrono::nanoseconds(std::numeric_limits<int64_t>::max());  // "2562048H"
  auto result = call(client, kParked, "", options);
  runUntil([&] { return parked_.size() == 1; });
  ASSERT_TRUE(parked_[0].deadline().has_value());
  EXPECT_GT(*parked_[0].deadline(),
            std::chrono::steady_clock::now() + std::chrono::hours(24 * 365));
  parked_[0].finish(v1::VersionResponse());
  runUntil([&] { return result->status.has_value(); });
  EXPECT_TRUE(result->status->isOk());
}

TEST_F(GrpcServerTest, RequestThatNeverArrivesInFullIsEnded) {
  // The server under test waits kReceiveTimeoutMs for a request that its client never
  // finishes, grpc-timeout or not.
  HandRolledClient client(socket_);
  const int32_t stream = client.startRequest(kVersion);
  const uint64_t start = uv_hrtime();
  auto pump = loop::Timer::create(loop_);
  pump->start(1, 1, [&] {
    client.send();
    client.receive();
  });
  runUntil([&] { return client.grpcStatus.contains(stream); });
  EXPECT_EQ(client.grpcStatus[stream], "4");  // DEADLINE_EXCEEDED
  EXPECT_GE(uv_hrtime() - start, kReceiveTimeoutMs * 1'000'000);
  EXPECT_EQ(server_.openCalls(), 0u);
}

TEST_F(GrpcServerTest, ShutdownDoesNotWaitForAClientThatDoesNotRead) {
  // The client asks for 1 MiB answers and never reads (nor opens its flow-control window):
  // the calls' last frames can never leave. Shutdown must still end, by dropping it.
  HandRolledClient client(socket_);
  v1::VersionRequest request;
  const std::string message = [&] {
    std::string framed;
    appendGrpcMessage(framed, request.SerializeAsString());
    return framed;
  }();
  for (int i = 0; i < 4; ++i)
    client.startRequest(kBigStream, &message);
  auto pump = loop::Timer::create(loop_);
  pump->start(1, 1, [&] { client.send(); });
  runUntil([&] { return openStreams_.size() == 4; });
  bool done = false;
  const uint64_t start = uv_hrtime();
  server_.shutdown(milliseconds(30), [&] { done = true; });
  runUntil([&] { return done; }, 5000);
  // Grace 30 ms + drain 200 ms in this test's server.
  EXPECT_LT(uv_hrtime() - start, 2'000'000'000u);
  EXPECT_EQ(server_.connectionCount(), 0u);
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
