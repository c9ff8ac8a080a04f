#include "logging/LogReader.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace monocri::logging {

namespace {

constexpr size_t kReadBytes = 64 * 1024;
constexpr uint64_t kNoOffset = UINT64_MAX;

grpc::Status errnoStatus(const std::string& what, int error) {
  grpc::StatusCode code = grpc::StatusCode::kInternal;
  if (error == ENOENT || error == ENOTDIR) code = grpc::StatusCode::kNotFound;
  if (error == EACCES || error == EPERM) code = grpc::StatusCode::kPermissionDenied;
  return grpc::Status(code, what + ": " + std::strerror(error));
}

std::string directoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// pread until `length` bytes or the end of the file; the count read, or -errno.
ssize_t readAt(int fd, char* out, size_t length, uint64_t offset) {
  size_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(fd, out + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

}  // namespace

std::unique_ptr<LogReader> LogReader::open(std::string path, LogReadOptions options,
                                           grpc::Status& status) {
  // O_NONBLOCK: opening a FIFO planted at the path must not block; it is refused below.
  state::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) {
    status = errnoStatus("open container log " + path, errno);
    return nullptr;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    status = errnoStatus("stat container log " + path, errno);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    status = grpc::Status(grpc::StatusCode::kFailedPrecondition,
                          "container log " + path + " is not a regular file");
    return nullptr;
  }
  std::unique_ptr<LogReader> reader(new LogReader(std::move(path), options, std::move(fd)));
  reader->device_ = st.st_dev;
  reader->inode_ = st.st_ino;
  if (reader->options_.follow) {
    // Watched before the first read, so that no change after it goes unnoticed. Without
    // inotify (its limits reached), follow() polls.
    reader->inotify_.reset(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (reader->inotify_.valid() &&
        ::inotify_add_watch(
            reader->inotify_.get(), directoryOf(reader->path_).c_str(),
            IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE) < 0) {
      reader->inotify_.reset();
    }
  }
  if (reader->options_.tailLines) {
    status = reader->positionForTail(*reader->options_.tailLines);
    if (!status.isOk()) return nullptr;
  }
  status = grpc::Status::ok();
  return reader;
}

LogReader::LogReader(std::string path, LogReadOptions options, state::UniqueFd fd)
    : path_(std::move(path)),
      options_(options),
      fd_(std::move(fd)),
      decoder_(LogDecoderOptions{options.includeStdout, options.includeStderr, options.sinceNs,
                                 options.maxLineBytes}) {
  buffer_.resize(kReadBytes);
}

LogReader::~LogReader() = default;

grpc::Status LogReader::drain(const LogLineSink& sink) {
  while (!decoder_.stopped()) {
    const ssize_t n =
        ::pread(fd_.get(), buffer_.data(), buffer_.size(), static_cast<off_t>(readOffset_));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoStatus("read container log " + path_, errno);
    if (n == 0) break;
    readOffset_ += static_cast<uint64_t>(n);
    bytesRead_ += static_cast<uint64_t>(n);
    decoder_.feed(std::string_view(buffer_.data(), static_cast<size_t>(n)), sink);
  }
  return grpc::Status::ok();
}

grpc::Status LogReader::readAvailable(const LogLineSink& sink) {
  grpc::Status status;
  for (;;) {
    // Looked at before reading: the writer writes to one file at a time, so once the new file
    // has bytes the old one gets no more, and the drain below reads it to its true end.
    state::UniqueFd next;
    const bool replaced = options_.follow && replacedByNewFile(next);
    // Cut back in place (copytruncate, not kubelet's way): read it again from its start.
    struct stat st {};
    if (options_.follow && ::fstat(fd_.get(), &st) == 0 &&
        static_cast<uint64_t>(st.st_size) < readOffset_) {
      readOffset_ = 0;
      decoder_.restart(0);
    }
    status = drain(sink);
    if (!status.isOk() || decoder_.stopped()) return status;
    if (!replaced) break;
    if (::fstat(next.get(), &st) != 0) return errnoStatus("stat container log " + path_, errno);
    fd_ = std::move(next);
    device_ = st.st_dev;
    inode_ = st.st_ino;
    readOffset_ = 0;
    decoder_.restart(0);
    ++rotationsFollowed_;
  }
  // Not following, this is the end: a record without its '\n' was cut short.
  if (!options_.follow) decoder_.restart(readOffset_);
  decoder_.flushUnfinished(sink);
  return status;
}

bool LogReader::replacedByNewFile(state::UniqueFd& next) {
  struct stat st {};
  // Between kubelet's rename and the writer's reopen there is no file at the path: the old
  // one is still the one written.
  if (::stat(path_.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (st.st_dev == device_ && st.st_ino == inode_) return false;
  next.reset(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!next.valid()) return false;
  if (::fstat(next.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
    next.reset();  // the writer may still be writing to the old file
    return false;
  }
  return true;
}

grpc::Status LogReader::follow(const LogLineSink& sink,
                               const std::function<bool()>& keepFollowing) {
  if (!options_.follow) {
    return grpc::Status(grpc::StatusCode::kFailedPrecondition,
                        "LogReader::follow needs a reader opened with follow = true");
  }
  for (;;) {
    grpc::Status status = readAvailable(sink);
    if (!status.isOk() || decoder_.stopped()) return status;
    if (!keepFollowing()) return status;
    waitForChange();
  }
}

void LogReader::waitForChange() {
  const int timeoutMs = static_cast<int>(std::min<uint64_t>(options_.pollIntervalMs, 60'000));
  if (!inotify_.valid()) {
    ::poll(nullptr, 0, timeoutMs);
    return;
  }
  pollfd watch{inotify_.get(), POLLIN, 0};
  if (::poll(&watch, 1, timeoutMs) > 0) {
    // The events only say "look again"; empty the queue.
    alignas(inotify_event) char events[4096];
    while (::read(inotify_.get(), events, sizeof events) > 0) {
    }
  }
}

grpc::Status LogReader::positionForTail(uint64_t lines) {
  // Backwards from the end, record by record: count the last `lines` F records of the streams
  // read, then, for each of those streams, find the F record that ends the line before its
  // first selected one. Its selected lines (P records included) all start after that F.
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) return errnoStatus("stat container log " + path_, errno);
  const std::array<bool, 2> wanted{options_.includeStdout, options_.includeStderr};
  std::array<uint64_t, 2> boundary{kNoOffset, kNoOffset};
  uint64_t found = 0;
  uint64_t lastRecordEnd = 0;  // after the last '\n': an unfinished record may follow
  bool done = false;

  std::string block(kReadBytes, '\0');
  std::string header(kMaxLogHeaderBytes, '\0');
  uint64_t blockStart = static_cast<uint64_t>(st.st_size);
  size_t blockLength = 0;
  // The record [start, end), its '\n' at `end`. True when the scan may stop.
  auto visit = [&](uint64_t start, uint64_t end) -> bool {
    const size_t headerLength =
        static_cast<size_t>(std::min<uint64_t>(end - start, kMaxLogHeaderBytes));
    std::string_view prefix;
    if (start + headerLength <= blockStart + blockLength) {
      prefix = std::string_view(block.data() + (start - blockStart), headerLength);
    } else {
      const ssize_t n = readAt(fd_.get(), header.data(), headerLength, start);
      if (n < 0) return false;
      prefix = std::string_view(header.data(), static_cast<size_t>(n));
    }
    // A verdict on the first kMaxLogHeaderBytes bytes is the verdict on the whole record.
    LogRecordView record;
    if (!parseLogRecord(prefix, record)) return false;
    const size_t stream = static_cast<size_t>(record.stream);
    if (!wanted[stream] || record.partial) return false;
    if (found < lines) {
      ++found;
      return false;
    }
    if (boundary[stream] == kNoOffset) boundary[stream] = end + 1;
    return (!wanted[0] || boundary[0] != kNoOffset) && (!wanted[1] || boundary[1] != kNoOffset);
  };

  uint64_t lineEnd = kNoOffset;  // the '\n' of the record whose start is looked for
  while (blockStart > 0 && !done) {
    blockLength = static_cast<size_t>(std::min<uint64_t>(blockStart, kReadBytes));
    blockStart -= blockLength;
    const ssize_t n = readAt(fd_.get(), block.data(), blockLength, blockStart);
    if (n < 0) return errnoStatus("read container log " + path_, static_cast<int>(-n));
    if (static_cast<size_t>(n) != blockLength) {
      blockStart = 0;  // cut short meanwhile: read it all
      lineEnd = kNoOffset;
      found = 0;
      break;
    }
    size_t searchEnd = blockLength;
    while (!done && searchEnd > 0) {
      const void* hit = ::memrchr(block.data(), '\n', searchEnd);
      if (hit == nullptr) break;
      const size_t at = static_cast<size_t>(static_cast<const char*>(hit) - block.data());
      const uint64_t newline = blockStart + at;
      if (lineEnd == kNoOffset) {
        lastRecordEnd = newline + 1;
        done = lines == 0;
      } else {
        done = visit(newline + 1, lineEnd);
      }
      lineEnd = newline;
      searchEnd = at;
    }
  }
  if (!done && lineEnd != kNoOffset) done = visit(0, lineEnd);

  std::array<uint64_t, 2> streamStart{0, 0};
  if (lines == 0) {
    streamStart = {lastRecordEnd, lastRecordEnd};
  } else if (found == lines) {
    for (size_t s = 0; s < 2; ++s)
      streamStart[s] = boundary[s] == kNoOffset ? 0 : boundary[s];
  }
  uint64_t start = kNoOffset;
  for (size_t s = 0; s < 2; ++s) {
    if (wanted[s]) start = std::min(start, streamStart[s]);
  }
  if (start == kNoOffset) start = lastRecordEnd;  // no stream wanted: nothing to show
  readOffset_ = start;
  decoder_.restart(start);
  decoder_.skipBefore(LogStream::kStdout, streamStart[0]);
  decoder_.skipBefore(LogStream::kStderr, streamStart[1]);
  return grpc::Status::ok();
}

}  // namespace monocri::logging
