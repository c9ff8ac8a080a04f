// What makes a container's log survive a daemon killed in the middle of a flood (kill -9, an
// OOM kill, a crash) with nothing lost and nothing written twice, while the keeper holds the
// container's pipes.
//
// Output is never taken out of the container's pipe before it is in the log. The loop peeks at
// it with tee(2), which duplicates the pipe's pages into a scratch pipe without consuming or
// copying them, and reads the copy; a line waiting for its '\n' stays in the container's pipe.
// Once a batch of records is in the log, the bytes it covers (and those a limit dropped) are
// consumed from the head of the container's pipe. Only that consumption must be made to agree
// with the state committed next to the log, and it is done in two steps through a pipe of the
// journal's own, the held pipe (empty at rest; the keeper holds it like the container's):
//
//   1. store MOVING {log size, done offsets, n}; splice n bytes from the container's pipe into
//      the held pipe (a move of page references, no copy; n never exceeds what it can take);
//   2. store DRAINING {same}; splice the held pipe into /dev/null.
//
// The held pipe's fill level is the durable count of step 1: a daemon dying in it leaves the
// state MOVING and k of n bytes moved, and the next one moves the n - k others. One dying in
// step 2 leaves DRAINING, and the held pipe is emptied. The next daemon then reconciles the
// log (recover()): records past the committed size were written by a batch whose commit did not
// happen. Each that matches what the container's pipe holds next for its stream is the
// container's, and those bytes are consumed; one that does not is the daemon's own (a marker)
// and is kept as it is; a torn last record (no '\n') is cut off. Reading then starts again at
// the head of the container's pipe, unfinished lines included.
//
// Files: <dir>/state (fixed size). A log file replaced while no daemon ran (a rotation kubelet
// finished without us) cannot be reconciled: records past the committed size are not looked
// for, and what the pipe holds is logged into the new file.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "logging/LogRecord.h"
#include "state/UniqueFd.h"

namespace monocri::logging {

// Where the log stands, as committed after a batch.
struct LogJournalState {
  uint64_t logInode = 0;
  uint64_t logSize = 0;
  std::array<uint64_t, 2> offsets{};  // per stream: bytes in the log or dropped (consumed)
  std::array<bool, 2> continued{};    // per stream: its line has P records in the log
};

// What recover() found.
struct LogJournalRecovery {
  LogJournalState state;               // reconciled: where the writer takes up
  bool stepFinished = false;           // a consumption the dead daemon was in was completed
  uint64_t recordsAfterCommit = 0;     // container records found past the committed size
  uint64_t ownRecordsAfterCommit = 0;  // the daemon's own records found there
  uint64_t tornBytesCut = 0;           // an unfinished last record, cut off
  bool logReplaced = false;            // the log is not the file the state is about
};

// What tee() found in a container's pipe past the bytes already seen.
enum class PipePeek {
  kData,     // new bytes (their count is returned)
  kAllSeen,  // only bytes seen before: wait for the container to write more
  kEmpty,    // nothing at all, and the container may write more
  kEnd,      // nothing, and every writer is gone
  kFailed,
};

class LogJournal {
 public:
  // Makes `dir` (mode 0700) with a first state for the log at `logPath` (which must exist: its
  // size so far is not the container's) and empty held pipes.
  static std::shared_ptr<LogJournal> create(const std::string& dir, const std::string& logPath,
                                            std::string& error);
  // Opens the journal in `dir`, with the held pipes the keeper gave back (invalid ones are made
  // anew), finishes the consumption the dead daemon was in on `containerPipes` (read ends, not
  // owned) and reconciles the log at `logPath` with them (see above), committing the
  // reconciled state. Null with `error` if there is no usable journal.
  static std::shared_ptr<LogJournal> recover(const std::string& dir, const std::string& logPath,
                                             const std::array<int, 2>& containerPipes,
                                             std::array<state::UniqueFd, 2> heldPipes,
                                             LogJournalRecovery& found, std::string& error);
  ~LogJournal();
  LogJournal(const LogJournal&) = delete;
  LogJournal& operator=(const LogJournal&) = delete;

  const std::string& dir() const { return dir_; }
  // For the keeper to hold.
  int heldPipeFd(LogStream stream) const { return held_[static_cast<size_t>(stream)].get(); }

  // The read end of the container's pipe for `stream`, owned by the journal from now on (jobs
  // queued on the write thread consume from it). The held pipe is made at least as big, or the
  // container's as small: whatever is consumed at once must fit in the held pipe.
  void adoptContainerPipe(LogStream stream, state::UniqueFd pipe);
  int containerPipeFd(LogStream stream) const { return pipes_[static_cast<size_t>(stream)].get(); }

  // Loop thread: copies into `buffer` (up to `size`) bytes of the container's pipe that come
  // after the first `seen` bytes of the stream (offsets count from the container's start).
  PipePeek peek(LogStream stream, uint64_t seen, char* buffer, size_t size, size_t& got);

  // After a batch was written to `logFd` (or failed: then its bytes count as dropped): stores
  // the state (the log's size and inode from fstat) and consumes the container's bytes up to
  // `offsets` (steps 1 and 2 above). One thread at a time (the write thread, or the loop
  // without one).
  void commit(int logFd, const std::array<uint64_t, 2>& offsets,
              const std::array<bool, 2>& continued);

  // Removes the journal's files and directory (the container is removed).
  static void removeFiles(const std::string& dir);

 private:
  enum class Step : uint8_t { kMoving = 1, kDraining = 2 };
  LogJournal(std::string dir, state::UniqueFd stateFd);
  bool store(const LogJournalState& state, Step step, const std::array<uint64_t, 2>& moving,
             std::string* error);
  // Steps 1 and 2 (above) taking the journal from last_ to `next`, consuming from `from`.
  bool consume(const std::array<int, 2>& from, const LogJournalState& next, std::string& error);
  // Step 1 for both streams: moves `counts` bytes of the pipes `from` into the held ones.
  bool moveToHeld(const std::array<int, 2>& from, const std::array<uint64_t, 2>& counts,
                  std::string& error);
  // Step 2: empties the held pipes.
  bool drainHeld(std::string& error);
  bool makeHeldPipe(size_t stream, std::string& error);

  std::string dir_;
  state::UniqueFd stateFd_;
  std::array<state::UniqueFd, 2> held_;   // O_RDWR: one descriptor is both ends
  std::array<state::UniqueFd, 2> pipes_;  // the container's read ends
  LogJournalState last_;                  // the state last stored

  // The bytes consumed from each container pipe so far: the loop's peek() skips what was seen
  // and is still there; a move and a peek never interleave.
  std::mutex pipeMutex_;
  std::array<uint64_t, 2> consumed_{};  // guarded by pipeMutex_
  bool failed_ = false;                 // a move went wrong: reported once
};

}  // namespace monocri::logging
