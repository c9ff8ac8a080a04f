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
// Writes are synchronous write(2) calls on the loop: a local file takes them into the page
// cache. The records of one write() call go out in one writev(2) (a call producing more than
// 256 KiB of headers and short lines, or 500 long chunks, uses several). A failed write (ENOSPC,
// EIO, EFBIG) drops that batch of records: the file is cut back to the last whole record, the loss
// counted in stats(), and the next write() tries again. Memory: each stream keeps at most
// maxLineBytes of unfinished line; the buffer records are built in is one per thread, shared by
// every writer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "logging/LogRecord.h"
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
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Bytes as read from the container's pipe; only read during the call.
  void write(LogStream stream, std::string_view bytes);
  // The container exited and its pipes are drained: each unfinished line is closed by an F
  // record with its remaining bytes (an empty F if they were all flushed as P already).
  void finish();
  // kubelet renamed the file and asks for a new one (ReopenContainerLog): later records go to a
  // file opened anew at the path. Every record written so far is in the old file and none is
  // written twice; unfinished lines continue in the new file. On failure the writer keeps
  // writing to the file it has.
  grpc::Status reopen();

  struct Stats {
    uint64_t bytesIn = 0;         // bytes handed to write()
    uint64_t recordsWritten = 0;  // records the file took
    uint64_t bytesWritten = 0;    // bytes the file took
    uint64_t writeErrors = 0;     // failed batches
    uint64_t bytesDropped = 0;    // content bytes of the records in failed batches
    std::string lastError;        // "write /var/log/pods/...: No space left on device"
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
  class RecordBatch;

  LogWriter(loop::Loop& loop, std::string path, LogWriterOptions options, state::UniqueFd fd);
  int64_t wallClockNs() const;
  PendingLine& pending(LogStream stream) { return pending_[static_cast<size_t>(stream)]; }
  // Appends one record made of the pending bytes and `tail` to the batch and empties the
  // pending line; writes the batch out if it is full.
  void addRecord(RecordBatch& batch, LogStream stream, bool partial, std::string_view tail,
                 int64_t nowNs);
  void startPending(PendingLine& line, int64_t nowNs);
  void onFlushTimer();
  // Gives back the capacity of empty unfinished-line buffers grown by a long line.
  void releaseIdleMemory();
  void writeBatch(RecordBatch& batch);

  loop::Loop& loop_;
  std::string path_;
  LogWriterOptions options_;
  state::UniqueFd fd_;
  loop::HandlePtr<loop::Timer> flushTimer_;
  std::array<PendingLine, 2> pending_;
  Stats stats_;
  bool failing_ = false;  // the last write failed
};

}  // namespace monocri::logging
