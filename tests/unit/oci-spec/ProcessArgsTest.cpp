// kubelet's command/args against the image's Entrypoint/Cmd, the environment merge and the
// working directory: the cases Docker and containerd define.
#include "oci/spec/ProcessArgs.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "SpecTestSupport.h"

namespace monocri::oci {
namespace {

using grpc::StatusCode;
using Json = nlohmann::json;
using Strings = std::vector<std::string>;

runtime::v1::ContainerConfig configWith(const Strings& command, const Strings& args) {
  runtime::v1::ContainerConfig config;
  for (const auto& c : command)
    config.add_command(c);
  for (const auto& a : args)
    config.add_args(a);
  return config;
}

struct ArgsCase {
  const char* name;
  Strings command, args;
  Json image;
  Strings expected;
};

TEST(ProcessArgsTest, MergesCommandArgsEntrypointAndCmd) {
  const Json image = {{"Entrypoint", {"/entry", "-e"}}, {"Cmd", {"cmd1", "cmd2"}}};
  const std::vector<ArgsCase> cases = {
      {"command and args replace both",
       {"/bin/sh", "-c"},
       {"echo hi"},
       image,
       {"/bin/sh", "-c", "echo hi"}},
      {"command alone drops Cmd too", {"/bin/true"}, {}, image, {"/bin/true"}},
      {"args replace Cmd after Entrypoint", {}, {"a1"}, image, {"/entry", "-e", "a1"}},
      {"nothing: Entrypoint then Cmd", {}, {}, image, {"/entry", "-e", "cmd1", "cmd2"}},
      {"no Entrypoint: Cmd alone", {}, {}, Json{{"Cmd", {"/bin/sh"}}}, {"/bin/sh"}},
      {"Entrypoint [\"\"] means none", {}, {}, Json{{"Entrypoint", {""}}, {"Cmd", {"/x"}}}, {"/x"}},
      {"null Entrypoint and Cmd",
       {},
       {"/only"},
       Json{{"Entrypoint", nullptr}, {"Cmd", nullptr}},
       {"/only"}},
      {"empty image config", {}, {"/a", "b"}, Json(), {"/a", "b"}},
  };
  for (const auto& c : cases) {
    Strings args;
    const auto status = buildProcessArgs(configWith(c.command, c.args), c.image, args);
    ASSERT_TRUE(status.isOk()) << c.name << ": " << status.toString();
    EXPECT_EQ(args, c.expected) << c.name;
  }
}

TEST(ProcessArgsTest, NoCommandAnywhereIsRefused) {
  Strings args;
  const auto status = buildProcessArgs(configWith({}, {}), Json{{"Env", {"A=1"}}}, args);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("no command specified"), std::string::npos);
  EXPECT_TRUE(args.empty());
}

TEST(ProcessArgsTest, MalformedImageFieldsAreNamed) {
  Strings args;
  auto status = buildProcessArgs(configWith({}, {}), Json{{"Entrypoint", "/bin/sh -c"}}, args);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("Entrypoint"), std::string::npos);
  status = buildProcessArgs(configWith({}, {}), Json{{"Cmd", {"/bin/sh", 3}}}, args);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("Cmd"), std::string::npos);
  status = buildProcessArgs(configWith({std::string("a\0b", 3)}, {}), Json(), args);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
}

runtime::v1::ContainerConfig configWithEnv(
    const std::vector<std::pair<std::string, std::string>>& envs, bool tty = false) {
  runtime::v1::ContainerConfig config;
  for (const auto& [key, value] : envs) {
    auto* kv = config.add_envs();
    kv->set_key(key);
    kv->set_value(value);
  }
  config.set_tty(tty);
  return config;
}

TEST(ProcessArgsTest, CriEnvReplacesTheImagesInPlace) {
  const Json image = {{"Env", {"PATH=/image/bin", "A=image", "B=image", "HOSTNAME=img"}}};
  Strings env;
  ASSERT_TRUE(buildEnv(configWithEnv({{"B", "cri"}, {"C", "cri=with=equals"}}), image, "pod-1", env)
                  .isOk());
  EXPECT_EQ(env,
            (Strings{"PATH=/image/bin", "HOSTNAME=img", "A=image", "B=cri", "C=cri=with=equals"}));
}

TEST(ProcessArgsTest, DefaultPathHostnameAndTerm) {
  Strings env;
  ASSERT_TRUE(buildEnv(configWithEnv({{"X", "1"}}, /*tty=*/true), Json(), "web-0", env).isOk());
  EXPECT_EQ(env, (Strings{kDefaultPathEnv, "TERM=xterm", "HOSTNAME=web-0", "X=1"}));
}

TEST(ProcessArgsTest, ImageEntryWithoutValueUnsetsAndPathComesBack) {
  // "PATH" without '=' unsets PATH: the default is put back, first.
  const Json image = {{"Env", {"PATH", "KEEP=1", "=nokey", "", "HOSTNAME"}}};
  Strings env;
  ASSERT_TRUE(buildEnv(configWithEnv({}), image, "h", env).isOk());
  EXPECT_EQ(env, (Strings{kDefaultPathEnv, "KEEP=1"}));
}

TEST(ProcessArgsTest, BadCriEnvNamesAreRefused) {
  Strings env;
  for (const auto& key : {std::string(""), std::string("A=B"), std::string("A\0B", 3)}) {
    const auto status = buildEnv(configWithEnv({{key, "v"}}), Json(), "h", env);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << key;
  }
  EXPECT_EQ(buildEnv(configWithEnv({}), Json{{"Env", "A=1"}}, "h", env).code(),
            StatusCode::kInvalidArgument);
}

TEST(ProcessArgsTest, WorkingDirectory) {
  std::string cwd;
  runtime::v1::ContainerConfig config;
  ASSERT_TRUE(resolveWorkingDir(config, Json(), cwd).isOk());
  EXPECT_EQ(cwd, "/");
  ASSERT_TRUE(resolveWorkingDir(config, Json{{"WorkingDir", "/srv"}}, cwd).isOk());
  EXPECT_EQ(cwd, "/srv");
  config.set_working_dir("/work");
  ASSERT_TRUE(resolveWorkingDir(config, Json{{"WorkingDir", "/srv"}}, cwd).isOk());
  EXPECT_EQ(cwd, "/work");
  config.set_working_dir("relative");
  EXPECT_EQ(resolveWorkingDir(config, Json(), cwd).code(), StatusCode::kInvalidArgument);
  config.clear_working_dir();
  const auto status = resolveWorkingDir(config, Json{{"WorkingDir", "app"}}, cwd);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("WorkingDir"), std::string::npos);
}

}  // namespace
}  // namespace monocri::oci
