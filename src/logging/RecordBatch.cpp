#include "logging/RecordBatch.h"

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace monocri::logging {

void RecordBatch::appendContent(std::string_view content, bool mayReference) {
  if (!mayReference || content.size() < kReferenceMinBytes) {
    bytes_.append(content);
  } else {
    closeRun();
    segments_.push_back({content.data(), 0, content.size()});
    referencedBytes_ += content.size();
  }
  contentBytes_ += content.size();
}

ssize_t RecordBatch::writeTo(int fd) {
  closeRun();
  iov_.clear();
  size_t total = 0;
  for (const Segment& s : segments_) {
    const char* base = s.external != nullptr ? s.external : bytes_.data() + s.offset;
    iov_.push_back({const_cast<char*>(base), s.length});
    total += s.length;
  }
  size_t written = 0;
  size_t next = 0;
  int error = 0;
  while (next < iov_.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov_.size() - next, IOV_MAX));
    const ssize_t n = ::writev(fd, iov_.data() + next, count);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n < 0 ? errno : EIO;
      break;
    }
    written += static_cast<size_t>(n);
    size_t advance = static_cast<size_t>(n);
    while (next < iov_.size() && advance >= iov_[next].iov_len) {
      advance -= iov_[next].iov_len;
      ++next;
    }
    if (advance > 0) {
      iov_[next].iov_base = static_cast<char*>(iov_[next].iov_base) + advance;
      iov_[next].iov_len -= advance;
    }
  }
  clear();
  if (error == 0) return static_cast<ssize_t>(total);
  if (written > 0) {
    // O_APPEND left the offset at the end of what this batch wrote.
    const off_t end = ::lseek(fd, 0, SEEK_CUR);
    if (end >= static_cast<off_t>(written)) {
      (void)!::ftruncate(fd, end - static_cast<off_t>(written));
    }
  }
  return -error;
}

void RecordBatch::Bytes::grow(size_t needed) {
  const size_t capacity = std::max(needed, std::max<size_t>(capacity_ * 2, 4096));
  // Not value-initialized: every byte is written before it is read.
  std::unique_ptr<char[]> bigger(new char[capacity]);
  if (size_ > 0) std::memcpy(bigger.get(), data_.get(), size_);
  data_ = std::move(bigger);
  capacity_ = capacity;
}

void RecordBatch::clear() {
  bytes_.clear();
  segments_.clear();
  runStart_ = 0;
  records_ = 0;
  contentBytes_ = 0;
  referencedBytes_ = 0;
}

void RecordBatch::swap(RecordBatch& other) noexcept {
  using std::swap;
  bytes_.swap(other.bytes_);
  swap(input_, other.input_);
  swap(inputBytes_, other.inputBytes_);
  swap(runStart_, other.runStart_);
  swap(segments_, other.segments_);
  swap(iov_, other.iov_);
  swap(records_, other.records_);
  swap(contentBytes_, other.contentBytes_);
  swap(referencedBytes_, other.referencedBytes_);
  swap(haveStamp_, other.haveStamp_);
  swap(stampTimeNs_, other.stampTimeNs_);
  swap(stamp_, other.stamp_);
}

void RecordBatch::closeRun() {
  if (bytes_.size() > runStart_) {
    segments_.push_back({nullptr, runStart_, bytes_.size() - runStart_});
    runStart_ = bytes_.size();
  }
}

}  // namespace monocri::logging
