// The CRI log writer, observed through the file it writes: the format to the byte, lines however
// the pipe split them, the line size cap, the partial-line timer on a real loop, finish(),
// kubelet's rename + reopen, and write errors from a full device and a file size limit.
#include "logging/LogWriter.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "logging/LogTestSupport.h"
#include "logging/WriteInterposer.h"
#include "loop/Timer.h"

namespace monocri::logging {
namespace {

using testing::describe;
using testing::readFile;
using testing::streamBytes;
using testing::strictRecords;
using testing::TempDir;

constexpr int64_t kBaseNs = 1'795'304'460'123'456'789;  // 2026-11-21T23:41:00.123456789Z

}  // namespace

// Every write(2) and writev(2) of this test binary passes through here: calls on the descriptor
// under watch are counted (the count is of the writer's own system calls, whatever a sanitizer's
// runtime writes elsewhere), and may be slowed down like a throttled disk (WriteInterposer.h).
std::atomic<int> watchedFd{-1};
std::atomic<uint64_t> watchedWrites{0};
std::atomic<pid_t> watchedWriterThread{0};
std::atomic<unsigned> watchedWriteDelayMs{0};

namespace {

void watchWrite(int fd) {
  if (fd != watchedFd.load()) return;
  ++watchedWrites;
  watchedWriterThread = ::gettid();
  if (const unsigned delay = watchedWriteDelayMs.load(); delay != 0) ::usleep(delay * 1000);
}

}  // namespace
}  // namespace monocri::logging

extern "C" ssize_t writev(int fd, const iovec* iov, int count) {
  using Real = ssize_t (*)(int, const iovec*, int);
  static const auto real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "writev"));
  monocri::logging::watchWrite(fd);
  return real(fd, iov, count);
}

extern "C" ssize_t write(int fd, const void* buffer, size_t size) {
  using Real = ssize_t (*)(int, const void*, size_t);
  static const auto real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "write"));
  monocri::logging::watchWrite(fd);
  return real(fd, buffer, size);
}

namespace monocri::logging {
namespace {

class LogWriterTest : public ::testing::Test {
 protected:
  // A writer on the test's clock, which only moves when a test moves it.
  std::unique_ptr<LogWriter> open(LogWriterOptions options = {}) {
    if (!options.clock) options.clock = [this] { return clockNs_; };
    std::string error;
    auto writer = LogWriter::open(loop_, path_, std::move(options), error);
    EXPECT_NE(writer, nullptr) << error;
    EXPECT_EQ(error, "");
    return writer;
  }
  std::vector<LogRecord> records() const { return strictRecords(readFile(path_)); }

  TempDir dir_;
  std::string path_ = dir_.file("0.log");
  loop::Loop loop_;
  int64_t clockNs_ = kBaseNs;
};

TEST_F(LogWriterTest, WritesTheFormatByteForByte) {
  auto writer = open();
  writer->write(LogStream::kStdout, "hello world\n");
  clockNs_ += 1'000;
  writer->write(LogStream::kStderr, "oops\n\n");
  EXPECT_EQ(readFile(path_),
            "2026-11-21T23:41:00.123456789Z stdout F hello world\n"
            "2026-11-21T23:41:00.123457789Z stderr F oops\n"
            "2026-11-21T23:41:00.123457789Z stderr F \n");
  EXPECT_EQ(writer->stats().recordsWritten, 3u);
  EXPECT_EQ(writer->stats().bytesIn, 18u);
  EXPECT_EQ(writer->stats().bytesWritten, readFile(path_).size());
}

TEST_F(LogWriterTest, StampsTheWallClockInUtc) {
  const char* savedTz = getenv("TZ");
  setenv("TZ", "IST-5:30", 1);
  tzset();
  std::string error;
  auto writer = LogWriter::open(loop_, path_, {}, error);  // CLOCK_REALTIME
  ASSERT_NE(writer, nullptr) << error;
  timespec before{}, after{};
  clock_gettime(CLOCK_REALTIME, &before);
  writer->write(LogStream::kStdout, "now\n");
  clock_gettime(CLOCK_REALTIME, &after);
  if (savedTz != nullptr) {
    setenv("TZ", savedTz, 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
  const auto written = records();
  ASSERT_EQ(written.size(), 1u);
  EXPECT_GE(written[0].timeNs, before.tv_sec * 1'000'000'000 + before.tv_nsec);
  EXPECT_LE(written[0].timeNs, after.tv_sec * 1'000'000'000 + after.tv_nsec);
  // strictRecords checked the shape; the zone letter is Z whatever TZ says.
  EXPECT_EQ(readFile(path_)[29], 'Z');
}

TEST_F(LogWriterTest, CreatesTheFile0640WhateverTheUmask) {
  const mode_t savedUmask = umask(077);
  auto writer = open();
  umask(savedUmask);
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST_F(LogWriterTest, AppendsToAnExistingFile) {
  testing::writeFile(path_, "2026-11-21T23:40:00.000000000Z stdout F before\n");
  auto writer = open();
  writer->write(LogStream::kStdout, "after\n");
  EXPECT_EQ(streamBytes(records(), LogStream::kStdout), "before\nafter\n");
}

TEST_F(LogWriterTest, ALineSplitAcrossWritesIsOneFRecordStampedAtItsFirstByte) {
  const std::string line = "the quick brown fox jumps over the lazy dog";
  std::mt19937 random(1);
  for (size_t pieces = 1; pieces <= line.size() + 1; ++pieces) {
    std::filesystem::remove(path_);
    auto writer = open();
    // `pieces` writes: random cut points, the '\n' in the last one.
    std::vector<size_t> cuts{0, line.size() + 1};
    while (cuts.size() < pieces + 1) {
      const size_t cut = 1 + random() % line.size();
      if (std::find(cuts.begin(), cuts.end(), cut) == cuts.end()) cuts.push_back(cut);
    }
    std::sort(cuts.begin(), cuts.end());
    const std::string bytes = line + "\n";
    const int64_t firstByteNs = clockNs_;
    for (size_t i = 0; i + 1 < cuts.size(); ++i) {
      writer->write(LogStream::kStdout,
                    std::string_view(bytes).substr(cuts[i], cuts[i + 1] - cuts[i]));
      clockNs_ += 1'000'000;
    }
    const auto written = records();
    ASSERT_EQ(written.size(), 1u) << pieces << " pieces";
    EXPECT_FALSE(written[0].partial);
    EXPECT_EQ(written[0].content, line);
    EXPECT_EQ(written[0].timeNs, firstByteNs);
  }
}

TEST_F(LogWriterTest, ALineOfExactlyMaxLineBytesIsOneFRecord) {
  auto writer = open();
  const std::string line(16 * 1024, 'a');
  writer->write(LogStream::kStdout, line + "\n");
  // The same line arriving in two writes, the second being only its '\n'.
  writer->write(LogStream::kStderr, line);
  writer->write(LogStream::kStderr, "\n");
  const auto written = records();
  ASSERT_EQ(written.size(), 2u);
  for (const LogRecord& r : written) {
    EXPECT_FALSE(r.partial);
    EXPECT_EQ(r.content, line);
  }
}

TEST_F(LogWriterTest, OneByteMoreMakesAFullPRecordAndAOneByteF) {
  auto writer = open();
  const std::string line = std::string(16 * 1024, 'a') + "b";
  writer->write(LogStream::kStdout, line + "\n");
  for (char c : line)
    writer->write(LogStream::kStderr, std::string_view(&c, 1));
  writer->write(LogStream::kStderr, "\n");
  const auto written = records();
  ASSERT_EQ(written.size(), 4u);
  for (size_t i : {0, 2}) {
    EXPECT_TRUE(written[i].partial);
    EXPECT_EQ(written[i].content, std::string(16 * 1024, 'a'));
    EXPECT_FALSE(written[i + 1].partial);
    EXPECT_EQ(written[i + 1].content, "b");
  }
  EXPECT_EQ(written[0].stream, LogStream::kStdout);
  EXPECT_EQ(written[2].stream, LogStream::kStderr);
}

TEST_F(LogWriterTest, AOneMiBLineBecomesPRecordsAndAnFThatConcatenateBack) {
  auto writer = open();
  std::mt19937 random(2);
  std::string line(1024 * 1024 + 100, '\0');
  for (char& c : line) {
    c = static_cast<char>(random());
    if (c == '\n') c = ' ';
  }
  const std::string bytes = line + "\n";
  for (size_t at = 0; at < bytes.size(); at += 65536)  // as the loop's 64 KiB reads deliver it
    writer->write(LogStream::kStdout, std::string_view(bytes).substr(at, 65536));
  const auto written = records();
  ASSERT_EQ(written.size(), 65u);  // 64 full chunks of 16 KiB, then the last 100 bytes
  for (size_t i = 0; i < 64; ++i) {
    EXPECT_TRUE(written[i].partial);
    EXPECT_EQ(written[i].content.size(), 16u * 1024);
  }
  EXPECT_FALSE(written[64].partial);
  EXPECT_EQ(written[64].content.size(), 100u);
  EXPECT_EQ(streamBytes(written, LogStream::kStdout), bytes);
}

TEST_F(LogWriterTest, StdoutAndStderrKeepTheirOwnUnfinishedLines) {
  auto writer = open();
  writer->write(LogStream::kStdout, "out-a ");
  clockNs_ += 10;
  writer->write(LogStream::kStderr, "err-a ");
  clockNs_ += 10;
  writer->write(LogStream::kStdout, "out-b\nout-c ");
  clockNs_ += 10;
  writer->write(LogStream::kStderr, "err-b\nerr-c\n");
  clockNs_ += 10;
  writer->write(LogStream::kStdout, "out-d\n");
  const auto written = records();
  std::vector<std::string> seen;
  for (const auto& r : written)
    seen.push_back(describe(r));
  EXPECT_EQ(seen, (std::vector<std::string>{"stdout F out-a out-b", "stderr F err-a err-b",
                                            "stderr F err-c", "stdout F out-c out-d"}));
  // Each record carries the arrival time of its first byte.
  EXPECT_EQ(written[0].timeNs, kBaseNs);
  EXPECT_EQ(written[1].timeNs, kBaseNs + 10);
  EXPECT_EQ(written[2].timeNs, kBaseNs + 30);
  EXPECT_EQ(written[3].timeNs, kBaseNs + 20);
}

TEST_F(LogWriterTest, KeepsBinaryBytesCarriageReturnsAndNuls) {
  auto writer = open();
  std::string line;
  for (int c = 0; c < 256; ++c) {
    if (c != '\n') line.push_back(static_cast<char>(c));
  }
  line += "\r";  // a CRLF line keeps its '\r'
  writer->write(LogStream::kStdout, line + "\n");
  writer->write(LogStream::kStderr, std::string("\0\0\r\r\n", 5));
  const auto written = records();
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(written[0].content, line);
  EXPECT_EQ(written[1].content, std::string("\0\0\r\r", 4));
}

TEST_F(LogWriterTest, AnUnfinishedLineWaitsAtMostMaxLineBytes) {
  LogWriterOptions options;
  options.maxLineBytes = 1000;
  auto writer = open(options);
  std::string sent;
  for (int i = 0; i < 100; ++i) {
    const std::string chunk(999, static_cast<char>('a' + i % 26));
    writer->write(LogStream::kStdout, chunk);
    sent += chunk;
    const auto written = records();
    const std::string inFile = streamBytes(written, LogStream::kStdout);
    ASSERT_EQ(inFile, sent.substr(0, inFile.size()));
    ASSERT_LE(sent.size() - inFile.size(), 1000u) << "after " << i + 1 << " writes";
    for (const auto& r : written)
      ASSERT_EQ(r.content.size(), 1000u);
  }
  writer->finish();
  EXPECT_EQ(streamBytes(records(), LogStream::kStdout), sent + "\n");
}

TEST_F(LogWriterTest, TheRecordsOfOneWriteCallGoOutInOneSystemCall) {
  auto writer = open();
  const int fd = descriptorOf(path_);
  ASSERT_GE(fd, 0);
  std::string bytes;
  for (int i = 0; i < 500; ++i)
    bytes += "line " + std::to_string(i) + " of a burst that arrived in one read\n";
  bytes += "and the start of the next";
  watchedWrites = 0;
  watchedFd = fd;
  writer->write(LogStream::kStdout, bytes);
  watchedFd = -1;
  EXPECT_EQ(watchedWrites.load(), 1u);
  EXPECT_EQ(records().size(), 500u);
}

TEST_F(LogWriterTest, FinishClosesUnfinishedLines) {
  LogWriterOptions options;
  auto writer = open(options);
  writer->write(LogStream::kStdout, "no newline");
  writer->write(LogStream::kStderr, "err");
  EXPECT_TRUE(records().empty());
  clockNs_ += 5;
  writer->finish();
  const auto written = records();
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(describe(written[0]), "stdout F no newline");
  EXPECT_EQ(describe(written[1]), "stderr F err");
  EXPECT_EQ(written[0].timeNs, kBaseNs);  // its first byte's time, not finish()'s
}

TEST_F(LogWriterTest, FinishAfterAPRecordWritesAnEmptyF) {
  LogWriterOptions options;
  options.partialFlushMs = 0;  // P at the end of every write
  auto writer = open(options);
  writer->write(LogStream::kStdout, "Password: ");
  clockNs_ += 7;
  writer->finish();
  EXPECT_EQ(readFile(path_),
            "2026-11-21T23:41:00.123456789Z stdout P Password: \n"
            "2026-11-21T23:41:00.123456796Z stdout F \n");
  writer->finish();  // nothing left to close
  EXPECT_EQ(records().size(), 2u);
}

TEST_F(LogWriterTest, AWriterDroppedWithoutFinishLeavesItsLineOpenForTheNext) {
  open()->write(LogStream::kStdout, "abc");  // a daemon restart in the middle of a line
  auto written = records();
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(describe(written[0]), "stdout P abc");
  open()->write(LogStream::kStdout, "def\n");
  EXPECT_EQ(streamBytes(records(), LogStream::kStdout), "abcdef\n");
}

// Polls the file every 2 ms on the loop and notes when each new record first appears.
class RecordWatch {
 public:
  RecordWatch(loop::Loop& loop, std::string path, size_t expected)
      : loop_(loop), path_(std::move(path)), expected_(expected), start_(loop.nowMs()) {
    poll_ = loop::Timer::create(loop);
    poll_->start(2, 2, [this] { check(); });
  }
  // Loop time (ms after construction) at which record i was first seen.
  std::vector<uint64_t> appearedAtMs;

 private:
  void check() {
    const size_t count = strictRecords(readFile(path_)).size();
    while (appearedAtMs.size() < count)
      appearedAtMs.push_back(loop_.nowMs() - start_);
    if (count >= expected_ || loop_.nowMs() - start_ > 10'000) poll_->stop();
  }
  loop::Loop& loop_;
  std::string path_;
  size_t expected_;
  uint64_t start_;
  loop::HandlePtr<loop::Timer> poll_;
};

TEST_F(LogWriterTest, TheFlushTimerWritesAPRecordAfterTheDelay) {
  LogWriterOptions options;
  options.partialFlushMs = 50;
  auto writer = open(options);
  uv_update_time(loop_.raw());
  RecordWatch watch(loop_, path_, 2);
  writer->write(LogStream::kStdout, "Password: ");
  auto later = loop::Timer::create(loop_);
  later->start(30, 0, [&] {
    clockNs_ += 30'000'000;
    writer->write(LogStream::kStderr, "Loading...");
  });
  EXPECT_TRUE(records().empty());
  loop_.run();  // ends when the writer's timer has nothing left to flush

  const auto written = records();
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(describe(written[0]), "stdout P Password: ");
  EXPECT_EQ(describe(written[1]), "stderr P Loading...");
  EXPECT_EQ(written[0].timeNs, kBaseNs);
  EXPECT_EQ(written[1].timeNs, kBaseNs + 30'000'000);
  ASSERT_EQ(watch.appearedAtMs.size(), 2u);
  EXPECT_GE(watch.appearedAtMs[0], 50u);  // never before its delay
  EXPECT_GE(watch.appearedAtMs[1], 80u);  // 30 ms later, then its own 50 ms
  EXPECT_LT(watch.appearedAtMs[1], 5'000u);

  // The lines go on and end as F records.
  writer->write(LogStream::kStdout, "hunter2\n");
  writer->write(LogStream::kStderr, " done\n");
  const auto all = records();
  EXPECT_EQ(streamBytes(all, LogStream::kStdout), "Password: hunter2\n");
  EXPECT_EQ(streamBytes(all, LogStream::kStderr), "Loading... done\n");
}

TEST_F(LogWriterTest, ALineCompletedBeforeTheDelayIsOneFRecord) {
  LogWriterOptions options;
  options.partialFlushMs = 50;
  auto writer = open(options);
  writer->write(LogStream::kStdout, "slow ");
  auto later = loop::Timer::create(loop_);
  later->start(20, 0, [&] { writer->write(LogStream::kStdout, "line\n"); });
  loop_.run();  // the flush timer fires at 50 ms, finds nothing, stops
  const auto written = records();
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(describe(written[0]), "stdout F slow line");
}

TEST_F(LogWriterTest, ReopenAfterKubeletsRenameLosesAndRepeatsNothing) {
  auto writer = open();
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    writer->write(i % 3 == 0 ? LogStream::kStderr : LogStream::kStdout, line);
  }
  writer->write(LogStream::kStdout, "half a ");
  // kubelet: rename, then ReopenContainerLog. Output in between still goes to the old file.
  const std::string rotated = path_ + ".20261121-234100";
  ASSERT_EQ(rename(path_.c_str(), rotated.c_str()), 0);
  writer->write(LogStream::kStderr, "between rename and reopen\n");
  ASSERT_TRUE(writer->reopen().isOk());
  writer->write(LogStream::kStdout, "line\nfirst in the new file\n");
  writer->finish();

  const auto old = strictRecords(readFile(rotated));
  const auto fresh = records();
  ASSERT_EQ(old.size(), 1001u);
  EXPECT_EQ(describe(old.back()), "stderr F between rename and reopen");
  ASSERT_EQ(fresh.size(), 2u);
  EXPECT_EQ(describe(fresh[0]), "stdout F half a line");
  EXPECT_EQ(describe(fresh[1]), "stdout F first in the new file");

  std::vector<LogRecord> both = old;
  both.insert(both.end(), fresh.begin(), fresh.end());
  std::string expectedStdout, expectedStderr;
  for (int i = 0; i < 1000; ++i)
    (i % 3 == 0 ? expectedStderr : expectedStdout) += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(streamBytes(both, LogStream::kStdout),
            expectedStdout + "half a line\nfirst in the new file\n");
  EXPECT_EQ(streamBytes(both, LogStream::kStderr), expectedStderr + "between rename and reopen\n");
}

TEST_F(LogWriterTest, AFailedReopenKeepsTheFileItHas) {
  const std::string moved = dir_.file("moved");
  ASSERT_EQ(mkdir(moved.c_str(), 0755), 0);
  const std::string subdir = dir_.file("pod");
  ASSERT_EQ(mkdir(subdir.c_str(), 0755), 0);
  // A writer in a directory that then goes away.
  std::string error;
  auto inPod = LogWriter::open(loop_, subdir + "/0.log", {}, error);
  ASSERT_NE(inPod, nullptr) << error;
  ASSERT_EQ(rename(subdir.c_str(), (moved + "/pod").c_str()), 0);
  const grpc::Status status = inPod->reopen();
  EXPECT_EQ(status.code(), grpc::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find(subdir + "/0.log"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("No such file or directory"), std::string::npos);
  inPod->write(LogStream::kStdout, "still written\n");
  EXPECT_EQ(streamBytes(strictRecords(readFile(moved + "/pod/0.log")), LogStream::kStdout),
            "still written\n");
}

TEST_F(LogWriterTest, AFullDeviceIsCountedAndTheWriterRecoversAfterReopen) {
  ASSERT_EQ(symlink("/dev/full", path_.c_str()), 0);
  auto writer = open();
  writer->write(LogStream::kStdout, "lost line\n");
  writer->write(LogStream::kStderr, "lost too\nand a partial");
  EXPECT_EQ(writer->stats().writeErrors, 2u);
  EXPECT_EQ(writer->stats().recordsWritten, 0u);
  EXPECT_EQ(writer->stats().bytesDropped, 9u + 8u);
  EXPECT_EQ(writer->stats().lastError, "write " + path_ + ": No space left on device");

  // Space again (here: kubelet rotates to a real file).
  ASSERT_EQ(unlink(path_.c_str()), 0);
  ASSERT_TRUE(writer->reopen().isOk());
  writer->write(LogStream::kStderr, "\nback\n");
  EXPECT_EQ(writer->stats().writeErrors, 2u);
  EXPECT_EQ(writer->stats().recordsWritten, 2u);
  const auto written = records();
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(describe(written[0]), "stderr F and a partial");  // it was only pending, not lost
  EXPECT_EQ(describe(written[1]), "stderr F back");
}

TEST_F(LogWriterTest, AFileSizeLimitCutsTheFileBackToWholeRecords) {
  auto writer = open();
  writer->write(LogStream::kStdout, "before the limit\n");
  const std::string before = readFile(path_);

  std::string burst;
  for (int i = 0; i < 100; ++i)
    burst += std::string(79, static_cast<char>('a' + i % 26)) + "\n";
  {
    // The burst's writev stops short at 4096, the next one fails.
    testing::FileSizeLimit limit(4096);
    writer->write(LogStream::kStdout, burst);
  }

  EXPECT_EQ(writer->stats().writeErrors, 1u);
  EXPECT_EQ(writer->stats().bytesDropped, 7900u);
  EXPECT_EQ(writer->stats().lastError, "write " + path_ + ": File too large");
  EXPECT_EQ(readFile(path_), before);  // no half record left behind

  writer->write(LogStream::kStdout, "after\n");
  EXPECT_EQ(streamBytes(records(), LogStream::kStdout), "before the limit\nafter\n");
}

TEST_F(LogWriterTest, RefusesWhatItCannotOpen) {
  std::string error;
  EXPECT_EQ(LogWriter::open(loop_, dir_.file("missing/0.log"), {}, error), nullptr);
  EXPECT_EQ(error,
            "open container log " + dir_.file("missing/0.log") + ": No such file or directory");
  LogWriterOptions zero;
  zero.maxLineBytes = 0;
  EXPECT_EQ(LogWriter::open(loop_, path_, zero, error), nullptr);
  EXPECT_NE(error.find("maxLineBytes"), std::string::npos);
}

}  // namespace
}  // namespace monocri::logging
