#include "net/PodNetwork.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "loop/Loop.h"

namespace monocri::net {
namespace {

// A config dir and a cache dir in a temp dir, removed after.
class PodNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char path[] = "/tmp/monocri-podnet-XXXXXX";
    ASSERT_NE(mkdtemp(path), nullptr);
    dir_ = path;
    options_.confDir = dir_ + "/net.d";
    options_.cacheDir = dir_ + "/cache";
    options_.pluginDirs = {dir_ + "/bin"};
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::filesystem::create_directories(options_.confDir);
    std::ofstream(options_.confDir + "/" + name) << text;
  }

  loop::Loop loop_;
  std::string dir_;
  PodNetworkOptions options_;
};

TEST(PodNetworkCidr, ValidatesCidrs) {
  EXPECT_TRUE(isValidCidr("10.244.0.0/24"));
  EXPECT_TRUE(isValidCidr("0.0.0.0/0"));
  EXPECT_TRUE(isValidCidr("fd00:10:244::/64"));
  EXPECT_FALSE(isValidCidr("10.244.0.0"));
  EXPECT_FALSE(isValidCidr("10.244.0.0/33"));
  EXPECT_FALSE(isValidCidr("10.244.0.0/"));
  EXPECT_FALSE(isValidCidr("10.244.0/24"));
  EXPECT_FALSE(isValidCidr("fd00::/129"));
  EXPECT_FALSE(isValidCidr("10.0.0.0/2x"));
}

TEST_F(PodNetworkTest, StoresThePodCidrAndRefusesGarbage) {
  PodNetwork network(loop_, options_);
  EXPECT_EQ(network.setPodCidr("10.244.1.0/24"), "");
  EXPECT_EQ(network.podCidr(), "10.244.1.0/24");
  EXPECT_EQ(network.setPodCidr("10.244.1.0/24,fd00::/64"), "");  // dual stack
  EXPECT_NE(network.setPodCidr("not-a-cidr"), "");
  EXPECT_NE(network.setPodCidr(","), "");
  EXPECT_EQ(network.podCidr(), "10.244.1.0/24,fd00::/64");
  EXPECT_EQ(network.setPodCidr(""), "");
  EXPECT_EQ(network.podCidr(), "");
}

TEST_F(PodNetworkTest, IsNotReadyWithoutAConfigAndSaysWhere) {
  PodNetwork network(loop_, options_);
  network.start();
  EXPECT_TRUE(std::filesystem::is_directory(options_.confDir));  // made, to be watched
  NetworkReadiness readiness = network.readiness();
  EXPECT_FALSE(readiness.ready);
  EXPECT_EQ(readiness.reason, "NetworkPluginNotReady");
  EXPECT_NE(readiness.message.find(options_.confDir), std::string::npos) << readiness.message;
}

TEST_F(PodNetworkTest, ABrokenFileIsPassedOverWithItsReason) {
  write("10-broken.conflist", "{\"cniVersion\": \"1.0.0\", \"name\": \"x\"");
  PodNetwork network(loop_, options_);
  network.start();
  NetworkReadiness readiness = network.readiness();
  EXPECT_FALSE(readiness.ready);
  EXPECT_NE(readiness.message.find("10-broken.conflist"), std::string::npos) << readiness.message;
}

TEST_F(PodNetworkTest, TheFirstValidFileIsTheNetwork) {
  std::filesystem::create_directories(dir_ + "/bin");
  std::ofstream(dir_ + "/bin/loopback") << "#!/bin/sh\n";
  std::filesystem::permissions(dir_ + "/bin/loopback", std::filesystem::perms::owner_all);
  write("10-broken.conflist", "not json");
  write("20-pods.conflist",
        R"({"cniVersion": "1.0.0", "name": "pods", "plugins": [{"type": "loopback"}]})");
  write("30-other.conf", R"({"cniVersion": "1.0.0", "name": "other", "type": "bridge"})");
  PodNetwork network(loop_, options_);
  network.start();
  EXPECT_TRUE(network.readiness().ready);
  const nlohmann::json info = network.info();
  EXPECT_EQ(info["network"]["name"], "pods");
  EXPECT_EQ(info["network"]["path"], options_.confDir + "/20-pods.conflist");
  EXPECT_EQ(info["passedOver"].size(), 1u);
}

TEST_F(PodNetworkTest, AListWhosePluginIsMissingIsNotReadyAndSaysWhich) {
  write("10-pods.conflist",
        R"({"cniVersion": "1.0.0", "name": "pods", "plugins": [{"type": "loopback"}]})");
  PodNetwork network(loop_, options_);
  network.start();
  const NetworkReadiness readiness = network.readiness();
  EXPECT_FALSE(readiness.ready);
  EXPECT_NE(readiness.message.find("plugin 'loopback' is not in the plugin directories"),
            std::string::npos)
      << readiness.message;
}

}  // namespace
}  // namespace monocri::net
