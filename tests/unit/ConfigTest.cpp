#include "daemon/Config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

namespace monocri::daemon {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/monocri-config-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string write(const std::string& text) {
    std::string path = dir_ + "/monocri.toml";
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(ConfigTest, AbsentDefaultFileGivesDefaults) {
  Config config;
  config.root = "changed";
  EXPECT_EQ(loadConfig(dir_ + "/missing.toml", /*mustExist=*/false, config), "");
  EXPECT_EQ(config.root, "/var/lib/monocri");
  EXPECT_EQ(config.runRoot, "/run/monocri");
  EXPECT_EQ(config.listenPath(), "/run/monocri/monocri.sock");
  EXPECT_EQ(config.logLevel, "info");
  EXPECT_EQ(config.stallThresholdMs, 50u);
  EXPECT_EQ(config.ociRuntime, "runc");
  EXPECT_EQ(config.configPath, "");
}

TEST_F(ConfigTest, ExplicitMissingFileIsAnError) {
  Config config;
  std::string error = loadConfig(dir_ + "/missing.toml", /*mustExist=*/true, config);
  EXPECT_NE(error.find("missing.toml"), std::string::npos) << error;
}

TEST_F(ConfigTest, ReadsEveryKey) {
  Config config;
  std::string path = write(R"(
root = "/srv/monocri"
run_root = "/run/m"
listen = "/run/m/cri.sock"
log_level = "debug"
stall_threshold_ms = 20
shutdown_grace_ms = 3000
oci_runtime = "/usr/sbin/runc"
)");
  ASSERT_EQ(loadConfig(path, true, config), "");
  EXPECT_EQ(config.root, "/srv/monocri");
  EXPECT_EQ(config.runRoot, "/run/m");
  EXPECT_EQ(config.listenPath(), "/run/m/cri.sock");
  EXPECT_EQ(config.logLevel, "debug");
  EXPECT_EQ(config.stallThresholdMs, 20u);
  EXPECT_EQ(config.shutdownGraceMs, 3000u);
  EXPECT_EQ(config.ociRuntime, "/usr/sbin/runc");
  EXPECT_EQ(config.configPath, path);
}

TEST_F(ConfigTest, SocketFollowsRunRootUnlessSet) {
  Config config;
  ASSERT_EQ(parseConfig("run_root = \"/tmp/x\"\n", "t", config), "");
  EXPECT_EQ(config.listenPath(), "/tmp/x/monocri.sock");
}

TEST_F(ConfigTest, UnknownKeyIsAnErrorWithItsLine) {
  Config config;
  std::string error = parseConfig("root = \"/a\"\n\nlog_levl = \"debug\"\n", "cfg.toml", config);
  EXPECT_NE(error.find("cfg.toml:3"), std::string::npos) << error;
  EXPECT_NE(error.find("log_levl"), std::string::npos) << error;
  error = parseConfig("[grpc]\nmax = 1\n", "cfg.toml", config);
  EXPECT_NE(error.find("unknown key 'grpc'"), std::string::npos) << error;
}

TEST_F(ConfigTest, WrongTypesAndValuesAreErrors) {
  Config config;
  EXPECT_NE(parseConfig("root = 5\n", "t", config).find("'root' must be a string"),
            std::string::npos);
  EXPECT_NE(parseConfig("stall_threshold_ms = \"50\"\n", "t", config).find("integer"),
            std::string::npos);
  EXPECT_NE(parseConfig("stall_threshold_ms = 0\n", "t", config).find("positive"),
            std::string::npos);
  EXPECT_NE(parseConfig("log_level = \"loud\"\n", "t", config).find("log_level"),
            std::string::npos);
  EXPECT_NE(parseConfig("root = \"relative/dir\"\n", "t", config).find("absolute"),
            std::string::npos);
  EXPECT_NE(parseConfig("listen = \"/" + std::string(120, 'x') + "\"\n", "t", config)
                .find("at most 107"),
            std::string::npos);
}

TEST_F(ConfigTest, SyntaxErrorNamesTheLine) {
  Config config;
  std::string error = parseConfig("root = \"/a\"\nrun_root = \n", "cfg.toml", config);
  EXPECT_NE(error.find("cfg.toml:2"), std::string::npos) << error;
}

TEST_F(ConfigTest, FlagsOverrideTheFile) {
  Config config;
  ASSERT_EQ(parseConfig("root = \"/from/file\"\nlog_level = \"warn\"\n", "t", config), "");
  ConfigOverrides overrides;
  overrides.root = "/from/flag";
  overrides.stallThresholdMs = 7;
  ASSERT_EQ(applyOverrides(overrides, config), "");
  EXPECT_EQ(config.root, "/from/flag");
  EXPECT_EQ(config.logLevel, "warn");
  EXPECT_EQ(config.stallThresholdMs, 7u);
  overrides.runRoot = "not/absolute";
  EXPECT_NE(applyOverrides(overrides, config), "");
}

TEST_F(ConfigTest, JsonAndTomlShowTheEffectiveValues) {
  Config config;
  config.runRoot = "/run/t";
  nlohmann::json json = configToJson(config);
  EXPECT_EQ(json["listen"], "/run/t/monocri.sock");
  EXPECT_EQ(json["ociRuntime"], "runc");
  Config reparsed;
  ASSERT_EQ(parseConfig(configToToml(config), "printed", reparsed), "");
  EXPECT_EQ(reparsed.listenPath(), "/run/t/monocri.sock");
  EXPECT_EQ(reparsed.stallThresholdMs, config.stallThresholdMs);
}

}  // namespace
}  // namespace monocri::daemon
