// Reading CRI log files back: lines joined from P records, hostile lines skipped, the decoder's
// independence from how bytes are split, --tail, --since, the stream filter, and following a
// file across kubelet's rename + ReopenContainerLog (with the writer under test producing it).
#include "logging/LogReader.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "logging/LogDecoder.h"
#include "logging/LogTestSupport.h"
#include "logging/LogWriter.h"

namespace monocri::logging {
namespace {

using testing::readFile;
using testing::TempDir;
using testing::writeFile;

constexpr int64_t kBaseNs = 1'795'304'460'000'000'000;  // 2026-11-21T23:41:00Z

// A line as the sink saw it, owned.
struct Seen {
  int64_t timeNs;
  LogStream stream;
  std::string content;
  bool continuation;
  bool complete;

  bool operator==(const Seen&) const = default;
};

std::string show(const Seen& s) {
  return std::string(logStreamName(s.stream)) + (s.complete ? " " : " (fragment) ") +
         (s.continuation ? "..." : "") + s.content;
}

std::vector<std::string> show(const std::vector<Seen>& lines) {
  std::vector<std::string> out;
  for (const Seen& s : lines)
    out.push_back(show(s));
  return out;
}

LogLineSink collectInto(std::vector<Seen>& out) {
  return [&out](const LogLine& line) {
    out.push_back(
        {line.timeNs, line.stream, std::string(line.content), line.continuation, line.complete});
    return true;
  };
}

std::string record(int64_t timeNs, LogStream stream, bool partial, std::string_view content) {
  return formatLogTimestamp(timeNs) + " " + std::string(logStreamName(stream)) +
         (partial ? " P " : " F ") + std::string(content) + "\n";
}

class LogReaderTest : public ::testing::Test {
 protected:
  std::vector<Seen> readAll(LogReadOptions options = {}) {
    grpc::Status status;
    auto reader = LogReader::open(path_, options, status);
    EXPECT_TRUE(status.isOk()) << status.toString();
    std::vector<Seen> lines;
    if (reader == nullptr) return lines;
    EXPECT_TRUE(reader->readAvailable(collectInto(lines)).isOk());
    malformed_ = reader->decoderStats().malformedRecords;
    lastMalformed_ = reader->decoderStats().lastMalformed;
    return lines;
  }

  TempDir dir_;
  std::string path_ = dir_.file("0.log");
  uint64_t malformed_ = 0;
  std::string lastMalformed_;
};

TEST_F(LogReaderTest, JoinsPRecordsIntoWholeLines) {
  writeFile(path_, record(kBaseNs, LogStream::kStdout, true, "ab") +
                       record(kBaseNs + 1, LogStream::kStderr, false, "an error") +
                       record(kBaseNs + 2, LogStream::kStdout, true, "cd") +
                       record(kBaseNs + 3, LogStream::kStdout, false, "ef") +
                       record(kBaseNs + 4, LogStream::kStdout, false, ""));
  const auto lines = readAll();
  EXPECT_EQ(lines, (std::vector<Seen>{{kBaseNs + 1, LogStream::kStderr, "an error", false, true},
                                      {kBaseNs, LogStream::kStdout, "abcdef", false, true},
                                      {kBaseNs + 4, LogStream::kStdout, "", false, true}}));
  EXPECT_EQ(malformed_, 0u);
}

TEST_F(LogReaderTest, PrintsLinesWithOrWithoutTimestamps) {
  std::string out;
  LogLine line{kBaseNs + 5, LogStream::kStdout, "hello", false, true};
  appendLogLine(out, line, false);
  appendLogLine(out, line, true);
  // A long line in fragments: the timestamp once, the '\n' at its end.
  appendLogLine(out, {kBaseNs, LogStream::kStdout, "frag", false, false}, true);
  appendLogLine(out, {kBaseNs, LogStream::kStdout, "ment", true, true}, true);
  EXPECT_EQ(out,
            "hello\n"
            "2026-11-21T23:41:00.000000005Z hello\n"
            "2026-11-21T23:41:00.000000000Z fragment\n");
}

TEST_F(LogReaderTest, ShowsOtherRuntimesOffsetTimestampsInUtc) {
  writeFile(path_, "2026-11-22T05:11:00.5+05:30 stdout F from CRI-O\n");
  const auto lines = readAll();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].timeNs, kBaseNs + 500'000'000);
}

TEST_F(LogReaderTest, SkipsAndCountsHostileLines) {
  std::string bytes = record(kBaseNs, LogStream::kStdout, false, "good 1");
  bytes += "garbage\n";
  bytes += std::string(3 * 1024 * 1024, 'x') + "\n";  // a 3 MiB line without a header
  bytes += "2026-11-21T23:41:00Z stdin F x\n";
  bytes += std::string("\0\0\0\xff\xfe\n", 6);
  bytes += "\n";
  bytes += "2026-11-21T23:41:00Z stdout F";  // no space after the tag
  bytes += "\n";
  bytes += record(kBaseNs, LogStream::kStdout, true, "good ");
  bytes += "2026-13-21T23:41:00Z stdout F x\n";
  bytes += record(kBaseNs, LogStream::kStdout, false, "2");
  writeFile(path_, bytes);
  const auto lines = readAll();
  EXPECT_EQ(show(lines), (std::vector<std::string>{"stdout good 1", "stdout good 2"}));
  EXPECT_EQ(malformed_, 7u);
  EXPECT_EQ(lastMalformed_.rfind("byte ", 0), 0u) << lastMalformed_;
  EXPECT_NE(lastMalformed_.find("timestamp"), std::string::npos) << lastMalformed_;
}

TEST_F(LogReaderTest, ALastRecordWithoutItsNewlineIsReportedAsCutShort) {
  writeFile(path_,
            record(kBaseNs, LogStream::kStdout, true, "abc") + "2026-11-21T23:41:00Z stdout F de");
  const auto lines = readAll();
  EXPECT_EQ(lines, (std::vector<Seen>{{kBaseNs, LogStream::kStdout, "abc", false, false}}));
  EXPECT_EQ(malformed_, 1u);
  EXPECT_NE(lastMalformed_.find("cut short"), std::string::npos) << lastMalformed_;
}

TEST_F(LogReaderTest, FiltersByStream) {
  writeFile(path_, record(kBaseNs, LogStream::kStdout, false, "out") +
                       record(kBaseNs, LogStream::kStderr, true, "er") +
                       record(kBaseNs, LogStream::kStdout, false, "out") +
                       record(kBaseNs, LogStream::kStderr, false, "r"));
  LogReadOptions options;
  options.includeStdout = false;
  EXPECT_EQ(show(readAll(options)), (std::vector<std::string>{"stderr err"}));
  options.includeStdout = true;
  options.includeStderr = false;
  EXPECT_EQ(show(readAll(options)), (std::vector<std::string>{"stdout out", "stdout out"}));
}

TEST_F(LogReaderTest, HandsALongLineOnInFragmentsOfMaxLineBytes) {
  writeFile(path_, record(kBaseNs, LogStream::kStdout, true, std::string(120, 'a')) +
                       record(kBaseNs, LogStream::kStdout, true, std::string(120, 'b')) +
                       record(kBaseNs, LogStream::kStdout, false, std::string(10, 'c')));
  LogReadOptions options;
  options.maxLineBytes = 100;
  const auto lines = readAll(options);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].content, std::string(100, 'a'));
  EXPECT_EQ(lines[1].content, std::string(20, 'a') + std::string(80, 'b'));
  EXPECT_EQ(lines[2].content, std::string(40, 'b') + std::string(10, 'c'));
  EXPECT_FALSE(lines[0].continuation);
  EXPECT_TRUE(lines[1].continuation && lines[2].continuation);
  EXPECT_FALSE(lines[0].complete || lines[1].complete);
  EXPECT_TRUE(lines[2].complete);
}

TEST(LogDecoder, GivesTheSameLinesHoweverTheBytesAreSplit) {
  std::mt19937 random(3);
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    const auto stream = random() % 2 ? LogStream::kStdout : LogStream::kStderr;
    std::string content(random() % 300, 'x');
    for (char& c : content) {
      c = static_cast<char>(random());
      if (c == '\n') c = '\r';
    }
    switch (random() % 8) {
      case 0:
        bytes += "not a record " + content + "\n";
        break;
      case 1:
      case 2:
        bytes += record(kBaseNs + i, stream, true, content);
        break;
      default:
        bytes += record(kBaseNs + i, stream, false, content);
    }
  }
  auto decode = [&](size_t maxPiece) {
    LogDecoderOptions options;
    options.maxLineBytes = 200;
    LogDecoder decoder(options);
    std::vector<Seen> lines;
    std::mt19937 pieces(4);
    for (size_t at = 0; at < bytes.size();) {
      const size_t n = std::min(bytes.size() - at, 1 + pieces() % maxPiece);
      decoder.feed(std::string_view(bytes).substr(at, n), collectInto(lines));
      at += n;
    }
    decoder.restart();
    decoder.flushUnfinished(collectInto(lines));
    return std::make_pair(lines, decoder.stats().malformedRecords);
  };
  const auto whole = decode(bytes.size());
  ASSERT_GT(whole.first.size(), 100u);
  ASSERT_GT(whole.second, 10u);
  for (size_t maxPiece : {1, 2, 3, 7, 76, 77, 78, 500})
    EXPECT_EQ(decode(maxPiece), whole) << "pieces of at most " << maxPiece;
}

// The file these tail tests read: stdout and stderr lines interleaved, some in P records.
class LogReaderTailTest : public LogReaderTest {
 protected:
  void SetUp() override {
    std::string bytes;
    int64_t t = kBaseNs;
    bytes += record(t++, LogStream::kStdout, false, "o0");
    bytes += record(t++, LogStream::kStdout, true, "o1-");  // o1 starts early...
    bytes += record(t++, LogStream::kStderr, false, "e0");
    bytes += record(t++, LogStream::kStderr, true, "e1-");
    bytes += record(t++, LogStream::kStdout, true, "more-");
    bytes += record(t++, LogStream::kStderr, false, "end");
    bytes += record(t++, LogStream::kStderr, false, "e2");
    bytes += record(t++, LogStream::kStdout, false, "end");  // ...and ends here
    bytes += record(t++, LogStream::kStderr, false, "e3");
    bytes += record(t++, LogStream::kStdout, false, "o2");
    bytes += "garbage in the middle\n";
    bytes += record(t++, LogStream::kStdout, true, "o3-unfinished");
    bytes += record(t++, LogStream::kStderr, false, "e4");
    writeFile(path_, bytes);
  }

  std::vector<std::string> tail(uint64_t lines, bool stdout = true, bool stderr = true) {
    LogReadOptions options;
    options.tailLines = lines;
    options.includeStdout = stdout;
    options.includeStderr = stderr;
    return show(readAll(options));
  }
};

TEST_F(LogReaderTailTest, AllLines) {
  EXPECT_EQ(show(readAll()),
            (std::vector<std::string>{"stdout o0", "stderr e0", "stderr e1-end", "stderr e2",
                                      "stdout o1-more-end", "stderr e3", "stdout o2", "stderr e4",
                                      "stdout (fragment) o3-unfinished"}));
}

TEST_F(LogReaderTailTest, SelectsTheLastCompleteLinesWithTheirPRecords) {
  using V = std::vector<std::string>;
  EXPECT_EQ(tail(0), V{});
  EXPECT_EQ(tail(1), (V{"stderr e4", "stdout (fragment) o3-unfinished"}));
  EXPECT_EQ(tail(2), (V{"stdout o2", "stderr e4", "stdout (fragment) o3-unfinished"}));
  EXPECT_EQ(tail(4), (V{"stdout o1-more-end", "stderr e3", "stdout o2", "stderr e4",
                        "stdout (fragment) o3-unfinished"}));
  EXPECT_EQ(tail(5), (V{"stderr e2", "stdout o1-more-end", "stderr e3", "stdout o2", "stderr e4",
                        "stdout (fragment) o3-unfinished"}));
  EXPECT_EQ(tail(100), show(readAll()));
  EXPECT_EQ(tail(1, true, false), (V{"stdout o2", "stdout (fragment) o3-unfinished"}));
  EXPECT_EQ(tail(2, true, false),
            (V{"stdout o1-more-end", "stdout o2", "stdout (fragment) o3-unfinished"}));
  EXPECT_EQ(tail(2, false, true), (V{"stderr e3", "stderr e4"}));
  EXPECT_EQ(tail(3, false, true), (V{"stderr e2", "stderr e3", "stderr e4"}));
  EXPECT_EQ(tail(4, false, true), (V{"stderr e1-end", "stderr e2", "stderr e3", "stderr e4"}));
}

TEST_F(LogReaderTest, TailFindsPRecordsFarBeforeTheirF) {
  // The selected line began 300 KB (several scan blocks) before it ended.
  std::string bytes = record(kBaseNs, LogStream::kStdout, false, "old");
  bytes += record(kBaseNs, LogStream::kStdout, true, "started-");
  for (int i = 0; i < 3000; ++i)
    bytes += record(kBaseNs, LogStream::kStderr, false, std::string(60, 'e'));
  bytes += record(kBaseNs, LogStream::kStdout, false, "ended");
  writeFile(path_, bytes);
  LogReadOptions options;
  options.tailLines = 1;
  EXPECT_EQ(show(readAll(options)), (std::vector<std::string>{"stdout started-ended"}));
  options.tailLines = 3;
  const auto lines = show(readAll(options));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2], "stdout started-ended");
}

TEST_F(LogReaderTest, SinceLeavesOutOlderLinesWhole) {
  std::string bytes;
  for (int i = 0; i < 10; ++i)
    bytes += record(kBaseNs + i * 1'000'000'000LL, LogStream::kStdout, false, std::to_string(i));
  // A line begun before the limit and ended after it is left out whole.
  bytes += record(kBaseNs + 4'500'000'000LL, LogStream::kStderr, true, "begun ");
  bytes += record(kBaseNs + 9'500'000'000LL, LogStream::kStderr, false, "late");
  writeFile(path_, bytes);
  LogReadOptions options;
  options.sinceNs = kBaseNs + 5'000'000'000LL;
  EXPECT_EQ(show(readAll(options)),
            (std::vector<std::string>{"stdout 5", "stdout 6", "stdout 7", "stdout 8", "stdout 9"}));
  options.tailLines = 3;  // the last three lines, then those since the limit
  options.sinceNs = kBaseNs + 8'000'000'000LL;
  EXPECT_EQ(show(readAll(options)), (std::vector<std::string>{"stdout 8", "stdout 9"}));
}

TEST_F(LogReaderTest, StopsWhenTheSinkSaysSo) {
  std::string bytes;
  for (int i = 0; i < 100; ++i)
    bytes += record(kBaseNs, LogStream::kStdout, false, std::to_string(i));
  writeFile(path_, bytes);
  grpc::Status status;
  auto reader = LogReader::open(path_, {}, status);
  ASSERT_NE(reader, nullptr);
  int seen = 0;
  EXPECT_TRUE(reader->readAvailable([&](const LogLine&) { return ++seen < 3; }).isOk());
  EXPECT_EQ(seen, 3);
  EXPECT_TRUE(reader->stopped());
}

TEST_F(LogReaderTest, RefusesMissingAndNonRegularFiles) {
  grpc::Status status;
  EXPECT_EQ(LogReader::open(path_, {}, status), nullptr);
  EXPECT_EQ(status.code(), grpc::StatusCode::kNotFound);
  EXPECT_NE(status.message().find(path_), std::string::npos);
  ASSERT_EQ(mkfifo(path_.c_str(), 0600), 0);
  EXPECT_EQ(LogReader::open(path_, {}, status), nullptr);  // and does not block on the FIFO
  EXPECT_EQ(status.code(), grpc::StatusCode::kFailedPrecondition);
  EXPECT_EQ(LogReader::open(dir_.path(), {}, status), nullptr);
  EXPECT_EQ(status.code(), grpc::StatusCode::kFailedPrecondition);

  writeFile(dir_.file("1.log"), "");
  auto reader = LogReader::open(dir_.file("1.log"), {}, status);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->follow([](const LogLine&) { return true; }, [] { return true; }).code(),
            grpc::StatusCode::kFailedPrecondition);
}

// Following, with the real writer and kubelet's rotation done by hand, step by step.
TEST_F(LogReaderTest, FollowsKubeletsRotationWithoutLossOrRepeat) {
  loop::Loop loop;
  LogWriterOptions writerOptions;
  writerOptions.partialFlushMs = 0;  // unfinished lines reach the file at once, as P records
  std::string error;
  auto writer = LogWriter::open(loop, path_, writerOptions, error);
  ASSERT_NE(writer, nullptr) << error;
  writer->write(LogStream::kStdout, "a1\na2\n");

  LogReadOptions options;
  options.follow = true;
  grpc::Status status;
  auto reader = LogReader::open(path_, options, status);
  ASSERT_NE(reader, nullptr) << status.toString();
  std::vector<Seen> lines;
  auto sink = collectInto(lines);
  auto step = [&] {
    lines.clear();
    EXPECT_TRUE(reader->readAvailable(sink).isOk());
    return show(lines);
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(step(), (V{"stdout a1", "stdout a2"}));
  EXPECT_EQ(step(), V{});

  writer->write(LogStream::kStdout, "a3 begun in the old file, ");
  EXPECT_EQ(step(), (V{"stdout (fragment) a3 begun in the old file, "}));
  const std::string rotated = path_ + ".20261121-234100";
  ASSERT_EQ(rename(path_.c_str(), rotated.c_str()), 0);
  writer->write(LogStream::kStderr, "late in the old file\n");
  EXPECT_EQ(step(), (V{"stderr late in the old file"}));  // no file at the path yet
  ASSERT_TRUE(writer->reopen().isOk());
  EXPECT_EQ(step(), V{});  // the new file is empty: the old one may still grow
  writer->write(LogStream::kStdout, "ended in the new one\nb1\n");
  EXPECT_EQ(step(), (V{"stdout ...ended in the new one", "stdout b1"}));
  EXPECT_EQ(reader->rotationsFollowed(), 1u);
  writer->write(LogStream::kStderr, "b2\n");
  EXPECT_EQ(step(), (V{"stderr b2"}));

  // A rotation the reader sees only once the writer has moved on: the old file's last bytes
  // first, then the new file's.
  ASSERT_EQ(rename(path_.c_str(), (path_ + ".2").c_str()), 0);
  writer->write(LogStream::kStdout, "c1 in the old file\n");
  ASSERT_TRUE(writer->reopen().isOk());
  writer->write(LogStream::kStdout, "c2 in the new file\n");
  EXPECT_EQ(step(), (V{"stdout c1 in the old file", "stdout c2 in the new file"}));
  EXPECT_EQ(reader->rotationsFollowed(), 2u);
  EXPECT_EQ(reader->decoderStats().malformedRecords, 0u);
}

TEST_F(LogReaderTest, FollowsAFileCutBackInPlace) {
  writeFile(path_, record(kBaseNs, LogStream::kStdout, false, "before the cut"));
  LogReadOptions options;
  options.follow = true;
  grpc::Status status;
  auto reader = LogReader::open(path_, options, status);
  ASSERT_NE(reader, nullptr) << status.toString();
  std::vector<Seen> lines;
  ASSERT_TRUE(reader->readAvailable(collectInto(lines)).isOk());
  ASSERT_EQ(truncate(path_.c_str(), 0), 0);  // copytruncate
  writeFile(path_, record(kBaseNs, LogStream::kStdout, false, "after"));
  ASSERT_TRUE(reader->readAvailable(collectInto(lines)).isOk());
  EXPECT_EQ(show(lines), (std::vector<std::string>{"stdout before the cut", "stdout after"}));
}

TEST_F(LogReaderTest, FollowWakesOnWritesAndRotationsUntilToldToStop) {
  loop::Loop loop;
  std::string error;
  auto writer = LogWriter::open(loop, path_, {}, error);
  ASSERT_NE(writer, nullptr) << error;
  writer->write(LogStream::kStdout, "before the reader\n");

  LogReadOptions options;
  options.follow = true;
  options.tailLines = 0;  // only what comes next
  // Longer than the test waits: only inotify can wake the reader in time.
  options.pollIntervalMs = 20'000;
  grpc::Status status;
  auto reader = LogReader::open(path_, options, status);
  ASSERT_NE(reader, nullptr) << status.toString();

  // The reader thread's, until it ends; a line read while being written comes in fragments.
  std::vector<std::string> seen;
  std::string current;
  std::atomic<size_t> linesSeen{0};
  std::atomic<bool> sawLast{false};
  std::atomic<bool> giveUp{false};
  auto done = std::async(std::launch::async, [&] {
    return reader->follow(
        [&](const LogLine& line) {
          current += line.content;
          if (!line.complete) return true;
          seen.push_back(std::move(current));
          current.clear();
          if (seen.back() == "last") sawLast = true;
          ++linesSeen;
          return true;
        },
        [&] { return !sawLast.load() && !giveUp.load(); });
  });
  // On a failed assertion, lets the reader end (at its next wake) before the locals go.
  struct GiveUp {
    std::atomic<bool>& flag;
    ~GiveUp() { flag = true; }
  } giveUpOnExit{giveUp};
  // Waits until the reader has read `count` lines (it keeps up with the writer).
  auto readerCaughtUp = [&](size_t count) {
    for (int i = 0; i < 5000 && linesSeen.load() < count; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return linesSeen.load() >= count;
  };

  std::vector<std::string> expected;
  for (int i = 0; i < 300; ++i) {
    const std::string line = "line " + std::to_string(i);
    expected.push_back(line);
    writer->write(i % 2 ? LogStream::kStdout : LogStream::kStderr, line + "\n");
    if (i % 100 == 99) {
      // kubelet rotates while the reader follows. (A reader more than one rotation behind
      // would miss the file in between, as kubelet's own does.)
      ASSERT_TRUE(readerCaughtUp(expected.size()));
      const std::string rotated = path_ + "." + std::to_string(i);
      ASSERT_EQ(rename(path_.c_str(), rotated.c_str()), 0);
      ASSERT_TRUE(writer->reopen().isOk());
    }
    if (i % 37 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  writer->write(LogStream::kStdout, "last\n");
  expected.push_back("last");
  ASSERT_EQ(done.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "the reader did not see the last line";
  EXPECT_TRUE(done.get().isOk());
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(reader->rotationsFollowed(), 3u);
}

}  // namespace
}  // namespace monocri::logging
