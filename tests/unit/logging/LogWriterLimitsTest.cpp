// The CRI log writer's size cap (log_size_max) and rate limit, observed through the files it
// writes: the exact records around the cut, the marker records and their counts, kubelet's
// rotation resetting the cap, the rate marker timer on a real loop, and, under random floods,
// that no record ever holds anything but a prefix of a line the container wrote.
#include <gtest/gtest.h>
#include <regex.h>
#include <uv.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "logging/LogTestSupport.h"
#include "logging/LogWriter.h"

namespace monocri::logging {
namespace {

using testing::describe;
using testing::readFile;
using testing::strictRecords;
using testing::TempDir;

constexpr int64_t kBaseNs = 1'795'304'460'123'456'789;  // 2026-11-21T23:41:00.123456789Z
constexpr std::string_view kStamp = "2026-11-21T23:41:00.123456789Z";
// "<timestamp> stdout F ": the bytes before each record's content.
constexpr uint64_t kHeaderBytes = 40;

std::string sizeMarker(uint64_t cap) {
  return "[monocri] log size limit of " + std::to_string(cap) +
         " bytes reached: further output is dropped until the log is rotated";
}

std::string rateMarker(uint64_t rate, uint64_t dropped) {
  return "[monocri] rate limit of " + std::to_string(rate) +
         " bytes/s exceeded: " + std::to_string(dropped) + " bytes dropped";
}

// A POSIX extended regular expression, by libc's regcomp (std::regex trips g++ 12's
// -Wmaybe-uninitialized in optimized sanitizer builds). For strings without NUL bytes.
class Regex {
 public:
  explicit Regex(const char* pattern) {
    if (regcomp(&compiled_, pattern, REG_EXTENDED) != 0) throw std::runtime_error(pattern);
  }
  ~Regex() { regfree(&compiled_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // The groups (0: the whole match), or nothing if `text` does not match.
  std::vector<std::string> match(const std::string& text) const {
    regmatch_t groups[8];
    if (regexec(&compiled_, text.c_str(), 8, groups, 0) != 0) return {};
    std::vector<std::string> out;
    for (size_t i = 0; i <= compiled_.re_nsub && i < 8; ++i)
      out.push_back(groups[i].rm_so < 0
                        ? std::string()
                        : text.substr(static_cast<size_t>(groups[i].rm_so),
                                      static_cast<size_t>(groups[i].rm_eo - groups[i].rm_so)));
    return out;
  }

 private:
  regex_t compiled_{};
};

// One file read with the regular expression node log collectors use, independently of the
// writer and of strictRecords: a stream's P records and the F after them make one line; an F
// record beginning "[monocri] " with no P before it is a marker (no test writes such a line).
struct CollectedLog {
  struct Line {
    LogStream stream;
    std::string content;
  };
  std::vector<Line> lines;
  std::vector<Line> markers;
  bool openLine[2] = {false, false};  // the file ends in the middle of a line

  std::vector<std::string> linesOf(LogStream stream) const {
    std::vector<std::string> out;
    for (const Line& l : lines)
      if (l.stream == stream) out.push_back(l.content);
    return out;
  }
  std::vector<std::string> markersOf(LogStream stream) const {
    std::vector<std::string> out;
    for (const Line& l : markers)
      if (l.stream == stream) out.push_back(l.content);
    return out;
  }
};

CollectedLog collect(const std::string& fileBytes) {
  // ^(\S+) (stdout|stderr) ([PF]) (.*)$ in POSIX terms.
  static const Regex kRecord("^([^[:space:]]+) (stdout|stderr) ([PF]) (.*)$");
  CollectedLog log;
  std::string open[2];
  size_t pos = 0;
  while (pos < fileBytes.size()) {
    const size_t newline = fileBytes.find('\n', pos);
    EXPECT_NE(newline, std::string::npos) << "a record without its '\\n'";
    if (newline == std::string::npos) break;
    const std::string record = fileBytes.substr(pos, newline - pos);
    pos = newline + 1;
    EXPECT_EQ(record.find('\0'), std::string::npos) << "no test writes NUL bytes here";
    const std::vector<std::string> match = kRecord.match(record);
    EXPECT_FALSE(match.empty()) << record;
    if (match.empty()) continue;
    const LogStream stream = match[2] == "stdout" ? LogStream::kStdout : LogStream::kStderr;
    const size_t s = static_cast<size_t>(stream);
    const std::string content = match[4];
    if (match[3] == "P") {
      open[s] += content;
      log.openLine[s] = true;
    } else if (!log.openLine[s] && content.rfind("[monocri] ", 0) == 0) {
      log.markers.push_back({stream, content});
    } else {
      log.lines.push_back({stream, open[s] + content});
      open[s].clear();
      log.openLine[s] = false;
    }
  }
  return log;
}

std::vector<std::string> splitLines(const std::string& bytes) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t at = bytes.find('\n'); at != std::string::npos; at = bytes.find('\n', start)) {
    lines.push_back(bytes.substr(start, at - start));
    start = at + 1;
  }
  if (start < bytes.size()) lines.push_back(bytes.substr(start));
  return lines;
}

// Each line in the log is a prefix of a line the container wrote, in the order it wrote them,
// none twice. Returns how many of the logged lines are whole.
size_t expectPrefixesOfWrittenLines(const std::vector<std::string>& logged,
                                    const std::vector<std::string>& written) {
  size_t next = 0;
  size_t whole = 0;
  for (const std::string& line : logged) {
    while (next < written.size() && written[next].compare(0, line.size(), line) != 0)
      ++next;
    EXPECT_LT(next, written.size()) << "\"" << line << "\" is no prefix of a line written after "
                                    << "the lines before it";
    if (next >= written.size()) return whole;
    if (written[next] == line) ++whole;
    ++next;
  }
  return whole;
}

// libuv handles of the loop that are not closing: what a writer holds there.
size_t openHandles(loop::Loop& loop) {
  size_t count = 0;
  uv_walk(
      loop.raw(),
      [](uv_handle_t* handle, void* arg) {
        if (!uv_is_closing(handle)) ++*static_cast<size_t*>(arg);
      },
      &count);
  return count;
}

class LogWriterLimitsTest : public ::testing::Test {
 protected:
  // A writer on the test's clocks, which only move when a test moves them.
  std::unique_ptr<LogWriter> open(LogWriterOptions options) {
    options.clock = [this] { return clockNs_; };
    options.loopClockMs = [this] { return loopMs_; };
    std::string error;
    auto writer = LogWriter::open(loop_, path_, std::move(options), error);
    EXPECT_NE(writer, nullptr) << error;
    return writer;
  }
  std::vector<std::string> described(const std::string& path) const {
    std::vector<std::string> out;
    for (const LogRecord& r : strictRecords(readFile(path)))
      out.push_back(describe(r));
    return out;
  }
  std::vector<std::string> described() const { return described(path_); }
  // Both clocks forward by `ms`.
  void advance(uint64_t ms) {
    loopMs_ += ms;
    clockNs_ += static_cast<int64_t>(ms) * 1'000'000;
  }

  TempDir dir_;
  std::string path_ = dir_.file("0.log");
  loop::Loop loop_;
  int64_t clockNs_ = kBaseNs;
  uint64_t loopMs_ = 50'000;
};

using Records = std::vector<std::string>;

// --- size cap ---

TEST_F(LogWriterLimitsTest, TheCapReachedInTheMiddleOfABatchKeepsTheRecordsThatFit) {
  LogWriterOptions options;
  options.maxFileBytes = 3 * (kHeaderBytes + 7) + 20;  // three 6-byte lines and a bit
  auto writer = open(options);
  std::string burst;
  for (int i = 0; i < 10; ++i)
    burst += "line-" + std::to_string(i) + "\n";
  writer->write(LogStream::kStderr, burst);
  const std::string marker = sizeMarker(options.maxFileBytes);
  EXPECT_EQ(readFile(path_), std::string(kStamp) + " stderr F line-0\n" + std::string(kStamp) +
                                 " stderr F line-1\n" + std::string(kStamp) + " stderr F line-2\n" +
                                 std::string(kStamp) + " stderr F " + marker + "\n");
  EXPECT_EQ(writer->stats().bytesDroppedBySizeLimit, 7u * 7);
  EXPECT_EQ(writer->stats().bytesDroppedByRateLimit, 0u);
  EXPECT_EQ(writer->stats().bytesWritten, readFile(path_).size());

  // Later output on either stream is dropped without another marker, and nothing is kept.
  const std::string before = readFile(path_);
  writer->write(LogStream::kStdout, "more\nand a half");
  writer->write(LogStream::kStderr, "even more\n");
  writer->finish();
  EXPECT_EQ(readFile(path_), before);
  EXPECT_EQ(writer->stats().bytesDroppedBySizeLimit, 49u + 15 + 10);
  EXPECT_EQ(writer->stats().bytesIn, burst.size() + 15 + 10);
}

TEST_F(LogWriterLimitsTest, ARecordEndingExactlyAtTheCapIsWrittenAndTheNextOneIsNot) {
  LogWriterOptions options;
  options.maxFileBytes = 3 * (kHeaderBytes + 7);
  auto writer = open(options);
  writer->write(LogStream::kStdout, "line-0\nline-1\nline-2\n");
  EXPECT_EQ(readFile(path_).size(), options.maxFileBytes);
  EXPECT_EQ(described(), (Records{"stdout F line-0", "stdout F line-1", "stdout F line-2"}));
  // Even an empty line no longer fits.
  writer->write(LogStream::kStdout, "\n");
  EXPECT_EQ(described(), (Records{"stdout F line-0", "stdout F line-1", "stdout F line-2",
                                  "stdout F " + sizeMarker(options.maxFileBytes)}));
  EXPECT_EQ(writer->stats().bytesDroppedBySizeLimit, 1u);
}

TEST_F(LogWriterLimitsTest, TheCapCountsWhatTheFileHeldWhenOpened) {
  testing::writeFile(path_, std::string(kStamp) + " stdout F written by an earlier daemon\n");
  const uint64_t existing = readFile(path_).size();
  LogWriterOptions options;
  options.maxFileBytes = existing + kHeaderBytes + 5;  // "fits\n" exactly
  auto writer = open(options);
  writer->write(LogStream::kStdout, "fits\n");
  writer->write(LogStream::kStdout, "no\n");
  EXPECT_EQ(described(), (Records{"stdout F written by an earlier daemon", "stdout F fits",
                                  "stdout F " + sizeMarker(options.maxFileBytes)}));
}

TEST_F(LogWriterLimitsTest, ReopenStartsCountingAnewAndMayBringANewMarker) {
  LogWriterOptions options;
  options.maxFileBytes = 2 * (kHeaderBytes + 2);
  auto writer = open(options);
  writer->write(LogStream::kStdout, "a\nb\nc\nd\n");
  writer->write(LogStream::kStderr, "e\n");
  const std::string rotated = path_ + ".1";
  ASSERT_EQ(std::rename(path_.c_str(), rotated.c_str()), 0);
  ASSERT_TRUE(writer->reopen().isOk());
  writer->write(LogStream::kStderr, "f\ng\nh\n");
  writer->write(LogStream::kStdout, "i\n");
  writer->finish();

  const std::string marker = "F " + sizeMarker(options.maxFileBytes);
  EXPECT_EQ(described(rotated), (Records{"stdout F a", "stdout F b", "stdout " + marker}));
  EXPECT_EQ(described(), (Records{"stderr F f", "stderr F g", "stderr " + marker}));
  EXPECT_EQ(writer->stats().bytesDroppedBySizeLimit, 4u + 2 + 2 + 2);
}

TEST_F(LogWriterLimitsTest, LinesCutByTheCapEndInTheFileAndTheirRestIsNeverWritten) {
  LogWriterOptions options;
  options.maxLineBytes = 8;
  options.maxFileBytes = 2 * (kHeaderBytes + 9) + 10;  // two full-size chunks and a bit
  auto writer = open(options);
  writer->write(LogStream::kStderr, "half");  // waits for its '\n'
  writer->write(LogStream::kStdout, "aaaaaaaabbbbbbbbccccccccdd");
  EXPECT_EQ(described(), (Records{"stdout P aaaaaaaa", "stdout P bbbbbbbb",
                                  // the line is closed before the marker, empty
                                  "stdout F ", "stdout F " + sizeMarker(options.maxFileBytes)}));
  EXPECT_EQ(writer->stats().bytesDroppedBySizeLimit, 10u + 4);

  // After the rotation, the rests of both cut lines are discarded up to their '\n'.
  const std::string rotated = path_ + ".1";
  ASSERT_EQ(std::rename(path_.c_str(), rotated.c_str()), 0);
  ASSERT_TRUE(writer->reopen().isOk());
  writer->write(LogStream::kStdout, "cccc");
  writer->write(LogStream::kStdout, "cc\nnew\n");
  writer->write(LogStream::kStderr, "rest of it\nalso new\n");
  EXPECT_EQ(described(), (Records{"stdout F new", "stderr F also new"}));
  EXPECT_EQ(writer->stats().bytesDroppedBySizeLimit, 14u + 4 + 3 + 11);
}

TEST_F(LogWriterLimitsTest, ALineWithAPRecordIsClosedWhenItsNextPartDoesNotFit) {
  LogWriterOptions options;
  options.partialFlushMs = 0;  // P at the end of every write
  options.maxFileBytes = kHeaderBytes + 6 + kHeaderBytes + 3;
  auto writer = open(options);
  writer->write(LogStream::kStdout, "first");
  writer->write(LogStream::kStdout, "second");
  writer->write(LogStream::kStdout, " third\n");
  EXPECT_EQ(described(), (Records{"stdout P first", "stdout F ",
                                  "stdout F " + sizeMarker(options.maxFileBytes)}));
  EXPECT_EQ(writer->stats().bytesDroppedBySizeLimit, 6u + 7);
}

// --- rate limit ---

TEST_F(LogWriterLimitsTest, TheBurstPassesAndTheExcessIsDroppedWithAMarker) {
  LogWriterOptions options;
  options.rateBytesPerSecond = 100;
  options.rateBurstBytes = 25;
  auto writer = open(options);
  writer->write(LogStream::kStdout, "aaaaaaaaa\nbbbbbbbbb\ncccccccccccccccccccccccccccccc\ndddd\n");
  // 25 bytes pass: two lines and the first 5 bytes of the third, which ends there.
  EXPECT_EQ(readFile(path_), std::string(kStamp) + " stdout F aaaaaaaaa\n" + std::string(kStamp) +
                                 " stdout F bbbbbbbbb\n" + std::string(kStamp) +
                                 " stdout F ccccc\n" + std::string(kStamp) + " stdout F " +
                                 rateMarker(100, 31) + "\n");
  EXPECT_EQ(writer->stats().bytesDroppedByRateLimit, 31u);
  EXPECT_EQ(writer->stats().bytesDroppedBySizeLimit, 0u);
}

TEST_F(LogWriterLimitsTest, TheRestOfACutLineIsDiscardedWheneverItComesAndLaterLinesPass) {
  LogWriterOptions options;
  options.rateBytesPerSecond = 100;
  options.rateBurstBytes = 10;
  auto writer = open(options);
  writer->write(LogStream::kStdout, "0123456789ABCDEF");
  advance(2'000);                                   // the bucket is full again: 10 bytes
  writer->write(LogStream::kStdout, "GHIJ");        // discarded, and told: a second has passed
  writer->write(LogStream::kStdout, "KL\nnext\n");  // "KL\n" discarded; told a second later
  advance(2'000);
  writer->write(LogStream::kStdout, "0123456789\n");  // 11 bytes: its '\n' does not fit
  advance(2'000);
  writer->write(LogStream::kStdout, "whole\n");
  EXPECT_EQ(described(),
            (Records{"stdout F 0123456789", "stdout F " + rateMarker(100, 6),
                     "stdout F " + rateMarker(100, 4), "stdout F next", "stdout F 0123456789",
                     "stdout F " + rateMarker(100, 3 + 1), "stdout F whole"}));
  EXPECT_EQ(writer->stats().bytesDroppedByRateLimit, 6u + 4 + 3 + 1);
}

TEST_F(LogWriterLimitsTest, EmptyLinesCostTheirNewline) {
  LogWriterOptions options;
  options.rateBytesPerSecond = 3;
  auto writer = open(options);
  writer->write(LogStream::kStderr, std::string(10, '\n'));
  EXPECT_EQ(described(),
            (Records{"stderr F ", "stderr F ", "stderr F ", "stderr F " + rateMarker(3, 7)}));
}

TEST_F(LogWriterLimitsTest, BothStreamsShareTheBucketAndEachGetsItsOwnMarkers) {
  LogWriterOptions options;
  options.rateBytesPerSecond = 10;
  auto writer = open(options);
  writer->write(LogStream::kStdout, "out-line\n");  // 9 of 10
  writer->write(LogStream::kStderr, "err\n");       // 1 passes: "e"
  writer->write(LogStream::kStdout, "more\n");
  EXPECT_EQ(described(),
            (Records{"stdout F out-line", "stderr F e", "stderr F " + rateMarker(10, 3),
                     "stdout F " + rateMarker(10, 5)}));
}

TEST_F(LogWriterLimitsTest, MarkersComeOncePerSecondWithTheCountAndTheLastAfterTheFlood) {
  LogWriterOptions options;
  options.rateBytesPerSecond = 100;  // 10 bytes every 100 ms
  options.partialFlushMs = 5;
  auto writer = open(options);
  const size_t idleHandles = openHandles(loop_);
  const std::string line = std::string(49, 'x') + "\n";
  std::string written;
  auto send = [&] {
    writer->write(LogStream::kStdout, line);
    written += line;
  };
  send();
  send();
  send();  // the burst of 100 takes two lines; 50 bytes dropped, told at once
  for (int i = 0; i < 10; ++i) {
    advance(100);
    send();  // 10 bytes pass, 40 dropped
  }
  std::vector<std::string> markers = collect(readFile(path_)).markersOf(LogStream::kStdout);
  // The drops of the first second after a marker are told together, when it is over.
  EXPECT_EQ(markers, (std::vector<std::string>{rateMarker(100, 50), rateMarker(100, 400)}));
  EXPECT_EQ(openHandles(loop_), idleHandles) << "no marker waits: no timer";

  advance(990);  // 99 bytes: a line, 49 bytes of the next, then nothing
  send();
  send();
  send();
  markers = collect(readFile(path_)).markersOf(LogStream::kStdout);
  EXPECT_EQ(markers.size(), 2u) << "less than a second since the last marker";
  EXPECT_EQ(openHandles(loop_), idleHandles + 1) << "a timer for the marker to come";

  // The container goes quiet: the timer writes the last marker when the second is over.
  advance(10);
  loop_.run();  // returns once no handle is active: the marker timer is gone
  markers = collect(readFile(path_)).markersOf(LogStream::kStdout);
  EXPECT_EQ(markers, (std::vector<std::string>{rateMarker(100, 50), rateMarker(100, 400),
                                               rateMarker(100, 51)}));
  EXPECT_EQ(writer->stats().bytesDroppedByRateLimit, 50u + 400 + 51);
  EXPECT_EQ(openHandles(loop_), idleHandles);

  const CollectedLog log = collect(readFile(path_));
  const std::vector<std::string> lines = log.linesOf(LogStream::kStdout);
  ASSERT_EQ(lines.size(), 2u + 10 + 2);
  // Whole: the two of the burst, the one at 1990 ms, and the next one cut just before its '\n'.
  EXPECT_EQ(expectPrefixesOfWrittenLines(lines, splitLines(written)), 4u);
  EXPECT_EQ(lines[2], std::string(10, 'x'));
  EXPECT_EQ(lines.back(), std::string(49, 'x'));
}

TEST_F(LogWriterLimitsTest, AMarkerWaitsUntilALineWithPRecordsEnds) {
  LogWriterOptions options;
  options.rateBytesPerSecond = 1000;  // a byte a millisecond
  options.rateBurstBytes = 10;
  options.partialFlushMs = 0;  // P at the end of every write
  auto writer = open(options);
  const size_t idleHandles = openHandles(loop_);
  writer->write(LogStream::kStdout, "0123456789overflow\n");  // told at once
  advance(990);
  writer->write(LogStream::kStdout, "abcdefghij-cut\n");  // to be told 10 ms later
  EXPECT_EQ(openHandles(loop_), idleHandles + 1);
  advance(5);
  writer->write(LogStream::kStdout, "xy");  // a line open in the file: the marker must wait
  EXPECT_EQ(openHandles(loop_), idleHandles) << "no timer while the marker waits for the line";
  advance(100);
  loop_.run();
  const Records before{"stdout F 0123456789", "stdout F " + rateMarker(1000, 9),
                       "stdout F abcdefghij", "stdout P xy"};
  EXPECT_EQ(described(), before);
  writer->write(LogStream::kStdout, "z\n");  // the line ends; the marker follows at once
  Records after = before;
  after.push_back("stdout F z");
  after.push_back("stdout F " + rateMarker(1000, 5));
  EXPECT_EQ(described(), after);
}

TEST_F(LogWriterLimitsTest, FinishWritesTheLastMarkerAtOnce) {
  LogWriterOptions options;
  options.rateBytesPerSecond = 10;
  auto writer = open(options);
  writer->write(LogStream::kStderr, "0123456789ab");
  advance(100);
  writer->write(LogStream::kStderr, "cd\nef");  // "cd\n" discarded, "e" passes, "f" dropped
  writer->finish();
  EXPECT_EQ(described(), (Records{"stderr F 0123456789", "stderr F " + rateMarker(10, 2),
                                  "stderr F e", "stderr F " + rateMarker(10, 4)}));
  loop_.run();  // no timer is left behind
  EXPECT_EQ(described().size(), 4u);
}

TEST_F(LogWriterLimitsTest, TheDestructorWritesTheLastMarkerBeforeAnOpenLine) {
  LogWriterOptions options;
  options.rateBytesPerSecond = 10;
  auto writer = open(options);
  writer->write(LogStream::kStdout, "0123456789ab\n");
  advance(100);
  writer->write(LogStream::kStdout, "x\ny");  // "x" passes; "\ny" dropped, y's line cut
  advance(500);
  writer->write(LogStream::kStdout, "z\npart");  // "z\n" discarded; the marker is not due
  writer.reset();  // a daemon restart: the line "part" stays open for the next writer
  EXPECT_EQ(described(), (Records{"stdout F 0123456789", "stdout F " + rateMarker(10, 3),
                                  "stdout F x", "stdout F " + rateMarker(10, 4), "stdout P part"}));
}

TEST_F(LogWriterLimitsTest, AnIdleRateLimitedWriterHoldsNoMoreHandlesThanAnUnlimitedOne) {
  const size_t before = openHandles(loop_);
  LogWriterOptions options;
  options.rateBytesPerSecond = 1000;
  auto limited = open(options);
  const size_t perWriter = openHandles(loop_) - before;
  limited->write(LogStream::kStdout, "within the rate\n");
  EXPECT_EQ(openHandles(loop_) - before, perWriter);
  std::string error;
  auto unlimited = LogWriter::open(loop_, dir_.file("1.log"), {}, error);
  ASSERT_NE(unlimited, nullptr) << error;
  EXPECT_EQ(openHandles(loop_) - before, 2 * perWriter);
}

// --- both ---

TEST_F(LogWriterLimitsTest, ARateMarkerCountsAgainstTheCapAndWaitsForTheRotation) {
  LogWriterOptions options;
  options.rateBytesPerSecond = 10;
  // Two 4-byte lines and a 2-digit rate marker do not fit; a 10-byte line and one do.
  options.maxFileBytes = 160;
  auto writer = open(options);
  writer->write(LogStream::kStdout, "aaaa\nbbbb\ncccc\n");  // "cccc\n" dropped by the rate
  advance(1'000);
  writer->write(LogStream::kStdout, "dddd\n");  // dropped: past the cap
  EXPECT_EQ(described(), (Records{"stdout F aaaa", "stdout F bbbb",
                                  "stdout F " + sizeMarker(options.maxFileBytes)}));
  EXPECT_EQ(writer->stats().bytesDroppedByRateLimit, 5u);
  EXPECT_EQ(writer->stats().bytesDroppedBySizeLimit, 5u);

  // After the rotation, the next rate marker tells what was dropped since the last one written.
  ASSERT_EQ(std::rename(path_.c_str(), (path_ + ".1").c_str()), 0);
  ASSERT_TRUE(writer->reopen().isOk());
  writer->write(LogStream::kStdout, "ffffffffffffffff\n");  // 17: 10 pass
  EXPECT_EQ(described(), (Records{"stdout F ffffffffff", "stdout F " + rateMarker(10, 5 + 7)}));
  EXPECT_LE(readFile(path_).size(), options.maxFileBytes);
}

// Random lines of random lengths, split at random points, on both streams, the clock moving
// by random steps, with rotations: whatever the limits drop, each line in the files is a prefix
// of a line the container wrote, the bytes that passed stay within the rate, no file holds
// container records past the cap, and the counts add up.
TEST_F(LogWriterLimitsTest, RandomFloodsNeverGarbleALine) {
  const Regex rateMarkerText(
      "^\\[monocri\\] rate limit of ([0-9]+) bytes/s exceeded: ([0-9]+) bytes dropped$");
  // What the floods went through, so that the test is known to reach every case.
  size_t cutLines = 0, rateMarkers = 0, sizeMarkersSeen = 0, rotations = 0;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    std::mt19937 random(seed);
    LogWriterOptions options;
    options.maxLineBytes = 1 + random() % 64;
    options.partialFlushMs = random() % 2 == 0 ? 0 : 1000;
    options.rateBytesPerSecond = 100 + random() % 2000;
    options.rateBurstBytes = random() % 2 == 0 ? 0 : 1 + random() % 500;
    options.maxFileBytes = random() % 3 == 0 ? 0 : 1000 + random() % 4000;
    std::vector<std::string> files;
    std::string written[2];
    const uint64_t startMs = loopMs_;
    {
      auto writer = open(options);
      for (int step = 0; step < 400; ++step) {
        const uint32_t what = random() % 100;
        if (what < 3) {
          files.push_back(path_ + "." + std::to_string(files.size()));
          ASSERT_EQ(std::rename(path_.c_str(), files.back().c_str()), 0);
          ASSERT_TRUE(writer->reopen().isOk());
          ++rotations;
          continue;
        }
        if (what < 30) advance(random() % 300);
        const size_t s = random() % 2;
        std::string bytes(random() % 120, 'x');
        for (char& c : bytes)
          c = random() % 12 == 0 ? '\n' : static_cast<char>('a' + random() % 26);
        written[s] += bytes;
        writer->write(s == 0 ? LogStream::kStdout : LogStream::kStderr, bytes);
      }
      writer->finish();
      const LogWriter::Stats stats = writer->stats();
      files.push_back(path_);

      std::string all;
      for (const std::string& file : files) {
        const std::string bytes = readFile(file);
        all += bytes;
        const CollectedLog log = collect(bytes);
        size_t sizeMarkers = 0;
        for (const auto& m : log.markers)
          sizeMarkers += m.content == sizeMarker(options.maxFileBytes);
        EXPECT_LE(sizeMarkers, 1u);
        sizeMarkersSeen += sizeMarkers;
        if (options.maxFileBytes != 0) {
          // Only the size marker and the empty F records closing cut lines lie past the cap.
          uint64_t end = 0, at = 0;
          for (const LogRecord& r : strictRecords(bytes)) {
            at += kHeaderBytes + r.content.size() + 1;
            if (r.content != sizeMarker(options.maxFileBytes) && !r.content.empty()) end = at;
          }
          EXPECT_LE(end, options.maxFileBytes) << file;
          EXPECT_LE(bytes.size(), options.maxFileBytes + 3 * (kHeaderBytes + 1) +
                                      sizeMarker(options.maxFileBytes).size());
        }
      }
      // Lines continue across a rotation: read as one stream of records.
      const CollectedLog log = collect(all);
      EXPECT_FALSE(log.openLine[0] || log.openLine[1]) << "finish() closes every line";
      uint64_t rateTold = 0;
      for (const auto& m : log.markers) {
        if (m.content == sizeMarker(options.maxFileBytes)) continue;
        const std::vector<std::string> match = rateMarkerText.match(m.content);
        ASSERT_FALSE(match.empty()) << m.content;
        ++rateMarkers;
        EXPECT_EQ(std::stoull(match[1]), options.rateBytesPerSecond);
        EXPECT_GT(std::stoull(match[2]), 0u);
        rateTold += std::stoull(match[2]);
      }
      uint64_t content = 0, finals = 0;
      std::vector<std::string> logged[2];
      for (const auto& line : log.lines) {
        logged[static_cast<size_t>(line.stream)].push_back(line.content);
        content += line.content.size();
        ++finals;
      }
      for (size_t s = 0; s < 2; ++s) {
        cutLines +=
            logged[s].size() - expectPrefixesOfWrittenLines(logged[s], splitLines(written[s]));
      }
      const uint64_t burst =
          options.rateBurstBytes != 0 ? options.rateBurstBytes : options.rateBytesPerSecond;
      EXPECT_LE(content, burst + options.rateBytesPerSecond * (loopMs_ - startMs) / 1000);
      const uint64_t dropped = stats.bytesDroppedByRateLimit + stats.bytesDroppedBySizeLimit;
      EXPECT_EQ(stats.bytesIn, written[0].size() + written[1].size());
      // Every byte is in the file or counted as dropped; a '\n' may be either.
      EXPECT_LE(dropped + content, stats.bytesIn);
      EXPECT_GE(dropped + content + finals, stats.bytesIn);
      EXPECT_LE(rateTold, stats.bytesDroppedByRateLimit);
      if (options.maxFileBytes == 0) {
        EXPECT_EQ(rateTold, stats.bytesDroppedByRateLimit);
      }
      if (::testing::Test::HasFailure()) {
        ADD_FAILURE() << "seed " << seed;
        return;
      }
    }
    for (const std::string& file : files)
      std::remove(file.c_str());
  }
  EXPECT_GT(cutLines, 100u);
  EXPECT_GT(rateMarkers, 100u);
  EXPECT_GT(sizeMarkersSeen, 10u);
  EXPECT_GT(rotations, 100u);
}

TEST_F(LogWriterLimitsTest, RefusesLimitsOutOfRange) {
  std::string error;
  LogWriterOptions burstAlone;
  burstAlone.rateBurstBytes = 100;
  EXPECT_EQ(LogWriter::open(loop_, path_, burstAlone, error), nullptr);
  EXPECT_EQ(error,
            "container log " + path_ + ": rateBurstBytes 100 is given without rateBytesPerSecond");
  LogWriterOptions tooFast;
  tooFast.rateBytesPerSecond = TokenBucket::kMaxBytes + 1;
  EXPECT_EQ(LogWriter::open(loop_, path_, tooFast, error), nullptr);
  EXPECT_NE(error.find("at most 1099511627776"), std::string::npos) << error;
}

TEST_F(LogWriterLimitsTest, LimitsOffCountNothing) {
  auto writer = open({});
  writer->write(LogStream::kStdout, std::string(1 << 20, 'x') + "\n");
  writer->finish();
  EXPECT_EQ(writer->stats().bytesDroppedBySizeLimit, 0u);
  EXPECT_EQ(writer->stats().bytesDroppedByRateLimit, 0u);
  EXPECT_EQ(writer->stats().bytesWritten, readFile(path_).size());
}

}  // namespace
}  // namespace monocri::logging
