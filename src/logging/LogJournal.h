// What makes a container's log survive a daemon killed in the middle of a flood (kill -9, an
// OOM kill, a crash) with nothing lost and nothing written twice, while the keeper holds the
// container's pipes.
//
// Bytes read from a pipe are gone from it: whatever the daemon held in memory (a line waiting
// for its '\n', records queued for the disk) would die with it. So output is not read but
// moved, with splice(2), from the pipe into a spool file per stream: in one system call it
// leaves the pipe and is stored where the next daemon finds it. The writer works from the
// spool, and after each batch of records is in the log file a small state is committed: the
// log's size and, per stream, the spool offset up to which every byte is in the log (or was
// dropped by a limit), and whether that stream's line has P records in the log already.
//
// A daemon starting again reconciles the state with the log (recover()): records past the
// committed size were written by a batch whose commit did not happen. Each of them that matches
// the spool at its stream's offset is the container's, and the offset moves past it; one that
// does not is the daemon's own (a marker) and is kept as it is; a torn last record (no '\n')
// is cut off. The writer then takes the spool up again from those offsets.
//
// Processed spool bytes are given back with hole punching, so a spool holds in memory or on disk
// little more than the unfinished lines and what is queued. Files: <dir>/1 (stdout spool),
// <dir>/2 (stderr spool), <dir>/state. A log file replaced while no daemon ran (a rotation
// kubelet finished without us) cannot be reconciled: the spool is taken up from the committed
// offsets, which may write again what the renamed file holds after its committed size.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "logging/LogRecord.h"
#include "state/UniqueFd.h"

namespace monocri::logging {

// Where the log stands, as committed after a batch.
struct LogJournalState {
  uint64_t logInode = 0;
  uint64_t logSize = 0;
  std::array<uint64_t, 2> offsets{};  // per stream: spool bytes in the log or dropped
  std::array<bool, 2> continued{};    // per stream: its line has P records in the log
};

// What recover() found.
struct LogJournalRecovery {
  LogJournalState state;                // reconciled: where the writer takes up
  std::array<uint64_t, 2> spoolEnds{};  // bytes in each spool (from offsets on: to replay)
  uint64_t recordsAfterCommit = 0;      // container records found past the committed size
  uint64_t ownRecordsAfterCommit = 0;   // the daemon's own records found there
  uint64_t tornBytesCut = 0;            // an unfinished last record, cut off
  bool logReplaced = false;             // the log is not the file the state is about
};

class LogJournal {
 public:
  // Makes `dir` (mode 0700) with empty spools and commits a first state for the log at
  // `logPath` (which must exist: its size so far is not the container's).
  static std::shared_ptr<LogJournal> create(const std::string& dir, const std::string& logPath,
                                            std::string& error);
  // Opens the journal in `dir` and reconciles it with the log at `logPath` (see above),
  // committing the reconciled state. Null with `error` if there is no usable journal.
  static std::shared_ptr<LogJournal> recover(const std::string& dir, const std::string& logPath,
                                             LogJournalRecovery& found, std::string& error);
  ~LogJournal();
  LogJournal(const LogJournal&) = delete;
  LogJournal& operator=(const LogJournal&) = delete;

  int spoolFd(LogStream stream) const { return spools_[static_cast<size_t>(stream)].get(); }
  const std::string& dir() const { return dir_; }

  // After a batch was written to `logFd` (or failed: then its bytes count as dropped): stores
  // the state (the log's size and inode from fstat) and gives back the spool bytes before the
  // offsets. One thread at a time (the write thread, or the loop without one).
  void commit(int logFd, const std::array<uint64_t, 2>& offsets,
              const std::array<bool, 2>& continued);

  // Removes the journal's files and directory (the container is removed).
  static void removeFiles(const std::string& dir);

 private:
  // Opens the spools and the state in `dir` (O_RDWR, plus `extraFlags`).
  static std::shared_ptr<LogJournal> openFiles(const std::string& dir, int extraFlags,
                                               std::string& error);
  LogJournal(std::string dir, state::UniqueFd stateFd, state::UniqueFd stdoutSpool,
             state::UniqueFd stderrSpool);
  bool store(const LogJournalState& state, std::string* error);

  std::string dir_;
  state::UniqueFd stateFd_;
  std::array<state::UniqueFd, 2> spools_;
  std::array<uint64_t, 2> punchedTo_{};  // spool bytes already given back
};

}  // namespace monocri::logging
