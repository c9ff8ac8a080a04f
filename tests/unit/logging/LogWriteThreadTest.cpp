// Log writes off the loop: the writer hands its batches to the write thread, the loop keeps
// turning while a write stalls, every byte still lands in order across reopens, a backlog
// stops the reader until the thread caught up, and nothing is lost when the writer or the
// thread goes away with batches queued.
#include "logging/LogWriteThread.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "logging/CacheSharingCpus.h"
#include "logging/LogTestSupport.h"
#include "logging/LogWriter.h"
#include "logging/WriteInterposer.h"
#include "loop/Timer.h"

namespace monocri::logging {
namespace {

using testing::readFile;
using testing::streamBytes;
using testing::strictRecords;
using testing::TempDir;

// Delays the watched descriptor's writes for the scope, like a disk under dirty-page throttling.
class SlowDisk {
 public:
  SlowDisk(const std::string& path, unsigned delayMs) {
    watchedWrites = 0;
    watchedWriterThread = 0;
    watchedWriteDelayMs = delayMs;
    watchedFd = descriptorOf(path);
  }
  ~SlowDisk() {
    watchedFd = -1;
    watchedWriteDelayMs = 0;
  }
  SlowDisk(const SlowDisk&) = delete;
  SlowDisk& operator=(const SlowDisk&) = delete;
};

class LogWriteThreadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    thread_ = LogWriteThread::start(loop_, error);
    ASSERT_NE(thread_, nullptr) << error;
  }

  std::unique_ptr<LogWriter> open(LogWriterOptions options = {}) {
    options.writeThread = thread_.get();
    std::string error;
    auto writer = LogWriter::open(loop_, path_, std::move(options), error);
    EXPECT_NE(writer, nullptr) << error;
    return writer;
  }
  // Runs the loop until every queued write is back (not waiting for the flush timers).
  void runUntilWritten() {
    while (thread_->stats().queuedBatches != 0)
      uv_run(loop_.raw(), UV_RUN_ONCE);
  }

  TempDir dir_;
  std::string path_ = dir_.file("0.log");
  loop::Loop loop_;
  std::unique_ptr<LogWriteThread> thread_;
};

TEST_F(LogWriteThreadTest, TheLoopKeepsTurningWhileAWriteStalls) {
  auto writer = open();
  SlowDisk disk(path_, 300);
  writer->write(LogStream::kStdout, "a line the disk is slow to take\n");
  // The write() call returned at once: the record is queued, not in the file yet.
  EXPECT_EQ(readFile(path_), "");
  int ticks = 0;
  auto ticker = loop::Timer::create(loop_);
  ticker->start(10, 10, [&] { ++ticks; });
  ticker->unref();
  bool written = false;
  writer->whenWritten([&] { written = true; });
  loop_.run();  // queued writes keep the loop running
  EXPECT_TRUE(written);
  // 300 ms of stalled write, 10 ms ticks: the loop ran all along (a blocked loop ticks once).
  EXPECT_GE(ticks, 15);
  EXPECT_NE(watchedWriterThread.load(), ::gettid()) << "the write ran on the loop's thread";
  EXPECT_EQ(watchedWrites.load(), 1u);
  const auto records = strictRecords(readFile(path_));
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].content, "a line the disk is slow to take");
  EXPECT_EQ(writer->stats().recordsWritten, 1u);
}

// The thread writes on the CPUs that share the loop's L2 cache, and follows the loop when it
// moves: pinned here to one allowed CPU after another, the loop finds the writing thread's
// affinity set to that CPU's L2 siblings each time.
TEST_F(LogWriteThreadTest, TheThreadWritesWhereTheLoopsL2CacheIs) {
  cpu_set_t allowed;
  ASSERT_EQ(::sched_getaffinity(0, sizeof allowed, &allowed), 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE && cpus.size() < 3; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  // Back to the first at the end: a move back is a move too.
  if (cpus.size() > 1) cpus.push_back(cpus.front());
  auto writer = open();
  SlowDisk disk(path_, 0);  // notes the writing thread
  CacheSharingCpus caches;
  uint64_t moves = 0;
  for (size_t i = 0; i < cpus.size(); ++i) {
    cpu_set_t loopCpu;
    CPU_ZERO(&loopCpu);
    CPU_SET(cpus[i], &loopCpu);
    ASSERT_EQ(::sched_setaffinity(0, sizeof loopCpu, &loopCpu), 0);
    writer->write(LogStream::kStdout, "written from cpu " + std::to_string(cpus[i]) + "\n");
    writer->write(LogStream::kStdout, "and again\n");  // no second move
    runUntilWritten();
    ++moves;
    cpu_set_t expected;
    CPU_AND(&expected, &caches.l2Of(cpus[i]), &allowed);
    cpu_set_t actual;
    ASSERT_EQ(::sched_getaffinity(watchedWriterThread.load(), sizeof actual, &actual), 0);
    EXPECT_TRUE(CPU_EQUAL(&actual, &expected)) << "loop on cpu " << cpus[i];
    EXPECT_EQ(thread_->stats().cpuMoves, moves);
  }
  ASSERT_EQ(::sched_setaffinity(0, sizeof allowed, &allowed), 0);
  EXPECT_NE(watchedWriterThread.load(), ::gettid());
  EXPECT_EQ(watchedWrites.load(), 2 * cpus.size());
  EXPECT_EQ(strictRecords(readFile(path_)).size(), 2 * cpus.size());
}

TEST_F(LogWriteThreadTest, ABacklogIsReportedAndClearedOnceTheThreadCaughtUp) {
  auto writer = open();
  int cleared = 0;
  writer->setBacklogListener([&] { ++cleared; });
  SlowDisk disk(path_, 20);
  const std::string read(64 * 1024 - 1, 'x');
  int reads = 0;
  // A reader that keeps reading without giving the loop a turn: the backlog builds up.
  while (!writer->backlogged()) {
    writer->write(LogStream::kStdout, read + "\n");
    ASSERT_LT(++reads, 100) << "never backlogged";
  }
  EXPECT_LE(static_cast<uint64_t>(reads) * read.size(), LogWriter::kBacklogHighBytes + read.size());
  runUntilWritten();
  EXPECT_FALSE(writer->backlogged());
  EXPECT_EQ(cleared, 1);
  std::string sent;
  for (int i = 0; i < reads; ++i)
    sent += read + "\n";
  EXPECT_EQ(streamBytes(strictRecords(readFile(path_)), LogStream::kStdout), sent);
}

TEST_F(LogWriteThreadTest, RandomStreamsComeBackByteForByteAcrossReopens) {
  auto writer = open();
  std::mt19937_64 random(20261122);
  std::string sent[2];
  std::vector<std::string> files;
  for (int chunk = 0; chunk < 400; ++chunk) {
    const auto stream = random() % 2 == 0 ? LogStream::kStdout : LogStream::kStderr;
    std::string bytes;
    const size_t size = random() % (64 * 1024);
    while (bytes.size() < size) {
      const size_t line = random() % 40000;
      for (size_t i = 0; i < line && bytes.size() < size; ++i)
        bytes.push_back(static_cast<char>(random() % 255 + 1 == '\n' ? 'n' : random() % 256));
      bytes.push_back('\n');
    }
    if (random() % 3 == 0) bytes.resize(bytes.size() / 2);  // a line left open
    writer->write(stream, bytes);
    sent[static_cast<int>(stream)] += bytes;
    if (chunk % 37 == 0) {
      // kubelet's rotation, with batches for the old file still queued.
      const std::string rotated = path_ + "." + std::to_string(chunk);
      ASSERT_EQ(std::rename(path_.c_str(), rotated.c_str()), 0);
      files.push_back(rotated);
      ASSERT_TRUE(writer->reopen().isOk());
    }
    if (random() % 4 == 0) runUntilWritten();
  }
  writer->finish();
  runUntilWritten();
  files.push_back(path_);
  std::vector<LogRecord> all;
  for (const std::string& file : files) {
    for (LogRecord& r : strictRecords(readFile(file)))
      all.push_back(std::move(r));
  }
  EXPECT_EQ(streamBytes(all, LogStream::kStdout), sent[0] + (sent[0].back() == '\n' ? "" : "\n"));
  EXPECT_EQ(streamBytes(all, LogStream::kStderr), sent[1] + (sent[1].back() == '\n' ? "" : "\n"));
  EXPECT_EQ(writer->stats().writeErrors, 0u);
}

// Long lines read into the loop's buffer are written from it: the batch takes the buffer over and
// the loop reads on into another, which the next read overwrites while the batch is queued.
TEST_F(LogWriteThreadTest, LongLinesAreWrittenFromTheReadBufferTheyCameIn) {
  auto writer = open();
  SlowDisk disk(path_, 5);
  std::mt19937_64 random(7);
  std::string sent;
  std::vector<const char*> buffersSeen;
  for (int chunk = 0; chunk < 60; ++chunk) {
    std::string bytes;
    const size_t size = random() % loop::Loop::kReadBufferBytes + 1;
    while (bytes.size() < size) {
      // Long lines (referenced), short ones (copied) and lines left open across chunks.
      const size_t line = random() % 3 == 0 ? random() % 100 : random() % 30000;
      for (size_t i = 0; i < line && bytes.size() < size; ++i)
        bytes.push_back(static_cast<char>('a' + random() % 26));
      if (bytes.size() < size) bytes.push_back('\n');
    }
    const uv_buf_t buffer = loop_.readBuffer();
    buffersSeen.push_back(buffer.base);
    std::memcpy(buffer.base, bytes.data(), bytes.size());
    writer->write(LogStream::kStdout, std::string_view(buffer.base, bytes.size()));
    sent += bytes;
    // The next read, into whatever buffer the loop holds now.
    const uv_buf_t next = loop_.readBuffer();
    std::memset(next.base, '#', next.len);
    if (random() % 8 == 0) runUntilWritten();
  }
  writer->finish();
  runUntilWritten();
  const std::vector<LogRecord> records = strictRecords(readFile(path_));
  EXPECT_EQ(streamBytes(records, LogStream::kStdout), sent + (sent.back() == '\n' ? "" : "\n"));
  std::sort(buffersSeen.begin(), buffersSeen.end());
  EXPECT_GT(std::unique(buffersSeen.begin(), buffersSeen.end()) - buffersSeen.begin(), 1);

  // A buffer taken by a batch goes back to the loop once the batch is written, to be read into
  // again; short lines leave the buffer where it is.
  const auto writeFromReadBuffer = [&](const std::string& bytes) {
    const uv_buf_t buffer = loop_.readBuffer();
    std::memcpy(buffer.base, bytes.data(), bytes.size());
    writer->write(LogStream::kStderr, std::string_view(buffer.base, bytes.size()));
    return buffer.base;
  };
  const char* first = writeFromReadBuffer("short\n");
  EXPECT_EQ(loop_.readBuffer().base, first);
  writeFromReadBuffer(std::string(RecordBatch::kReferenceMinBytes, 'x') + "\n");
  EXPECT_NE(loop_.readBuffer().base, first);
  runUntilWritten();
  writeFromReadBuffer(std::string(RecordBatch::kReferenceMinBytes, 'y') + "\n");
  EXPECT_EQ(loop_.readBuffer().base, first);
  runUntilWritten();
  const std::vector<LogRecord> last = strictRecords(readFile(path_));
  EXPECT_EQ(streamBytes(last, LogStream::kStderr),
            "short\n" + std::string(RecordBatch::kReferenceMinBytes, 'x') + "\n" +
                std::string(RecordBatch::kReferenceMinBytes, 'y') + "\n");
}

TEST_F(LogWriteThreadTest, WhenWrittenRunsOnceTheOldFileHoldsEverything) {
  auto writer = open();
  SlowDisk disk(path_, 50);
  for (int i = 0; i < 5; ++i)
    writer->write(LogStream::kStdout, "before " + std::to_string(i) + "\n");
  const std::string rotated = path_ + ".1";
  ASSERT_EQ(std::rename(path_.c_str(), rotated.c_str()), 0);
  ASSERT_TRUE(writer->reopen().isOk());
  std::string oldFileThen;
  writer->whenWritten([&] { oldFileThen = readFile(rotated); });
  writer->write(LogStream::kStdout, "after\n");
  runUntilWritten();
  EXPECT_EQ(streamBytes(strictRecords(oldFileThen), LogStream::kStdout),
            "before 0\nbefore 1\nbefore 2\nbefore 3\nbefore 4\n");
  EXPECT_EQ(streamBytes(strictRecords(readFile(path_)), LogStream::kStdout), "after\n");
}

TEST_F(LogWriteThreadTest, NothingIsLostWhenTheWriterAndTheThreadGoWithBatchesQueued) {
  auto writer = open();
  {
    SlowDisk disk(path_, 10);
    for (int i = 0; i < 20; ++i)
      writer->write(LogStream::kStdout, "line " + std::to_string(i) + "\n");
    writer->write(LogStream::kStderr, "an open line");
    writer.reset();   // its last P record is queued behind the others
    thread_.reset();  // writes what is queued, then joins
  }
  const auto records = strictRecords(readFile(path_));
  ASSERT_EQ(records.size(), 21u);
  EXPECT_EQ(records[19].content, "line 19");
  EXPECT_TRUE(records[20].partial);
  EXPECT_EQ(records[20].content, "an open line");
}

TEST_F(LogWriteThreadTest, AFailedWriteOnTheThreadIsCountedAndUndone) {
  auto writer = open();
  writer->write(LogStream::kStdout, "before the limit\n");
  runUntilWritten();
  const std::string before = readFile(path_);
  std::string burst;
  for (int i = 0; i < 100; ++i)
    burst += std::string(79, static_cast<char>('a' + i % 26)) + "\n";
  {
    testing::FileSizeLimit limit(4096);
    writer->write(LogStream::kStdout, burst);
    runUntilWritten();
  }
  EXPECT_EQ(writer->stats().writeErrors, 1u);
  EXPECT_EQ(writer->stats().bytesDropped, 7900u);
  EXPECT_EQ(writer->stats().lastError, "write " + path_ + ": File too large");
  EXPECT_EQ(readFile(path_), before);
  writer->write(LogStream::kStdout, "after\n");
  runUntilWritten();
  EXPECT_EQ(streamBytes(strictRecords(readFile(path_)), LogStream::kStdout),
            "before the limit\nafter\n");
}

TEST_F(LogWriteThreadTest, TheSizeCapCountsQueuedBatches) {
  LogWriterOptions options;
  options.maxFileBytes = 4096;
  auto writer = open(options);
  SlowDisk disk(path_, 5);
  // Nothing is written before the loop runs; the cap must count what is queued.
  for (int i = 0; i < 100; ++i)
    writer->write(LogStream::kStdout, std::string(59, 'q') + "\n");
  runUntilWritten();
  // 40 records of 100 bytes fit, then the marker (the one record allowed past the cap).
  const auto records = strictRecords(readFile(path_));
  ASSERT_EQ(records.size(), 41u);
  EXPECT_EQ(records[39].content, std::string(59, 'q'));
  EXPECT_EQ(records.back().content,
            "[monocri] log size limit of 4096 bytes reached: further output is dropped until the "
            "log is rotated");
}

}  // namespace
}  // namespace monocri::logging
