// Hooks: real hooks (/bin/sh scripts) run with the state on stdin, their args and env, in order,
// with timeouts; failures quote the hook's stderr; hostile hook lists are refused by field.
#include "oci/runtime/Hooks.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "oci/runtime/RuntimeError.h"

namespace monocri::runtime {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::string kState =
    R"({"ociVersion":"1.0.2","id":"c1","status":"creating","pid":42,"bundle":"/b"})";

class HooksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/monocri-hooks-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::string command = "rm -rf " + dir_;
    ASSERT_EQ(std::system(command.c_str()), 0);
  }

  std::string path(const char* name) const { return dir_ + "/" + name; }

  static json shell(const std::string& script) {
    return {{"path", "/bin/sh"}, {"args", {"sh", "-c", script}}};
  }

  static std::string readFile(const std::string& file) {
    std::string text;
    int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "<missing>";
    char buffer[4096];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof(buffer))) > 0)
      text.append(buffer, n);
    close(fd);
    return text;
  }

  static std::string error(const json& hooks, const std::string& stage,
                           const std::string& state = kState) {
    try {
      runHooks(hooks, stage, state);
    } catch (const RuntimeError& e) {
      return e.what();
    }
    return "no error";
  }

  std::string dir_;
};

TEST_F(HooksTest, StateOnStdin) {
  runHooks({{"prestart", {shell("cat > " + path("state"))}}}, "prestart", kState);
  EXPECT_EQ(readFile(path("state")), kState);
}

TEST_F(HooksTest, ArgsAndEnv) {
  setenv("MONOCRI_HOOKS_TEST_LEAK", "leaked", 1);
  // argv[0] as the kernel saw it, then sh -c's $0 and $1 (the args after the script).
  std::string script =
      "{ tr '\\0' '\\n' < /proc/$$/cmdline | head -n 1; "
      "echo \"$0|$1|$A|$B|$MONOCRI_HOOKS_TEST_LEAK\"; } > " +
      path("out");
  json hook = {{"path", "/bin/sh"},
               {"args", {"hook-name", "-c", script, "first", "second arg"}},
               {"env", {"A=1", "B=two words"}}};
  runHooks({{"poststart", {hook}}}, "poststart", kState);
  unsetenv("MONOCRI_HOOKS_TEST_LEAK");
  EXPECT_EQ(readFile(path("out")), "hook-name\nfirst|second arg|1|two words|\n");
}

TEST_F(HooksTest, NoArgsMeansArgvIsThePath) {
  // /bin/sh with no argument reads its script from stdin: the state, one harmless command.
  json hook = {{"path", "/bin/sh"}};
  runHooks({{"prestart", {hook}}}, "prestart", "echo \"$0\" > " + path("argv0"));
  EXPECT_EQ(readFile(path("argv0")), "/bin/sh\n");
}

TEST_F(HooksTest, HooksRunInOrderAndOnlyTheStage) {
  std::string file = path("order");
  json hooks = {
      {"createRuntime",
       {shell("echo 1 >> " + file), shell("echo 2 >> " + file), shell("echo 3 >> " + file)}},
      {"poststop", {shell("echo poststop >> " + file)}}};
  runHooks(hooks, "createRuntime", kState);
  EXPECT_EQ(readFile(file), "1\n2\n3\n");
}

TEST_F(HooksTest, MissingOrEmptyStageRunsNothing) {
  EXPECT_EQ(error(json::object(), "prestart"), "no error");
  EXPECT_EQ(error(json(), "prestart"), "no error");
  EXPECT_EQ(error({{"prestart", json::array()}}, "prestart"), "no error");
  EXPECT_EQ(error({{"poststop", {{{"path", "relative"}}}}}, "prestart"), "no error");
}

TEST_F(HooksTest, FailureQuotesStderrAndStopsTheStage) {
  std::string file = path("after");
  json hooks = {
      {"prestart",
       {shell("printf 'bad\\tthing\\001\\nhappened\\n' >&2; exit 3"), shell("touch " + file)}}};
  EXPECT_EQ(error(hooks, "prestart"),
            "prestart hook /bin/sh failed: exit status 3: bad thing happened");
  EXPECT_EQ(readFile(file), "<missing>");
}

TEST_F(HooksTest, FailureBySignalAndWithoutOutput) {
  EXPECT_EQ(error({{"poststop", {shell("kill -TERM $$")}}}, "poststop"),
            "poststop hook /bin/sh failed: killed by signal SIGTERM");
  EXPECT_EQ(error({{"poststop", {{{"path", "/bin/false"}}}}}, "poststop"),
            "poststop hook /bin/false failed: exit status 1");
}

TEST_F(HooksTest, OutputQuotedIsBounded) {
  std::string message = error({{"prestart",
                                {shell("head -c 100000 /dev/zero | tr '\\0' x; "
                                       "exit 1")}}},
                              "prestart");
  EXPECT_EQ(message, "prestart hook /bin/sh failed: exit status 1: " + std::string(4096, 'x'));
}

TEST_F(HooksTest, ExecFailureIsReported) {
  EXPECT_EQ(error({{"prestart", {{{"path", path("absent")}}}}}, "prestart"),
            "prestart hook " + path("absent") + " failed: exec: No such file or directory");
}

TEST_F(HooksTest, TimeoutKillsTheHook) {
  json hook = {{"path", "/bin/sleep"}, {"args", {"sleep", "5"}}, {"timeout", 1}};
  auto start = Clock::now();
  EXPECT_EQ(error({{"createContainer", {hook}}}, "createContainer"),
            "hook createContainer /bin/sleep timed out after 1s");
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_GE(seconds, 0.9);
  EXPECT_LT(seconds, 2.0);
}

TEST_F(HooksTest, ChattyHookStillTimesOut) {
  json hook = shell("yes");
  hook["timeout"] = 1;
  auto start = Clock::now();
  EXPECT_EQ(error({{"prestart", {hook}}}, "prestart"), "hook prestart /bin/sh timed out after 1s");
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 2.0);
}

TEST_F(HooksTest, DescendantHoldingTheOutputDoesNotDelay) {
  json hook = shell("sleep 3 & exit 0");
  auto start = Clock::now();
  runHooks({{"poststart", {hook}}}, "poststart", kState);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 1.5);
}

TEST_F(HooksTest, HookThatDoesNotReadALargeState) {
  std::string state(1 << 20, 'x');
  auto start = Clock::now();
  runHooks({{"prestart",
             {{{"path", "/bin/true"}}, shell("head -c 10 > " + path("head")), shell("sleep 0.2")}}},
           "prestart", state);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 3.0);
  EXPECT_EQ(readFile(path("head")), std::string(10, 'x'));
  // SIGPIPE left no pending trace and its disposition is untouched (we are still alive).
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
}

TEST_F(HooksTest, OnlyStdioReachesTheHook) {
  int leaked = open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaked, 3);
  // ls opens the directory it lists as 3: any other number is an fd of ours.
  runHooks({{"prestart", {shell("ls /proc/self/fd > " + path("fds"))}}}, "prestart", kState);
  close(leaked);
  EXPECT_EQ(readFile(path("fds")), "0\n1\n2\n3\n");
}

TEST_F(HooksTest, HostileHooksNameTheField) {
  const std::pair<json, std::string> cases[] = {
      {json::array(), "hooks: expected an object"},
      {{{"prestart", "x"}}, "hooks.prestart: expected an array"},
      {{{"prestart", {7}}}, "hooks.prestart[0]: expected an object"},
      {{{"prestart", {{{"path", "/bin/true"}}, {{"args", {"x"}}}}}},
       "hooks.prestart[1].path: missing"},
      {{{"prestart", {{{"path", 1}}}}}, "hooks.prestart[0].path: expected a string"},
      {{{"prestart", {{{"path", "bin/true"}}}}},
       "hooks.prestart[0].path: bin/true is not an absolute path"},
      {{{"prestart", {{{"path", ""}}}}}, "hooks.prestart[0].path: empty"},
      {{{"prestart", {{{"path", std::string("/bin/true\0x", 11)}}}}},
       "hooks.prestart[0].path: contains a NUL byte"},
      {{{"prestart", {{{"path", "/bin/true"}, {"args", "true"}}}}},
       "hooks.prestart[0].args: expected an array of strings"},
      {{{"prestart", {{{"path", "/bin/true"}, {"args", {"true", 1}}}}}},
       "hooks.prestart[0].args[1]: expected a string"},
      {{{"prestart", {{{"path", "/bin/true"}, {"env", {"A=1", "B"}}}}}},
       "hooks.prestart[0].env[1]: expected KEY=VALUE"},
      {{{"prestart", {{{"path", "/bin/true"}, {"timeout", 0}}}}},
       "hooks.prestart[0].timeout: must be greater than zero"},
      {{{"prestart", {{{"path", "/bin/true"}, {"timeout", -3}}}}},
       "hooks.prestart[0].timeout: must be greater than zero"},
      {{{"prestart", {{{"path", "/bin/true"}, {"timeout", 1.5}}}}},
       "hooks.prestart[0].timeout: expected an integer"},
      {{{"prestart", {{{"path", "/bin/true"}, {"timeout", 1ull << 40}}}}},
       "hooks.prestart[0].timeout: above 2147483647 seconds"},
  };
  for (const auto& [hooks, message] : cases) {
    EXPECT_EQ(error(hooks, "prestart"), message) << hooks.dump();
  }
}

}  // namespace
}  // namespace monocri::runtime
