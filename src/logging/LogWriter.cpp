#include "logging/LogWriter.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

namespace monocri::logging {

namespace {

// An unfinished-line buffer that is empty when the flush timer or finish() looks keeps this
// much capacity; more is given back, so that one long line does not pin memory in every idle
// container.
constexpr size_t kKeptPendingCapacity = 4096;

constexpr mode_t kLogFileMode = 0640;

constexpr size_t kHeaderBytes = kLogRecordHeaderBytes;

// A stream that keeps dropping gets at most one rate-limit marker in this time.
constexpr uint64_t kRateMarkerIntervalMs = 1000;

std::string sizeLimitMarker(uint64_t maxFileBytes) {
  return "[monocri] log size limit of " + std::to_string(maxFileBytes) +
         " bytes reached: further output is dropped until the log is rotated";
}

std::string rateLimitMarker(uint64_t bytesPerSecond, uint64_t dropped) {
  return "[monocri] rate limit of " + std::to_string(bytesPerSecond) +
         " bytes/s exceeded: " + std::to_string(dropped) + " bytes dropped";
}

// What the size cap counts a file as holding when the writer starts on it. Only a regular file
// grows; a FIFO or a device (/dev/null) counts as empty.
uint64_t sizeOfLogFile(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  return static_cast<uint64_t>(st.st_size);
}

// Returns the file, or an invalid fd with `error` and `errorNumber` set.
state::UniqueFd openLogFile(const std::string& path, std::string& error, int& errorNumber) {
  // O_NONBLOCK: a FIFO planted at the path must neither block the open nor a write.
  const int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  for (int attempt = 0; attempt < 2; ++attempt) {
    state::UniqueFd fd(::open(path.c_str(), flags | O_CREAT | O_EXCL, kLogFileMode));
    if (fd.valid()) {
      // Created here: the mode is 0640 whatever the daemon's umask.
      ::fchmod(fd.get(), kLogFileMode);
      return fd;
    }
    if (errno != EEXIST) break;
    fd.reset(::open(path.c_str(), flags));
    if (fd.valid()) return fd;
    if (errno != ENOENT) break;  // removed between the two opens: try again
  }
  errorNumber = errno;
  error = "open container log " + path + ": " + std::strerror(errorNumber);
  return {};
}

grpc::StatusCode statusCodeForErrno(int error) {
  switch (error) {
    case ENOENT:
    case ENOTDIR:
      return grpc::StatusCode::kFailedPrecondition;  // kubelet removed the directory
    case EACCES:
    case EPERM:
    case EROFS:
      return grpc::StatusCode::kPermissionDenied;
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
      return grpc::StatusCode::kResourceExhausted;
    default:
      return grpc::StatusCode::kInternal;
  }
}

}  // namespace

std::unique_ptr<LogWriter> LogWriter::open(loop::Loop& loop, std::string path,
                                           LogWriterOptions options, std::string& error) {
  if (options.maxLineBytes == 0 || options.maxLineBytes > kMaxLineBytesLimit) {
    error = "container log " + path + ": maxLineBytes must be 1 to " +
            std::to_string(kMaxLineBytesLimit) + ", not " + std::to_string(options.maxLineBytes);
    return nullptr;
  }
  if (options.rateBytesPerSecond > TokenBucket::kMaxBytes ||
      options.rateBurstBytes > TokenBucket::kMaxBytes) {
    error = "container log " + path + ": rateBytesPerSecond and rateBurstBytes must be at most " +
            std::to_string(TokenBucket::kMaxBytes);
    return nullptr;
  }
  if (options.rateBurstBytes != 0 && options.rateBytesPerSecond == 0) {
    error = "container log " + path + ": rateBurstBytes " + std::to_string(options.rateBurstBytes) +
            " is given without rateBytesPerSecond";
    return nullptr;
  }
  int errorNumber = 0;
  state::UniqueFd fd = openLogFile(path, error, errorNumber);
  if (!fd.valid()) return nullptr;
  return std::unique_ptr<LogWriter>(
      new LogWriter(loop, std::move(path), std::move(options), std::move(fd)));
}

LogWriter::LogWriter(loop::Loop& loop, std::string path, LogWriterOptions options,
                     state::UniqueFd fd)
    : loop_(loop),
      path_(std::move(path)),
      options_(std::move(options)),
      file_(std::make_shared<state::UniqueFd>(std::move(fd))),
      flushTimer_(loop::Timer::create(loop, "container log partial-line flush")) {
  if (options_.maxFileBytes != 0) fileBytes_ = sizeOfLogFile(file_->get());
  if (options_.rateBytesPerSecond != 0) {
    const uint64_t burst =
        options_.rateBurstBytes != 0 ? options_.rateBurstBytes : options_.rateBytesPerSecond;
    rateLimit_.emplace(options_.rateBytesPerSecond, burst, loopClockMs());
  }
}

LogWriter::~LogWriter() {
  RecordBatch& batch = openBatch();
  const int64_t nowNs = wallClockNs();
  // Before the P records: a marker after one would read as the end of that line.
  if (rateLimit_) writeRateMarkers(batch, loopClockMs(), nowNs, /*final=*/true);
  for (LogStream stream : {LogStream::kStdout, LogStream::kStderr}) {
    if (!pending(stream).bytes.empty()) addRecord(batch, stream, true, {}, nowNs);
  }
  closeBatch(batch);
}

int64_t LogWriter::wallClockNs() const {
  if (options_.clock) return options_.clock();
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

uint64_t LogWriter::loopClockMs() const {
  return options_.loopClockMs ? options_.loopClockMs() : loop_.nowMs();
}

void LogWriter::write(LogStream stream, std::string_view bytes) {
  if (bytes.empty()) return;
  stats_.bytesIn += bytes.size();
  streamOffsets_[static_cast<size_t>(stream)] += bytes.size();
  if (sizeLimitReached_) {
    dropPastSizeLimit(stream, bytes);
    return;
  }
  const int64_t nowNs = wallClockNs();
  RecordBatch& batch = openBatch();
  StreamLimits& limited = limits(stream);
  if (limited.cut != Cut::kNone) bytes = discardRestOfCutLine(stream, bytes);
  std::string_view refused;
  if (rateLimit_ && !bytes.empty()) {
    const uint64_t granted = rateLimit_->take(bytes.size(), loopClockMs());
    refused = bytes.substr(granted);
    bytes = bytes.substr(0, granted);
  }
  bool belowSizeLimit = appendLines(batch, stream, bytes, nowNs);
  if (!refused.empty()) {
    PendingLine& cutLine = pending(stream);
    // The line in progress ends with what was taken of it.
    if (belowSizeLimit && (!cutLine.bytes.empty() || cutLine.continued)) {
      belowSizeLimit = addRecord(batch, stream, false, {}, nowNs);
    }
    if (belowSizeLimit) {
      dropByRateLimit(stream, refused);
    } else {
      dropPastSizeLimit(stream, refused);
    }
  }
  PendingLine& line = pending(stream);
  if (options_.partialFlushMs == 0 && !line.bytes.empty()) {
    addRecord(batch, stream, true, {}, nowNs);
    releaseIdleMemory();  // no timer in this mode
  }
  if (rateLimit_ && (limits_[0].droppedSinceMarker != 0 || limits_[1].droppedSinceMarker != 0)) {
    writeRateMarkers(batch, loopClockMs(), nowNs, /*final=*/false);
  }
  closeBatch(batch);
}

bool LogWriter::appendLines(RecordBatch& batch, LogStream stream, std::string_view bytes,
                            int64_t nowNs) {
  PendingLine& line = pending(stream);
  while (!bytes.empty()) {
    const size_t room = options_.maxLineBytes - line.bytes.size();
    // A '\n' right after `room` bytes still ends a line of exactly maxLineBytes.
    const size_t searched = std::min(bytes.size(), room + 1);
    const auto* newline = static_cast<const char*>(std::memchr(bytes.data(), '\n', searched));
    if (newline != nullptr) {
      const size_t length = static_cast<size_t>(newline - bytes.data());
      if (!addRecord(batch, stream, false, bytes.substr(0, length), nowNs)) {
        dropPastSizeLimit(stream, bytes);
        return false;
      }
      bytes.remove_prefix(length + 1);
    } else if (bytes.size() <= room) {
      if (line.bytes.empty()) startPending(line, nowNs);
      line.bytes.append(bytes);
      break;
    } else {
      // Longer than a record may be: a full-size chunk, and the line goes on.
      if (!addRecord(batch, stream, true, bytes.substr(0, room), nowNs)) {
        dropPastSizeLimit(stream, bytes);
        return false;
      }
      bytes.remove_prefix(room);
    }
  }
  return true;
}

void LogWriter::dropPastSizeLimit(LogStream stream, std::string_view bytes) {
  stats_.bytesDroppedBySizeLimit += bytes.size();
  // Whatever comes after a rotation starts where a line starts.
  limits(stream).cut = bytes.back() == '\n' ? Cut::kNone : Cut::kBySizeLimit;
}

void LogWriter::dropByRateLimit(LogStream stream, std::string_view bytes) {
  stats_.bytesDroppedByRateLimit += bytes.size();
  StreamLimits& limited = limits(stream);
  limited.droppedSinceMarker += bytes.size();
  limited.cut = bytes.back() == '\n' ? Cut::kNone : Cut::kByRateLimit;
}

std::string_view LogWriter::discardRestOfCutLine(LogStream stream, std::string_view bytes) {
  StreamLimits& limited = limits(stream);
  const auto* newline = static_cast<const char*>(std::memchr(bytes.data(), '\n', bytes.size()));
  const size_t discarded =
      newline != nullptr ? static_cast<size_t>(newline - bytes.data()) + 1 : bytes.size();
  if (limited.cut == Cut::kByRateLimit) {
    stats_.bytesDroppedByRateLimit += discarded;
    limited.droppedSinceMarker += discarded;
  } else {
    stats_.bytesDroppedBySizeLimit += discarded;
  }
  if (newline != nullptr) limited.cut = Cut::kNone;
  return bytes.substr(discarded);
}

void LogWriter::finish() {
  RecordBatch& batch = openBatch();
  const int64_t nowNs = wallClockNs();
  for (LogStream stream : {LogStream::kStdout, LogStream::kStderr}) {
    const PendingLine& line = pending(stream);
    if (!line.bytes.empty() || line.continued) addRecord(batch, stream, false, {}, nowNs);
  }
  if (rateLimit_) writeRateMarkers(batch, loopClockMs(), nowNs, /*final=*/true);
  closeBatch(batch);
  flushTimer_->stop();
  releaseIdleMemory();
}

void LogWriter::releaseIdleMemory() {
  for (PendingLine& line : pending_) {
    if (line.bytes.empty() && line.bytes.capacity() > kKeptPendingCapacity) {
      std::string().swap(line.bytes);
    }
  }
}

grpc::Status LogWriter::reopen() {
  std::string error;
  int errorNumber = 0;
  state::UniqueFd fd = openLogFile(path_, error, errorNumber);
  if (!fd.valid()) return grpc::Status(statusCodeForErrno(errorNumber), "re" + error);
  // Every record so far is in the old file or queued for it (whenWritten() tells when it is
  // in); the next goes to this one.
  file_ = std::make_shared<state::UniqueFd>(std::move(fd));
  ++fileGeneration_;
  if (options_.maxFileBytes != 0) fileBytes_ = sizeOfLogFile(file_->get());
  // The state is about the new file from now on (after what is queued for the old one).
  if (journal_) commitJournalAlone();
  sizeLimitReached_ = false;
  return grpc::Status::ok();
}

bool LogWriter::pastSizeLimit(const RecordBatch& batch, size_t contentBytes) const {
  return options_.maxFileBytes != 0 &&
         fileBytes_ + batch.outputBytes() + kHeaderBytes + contentBytes + 1 > options_.maxFileBytes;
}

bool LogWriter::addRecord(RecordBatch& batch, LogStream stream, bool partial, std::string_view tail,
                          int64_t nowNs) {
  PendingLine& line = pending(stream);
  if (pastSizeLimit(batch, line.bytes.size() + tail.size())) [[unlikely]] {
    reachSizeLimit(batch, stream, nowNs);
    return false;
  }
  const int64_t timeNs = line.bytes.empty() ? nowNs : line.firstByteNs;
  if (options_.writeThread != nullptr && !referenceable(batch, tail)) {
    // Written after the caller's buffer is reused: everything is copied.
    batch.appendCopiedRecord(timeNs, stream, partial, line.bytes, tail);
  } else {
    batch.appendHeader(timeNs, stream, partial);
    // The pending bytes are copied: their buffer is reused before the batch is written.
    batch.appendContent(line.bytes, /*mayReference=*/false);
    // Referenced: the batch is written before the caller's buffer is reused, or holds it.
    batch.appendContent(tail, /*mayReference=*/true);
    batch.endRecord();
  }
  line.bytes.clear();  // its capacity is kept while output flows (see releaseIdleMemory)
  line.continued = partial;
  // With a journal a batch ends only where write() does: its commit names a stream offset.
  if (batch.full() && !journal_) writeBatch(batch);
  return true;
}

bool LogWriter::referenceable(RecordBatch& batch, std::string_view tail) {
  if (tail.size() < RecordBatch::kReferenceMinBytes) return false;
  if (batch.inputHolds(tail)) return true;
  // A long line read into the loop's buffer is written from there: the batch takes the buffer
  // and the loop reads on into another one. One copy fewer per byte (as cat makes two).
  if (batch.hasInput() || !loop_.inReadBuffer(tail)) return false;
  batch.adoptInput(loop_.takeReadBuffer(), loop::Loop::kReadBufferBytes);
  return true;
}

void LogWriter::addOwnRecord(RecordBatch& batch, LogStream stream, std::string_view content,
                             int64_t nowNs) {
  batch.appendHeader(nowNs, stream, false);
  batch.appendContent(content, /*mayReference=*/false);
  batch.endRecord();
  if (batch.full() && !journal_) writeBatch(batch);
}

void LogWriter::reachSizeLimit(RecordBatch& batch, LogStream stream, int64_t nowNs) {
  sizeLimitReached_ = true;
  // Lines in progress end here, in this file: none continues after the marker.
  for (LogStream each : {LogStream::kStdout, LogStream::kStderr}) {
    PendingLine& line = pending(each);
    if (line.bytes.empty() && !line.continued) continue;
    stats_.bytesDroppedBySizeLimit += line.bytes.size();
    line.bytes.clear();
    if (line.continued) addOwnRecord(batch, each, {}, nowNs);
    line.continued = false;
    limits(each).cut = Cut::kBySizeLimit;
  }
  addOwnRecord(batch, stream, sizeLimitMarker(options_.maxFileBytes), nowNs);
}

void LogWriter::writeRateMarkers(RecordBatch& batch, uint64_t nowMs, int64_t nowNs, bool final) {
  // No marker past the size cap's: the counts wait for the rotation (and are in stats()).
  uint64_t nextDueMs = UINT64_MAX;
  for (LogStream stream : {LogStream::kStdout, LogStream::kStderr}) {
    StreamLimits& limited = limits(stream);
    if (sizeLimitReached_ || limited.droppedSinceMarker == 0) continue;
    // Written once the line ends (the write() that ends it, or finish()).
    if (pending(stream).continued) continue;
    if (final || nowMs >= limited.nextMarkerMs) {
      const std::string marker =
          rateLimitMarker(options_.rateBytesPerSecond, limited.droppedSinceMarker);
      // Markers count against the size cap like the container's records.
      if (pastSizeLimit(batch, marker.size())) {
        reachSizeLimit(batch, stream, nowNs);
        continue;
      }
      addOwnRecord(batch, stream, marker, nowNs);
      limited.droppedSinceMarker = 0;
      limited.nextMarkerMs = nowMs + kRateMarkerIntervalMs;
    } else {
      nextDueMs = std::min(nextDueMs, limited.nextMarkerMs);
    }
  }
  if (nextDueMs == UINT64_MAX || sizeLimitReached_) {
    markerTimer_.reset();
    return;
  }
  if (!markerTimer_) markerTimer_ = loop::Timer::create(loop_, "container log rate-limit marker");
  if (!markerTimer_->active() || markerTimerDueMs_ != nextDueMs) {
    markerTimer_->start(nextDueMs - nowMs, 0, [this] { onMarkerTimer(); });
    markerTimerDueMs_ = nextDueMs;
  }
}

void LogWriter::onMarkerTimer() {
  RecordBatch& batch = openBatch();
  writeRateMarkers(batch, loopClockMs(), wallClockNs(), /*final=*/false);
  closeBatch(batch);
}

void LogWriter::startPending(PendingLine& line, int64_t nowNs) {
  line.firstByteNs = nowNs;
  line.firstByteMs = loop_.nowMs();
  if (options_.partialFlushMs > 0 && !flushTimer_->active()) {
    flushTimer_->start(options_.partialFlushMs, 0, [this] { onFlushTimer(); });
  }
}

void LogWriter::onFlushTimer() {
  RecordBatch& batch = openBatch();
  const uint64_t nowMs = loop_.nowMs();
  const int64_t nowNs = wallClockNs();
  uint64_t nextDueMs = UINT64_MAX;
  for (LogStream stream : {LogStream::kStdout, LogStream::kStderr}) {
    const PendingLine& line = pending(stream);
    if (line.bytes.empty()) continue;
    const uint64_t dueMs = line.firstByteMs + options_.partialFlushMs;
    if (dueMs <= nowMs) {
      addRecord(batch, stream, true, {}, nowNs);
    } else {
      nextDueMs = std::min(nextDueMs, dueMs);
    }
  }
  closeBatch(batch);
  // The timer runs whenever a line was left unfinished, so it also sees the buffers go idle.
  releaseIdleMemory();
  if (nextDueMs != UINT64_MAX) {
    flushTimer_->start(nextDueMs - nowMs, 0, [this] { onFlushTimer(); });
  }
}

RecordBatch& LogWriter::openBatch() {
  if (options_.writeThread == nullptr) {
    // Written before the call returns: one batch serves every writer of the thread.
    thread_local RecordBatch shared;
    return shared;
  }
  if (!batch_) batch_ = options_.writeThread->takeBatch();
  return *batch_;
}

void LogWriter::closeBatch(RecordBatch& batch) {
  if (!batch.empty()) {
    writeBatch(batch);
  } else if (journal_ && uncommittedBytes() >= kJournalDropCommitBytes) {
    // Output the limits dropped moves the offsets without a record. It stays in the container's
    // pipe until a commit consumes it: soon, or a container flooding past its cap would fill
    // its pipe with it and block.
    commitJournalAlone();
  }
  // An idle writer holds no batch memory.
  if (batch_) options_.writeThread->giveBack(std::move(batch_));
}

void LogWriter::writeBatch(RecordBatch& batch) {
  if (options_.writeThread != nullptr) {
    submitBatch(batch);
    return;
  }
  const uint64_t records = batch.records();
  const uint64_t contentBytes = batch.contentBytes();
  const ssize_t result = batch.writeTo(file_->get());
  if (result >= 0) fileBytes_ += static_cast<uint64_t>(result);
  if (journal_) {
    const JournalCommit commit = nextJournalCommit();
    journal_->commit(file_->get(), commit.offsets, commit.continued);
  }
  countWrite(result, records, contentBytes);
}

uint64_t LogWriter::journalOffset(size_t stream) const {
  // The unfinished line is not in the log: it stays in the container's pipe.
  return streamOffsets_[stream] - pending_[stream].bytes.size();
}

uint64_t LogWriter::uncommittedBytes() const {
  return journalOffset(0) - committedOffsets_[0] + journalOffset(1) - committedOffsets_[1];
}

JournalCommit LogWriter::nextJournalCommit() {
  JournalCommit commit;
  commit.journal = journal_;
  for (size_t s = 0; s < 2; ++s) {
    commit.offsets[s] = journalOffset(s);
    commit.continued[s] = pending_[s].continued;
  }
  committedOffsets_ = commit.offsets;
  return commit;
}

void LogWriter::commitJournalAlone() {
  JournalCommit commit = nextJournalCommit();
  if (options_.writeThread != nullptr) {
    options_.writeThread->submit(file_, nullptr, nullptr, std::move(commit));
  } else {
    journal_->commit(file_->get(), commit.offsets, commit.continued);
  }
}

void LogWriter::attachJournal(std::shared_ptr<LogJournal> journal, const LogJournalState& from) {
  journal_ = std::move(journal);
  streamOffsets_ = from.offsets;
  committedOffsets_ = from.offsets;
  pending_[0].continued = from.continued[0];
  pending_[1].continued = from.continued[1];
}

void LogWriter::submitBatch(RecordBatch& batch) {
  LogWriteThread& thread = *options_.writeThread;
  // The batch being built stays where it is, empty: callers hold references to it.
  std::unique_ptr<RecordBatch> full = thread.takeBatch();
  full->swap(batch);
  const uint64_t records = full->records();
  const uint64_t contentBytes = full->contentBytes();
  const uint64_t bytes = full->outputBytes();
  // Counted against the size cap now, taken back if the write fails.
  fileBytes_ += bytes;
  queuedBytes_ += bytes;
  if (queuedBytes_ >= kBacklogHighBytes) backlogged_ = true;
  JournalCommit commit;
  if (journal_) commit = nextJournalCommit();
  thread.submit(
      file_, std::move(full),
      [this, watch = lifetime_.watch(), generation = fileGeneration_, records, contentBytes,
       bytes](ssize_t result) {
        if (watch.expired()) return;
        queuedBytes_ -= bytes;
        if (result < 0 && generation == fileGeneration_) {
          fileBytes_ -= std::min(fileBytes_, bytes);
        }
        countWrite(result, records, contentBytes);
        if (backlogged_ && queuedBytes_ <= kBacklogLowBytes) {
          backlogged_ = false;
          if (backlogCleared_) backlogCleared_();
        }
      },
      std::move(commit));
}

void LogWriter::whenWritten(std::function<void()> done) {
  if (options_.writeThread == nullptr || queuedBytes_ == 0) return done();
  options_.writeThread->submit(nullptr, nullptr, [done = std::move(done)](ssize_t) { done(); });
}

void LogWriter::countWrite(ssize_t result, uint64_t records, uint64_t contentBytes) {
  if (result >= 0) {
    if (failing_) {
      spdlog::info("container log {}: writing again ({} failed write(s) so far)", path_,
                   stats_.writeErrors);
      failing_ = false;
    }
    stats_.recordsWritten += records;
    stats_.bytesWritten += static_cast<uint64_t>(result);
    return;
  }
  ++stats_.writeErrors;
  stats_.bytesDropped += contentBytes;
  stats_.lastError = "write " + path_ + ": " + std::strerror(static_cast<int>(-result));
  if (!failing_) {
    // Once per failing spell, not once per batch.
    spdlog::warn("{}; output is dropped until a write succeeds", stats_.lastError);
    failing_ = true;
  }
}

}  // namespace monocri::logging
