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
  EXPECT_EQ(config.ociRuntime, "monocri-runtime");
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
  EXPECT_NE(
      parseConfig("listen = \"/" + std::string(120, 'x') + "\"\n", "t", config).find("at most 107"),
      std::string::npos);
}

TEST_F(ConfigTest, SyntaxErrorNamesTheLine) {
  Config config;
  std::string error = parseConfig("root = \"/a\"\nrun_root = \n", "cfg.toml", config);
  EXPECT_NE(error.find("cfg.toml:2"), std::string::npos) << error;
}

TEST_F(ConfigTest, ControlCharactersAreRefusedWithTheirLine) {
  Config config;
  std::string error = parseConfig("root = \"/a\"\n[\x7f\x7ftab]\n", "cfg.toml", config);
  EXPECT_NE(error.find("cfg.toml:2"), std::string::npos) << error;
  EXPECT_NE(error.find("0x7f"), std::string::npos) << error;
  EXPECT_NE(parseConfig(std::string("root = \"/a\0\"\n", 12), "t", config), "");
  EXPECT_NE(parseConfig("root = \"/a\"\n[\rable]\n", "t", config).find("0x0d"), std::string::npos);
  error = parseConfig("# caf\xc3\xa9\nroot = \"/a\" \xc3\xa9\n", "t", config);
  EXPECT_NE(error.find("t:1: byte 0xc3 is not ASCII"), std::string::npos) << error;
  // Non-ASCII paths are still possible, escaped.
  ASSERT_EQ(parseConfig("root = \"/var/lib/caf\\u00e9\"\n", "t", config), "");
  EXPECT_EQ(config.root, "/var/lib/caf\xc3\xa9");
  // Tabs and CRLF line ends are fine.
  EXPECT_EQ(parseConfig("root\t= \"/a\"\r\nlog_level = \"warn\"\r\n", "t", config), "");
}

TEST_F(ConfigTest, MalformedTableHeadersAreErrorsNotUndefinedBehaviour) {
  // Inputs that break an assumption of toml++ 3.3's parser (tomlplusplus#301).
  Config config;
  for (const char* text : {"[=", "root = \"/a\"\n[= \"b\"}]\n", "[[[1]]]", "[[[a]]]", "[[[]]"}) {
    std::string error = parseConfig(text, "cfg.toml", config);
    EXPECT_NE(error.find("cfg.toml"), std::string::npos) << text << ": " << error;
  }
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

TEST_F(ConfigTest, ShippedConfigFileStatesTheDefaults) {
  // config/monocri.toml documents every key with its default value: they must agree.
  Config shipped;
  ASSERT_EQ(loadConfig(MONOCRI_SOURCE_DIR "/config/monocri.toml", true, shipped), "");
  const Config defaults;
  EXPECT_EQ(shipped.root, defaults.root);
  EXPECT_EQ(shipped.runRoot, defaults.runRoot);
  EXPECT_EQ(shipped.listenPath(), defaults.listenPath());
  EXPECT_EQ(shipped.logLevel, defaults.logLevel);
  EXPECT_EQ(shipped.stallThresholdMs, defaults.stallThresholdMs);
  EXPECT_EQ(shipped.shutdownGraceMs, defaults.shutdownGraceMs);
  EXPECT_EQ(shipped.ociRuntime, defaults.ociRuntime);
  EXPECT_EQ(shipped.registriesConf, defaults.registriesConf);
  EXPECT_EQ(shipped.pinnedImages, defaults.pinnedImages);
  EXPECT_EQ(shipped.maxConcurrentDownloads, defaults.maxConcurrentDownloads);
  EXPECT_EQ(shipped.pullProgressTimeoutMs, defaults.pullProgressTimeoutMs);
  EXPECT_EQ(shipped.containerLogMaxLineBytes, defaults.containerLogMaxLineBytes);
  EXPECT_EQ(shipped.containerLogSizeMax, defaults.containerLogSizeMax);
  EXPECT_EQ(shipped.containerLogRateBytesPerSecond, defaults.containerLogRateBytesPerSecond);
  EXPECT_EQ(shipped.containerLogRateBurstBytes, defaults.containerLogRateBurstBytes);
  EXPECT_EQ(shipped.containerLogJournal, defaults.containerLogJournal);
  EXPECT_EQ(shipped.streamAddress, defaults.streamAddress);
  EXPECT_EQ(shipped.streamTlsCert, defaults.streamTlsCert);
  EXPECT_EQ(shipped.streamTlsKey, defaults.streamTlsKey);
  EXPECT_EQ(shipped.streamTlsCa, defaults.streamTlsCa);
  EXPECT_EQ(shipped.cniConfDir, defaults.cniConfDir);
  EXPECT_EQ(shipped.cniPluginDirs, defaults.cniPluginDirs);
  EXPECT_EQ(shipped.netnsPoolSize, defaults.netnsPoolSize);
}

TEST_F(ConfigTest, NetnsPoolSize) {
  Config config;
  EXPECT_EQ(config.netnsPoolSize, 4u);
  ASSERT_EQ(parseConfig("netns_pool_size = 0\n", "t", config), "");
  EXPECT_EQ(config.netnsPoolSize, 0u);
  EXPECT_NE(parseConfig("netns_pool_size = 65\n", "t", config)
                .find("'netns_pool_size' must be at most 64"),
            std::string::npos);
  EXPECT_NE(parseConfig("netns_pool_size = -1\n", "t", config).find("netns_pool_size"),
            std::string::npos);
  EXPECT_NE(configToToml(Config{}).find("netns_pool_size = 4\n"), std::string::npos);
}

TEST_F(ConfigTest, CniKeys) {
  Config config;
  ASSERT_EQ(parseConfig("cni_conf_dir = \"/etc/cni/other.d\"\n"
                        "cni_plugin_dirs = [\"/opt/cni/bin\", \"/srv/cni\"]\n",
                        "t", config),
            "");
  EXPECT_EQ(config.cniConfDir, "/etc/cni/other.d");
  EXPECT_EQ(config.cniPluginDirs, (std::vector<std::string>{"/opt/cni/bin", "/srv/cni"}));
  EXPECT_NE(parseConfig("cni_conf_dir = \"net.d\"\n", "t", config)
                .find("'cni_conf_dir' must be an absolute path"),
            std::string::npos);
  EXPECT_NE(parseConfig("cni_plugin_dirs = [\"bin\"]\n", "t", config)
                .find("'cni_plugin_dirs' must hold absolute paths"),
            std::string::npos);
  ConfigOverrides overrides;
  overrides.cniPluginDirs = std::vector<std::string>{"/a"};
  Config defaults;
  ASSERT_EQ(applyOverrides(overrides, defaults), "");
  EXPECT_EQ(defaults.cniPluginDirs, std::vector<std::string>{"/a"});
}

TEST_F(ConfigTest, StreamTlsKeys) {
  Config config;
  ASSERT_EQ(parseConfig("stream_tls_cert = \"/etc/monocri/stream.crt\"\n"
                        "stream_tls_key = \"/etc/monocri/stream.key\"\n"
                        "stream_tls_ca = \"/etc/monocri/clients.crt\"\n",
                        "t", config),
            "");
  EXPECT_EQ(config.streamTlsCert, "/etc/monocri/stream.crt");
  EXPECT_EQ(config.streamTlsKey, "/etc/monocri/stream.key");
  EXPECT_EQ(config.streamTlsCa, "/etc/monocri/clients.crt");
  EXPECT_NE(parseConfig("stream_tls_cert = \"/a.crt\"\n", "t", config).find("go together"),
            std::string::npos);
  EXPECT_NE(parseConfig("stream_tls_key = \"/a.key\"\n", "t", config).find("go together"),
            std::string::npos);
  EXPECT_NE(parseConfig("stream_tls_ca = \"/ca.crt\"\n", "t", config).find("needs"),
            std::string::npos);
  EXPECT_NE(parseConfig("stream_tls_cert = \"a.crt\"\nstream_tls_key = \"/a.key\"\n", "t", config)
                .find("'stream_tls_cert' must be an absolute path"),
            std::string::npos);
}

TEST_F(ConfigTest, ContainerLogKeys) {
  Config config;
  ASSERT_EQ(parseConfig("container_log_max_line_bytes = 8192\ncontainer_log_size_max = 1048576\n"
                        "container_log_rate_bytes_per_second = 65536\n"
                        "container_log_rate_burst_bytes = 131072\n",
                        "t", config),
            "");
  EXPECT_EQ(config.containerLogMaxLineBytes, 8192u);
  EXPECT_EQ(config.containerLogSizeMax, 1048576u);
  EXPECT_EQ(config.containerLogRateBytesPerSecond, 65536u);
  EXPECT_EQ(config.containerLogRateBurstBytes, 131072u);
  ASSERT_EQ(parseConfig("container_log_size_max = 0\n", "t", config), "");  // 0: off
  EXPECT_NE(parseConfig("container_log_size_max = -1\n", "t", config).find("0 or more"),
            std::string::npos);
  EXPECT_NE(parseConfig("container_log_size_max = 100\n", "t", config).find("at least 4096"),
            std::string::npos);
  EXPECT_NE(parseConfig("container_log_max_line_bytes = 0\n", "t", config).find("positive"),
            std::string::npos);
  EXPECT_NE(parseConfig("container_log_rate_burst_bytes = 10\n", "t", config)
                .find("needs 'container_log_rate_bytes_per_second'"),
            std::string::npos);
  EXPECT_NE(parseConfig("container_log_rate_bytes_per_second = 1099511627777\n", "t", config)
                .find("at most 2^40"),
            std::string::npos);
  EXPECT_TRUE(config.containerLogJournal);
  ASSERT_EQ(parseConfig("container_log_journal = false\n", "t", config), "");
  EXPECT_FALSE(config.containerLogJournal);
  EXPECT_NE(parseConfig("container_log_journal = 1\n", "t", config).find("must be true or false"),
            std::string::npos);
}

TEST_F(ConfigTest, ImageKeys) {
  Config config;
  ASSERT_EQ(parseConfig("registries_conf = \"/etc/r.conf\"\npinned_images = [\"a\", \"b:1\"]\n"
                        "max_concurrent_downloads = 5\n",
                        "t", config),
            "");
  EXPECT_EQ(config.registriesConf, "/etc/r.conf");
  EXPECT_EQ(config.pinnedImages, (std::vector<std::string>{"a", "b:1"}));
  EXPECT_EQ(config.maxConcurrentDownloads, 5u);
  EXPECT_NE(parseConfig("pinned_images = \"a\"\n", "t", config).find("array of strings"),
            std::string::npos);
  EXPECT_NE(parseConfig("pinned_images = [1]\n", "t", config).find("array of strings"),
            std::string::npos);
}

TEST_F(ConfigTest, JsonAndTomlShowTheEffectiveValues) {
  Config config;
  config.runRoot = "/run/t";
  nlohmann::json json = configToJson(config);
  EXPECT_EQ(json["listen"], "/run/t/monocri.sock");
  EXPECT_EQ(json["ociRuntime"], "monocri-runtime");
  Config reparsed;
  ASSERT_EQ(parseConfig(configToToml(config), "printed", reparsed), "");
  EXPECT_EQ(reparsed.listenPath(), "/run/t/monocri.sock");
  EXPECT_EQ(reparsed.stallThresholdMs, config.stallThresholdMs);
}

}  // namespace
}  // namespace monocri::daemon
