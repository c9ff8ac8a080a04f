// OciRuntimeClient against scripted runtimes: shell scripts with runc's command line that record
// how they were called and misbehave on purpose (refusals in the JSON log or on stderr, silence,
// hangs with helpers, floods of output, bad pid files). No root needed; the real runc is
// RuncTest's.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "integration/runtime-client/LoopAwait.h"
#include "loop/Loop.h"
#include "oci/OciRuntimeBinary.h"
#include "oci/runtime-client/OciRuntimeClient.h"
#include "state/StateFiles.h"
#include "state/UniqueFd.h"

namespace monocri::oci {
namespace {

using grpc::Status;
using grpc::StatusCode;
using testing::await;
using testing::runUntil;

std::string readAll(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

bool processGone(pid_t pid) {
  // A zombie still has a /proc entry; its state letter is Z.
  const std::string stat = readAll("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

class FakeRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/monocri-fake-runtime-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    client_.reset();
    state::removeTree(dir_);
  }

  // Writes the fake runtime: a preamble records the call in `calls` (one line each) and sets
  // $log (the --log path) and $verb, then `body` runs with the verb's arguments in "$@".
  void fakeRuntime(const std::string& body, RuntimeDeadlines deadlines = {}) {
    const std::string path = dir_ + "/fake-runc";
    std::ofstream script(path);
    script << "#!/bin/sh\n"
           << "echo \"$*\" >> " << dir_ << "/calls\n"
           << "log=\"$4\"; shift 6; verb=\"$1\"; shift\n"
           << body << "\n";
    script.close();
    chmod(path.c_str(), 0755);
    binary_ = std::make_unique<OciRuntimeBinary>(path);
    client_ = std::make_unique<OciRuntimeClient>(loop_, *binary_, dir_ + "/root", deadlines);
  }

  std::vector<std::string> calls() {
    std::vector<std::string> lines;
    std::istringstream text(readAll(dir_ + "/calls"));
    for (std::string line; std::getline(text, line);)
      lines.push_back(line);
    return lines;
  }

  Status start(const std::string& id) {
    return std::get<0>(await<Status>(loop_, [&](auto done) { client_->start(id, done); }));
  }
  Status kill(const std::string& id, int signal, bool all) {
    return std::get<0>(
        await<Status>(loop_, [&](auto done) { client_->kill(id, signal, all, done); }));
  }
  Status remove(const std::string& id, bool force) {
    return std::get<0>(await<Status>(loop_, [&](auto done) { client_->remove(id, force, done); }));
  }
  std::tuple<Status, OciState> state(const std::string& id) {
    return await<Status, OciState>(loop_, [&](auto done) { client_->state(id, done); });
  }
  std::tuple<Status, pid_t> create(const RuntimeCreateOptions& options) {
    return await<Status, pid_t>(loop_, [&](auto done) { client_->create(options, done); });
  }
  RuntimeCreateOptions createOptions(const std::string& id) {
    RuntimeCreateOptions options;
    options.id = id;
    options.bundle = dir_ + "/bundle";
    options.pidFile = dir_ + "/" + id + ".pid";
    return options;
  }

  std::string dir_;
  loop::Loop loop_;
  std::unique_ptr<OciRuntimeBinary> binary_;
  std::unique_ptr<OciRuntimeClient> client_;
};

TEST_F(FakeRuntimeTest, EveryVerbHasRuncsCommandLine) {
  fakeRuntime(R"(
case "$verb" in
  create) shift 2; echo 4242 > "$2" ;;
  state) echo '{"id":"c1","pid":4242,"status":"running","bundle":"/b"}' ;;
  update) cat > )" +
              dir_ + R"(/update-stdin ;;
esac)");
  const std::string root = dir_ + "/root";
  const std::string global = "--root " + root + " --log /proc/self/fd/3 --log-format json ";
  auto options = createOptions("c1");
  options.consoleSocket = dir_ + "/console.sock";
  auto [created, pid] = create(options);
  ASSERT_TRUE(created.isOk()) << created.toString();
  EXPECT_EQ(pid, 4242);
  EXPECT_TRUE(start("c1").isOk());
  EXPECT_TRUE(kill("c1", 9, true).isOk());
  EXPECT_TRUE(kill("c1", 15, false).isOk());
  EXPECT_TRUE(remove("c1", true).isOk());
  EXPECT_TRUE(remove("c1", false).isOk());
  auto [stated, report] = state("c1");
  EXPECT_TRUE(stated.isOk()) << stated.toString();
  EXPECT_EQ(report.status, "running");
  EXPECT_EQ(report.pid, 4242);
  const nlohmann::json resources = {{"pids", {{"limit", 50}}}, {"cpu", {{"shares", 512}}}};
  auto [updated] = await<Status>(loop_, [&](auto done) { client_->update("c1", resources, done); });
  EXPECT_TRUE(updated.isOk()) << updated.toString();

  const std::vector<std::string> expected = {
      global + "create --bundle " + options.bundle + " --pid-file " + options.pidFile +
          " --console-socket " + options.consoleSocket + " c1",
      global + "start c1",
      global + "kill --all c1 9",
      global + "kill c1 15",
      global + "delete --force c1",
      global + "delete c1",
      global + "state c1",
      global + "update --resources - c1",
  };
  EXPECT_EQ(calls(), expected);
  EXPECT_EQ(nlohmann::json::parse(readAll(dir_ + "/update-stdin")), resources);
  EXPECT_EQ(client_->callsInFlight(), 0u);
}

TEST_F(FakeRuntimeTest, CreateHandsTheGivenStdioToTheRuntime) {
  // The runtime's stdio is the container's in pass-through mode: what the runtime reads and
  // writes on 0, 1, 2 goes through the caller's pipes.
  fakeRuntime(R"(shift 2; echo 77 > "$2"; read line; echo "out:$line"; echo "err:$line" >&2)");
  int in[2], out[2], err[2];
  ASSERT_EQ(pipe2(in, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(err, O_CLOEXEC), 0);
  ASSERT_EQ(write(in[1], "hello\n", 6), 6);
  close(in[1]);
  auto options = createOptions("io");
  options.stdinFd = in[0];
  options.stdoutFd = out[1];
  options.stderrFd = err[1];
  auto [status, pid] = create(options);
  ASSERT_TRUE(status.isOk()) << status.toString();
  EXPECT_EQ(pid, 77);
  // The caller keeps its own descriptors: closing them now ends the pipes.
  for (int fd : {in[0], out[1], err[1]})
    close(fd);
  char buffer[64];
  ssize_t n = read(out[0], buffer, sizeof(buffer));
  EXPECT_EQ(std::string(buffer, n > 0 ? n : 0), "out:hello\n");
  n = read(err[0], buffer, sizeof(buffer));
  EXPECT_EQ(std::string(buffer, n > 0 ? n : 0), "err:hello\n");
  close(out[0]);
  close(err[0]);
}

TEST_F(FakeRuntimeTest, TheReasonIsTheLastErrorOfTheJsonLog) {
  fakeRuntime(R"(
echo '{"level":"warning","msg":"not this","time":"t"}' >> "$log"
echo '{"level":"error","msg":"nor this","time":"t"}' >> "$log"
printf '%s\n' '{"level":"error","msg":"fake-runc start failed: the reason\nitself","time":"t"}' >> "$log"
echo 'stderr noise' >&2
exit 1)");
  const Status status = start("c7");
  EXPECT_EQ(status.code(), StatusCode::kUnknown);
  EXPECT_EQ(status.message(), "fake-runc start c7 failed: the reason itself");
}

TEST_F(FakeRuntimeTest, WithoutALogTheReasonIsStderrAndWithoutEitherTheExitStatus) {
  fakeRuntime(R"(
if [ "$verb" = kill ]; then printf 'line one\nsecond line\n' >&2; exit 2; fi
exit 3)");
  const Status killed = kill("c8", 15, false);
  EXPECT_EQ(killed.code(), StatusCode::kUnknown);
  EXPECT_EQ(killed.message(), "fake-runc kill c8 failed: line one second line");
  const Status started = start("c8");
  EXPECT_EQ(started.code(), StatusCode::kUnknown);
  EXPECT_EQ(started.message(),
            "fake-runc start c8 failed: it ended with exit status 3 without "
            "saying why");
}

TEST_F(FakeRuntimeTest, StderrIsBoundedToItsTail) {
  // 1 MiB of noise then the reason: the reason survives, the message stays small.
  fakeRuntime(
      R"(head -c 1048576 /dev/zero | tr '\0' 'n' >&2; echo ' the actual reason' >&2; exit 1)");
  const Status status = start("c9");
  EXPECT_EQ(status.code(), StatusCode::kUnknown);
  EXPECT_LE(status.message().size(), kMaxRuntimeMessageBytes + 64);
  EXPECT_TRUE(status.message().ends_with("the actual reason")) << status.message().substr(0, 80);
}

TEST_F(FakeRuntimeTest, RefusalsMapToGrpcCodes) {
  // runc's and crun's texts (the real ones are checked in RuncTest).
  fakeRuntime(R"(
case "$1" in
  gone) echo '{"level":"error","msg":"container does not exist","time":"t"}' >> "$log" ;;
  stopped) echo '{"level":"error","msg":"cannot start a container that has stopped","time":"t"}' >> "$log" ;;
  notrunning) echo '{"level":"error","msg":"container not running","time":"t"}' >> "$log" ;;
  *) echo '{"level":"error","msg":"runc create failed: container with given ID already exists","time":"t"}' >> "$log" ;;
esac
exit 1)");
  EXPECT_EQ(start("gone").code(), StatusCode::kNotFound);
  EXPECT_EQ(std::get<0>(state("gone")).code(), StatusCode::kNotFound);
  EXPECT_EQ(remove("gone", false).code(), StatusCode::kNotFound);
  EXPECT_EQ(kill("gone", 9, false).code(), StatusCode::kNotFound);
  EXPECT_EQ(start("stopped").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(kill("notrunning", 9, false).code(), StatusCode::kFailedPrecondition);
  auto [created, pid] = create(createOptions("dup"));
  EXPECT_EQ(created.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(
      created.message(),
      "fake-runc create dup failed: runc create failed: container with given ID already exists");
  EXPECT_EQ(pid, 0);
  // Refused creates are not cleaned up by the client: the runtime undoes its own, and an
  // existing container with that id is not ours to delete.
  EXPECT_EQ(calls().size(), 7u);
}

TEST_F(FakeRuntimeTest, CrunsMissingStateDirectoryIsNotFound) {
  fakeRuntime(R"(root="$(dirname "$0")/root"
echo "{\"level\":\"error\",\"msg\":\"error opening file \`$root/$1/status\`: No such file or directory\",\"time\":\"t\"}" >> "$log"
exit 1)");
  const Status status = start("nothere");
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status.toString();
}

TEST_F(FakeRuntimeTest, ADeadlineKillsTheRuntimeAndEverythingItStarted) {
  fakeRuntime(R"(
if [ "$verb" = delete ]; then exit 0; fi
sleep 1000 &
echo $! > )" + dir_ +
                  R"(/helper.pid
sleep 1000)",
              RuntimeDeadlines{.createMs = 400, .otherMs = 400});
  const uint64_t before = uv_hrtime();
  const Status status = start("slow");
  const double seconds = static_cast<double>(uv_hrtime() - before) / 1e9;
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(status.message(),
            "fake-runc start slow did not finish within 0.4 s; its processes "
            "were killed");
  EXPECT_LT(seconds, 5.0);
  const pid_t helper = std::atoi(readAll(dir_ + "/helper.pid").c_str());
  ASSERT_GT(helper, 0);
  EXPECT_TRUE(runUntil(
      loop_, [&] { return processGone(helper); }, 5000))
      << "the runtime's helper " << helper << " survived the deadline";
  // The runtime's time runs until it was killed (the timer counts from the loop's cached clock,
  // which can lag the spawn by a millisecond or so).
  EXPECT_GE(client_->runtimeNanos(), 390'000'000u);
}

TEST_F(FakeRuntimeTest, ACreatePastItsDeadlineIsForceDeletedBeforeTheAnswer) {
  fakeRuntime(R"(if [ "$verb" = create ]; then sleep 1000; fi; exit 0)",
              RuntimeDeadlines{.createMs = 300, .otherMs = 5000});
  auto [status, pid] = create(createOptions("stuck"));
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(pid, 0);
  const auto lines = calls();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(lines[1].ends_with("delete --force stuck")) << lines[1];
}

TEST_F(FakeRuntimeTest, ABadPidFileFailsTheCreateAndRemovesTheContainer) {
  fakeRuntime(R"(
if [ "$verb" = create ]; then shift 2; case "$3" in
  garbage) echo 'twelve' > "$2" ;;
  zero) echo 0 > "$2" ;;
  huge) echo 99999999999 > "$2" ;;
  missing) ;;
esac; fi
exit 0)");
  for (const std::string id : {"garbage", "zero", "huge", "missing"}) {
    auto [status, pid] = create(createOptions(id));
    EXPECT_EQ(status.code(), StatusCode::kInternal) << id;
    EXPECT_NE(status.message().find("its pid is unknown"), std::string::npos) << status.message();
    EXPECT_EQ(pid, 0);
    EXPECT_TRUE(calls().back().ends_with("delete --force " + id)) << calls().back();
  }
}

TEST_F(FakeRuntimeTest, StateOutputIsBoundedAndChecked) {
  fakeRuntime(R"(
case "$1" in
  flood) head -c 3000000 /dev/zero ;;
  other) echo '{"id":"someone-else","pid":1,"status":"running"}' ;;
  garbage) echo 'not json' ;;
esac)");
  auto [flooded, unused1] = state("flood");
  EXPECT_EQ(flooded.code(), StatusCode::kInternal);
  EXPECT_NE(flooded.message().find("more output than"), std::string::npos) << flooded.message();
  auto [other, unused2] = state("other");
  EXPECT_EQ(other.code(), StatusCode::kInternal);
  EXPECT_NE(other.message().find("someone-else"), std::string::npos) << other.message();
  auto [garbage, unused3] = state("garbage");
  EXPECT_EQ(garbage.code(), StatusCode::kInternal);
  EXPECT_NE(garbage.message().find("not JSON"), std::string::npos) << garbage.message();
}

TEST_F(FakeRuntimeTest, AMissingRuntimeIsAFailedPrecondition) {
  for (const std::string& name : {dir_ + "/no-such-runc", std::string("no-such-runtime-xyz")}) {
    OciRuntimeBinary binary(name);
    OciRuntimeClient client(loop_, binary, dir_ + "/root");
    bool answered = false;
    Status status;
    client.start("c1", [&](Status s) {
      answered = true;
      status = s;
      loop_.stop();
    });
    EXPECT_FALSE(answered) << "answers come from the loop, never from within the call";
    loop_.run();
    ASSERT_TRUE(answered);
    EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(status.message().find("no-such-r"), std::string::npos) << status.message();
  }
}

TEST_F(FakeRuntimeTest, InvalidArgumentsNeverReachTheRuntime) {
  fakeRuntime("exit 0");
  EXPECT_EQ(start("-rf").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(start("a/b").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(kill("ok", 0, false).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(kill("ok", 65, false).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(std::get<0>(state("..")).code(), StatusCode::kInvalidArgument);
  auto [updated] = await<Status>(
      loop_, [&](auto done) { client_->update("ok", nlohmann::json::array(), done); });
  EXPECT_EQ(updated.code(), StatusCode::kInvalidArgument);
  auto options = createOptions("ok");
  options.pidFile.clear();
  EXPECT_EQ(std::get<0>(create(options)).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(calls().empty());
}

TEST_F(FakeRuntimeTest, CallsRunAtOnceAndRuntimeTimeIsSummed) {
  fakeRuntime(R"(sleep 0.3; echo "{\"id\":\"$1\",\"pid\":1,\"status\":\"running\"}")");
  constexpr int kCalls = 40;
  int answered = 0, succeeded = 0;
  const uint64_t before = uv_hrtime();
  for (int i = 0; i < kCalls; ++i) {
    client_->state("c" + std::to_string(i), [&, i](Status status, OciState state) {
      ++answered;
      succeeded += status.isOk() && state.id == "c" + std::to_string(i);
    });
  }
  EXPECT_EQ(client_->callsInFlight(), static_cast<size_t>(kCalls));
  EXPECT_TRUE(runUntil(
      loop_, [&] { return answered == kCalls; }, 60'000));
  const uint64_t wall = uv_hrtime() - before;
  EXPECT_EQ(succeeded, kCalls);
  EXPECT_LT(wall, kCalls * 300'000'000ull / 4) << "the calls did not overlap";
  EXPECT_GE(client_->runtimeNanos(), kCalls * 300'000'000ull);
  EXPECT_GT(client_->runtimeNanos(), wall);
  EXPECT_EQ(client_->callsInFlight(), 0u);
}

TEST_F(FakeRuntimeTest, DroppingTheClientKillsItsRuntimesAndAnswersNothing) {
  fakeRuntime("echo $$ > " + dir_ + "/runtime.pid; exec sleep 1000");
  bool answered = false;
  client_->start("c1", [&](Status) { answered = true; });
  ASSERT_TRUE(runUntil(loop_, [&] { return !readAll(dir_ + "/runtime.pid").empty(); }));
  const pid_t runtime = std::atoi(readAll(dir_ + "/runtime.pid").c_str());
  client_.reset();
  EXPECT_TRUE(processGone(runtime))
      << runtime << ": " << readAll("/proc/" + std::to_string(runtime) + "/stat");
  runUntil(
      loop_, [] { return false; }, 100);
  EXPECT_FALSE(answered);
}

}  // namespace
}  // namespace monocri::oci
