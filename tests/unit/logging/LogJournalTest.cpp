// The log journal: what a daemon killed at any point leaves behind (the log, the container's
// pipes with what it had not consumed, the held pipes, the committed state) is reconciled by the
// next one so that the log ends up with every byte the container wrote exactly once. The crash
// states are made here the way a dying daemon leaves them: a writer commits, then records of a
// batch reach the log without their commit, or only part of that batch does, or the daemon dies
// between the two steps of a consumption. The test plays the keeper: it keeps every pipe open.
#include "logging/LogJournal.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "logging/LogTestSupport.h"
#include "logging/LogWriter.h"

namespace monocri::logging {
namespace {

using state::UniqueFd;
using testing::readFile;
using testing::streamBytes;
using testing::strictRecords;
using testing::TempDir;

constexpr int64_t kBaseNs = 1'795'304'460'123'456'789;  // 2026-11-21T23:41:00.123456789Z

size_t bytesInPipe(int fd) {
  int n = 0;
  return ::ioctl(fd, FIONREAD, &n) == 0 ? static_cast<size_t>(n) : 0;
}

class LogJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::writeFile(logPath_, "");
    for (size_t s = 0; s < 2; ++s) {
      int fds[2];
      ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
      pipeRead_[s].reset(fds[0]);
      pipeWrite_[s].reset(fds[1]);
    }
  }

  std::unique_ptr<LogWriter> openWriter() {
    LogWriterOptions options;
    options.clock = [] { return kBaseNs; };
    options.partialFlushMs = 60'000;
    std::string error;
    auto writer = LogWriter::open(loop_, logPath_, options, error);
    EXPECT_NE(writer, nullptr) << error;
    return writer;
  }
  // The container writes.
  void containerWrites(LogStream stream, const std::string& bytes) {
    const size_t s = static_cast<size_t>(stream);
    ASSERT_EQ(::write(pipeWrite_[s].get(), bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
    sent_[s] += bytes;
  }
  // What the daemon does with output: peeks at what is new past `seen` and hands it over.
  static void takeOutput(LogJournal& journal, LogWriter& writer, std::array<uint64_t, 2>& seen) {
    char buffer[4096];
    for (LogStream stream : {LogStream::kStdout, LogStream::kStderr}) {
      const size_t s = static_cast<size_t>(stream);
      size_t got = 0;
      while (journal.peek(stream, seen[s], buffer, sizeof buffer, got) == PipePeek::kData) {
        seen[s] += got;
        writer.write(stream, std::string_view(buffer, got));
      }
    }
  }
  std::shared_ptr<LogJournal> newJournal() {
    std::string error;
    auto journal = LogJournal::create(journalDir_, logPath_, error);
    EXPECT_NE(journal, nullptr) << error;
    if (!journal) return nullptr;
    for (LogStream stream : {LogStream::kStdout, LogStream::kStderr}) {
      const size_t s = static_cast<size_t>(stream);
      journal->adoptContainerPipe(stream, UniqueFd(::dup(pipeRead_[s].get())));
      held_[s].reset(::dup(journal->heldPipeFd(stream)));  // the keeper's copy
    }
    return journal;
  }
  // A daemon that takes what the container wrote through a new journal and dies (SIGKILL: no
  // destructor writes its unfinished lines); run in a child process so that its state dies
  // with it.
  void daemonKilledAfterTakingOutput() {
    auto journal = newJournal();
    ASSERT_NE(journal, nullptr);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      auto writer = openWriter();
      if (!writer) ::_exit(1);
      writer->attachJournal(journal, {});
      std::array<uint64_t, 2> seen{};
      takeOutput(*journal, *writer, seen);
      ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  void appendToLog(const std::string& bytes) {
    std::FILE* f = std::fopen(logPath_.c_str(), "ab");
    ASSERT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  LogJournalRecovery recover(std::shared_ptr<LogJournal>& journal) {
    LogJournalRecovery found;
    std::string error;
    journal = LogJournal::recover(
        journalDir_, logPath_, {pipeRead_[0].get(), pipeRead_[1].get()},
        {UniqueFd(::dup(held_[0].get())), UniqueFd(::dup(held_[1].get()))}, found, error);
    EXPECT_NE(journal, nullptr) << error;
    return found;
  }
  // The next daemon: recovers, takes the output up where the journal stands, and lets the
  // container end.
  LogJournalRecovery recoverAndFinish() {
    std::shared_ptr<LogJournal> journal;
    const LogJournalRecovery found = recover(journal);
    if (!journal) return found;
    for (LogStream stream : {LogStream::kStdout, LogStream::kStderr}) {
      journal->adoptContainerPipe(stream,
                                  UniqueFd(::dup(pipeRead_[static_cast<size_t>(stream)].get())));
    }
    auto writer = openWriter();
    writer->attachJournal(journal, found.state);
    std::array<uint64_t, 2> seen = found.state.offsets;
    takeOutput(*journal, *writer, seen);
    writer->finish();
    for (size_t s = 0; s < 2; ++s)
      EXPECT_EQ(bytesInPipe(pipeRead_[s].get()), 0u) << "everything logged is consumed";
    return found;
  }
  // A state as a dying daemon may leave it (the layout LogJournal.cpp stores).
  void storeState(uint64_t logSize, std::array<uint64_t, 2> offsets, uint8_t step,
                  std::array<uint64_t, 2> moving) {
    struct stat log {};
    ASSERT_EQ(::stat(logPath_.c_str(), &log), 0);
    unsigned char out[64] = {};
    auto put = [&](size_t at, uint64_t value, size_t size) { std::memcpy(out + at, &value, size); };
    put(0, 0x4a4c434d, 4);
    put(4, 2, 4);
    put(8, log.st_ino, 8);
    put(16, logSize, 8);
    put(24, offsets[0], 8);
    put(32, offsets[1], 8);
    put(40, moving[0], 8);
    put(48, moving[1], 8);
    out[56] = step;
    put(60, crc32(0, out, 60), 4);
    testing::writeFile(journalDir_ + "/state", std::string(reinterpret_cast<char*>(out), 64));
  }
  // Part of a consumption: `count` bytes of the container's pipe into the held pipe.
  void moveToHeld(LogStream stream, size_t count) {
    const size_t s = static_cast<size_t>(stream);
    ASSERT_EQ(::splice(pipeRead_[s].get(), nullptr, held_[s].get(), nullptr, count, 0),
              static_cast<ssize_t>(count));
  }

  TempDir dir_;
  std::string logPath_ = dir_.file("0.log");
  std::string journalDir_ = dir_.file("journal");
  loop::Loop loop_;
  std::array<UniqueFd, 2> pipeRead_, pipeWrite_;
  std::array<UniqueFd, 2> held_;
  std::string sent_[2];
};

std::string record(std::string_view stream, char tag, std::string_view content) {
  return formatLogTimestamp(kBaseNs) + " " + std::string(stream) + " " + tag + " " +
         std::string(content) + "\n";
}

TEST_F(LogJournalTest, AnUnfinishedLineStaysInThePipeAndIsLoggedWholeByTheNextDaemon) {
  containerWrites(LogStream::kStdout, "one\ntwo\nthe start of thr");
  containerWrites(LogStream::kStderr, "e1\ne2 unfinished");
  daemonKilledAfterTakingOutput();
  // Consumed: what is in the log, nothing more.
  EXPECT_EQ(bytesInPipe(pipeRead_[0].get()), std::string("the start of thr").size());
  containerWrites(LogStream::kStdout, "ee\nfour\n");
  containerWrites(LogStream::kStderr, "\n");
  const LogJournalRecovery found = recoverAndFinish();
  EXPECT_FALSE(found.logReplaced);
  EXPECT_FALSE(found.stepFinished);
  EXPECT_EQ(found.recordsAfterCommit, 0u);
  EXPECT_EQ(found.state.offsets[0], 8u);  // "one\ntwo\n"
  const auto records = strictRecords(readFile(logPath_));
  EXPECT_EQ(streamBytes(records, LogStream::kStdout), sent_[0]);
  EXPECT_EQ(streamBytes(records, LogStream::kStderr), sent_[1]);
  // The line whose start the dead daemon held is one F record, as if nothing happened.
  EXPECT_EQ(std::count_if(records.begin(), records.end(),
                          [](const LogRecord& r) { return r.content == "the start of three"; }),
            1);
}

TEST_F(LogJournalTest, RecordsOfABatchWhoseCommitDidNotHappenAreNotWrittenAgain) {
  containerWrites(LogStream::kStdout, "committed\n");
  daemonKilledAfterTakingOutput();
  // The next batch reached the log (a whole line, then a P record of a long one), its commit
  // did not: its bytes are still in the pipe.
  containerWrites(LogStream::kStdout, "in the log, not committed\nlong line part one|part two\n");
  appendToLog(record("stdout", 'F', "in the log, not committed") +
              record("stdout", 'P', "long line part one|"));
  const LogJournalRecovery found = recoverAndFinish();
  EXPECT_EQ(found.recordsAfterCommit, 2u);
  EXPECT_TRUE(found.state.continued[0]);
  const auto records = strictRecords(readFile(logPath_));
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(streamBytes(records, LogStream::kStdout), sent_[0]);
  EXPECT_TRUE(records[2].partial);
  EXPECT_EQ(records[3].content, "part two");
}

TEST_F(LogJournalTest, ATornLastRecordIsCutOffAndWrittenWhole) {
  containerWrites(LogStream::kStderr, "before\n");
  daemonKilledAfterTakingOutput();
  containerWrites(LogStream::kStderr, "whole\ntorn in the middle\n");
  const std::string torn = record("stderr", 'F', "torn in the middle");
  appendToLog(record("stderr", 'F', "whole") + torn.substr(0, 40));
  const LogJournalRecovery found = recoverAndFinish();
  EXPECT_EQ(found.recordsAfterCommit, 1u);
  EXPECT_EQ(found.tornBytesCut, 40u);
  const auto records = strictRecords(readFile(logPath_));
  EXPECT_EQ(streamBytes(records, LogStream::kStderr), sent_[1]);
  EXPECT_EQ(records.size(), 3u);
}

TEST_F(LogJournalTest, TheDaemonsOwnRecordsPastTheCommitAreKeptAndNotMatched) {
  containerWrites(LogStream::kStdout, "a\n");
  daemonKilledAfterTakingOutput();
  containerWrites(LogStream::kStdout, "b\n");
  appendToLog(
      record("stdout", 'F', "[monocri] rate limit of 10 bytes/s exceeded: 5 bytes dropped") +
      record("stdout", 'F', "b"));
  const LogJournalRecovery found = recoverAndFinish();
  EXPECT_EQ(found.ownRecordsAfterCommit, 1u);
  EXPECT_EQ(found.recordsAfterCommit, 1u);
  const auto records = strictRecords(readFile(logPath_));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[2].content, "b");
}

TEST_F(LogJournalTest, ALogReplacedMeanwhileGetsWhatThePipeHolds) {
  containerWrites(LogStream::kStdout, "old file\n");
  daemonKilledAfterTakingOutput();
  ASSERT_EQ(std::rename(logPath_.c_str(), (logPath_ + ".1").c_str()), 0);
  testing::writeFile(logPath_, "");
  containerWrites(LogStream::kStdout, "after\n");
  const LogJournalRecovery found = recoverAndFinish();
  EXPECT_TRUE(found.logReplaced);
  EXPECT_EQ(streamBytes(strictRecords(readFile(logPath_)), LogStream::kStdout), "after\n");
}

TEST_F(LogJournalTest, ADaemonDeadInTheMiddleOfAMoveHasItFinished) {
  containerWrites(LogStream::kStdout, "a\n");
  containerWrites(LogStream::kStderr, "x\n");
  daemonKilledAfterTakingOutput();
  // The next batch is in the log and its consumption was under way: 3 of stdout's 7 bytes and
  // none of stderr's had left the pipe.
  const uint64_t committedSize = readFile(logPath_).size();
  containerWrites(LogStream::kStdout, "bb\ncc\n");
  containerWrites(LogStream::kStdout, "dd\n");  // not logged yet
  containerWrites(LogStream::kStderr, "yy\n");
  appendToLog(record("stdout", 'F', "bb") + record("stdout", 'F', "cc") +
              record("stderr", 'F', "yy"));
  storeState(readFile(logPath_).size(), {2 + 6, 2 + 3}, /*moving=*/1, {6, 3});
  moveToHeld(LogStream::kStdout, 3);
  ASSERT_GT(readFile(logPath_).size(), committedSize);
  const LogJournalRecovery found = recoverAndFinish();
  EXPECT_TRUE(found.stepFinished);
  EXPECT_EQ(found.recordsAfterCommit, 0u);
  EXPECT_EQ(bytesInPipe(held_[0].get()) + bytesInPipe(held_[1].get()), 0u);
  const auto records = strictRecords(readFile(logPath_));
  EXPECT_EQ(streamBytes(records, LogStream::kStdout), sent_[0]);
  EXPECT_EQ(streamBytes(records, LogStream::kStderr), sent_[1]);
}

TEST_F(LogJournalTest, ADaemonDeadWhileEmptyingTheHeldPipeHasItEmptied) {
  containerWrites(LogStream::kStdout, "a\n");
  daemonKilledAfterTakingOutput();
  containerWrites(LogStream::kStdout, "bb\ncc\n");
  appendToLog(record("stdout", 'F', "bb") + record("stdout", 'F', "cc"));
  storeState(readFile(logPath_).size(), {2 + 6, 0}, /*draining=*/2, {6, 0});
  moveToHeld(LogStream::kStdout, 6);
  char two[2];
  ASSERT_EQ(::read(held_[0].get(), two, 2), 2);  // two of them were drained
  const LogJournalRecovery found = recoverAndFinish();
  EXPECT_TRUE(found.stepFinished);
  EXPECT_EQ(found.recordsAfterCommit, 0u);
  EXPECT_EQ(streamBytes(strictRecords(readFile(logPath_)), LogStream::kStdout), sent_[0]);
}

TEST_F(LogJournalTest, OutputLeavesThePipeOnlyOnceItIsInTheLog) {
  auto journal = newJournal();
  ASSERT_NE(journal, nullptr);
  auto writer = openWriter();
  writer->attachJournal(journal, {});
  std::array<uint64_t, 2> seen{};
  containerWrites(LogStream::kStdout, "whole\nhalf a li");
  takeOutput(*journal, *writer, seen);
  EXPECT_EQ(seen[0], 15u);
  EXPECT_EQ(bytesInPipe(pipeRead_[0].get()), 9u);  // "half a li": seen, still there
  // What was seen is not seen again; the rest of the line is.
  containerWrites(LogStream::kStdout, "ne\n");
  takeOutput(*journal, *writer, seen);
  EXPECT_EQ(seen[0], 18u);
  EXPECT_EQ(bytesInPipe(pipeRead_[0].get()), 0u);
  EXPECT_EQ(bytesInPipe(held_[0].get()), 0u);
  EXPECT_EQ(streamBytes(strictRecords(readFile(logPath_)), LogStream::kStdout), sent_[0]);
}

TEST_F(LogJournalTest, AStateItDidNotWriteIsRefused) {
  ASSERT_EQ(::mkdir(journalDir_.c_str(), 0700), 0);
  testing::writeFile(journalDir_ + "/state", std::string(64, 'x'));
  LogJournalRecovery found;
  std::string error;
  EXPECT_EQ(LogJournal::recover(journalDir_, logPath_, {pipeRead_[0].get(), pipeRead_[1].get()}, {},
                                found, error),
            nullptr);
  EXPECT_EQ(error, "log journal " + journalDir_ + "/state: not a state this daemon wrote");
}

}  // namespace
}  // namespace monocri::logging
