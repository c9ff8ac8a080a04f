#include "net/PodNetwork.h"

#include <gtest/gtest.h>

namespace monocri::net {
namespace {

TEST(PodNetwork, ValidatesCidrs) {
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

TEST(PodNetwork, StoresThePodCidrAndRefusesGarbage) {
  PodNetwork network;
  EXPECT_EQ(network.setPodCidr("10.244.1.0/24"), "");
  EXPECT_EQ(network.podCidr(), "10.244.1.0/24");
  EXPECT_EQ(network.setPodCidr("10.244.1.0/24,fd00::/64"), "");  // dual stack
  EXPECT_NE(network.setPodCidr("not-a-cidr"), "");
  EXPECT_EQ(network.podCidr(), "10.244.1.0/24,fd00::/64");
  EXPECT_EQ(network.setPodCidr(""), "");
  EXPECT_EQ(network.podCidr(), "");
}

TEST(PodNetwork, ReportsNoNetworkRatherThanPretending) {
  PodNetwork network;
  NetworkReadiness readiness = network.readiness();
  EXPECT_FALSE(readiness.ready);
  EXPECT_EQ(readiness.reason, "NetworkPluginNotReady");
  EXPECT_FALSE(readiness.message.empty());
}

}  // namespace
}  // namespace monocri::net
