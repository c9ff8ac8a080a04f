// The CRI log file of one container (format in LogRecord.h), written on the loop.
//
// The daemon hands over stdout and stderr bytes as the pipes deliver them; the writer turns
// them into whole-line records: a line is one F record however the kernel split it across
// reads, unless it is longer than maxLineBytes, which makes it P records of exactly that size
// and a closing F. A line still waiting for its '\n' is written as a P record partialFlushMs
// after its first byte arrived (a shell prompt, a progress bar), and closed by an F when the
// container exits (finish()). Each stream has its own unfinished line; records reach the file
// in the order their line was completed or flushed. A record's timestamp is the arrival time
// of its first byte.
//
// Records are formatted on the loop; the records of one write() call go out in one writev(2) (a
// call producing more than 256 KiB of headers and short lines, or 500 long chunks, uses
// several). With a LogWriteThread (the daemon) that writev runs on the thread, so that a slow
// disk stalls no RPC and no other container; the writer then says when it is backlogged, and its
// reader stops reading the container until the thread caught up (backlogged()): a container
// writing faster than the disk takes is slowed down, never buffered without bound. Without one
// (tests, tools) it runs before write() returns. A failed write (ENOSPC, EIO, EFBIG) drops that
// batch of records: the file is cut back to the last whole record, the loss counted in stats(),
// and the next batch tries again. Memory: each stream keeps at most maxLineBytes of unfinished
// line; batches come from the thread's pool and go back to it when written, so an idle writer
// holds none. A batch of long lines read into the loop's read buffer is written from there: it
// takes the buffer over until it is written (Loop::takeReadBuffer), instead of copying them.
//
// Two optional limits drop output, never buffer it: a size cap on the current file (kubelet's
// log_size_max) and a rate limit on the container's output (flood control). A limit that cuts a
// line in the middle ends the part already taken as an F record and discards the rest of that
// line, up to its '\n' whenever it comes, so that no record ever holds the tail of a line whose
// head is missing. What was dropped is told by marker records on the stream that lost it (see
// LogWriterOptions) and counted in stats().
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "logging/LogRecord.h"
#include "logging/LogWriteThread.h"
#include "logging/RecordBatch.h"
#include "logging/TokenBucket.h"
#include "loop/Loop.h"
#include "loop/Timer.h"
#include "state/UniqueFd.h"

namespace monocri::logging {

struct LogWriterOptions {
  // The longest content of one record (containerd's default). At least 1, at most
  // kMaxLineBytesLimit.
  size_t maxLineBytes = 16 * 1024;
  // How long an unfinished line may wait for its '\n' before it is written as a P record;
  // 0 writes it at the end of each write() call.
  uint64_t partialFlushMs = 1000;
  // Wall clock for timestamps, in ns since the epoch (tests); empty means CLOCK_REALTIME.
  std::function<int64_t()> clock;

  // log_size_max: the most bytes the current file may hold, counting its size when opened and
  // what this writer added; 0 is no cap. The first record (rate markers included) that would
  // take the file past it is not written, nor is any later output until reopen() (kubelet's
  // rotation) starts a new file; in its place one marker record on the stream that record
  // belonged to:
  //   [monocri] log size limit of <maxFileBytes> bytes reached: further output is dropped until the
  //   log is rotated
  // That marker, and an empty F closing each line whose P records are in the file already, are
  // the only records past the cap (at most 3 records, 237 bytes).
  uint64_t maxFileBytes = 0;
  // Flood control: the container's output (stdout and stderr together, each '\n' included) that
  // may pass per second; 0 is no limit. Bytes beyond it are dropped. While a stream drops, a
  // marker record on that stream says how many of its bytes were dropped since its last marker,
  // at most once a second (the first one at once, the last one at the latest a second after the
  // drop or at finish()):
  //   [monocri] rate limit of <rateBytesPerSecond> bytes/s exceeded: <n> bytes dropped
  // A marker waits while the stream's line has P records in the file, until that line ends.
  uint64_t rateBytesPerSecond = 0;
  // Bytes that may pass at once after a quiet spell; 0 is one second's worth. At most
  // TokenBucket::kMaxBytes, like the rate.
  uint64_t rateBurstBytes = 0;
  // Monotonic clock of the rate limit, in ms (tests); empty means the loop's clock.
  std::function<uint64_t()> loopClockMs;
  // Where the writev(2) calls run; null runs them on the caller's thread. Must outlive the
  // writer.
  LogWriteThread* writeThread = nullptr;
};

inline constexpr size_t kMaxLineBytesLimit = 64 * 1024 * 1024;

class LogWriter {
 public:
  // Opens `path` for appending, creating it with mode 0640; its directory must exist. Returns
  // null with `error` set if it cannot be opened or the options are out of range.
  static std::unique_ptr<LogWriter> open(loop::Loop& loop, std::string path,
                                         LogWriterOptions options, std::string& error);
  // Unfinished lines are written as P records, not closed: a writer taking the file over
  // (daemon restart) continues them. Call finish() first when the container has exited.
  // Rate-limit markers not yet written are written first, except on a stream whose line has P
  // records in the file.
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Bytes as read from the container's pipe; only read during the call.
  void write(LogStream stream, std::string_view bytes);
  // The container exited and its pipes are drained: each unfinished line is closed by an F
  // record with its remaining bytes (an empty F if they were all flushed as P already), then the
  // rate-limit markers not yet written are.
  void finish();
  // kubelet renamed the file and asks for a new one (ReopenContainerLog): later records go to a
  // file opened anew at the path. Every record written so far is in the old file and none is
  // written twice; unfinished lines continue in the new file. The size cap counts anew from the
  // new file's size. On failure the writer keeps writing to the file it has.
  grpc::Status reopen();
  // Runs `done` on the loop once every record accepted so far is in its file (at once without a
  // write thread, or when nothing is queued): kubelet may compress a rotated file as soon as
  // ReopenContainerLog returned.
  void whenWritten(std::function<void()> done);

  // Makes the log lossless across a daemon crash (LogJournal.h): write() is then given the
  // container's output as the journal peeks at it, and each batch commits how far each stream
  // is in the log, which consumes those bytes from the container's pipe. `from` is where the
  // journal stands (zero offsets for a new one; what recover() found); reading takes up there.
  void attachJournal(std::shared_ptr<LogJournal> journal, const LogJournalState& from);
  const std::shared_ptr<LogJournal>& journal() const { return journal_; }
  // With a journal: the stream's bytes handed to write() so far, counted from the container's
  // start (where the journal stood when attached, plus what came since).
  uint64_t streamOffset(size_t stream) const { return streamOffsets_[stream]; }

  // Batches queued on the write thread and not written yet take this many bytes or more: the
  // caller should stop handing output over (stop reading the container) until the listener
  // runs.
  bool backlogged() const { return backlogged_; }
  // Runs when a backlog is cleared (the queued bytes fell to kBacklogLowBytes).
  void setBacklogListener(std::function<void()> cleared) { backlogCleared_ = std::move(cleared); }
  static constexpr uint64_t kBacklogHighBytes = 512 * 1024;
  static constexpr uint64_t kBacklogLowBytes = 128 * 1024;
  // With a journal, output dropped by a limit is committed (consumed) once this much waits.
  static constexpr uint64_t kJournalDropCommitBytes = 16 * 1024;

  struct Stats {
    uint64_t bytesIn = 0;         // bytes handed to write()
    uint64_t recordsWritten = 0;  // records the file took
    uint64_t bytesWritten = 0;    // bytes the file took
    uint64_t writeErrors = 0;     // failed batches
    uint64_t bytesDropped = 0;    // content bytes of the records in failed batches
    // Bytes handed to write() that the limits kept out of the file, '\n's included.
    uint64_t bytesDroppedBySizeLimit = 0;
    uint64_t bytesDroppedByRateLimit = 0;
    std::string lastError;  // "write /var/log/pods/...: No space left on device"
  };
  const Stats& stats() const { return stats_; }
  const std::string& path() const { return path_; }

 private:
  // A stream's line that has not met its '\n' yet.
  struct PendingLine {
    std::string bytes;         // not written yet, at most maxLineBytes
    int64_t firstByteNs = 0;   // wall clock when bytes[0] arrived
    uint64_t firstByteMs = 0;  // loop clock, for the flush delay
    bool continued = false;    // P records of this line are in the file already
  };
  // A stream whose line a limit cut: the rest of that line is discarded up to its '\n'.
  enum class Cut : uint8_t { kNone, kBySizeLimit, kByRateLimit };
  struct StreamLimits {
    Cut cut = Cut::kNone;
    uint64_t droppedSinceMarker = 0;  // by the rate limit, not told by a marker yet
    uint64_t nextMarkerMs = 0;        // loop clock: the earliest time of the next rate marker
  };
  LogWriter(loop::Loop& loop, std::string path, LogWriterOptions options, state::UniqueFd fd);
  int64_t wallClockNs() const;
  uint64_t loopClockMs() const;
  PendingLine& pending(LogStream stream) { return pending_[static_cast<size_t>(stream)]; }
  StreamLimits& limits(LogStream stream) { return limits_[static_cast<size_t>(stream)]; }
  // Turns `bytes` into records and the stream's unfinished line. False if the size cap was
  // reached: the rest of `bytes` is dropped.
  bool appendLines(RecordBatch& batch, LogStream stream, std::string_view bytes, int64_t nowNs);
  // Appends one record made of the pending bytes and `tail` to the batch and empties the
  // pending line; writes the batch out if it is full. False if the record would take the file
  // past the size cap: then nothing more is written until reopen().
  bool addRecord(RecordBatch& batch, LogStream stream, bool partial, std::string_view tail,
                 int64_t nowNs);
  // With the write thread: whether `tail` may be referenced by the batch rather than copied
  // (it is long, and in a read buffer the batch holds or now takes from the loop).
  bool referenceable(RecordBatch& batch, std::string_view tail);
  // A record that is not the container's (a marker, an empty F closing a line).
  void addOwnRecord(RecordBatch& batch, LogStream stream, std::string_view content, int64_t nowNs);
  // Whether a record of `contentBytes` would take the file past the size cap.
  bool pastSizeLimit(const RecordBatch& batch, size_t contentBytes) const;
  void reachSizeLimit(RecordBatch& batch, LogStream stream, int64_t nowNs);
  void dropPastSizeLimit(LogStream stream, std::string_view bytes);
  // Drops the rest of a line a limit cut; returns what follows its '\n'.
  std::string_view discardRestOfCutLine(LogStream stream, std::string_view bytes);
  void dropByRateLimit(LogStream stream, std::string_view bytes);
  // Writes the rate markers that are due (all of them if `final`) and arms the marker timer for
  // the next one, or frees the timer when no marker waits.
  void writeRateMarkers(RecordBatch& batch, uint64_t nowMs, int64_t nowNs, bool final);
  void onMarkerTimer();
  void startPending(PendingLine& line, int64_t nowNs);
  void onFlushTimer();
  // Gives back the capacity of empty unfinished-line buffers grown by a long line.
  void releaseIdleMemory();
  // The batch records are built in: the thread's shared one without a write thread, else this
  // writer's, taken from the pool until closeBatch().
  RecordBatch& openBatch();
  // Writes out what the batch holds (at the end of each entry point).
  void closeBatch(RecordBatch& batch);
  // Writes (or submits) the batch's records and empties it; the batch stays usable.
  void writeBatch(RecordBatch& batch);
  void submitBatch(RecordBatch& batch);
  void countWrite(ssize_t result, uint64_t records, uint64_t contentBytes);
  // A stream's offset up to which everything handed over is in records or dropped.
  uint64_t journalOffset(size_t stream) const;
  // Bytes past the offsets last committed (both streams).
  uint64_t uncommittedBytes() const;
  // Where the journal stands once what was handed over so far is written; remembered as the
  // offsets last committed.
  JournalCommit nextJournalCommit();
  // A commit without records (dropped output, a reopen), after whatever is queued.
  void commitJournalAlone();

  loop::Loop& loop_;
  std::string path_;
  LogWriterOptions options_;
  // Shared with the write thread's queued batches: a reopen() leaves the old file open until
  // they are written.
  std::shared_ptr<state::UniqueFd> file_;
  loop::HandlePtr<loop::Timer> flushTimer_;
  std::array<PendingLine, 2> pending_;
  Stats stats_;
  bool failing_ = false;  // the last write failed

  uint64_t fileBytes_ = 0;  // the current file's size, as far as the size cap is concerned
  bool sizeLimitReached_ = false;
  std::optional<TokenBucket> rateLimit_;
  std::array<StreamLimits, 2> limits_;
  // Exists only while a rate marker waits: an idle writer holds no handle for it.
  loop::HandlePtr<loop::Timer> markerTimer_;
  uint64_t markerTimerDueMs_ = 0;

  // With a write thread.
  std::unique_ptr<RecordBatch> batch_;  // being built, within one entry point
  uint64_t queuedBytes_ = 0;            // submitted, not written yet
  uint64_t fileGeneration_ = 0;         // reopen()s so far: which file a result is about
  bool backlogged_ = false;
  std::function<void()> backlogCleared_;
  loop::LifetimeGuard lifetime_;  // results of queued batches arriving after the writer is gone

  // With a journal: stream bytes handed to write(), per stream, and the offsets last committed.
  std::shared_ptr<LogJournal> journal_;
  std::array<uint64_t, 2> streamOffsets_{};
  std::array<uint64_t, 2> committedOffsets_{};
};

}  // namespace monocri::logging
