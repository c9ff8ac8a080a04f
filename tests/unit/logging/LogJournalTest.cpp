// The log journal: what a daemon killed at any point leaves behind (the log, the spools, the
// committed state) is reconciled by the next one so that the log ends up with every byte the
// container wrote exactly once. The crash states are made here the way a dying daemon leaves
// them: a writer commits, then records of a batch reach the log without their commit, or only
// part of that batch does.
#include "logging/LogJournal.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "logging/LogTestSupport.h"
#include "logging/LogWriter.h"

namespace monocri::logging {
namespace {

using testing::readFile;
using testing::streamBytes;
using testing::strictRecords;
using testing::TempDir;

constexpr int64_t kBaseNs = 1'795'304'460'123'456'789;  // 2026-11-21T23:41:00.123456789Z

class LogJournalTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::writeFile(logPath_, ""); }

  std::unique_ptr<LogWriter> openWriter() {
    LogWriterOptions options;
    options.clock = [] { return kBaseNs; };
    options.partialFlushMs = 60'000;
    std::string error;
    auto writer = LogWriter::open(loop_, logPath_, options, error);
    EXPECT_NE(writer, nullptr) << error;
    return writer;
  }
  // What the daemon does with output: into the spool, then to the writer.
  void feed(LogWriter& writer, LogStream stream, const std::string& bytes) {
    const int spool = writer.journal()->spoolFd(stream);
    struct stat st {};
    ASSERT_EQ(::fstat(spool, &st), 0);
    ASSERT_EQ(::pwrite(spool, bytes.data(), bytes.size(), st.st_size),
              static_cast<ssize_t>(bytes.size()));
    sent_[static_cast<size_t>(stream)] += bytes;
    writer.write(stream, bytes);
  }
  // A daemon that takes `output` through a new journal and dies (SIGKILL: no destructor writes
  // its unfinished lines); run in a child process so that its state dies with it.
  void daemonKilledAfter(std::vector<std::pair<LogStream, std::string>> output) {
    for (const auto& [stream, bytes] : output)
      sent_[static_cast<size_t>(stream)] += bytes;
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      auto writer = openWriter();
      std::string error;
      auto journal = LogJournal::create(journalDir_, logPath_, error);
      if (!writer || !journal) ::_exit(1);
      writer->attachJournal(journal, {});
      for (const auto& [stream, bytes] : output) {
        const int spool = journal->spoolFd(stream);
        struct stat st {};
        if (::fstat(spool, &st) != 0 || ::pwrite(spool, bytes.data(), bytes.size(), st.st_size) !=
                                            static_cast<ssize_t>(bytes.size())) {
          ::_exit(1);
        }
        writer->write(stream, bytes);
      }
      ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  // Output the container wrote after the daemon's last commit: in the spool only.
  void spoolOnly(LogStream stream, const std::string& bytes) {
    const std::string path = journalDir_ + (stream == LogStream::kStdout ? "/1" : "/2");
    std::FILE* f = std::fopen(path.c_str(), "ab");
    ASSERT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
    sent_[static_cast<size_t>(stream)] += bytes;
  }
  void appendToLog(const std::string& bytes) {
    std::FILE* f = std::fopen(logPath_.c_str(), "ab");
    ASSERT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  // The next daemon: recovers, replays the spools into a new writer, and lets the container end.
  LogJournalRecovery recoverAndFinish() {
    LogJournalRecovery found;
    std::string error;
    auto journal = LogJournal::recover(journalDir_, logPath_, found, error);
    EXPECT_NE(journal, nullptr) << error;
    if (!journal) return found;
    auto writer = openWriter();
    writer->attachJournal(journal, found.state);
    for (LogStream stream : {LogStream::kStdout, LogStream::kStderr}) {
      const size_t s = static_cast<size_t>(stream);
      std::string rest(found.spoolEnds[s] - found.state.offsets[s], '\0');
      EXPECT_EQ(::pread(journal->spoolFd(stream), rest.data(), rest.size(),
                        static_cast<off_t>(found.state.offsets[s])),
                static_cast<ssize_t>(rest.size()));
      writer->write(stream, rest);
    }
    writer->finish();
    return found;
  }

  TempDir dir_;
  std::string logPath_ = dir_.file("0.log");
  std::string journalDir_ = dir_.file("journal");
  loop::Loop loop_;
  std::string sent_[2];
};

std::string record(std::string_view stream, char tag, std::string_view content) {
  return formatLogTimestamp(kBaseNs) + " " + std::string(stream) + " " + tag + " " +
         std::string(content) + "\n";
}

TEST_F(LogJournalTest, AnUnfinishedLineOnlyInMemoryIsTakenUpFromTheSpool) {
  daemonKilledAfter({{LogStream::kStdout, "one\ntwo\nthe start of thr"},
                     {LogStream::kStderr, "e1\ne2 unfinished"}});
  spoolOnly(LogStream::kStdout, "ee\nfour\n");
  spoolOnly(LogStream::kStderr, "\n");
  const LogJournalRecovery found = recoverAndFinish();
  EXPECT_FALSE(found.logReplaced);
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
  daemonKilledAfter({{LogStream::kStdout, "committed\n"}});
  // The next batch reached the log (a whole line, then a P record of a long one), its commit
  // did not.
  spoolOnly(LogStream::kStdout, "in the log, not committed\nlong line part one|part two\n");
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
  daemonKilledAfter({{LogStream::kStderr, "before\n"}});
  spoolOnly(LogStream::kStderr, "whole\ntorn in the middle\n");
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
  daemonKilledAfter({{LogStream::kStdout, "a\n"}});
  spoolOnly(LogStream::kStdout, "b\n");
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

TEST_F(LogJournalTest, ALogReplacedMeanwhileIsTakenUpFromTheCommittedOffsets) {
  daemonKilledAfter({{LogStream::kStdout, "old file\n"}});
  ASSERT_EQ(std::rename(logPath_.c_str(), (logPath_ + ".1").c_str()), 0);
  testing::writeFile(logPath_, "");
  spoolOnly(LogStream::kStdout, "after\n");
  const LogJournalRecovery found = recoverAndFinish();
  EXPECT_TRUE(found.logReplaced);
  EXPECT_EQ(streamBytes(strictRecords(readFile(logPath_)), LogStream::kStdout), "after\n");
}

TEST_F(LogJournalTest, ProcessedSpoolBytesAreGivenBack) {
  auto writer = openWriter();
  std::string error;
  writer->attachJournal(LogJournal::create(journalDir_, logPath_, error), {});
  const std::string line(1023, 'z');
  for (int i = 0; i < 3 * 1024; ++i)
    feed(*writer, LogStream::kStdout, line + "\n");
  struct stat spool {};
  ASSERT_EQ(::stat((journalDir_ + "/1").c_str(), &spool), 0);
  EXPECT_EQ(spool.st_size, 3 * 1024 * 1024);
  // Holes punched a MiB at a time: at most the last MiB is still stored.
  EXPECT_LE(spool.st_blocks * 512, 1024 * 1024);
}

TEST_F(LogJournalTest, AStateItDidNotWriteIsRefused) {
  ASSERT_EQ(::mkdir(journalDir_.c_str(), 0700), 0);
  for (const char* name : {"/1", "/2"})
    testing::writeFile(journalDir_ + name, "");
  testing::writeFile(journalDir_ + "/state", std::string(64, 'x'));
  LogJournalRecovery found;
  std::string error;
  EXPECT_EQ(LogJournal::recover(journalDir_, logPath_, found, error), nullptr);
  EXPECT_EQ(error, "log journal " + journalDir_ + "/state: not a state this daemon wrote");
}

}  // namespace
}  // namespace monocri::logging
