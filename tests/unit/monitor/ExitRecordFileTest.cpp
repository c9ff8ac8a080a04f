#include "monitor/keeper/ExitRecordFile.h"

#include <gtest/gtest.h>

#include <string>

namespace monocri::monitor {
namespace {

ExitInfo sampleExit() {
  ExitInfo exit;
  EXPECT_TRUE(Owner::parse("4f2a9c", exit.owner));
  exit.pid = 1234;
  exit.waitStatus = 1 << 8;
  exit.timeNs = 1763772122199529000;
  return exit;
}

std::string format(const ExitInfo& exit) {
  char text[kMaxExitRecordBytes];
  return std::string(text, formatExitRecord(exit, text));
}

TEST(ExitRecordFile, TheTextIsFixedAndReadable) {
  EXPECT_EQ(format(sampleExit()),
            "monocri-exit-record 1\n"
            "owner 4f2a9c\n"
            "pid 1234\n"
            "wait_status 256\n"
            "time_ns 1763772122199529000\n");
}

TEST(ExitRecordFile, RoundTripsAtTheLimits) {
  ExitInfo exit;
  ASSERT_TRUE(Owner::parse(std::string(64, 'z'), exit.owner));
  exit.pid = INT32_MAX;
  exit.waitStatus = 9 | 0x80;
  exit.timeNs = INT64_MAX;
  const std::string text = format(exit);
  EXPECT_LE(text.size(), kMaxExitRecordBytes);
  ExitInfo parsed;
  ASSERT_EQ(parseExitRecord(text.data(), text.size(), parsed), nullptr);
  EXPECT_EQ(parsed.owner.view(), exit.owner.view());
  EXPECT_EQ(parsed.pid, exit.pid);
  EXPECT_EQ(parsed.waitStatus, exit.waitStatus);
  EXPECT_EQ(parsed.timeNs, exit.timeNs);
}

TEST(ExitRecordFile, AnythingElseIsRefused) {
  const std::string good = format(sampleExit());
  auto refused = [](const std::string& text) {
    ExitInfo out;
    return parseExitRecord(text.data(), text.size(), out) != nullptr;
  };
  EXPECT_FALSE(refused(good));
  EXPECT_TRUE(refused(""));
  EXPECT_TRUE(refused(good.substr(0, good.size() - 1)));  // no final newline: torn
  EXPECT_TRUE(refused(good + "x"));
  EXPECT_TRUE(refused("monocri-exit-record 2\n" + good.substr(22)));
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  EXPECT_TRUE(refused(replace("pid 1234", "pid 01234")));
  EXPECT_TRUE(refused(replace("pid 1234", "pid -1234")));
  EXPECT_TRUE(refused(replace("pid 1234", "pid 0")));
  EXPECT_TRUE(refused(replace("pid 1234", "pid 2147483648")));
  EXPECT_TRUE(refused(replace("pid 1234", "pid 12a4")));
  EXPECT_TRUE(refused(replace("pid 1234", "pid  1234")));
  EXPECT_TRUE(refused(replace("wait_status 256", "wait_status 127")));  // stopped
  EXPECT_TRUE(refused(replace("wait_status 256", "wait_status 65536")));
  EXPECT_TRUE(refused(replace("owner 4f2a9c", "owner ../etc")));
  EXPECT_TRUE(refused(replace("owner 4f2a9c", "owner ")));
  EXPECT_TRUE(refused(replace("time_ns 1763772122199529000", "time_ns 99999999999999999999")));
  EXPECT_TRUE(refused(replace("time_ns 1763772122199529000", "time_ns 9223372036854775808")));
  EXPECT_TRUE(refused(good + std::string(300, '\n')));
}

TEST(ExitRecordFile, NamesAreOwnerDotPidAndTempNamesAreHidden) {
  const ExitInfo exit = sampleExit();
  char name[kMaxExitRecordNameBytes];
  exitRecordName(exit.owner, exit.pid, name);
  EXPECT_STREQ(name, "4f2a9c.1234");
  exitRecordTempName(exit.owner, exit.pid, name);
  EXPECT_STREQ(name, ".4f2a9c.1234.tmp");
  Owner longest;
  ASSERT_TRUE(Owner::parse(std::string(64, 'a'), longest));
  exitRecordTempName(longest, INT32_MAX, name);
  EXPECT_EQ(std::string(name), "." + std::string(64, 'a') + ".2147483647.tmp");
}

}  // namespace
}  // namespace monocri::monitor
