// The records of one write to a CRI log file, built in memory: headers and short contents are
// copied in, long contents may be referenced where they lie (the caller's read buffer, when the
// batch is written before that buffer is reused, or a read buffer the batch took over), and the
// whole goes out with writev(2).
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "logging/LogRecord.h"
#include "loop/Loop.h"

namespace monocri::logging {

// "<timestamp> stdout F "
inline constexpr size_t kLogRecordHeaderBytes = kLogTimestampBytes + 1 + 6 + 1 + 1 + 1;

class RecordBatch {
 public:
  // A content piece at least this long is referenced instead of copied, when allowed.
  static constexpr size_t kReferenceMinBytes = 2048;
  // Copied bytes (headers, short contents) in one batch before it should be written out.
  static constexpr size_t kFullBytes = 256 * 1024;
  // iovecs in one batch; IOV_MAX is 1024 and a record adds at most three.
  static constexpr size_t kMaxSegments = 1000;

  bool empty() const { return records_ == 0; }
  bool full() const { return bytes_.size() >= kFullBytes || segments_.size() >= kMaxSegments; }
  uint64_t records() const { return records_; }
  uint64_t contentBytes() const { return contentBytes_; }
  // What the file grows by when the batch is written.
  uint64_t outputBytes() const { return bytes_.size() + referencedBytes_; }
  // Memory the batch keeps when emptied.
  size_t capacityBytes() const { return bytes_.capacity(); }

  // Once per record, in the writer's hottest path: inlined into each caller.
  [[gnu::always_inline]] void appendHeader(int64_t timeNs, LogStream stream, bool partial) {
    writeHeader(bytes_.extend(kLogRecordHeaderBytes), timeNs, stream, partial);
  }
  // A whole record with both pieces of its content copied: one bounds check, one copy each.
  [[gnu::always_inline]] void appendCopiedRecord(int64_t timeNs, LogStream stream, bool partial,
                                                 std::string_view head, std::string_view tail) {
    char* out = bytes_.extend(kLogRecordHeaderBytes + head.size() + tail.size() + 1);
    writeHeader(out, timeNs, stream, partial);
    out += kLogRecordHeaderBytes;
    if (!head.empty()) std::memcpy(out, head.data(), head.size());
    out += head.size();
    if (!tail.empty()) std::memcpy(out, tail.data(), tail.size());
    out[tail.size()] = '\n';
    contentBytes_ += head.size() + tail.size();
    ++records_;
  }
  // `mayReference`: the bytes stay where they are until the batch is written.
  void appendContent(std::string_view content, bool mayReference);
  // The read buffer (`size` bytes) that contents came in, kept by the batch until the loop takes
  // it back with releaseInput(): its long contents are then referenced, not copied, even when
  // the batch is written after the reader went on. clear() keeps it: the write thread clears.
  void adoptInput(std::unique_ptr<char[]> buffer, size_t size) {
    input_ = std::move(buffer);
    inputBytes_ = size;
  }
  bool hasInput() const { return input_ != nullptr; }
  bool inputHolds(std::string_view bytes) const {
    return loop::liesWithin(bytes, input_.get(), inputBytes_);
  }
  std::unique_ptr<char[]> releaseInput() {
    inputBytes_ = 0;
    return std::move(input_);
  }
  void endRecord() {
    *bytes_.extend(1) = '\n';
    ++records_;
  }

  // Writes the batch to `fd` and empties it. Returns the bytes written, or -errno; a short
  // write followed by an error is undone (the file is cut back to where the batch began), so
  // that the file only ever holds whole records.
  ssize_t writeTo(int fd);
  void clear();
  // Exchanges everything, contents and buffers: a full batch leaves, an empty one with its
  // memory takes its place.
  void swap(RecordBatch& other) noexcept;

 private:
  // A piece of the output: bytes_[offset, offset + length), or `length` bytes at `external`.
  struct Segment {
    const char* external;
    size_t offset;
    size_t length;
  };

  // Bytes appended in place, without the zero fill of std::string::resize().
  class Bytes {
   public:
    size_t size() const { return size_; }
    size_t capacity() const { return capacity_; }
    const char* data() const { return data_.get(); }
    // `n` bytes at the end, to be written by the caller.
    char* extend(size_t n) {
      if (size_ + n > capacity_) grow(size_ + n);
      char* at = data_.get() + size_;
      size_ += n;
      return at;
    }
    void append(std::string_view bytes) {
      if (!bytes.empty()) std::memcpy(extend(bytes.size()), bytes.data(), bytes.size());
    }
    void clear() { size_ = 0; }
    void swap(Bytes& other) noexcept {
      std::swap(data_, other.data_);
      std::swap(size_, other.size_);
      std::swap(capacity_, other.capacity_);
    }

   private:
    void grow(size_t needed);
    std::unique_ptr<char[]> data_;
    size_t size_ = 0;
    size_t capacity_ = 0;
  };

  void writeHeader(char* out, int64_t timeNs, LogStream stream, bool partial) {
    // The records of one read mostly share their arrival time.
    if (!haveStamp_ || timeNs != stampTimeNs_) {
      formatLogTimestamp(timeNs, stamp_);
      stampTimeNs_ = timeNs;
      haveStamp_ = true;
    }
    std::memcpy(out, stamp_, kLogTimestampBytes);
    out += kLogTimestampBytes;
    *out++ = ' ';
    std::memcpy(out, logStreamName(stream).data(), 6);
    out += 6;
    *out++ = ' ';
    *out++ = partial ? 'P' : 'F';
    *out = ' ';
  }
  // Ends the run of copied bytes since the last referenced piece.
  void closeRun();

  Bytes bytes_;
  std::unique_ptr<char[]> input_;
  size_t inputBytes_ = 0;
  size_t runStart_ = 0;
  std::vector<Segment> segments_;
  std::vector<iovec> iov_;
  uint64_t records_ = 0;
  uint64_t contentBytes_ = 0;
  uint64_t referencedBytes_ = 0;
  bool haveStamp_ = false;
  int64_t stampTimeNs_ = 0;
  char stamp_[kLogTimestampBytes] = {};
};

}  // namespace monocri::logging
