// The record format: timestamps to the byte and in UTC, what the parser accepts from other
// runtimes, and what it refuses from hostile files.
#include "logging/LogRecord.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <time.h>

#include <random>
#include <string>
#include <vector>

namespace monocri::logging {
namespace {

constexpr int64_t k20261121T234100 = 1'795'304'460;  // 2026-11-21T23:41:00Z, from date(1)

TEST(LogTimestamp, IsRfc3339InUtcWithNineFractionalDigits) {
  EXPECT_EQ(formatLogTimestamp(k20261121T234100 * 1'000'000'000 + 123'456'789),
            "2026-11-21T23:41:00.123456789Z");
  EXPECT_EQ(formatLogTimestamp(0), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(formatLogTimestamp(1), "1970-01-01T00:00:00.000000001Z");
  EXPECT_EQ(formatLogTimestamp(-1), "1969-12-31T23:59:59.999999999Z");
  EXPECT_EQ(formatLogTimestamp(951'782'400'000'000'000), "2000-02-29T00:00:00.000000000Z");
  EXPECT_EQ(formatLogTimestamp(INT64_MAX), "2262-04-11T23:47:16.854775807Z");
  EXPECT_EQ(formatLogTimestamp(INT64_MIN), "1677-09-21T00:12:43.145224192Z");
}

TEST(LogTimestamp, IgnoresTheLocalTimeZone) {
  const char* saved = getenv("TZ");
  const std::string savedTz = saved != nullptr ? saved : "";
  setenv("TZ", "IST-5:30", 1);  // India, no data file needed
  tzset();
  const std::string formatted = formatLogTimestamp(k20261121T234100 * 1'000'000'000);
  if (saved != nullptr) {
    setenv("TZ", savedTz.c_str(), 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
  EXPECT_EQ(formatted, "2026-11-21T23:41:00.000000000Z");
}

TEST(LogTimestamp, AgreesWithGmtimeAndParsesBack) {
  std::mt19937_64 random(7);
  for (int i = 0; i < 20000; ++i) {
    const int64_t ns = static_cast<int64_t>(random() % 8'000'000'000'000'000'000ull);
    const std::string text = formatLogTimestamp(ns);
    const time_t seconds = static_cast<time_t>(ns / 1'000'000'000);
    tm parts{};
    gmtime_r(&seconds, &parts);
    char expected[64];
    strftime(expected, sizeof expected, "%Y-%m-%dT%H:%M:%S", &parts);
    snprintf(expected + 19, sizeof expected - 19, ".%09lldZ",
             static_cast<long long>(ns % 1'000'000'000));
    ASSERT_EQ(text, expected);
    ASSERT_EQ(parseLogTimestamp(text), ns) << text;
  }
}

TEST(LogTimestamp, ParsesWhatOtherRuntimesWrite) {
  const int64_t base = k20261121T234100 * 1'000'000'000;
  EXPECT_EQ(parseLogTimestamp("2026-11-21T23:41:00Z"), base);
  EXPECT_EQ(parseLogTimestamp("2026-11-21T23:41:00.5Z"), base + 500'000'000);
  // containerd trims trailing zeros (Go's RFC3339Nano).
  EXPECT_EQ(parseLogTimestamp("2026-11-21T23:41:00.12345Z"), base + 123'450'000);
  // CRI-O writes local time with an offset.
  EXPECT_EQ(parseLogTimestamp("2026-11-22T05:11:00.123456789+05:30"), base + 123'456'789);
  EXPECT_EQ(parseLogTimestamp("2026-11-21T18:41:00.000000001-05:00"), base + 1);
}

TEST(LogTimestamp, RefusesMalformedAndUnrepresentableTimes) {
  for (const char* text : {
           "",
           "2026-11-21T23:41:00",              // no zone
           "2026-11-21T23:41:00.123456789",    // no zone
           "2026-11-21 23:41:00Z",             // space separator
           "2026-11-21t23:41:00z",             // lower case
           "2026-11-21T23:41:00.Z",            // empty fraction
           "2026-11-21T23:41:00.1234567890Z",  // ten digits
           "2026-02-29T00:00:00Z",             // not a leap year
           "2026-13-01T00:00:00Z",
           "2026-00-10T00:00:00Z",
           "2026-11-31T00:00:00Z",
           "2026-11-21T24:00:00Z",
           "2026-11-21T23:60:00Z",
           "2026-11-21T23:41:60Z",  // leap seconds are refused, as Go does
           "2026-11-21T23:41:00+24:00",
           "2026-11-21T23:41:00+05:60",
           "2026-11-21T23:41:00+0530",
           "2026-11-21T23:41:00+05:3",
           "2026-11-21T23:41:00Z ",
           "2026-11-21T23:41:00ZZ",
           "+026-11-21T23:41:00Z",
           "2026-1-21T23:41:00Z",
           "9999-12-31T23:59:59Z",  // beyond int64 nanoseconds
           "1000-01-01T00:00:00Z",
           "2262-04-11T23:47:16.854775808Z",
       }) {
    EXPECT_FALSE(parseLogTimestamp(text)) << text;
  }
  EXPECT_TRUE(parseLogTimestamp("2262-04-11T23:47:16.854775807Z"));
  EXPECT_FALSE(parseLogTimestamp(std::string_view("2026-11-21T23:41:00\0Z", 21)));
}

TEST(LogRecordParse, ReadsEveryField) {
  LogRecord record;
  ASSERT_TRUE(parseLogRecord("2026-11-21T23:41:00.123456789Z stdout F the line", record));
  EXPECT_EQ(record.timeNs, k20261121T234100 * 1'000'000'000 + 123'456'789);
  EXPECT_EQ(record.stream, LogStream::kStdout);
  EXPECT_FALSE(record.partial);
  EXPECT_EQ(record.content, "the line");

  ASSERT_TRUE(parseLogRecord("2026-11-21T23:41:00.123456789Z stderr P ", record));
  EXPECT_EQ(record.stream, LogStream::kStderr);
  EXPECT_TRUE(record.partial);
  EXPECT_EQ(record.content, "");

  // Spaces, a carriage return and bytes of any value are content.
  const std::string content = std::string(" two  spaces\r") + '\0' + "\xff";
  ASSERT_TRUE(parseLogRecord("2026-11-21T23:41:00Z stdout F " + content, record));
  EXPECT_EQ(record.content, content);

  // Later tags are a forward-compatible extension, as kubelet reads them.
  ASSERT_TRUE(parseLogRecord("2026-11-21T23:41:00Z stdout P:x:y chunk", record));
  EXPECT_TRUE(record.partial);
  EXPECT_EQ(record.content, "chunk");
}

TEST(LogRecordParse, RefusesHostileLinesWithAReason) {
  const std::string ts = "2026-11-21T23:41:00.123456789Z";
  const std::vector<std::string> lines = {
      "",
      " ",
      "garbage",
      ts,
      ts + " ",
      ts + " stdout",
      ts + " stdout ",
      ts + " stdout F",  // kubelet needs the space after the tag
      ts + " stdin F x",
      ts + " STDOUT F x",
      ts + " stdoutF x",
      ts + "  stdout F x",
      ts + " stdout  F x",  // an empty tag
      ts + " stdout X x",
      ts + " stdout FF x",
      ts + " stdout :F x",
      ts + " stdout F" + std::string(40, ':') + " x",  // a tag over 32 bytes
      "2026-11-21T23:41:00.123456789 stdout F x",
      std::string(4096, 'x') + " stdout F x",
      std::string("2026-11-21T23:41:00.12") + '\0' + "456789Z stdout F x",
      "\xff\xfe stdout F x",
  };
  for (const std::string& line : lines) {
    LogRecord record;
    std::string why;
    EXPECT_FALSE(parseLogRecord(line, record, &why)) << line;
    EXPECT_FALSE(why.empty()) << line;
  }
}

TEST(LogRecordParse, TheHeaderAloneDecides) {
  // The reader's backward scan parses only the first kMaxLogHeaderBytes of a record.
  const std::string ts = "2026-11-21T23:41:00.123456789+05:30";
  const std::vector<std::string> lines = {
      ts + " stdout F " + std::string(1000, 'c'),
      ts + " stderr P:" + std::string(30, 't') + " " + std::string(1000, 'c'),
      ts + " stderr P:" + std::string(31, 't') + " " + std::string(1000, 'c'),
      ts + " stdout " + std::string(1000, 'F'),
      ts + std::string(1000, ' '),
      std::string(kMaxLogHeaderBytes - 1, 'x') + " stdout F x",
  };
  for (const std::string& line : lines) {
    LogRecord whole, prefix;
    EXPECT_EQ(parseLogRecord(line, whole),
              parseLogRecord(line.substr(0, kMaxLogHeaderBytes), prefix))
        << line.substr(0, 100);
  }
}

}  // namespace
}  // namespace monocri::logging
