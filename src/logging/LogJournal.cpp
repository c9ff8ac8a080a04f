#include "logging/LogJournal.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

namespace monocri::logging {

namespace {

constexpr uint32_t kStateMagic = 0x4a4c434d;  // "MCLJ"
constexpr uint32_t kStateVersion = 2;
constexpr size_t kStateBytes = 64;
// Past the committed size there are at most the batches queued when the daemon died (what a
// container pipe holds); more than this is not a log this journal wrote.
constexpr uint64_t kMaxUncommittedBytes = 64ull * 1024 * 1024;
// The scratch pipe tee(2) copies into holds what a container's pipe may (fs.pipe-max-size).
constexpr int kScratchPipeBytes = 1 << 20;

void put64(unsigned char* at, uint64_t value) {
  std::memcpy(at, &value, 8);
}
uint64_t get64(const unsigned char* at) {
  uint64_t value;
  std::memcpy(&value, at, 8);
  return value;
}
void put32(unsigned char* at, uint32_t value) {
  std::memcpy(at, &value, 4);
}
uint32_t get32(const unsigned char* at) {
  uint32_t value;
  std::memcpy(&value, at, 4);
  return value;
}

// Layout (host byte order: the file never leaves the node): magic, version, inode, size,
// offsets[2], moving[2], step, continued[2], crc32 of everything before it.
struct StoredState {
  LogJournalState state;
  uint8_t step = 0;
  std::array<uint64_t, 2> moving{};
};

void encodeState(const StoredState& s, unsigned char* out) {
  std::memset(out, 0, kStateBytes);
  put32(out, kStateMagic);
  put32(out + 4, kStateVersion);
  put64(out + 8, s.state.logInode);
  put64(out + 16, s.state.logSize);
  put64(out + 24, s.state.offsets[0]);
  put64(out + 32, s.state.offsets[1]);
  put64(out + 40, s.moving[0]);
  put64(out + 48, s.moving[1]);
  out[56] = s.step;
  out[57] = s.state.continued[0] ? 1 : 0;
  out[58] = s.state.continued[1] ? 1 : 0;
  put32(out + 60, static_cast<uint32_t>(crc32(0, out, 60)));
}

bool decodeState(const unsigned char* in, StoredState& s) {
  if (get32(in) != kStateMagic || get32(in + 4) != kStateVersion) return false;
  if (get32(in + 60) != static_cast<uint32_t>(crc32(0, in, 60))) return false;
  if (in[56] < 1 || in[56] > 2 || in[57] > 1 || in[58] > 1) return false;
  s.state.logInode = get64(in + 8);
  s.state.logSize = get64(in + 16);
  s.state.offsets = {get64(in + 24), get64(in + 32)};
  s.moving = {get64(in + 40), get64(in + 48)};
  for (size_t i = 0; i < 2; ++i) {
    if (s.moving[i] > s.state.offsets[i]) return false;
  }
  s.step = in[56];
  s.state.continued = {in[57] == 1, in[58] == 1};
  return true;
}

std::string errnoText(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// Reads exactly `size` bytes at `offset`, fewer only at the end of the file.
bool readAt(int fd, std::string& out, size_t size, uint64_t offset) {
  out.resize(size);
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::pread(fd, out.data() + got, size - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return true;
}

int devNull() {
  static const state::UniqueFd fd(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  return fd.get();
}

// Where tee(2) puts its copies, on the loop thread only; always empty between two uses.
struct ScratchPipe {
  state::UniqueFd read, write;
};
const ScratchPipe& scratchPipe() {
  static const ScratchPipe pipe = [] {
    ScratchPipe made;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
      made.read.reset(fds[0]);
      made.write.reset(fds[1]);
      (void)::fcntl(fds[0], F_SETPIPE_SZ, kScratchPipeBytes);
    }
    return made;
  }();
  return pipe;
}

size_t bytesInPipe(int fd) {
  int n = 0;
  return ::ioctl(fd, FIONREAD, &n) == 0 && n > 0 ? static_cast<size_t>(n) : 0;
}

// Consumes `count` bytes of the pipe `from` into /dev/null (no copy). False if it held fewer.
bool discard(int from, size_t count) {
  while (count > 0) {
    const ssize_t n = ::splice(from, nullptr, devNull(), nullptr, count, SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    count -= static_cast<size_t>(n);
  }
  return true;
}

bool readExactly(int fd, char* buffer, size_t size) {
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, buffer + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

// Everything the pipe holds (as far as the scratch pipe can take), without consuming it.
bool peekAll(int pipe, std::string& out) {
  out.clear();
  const ScratchPipe& scratch = scratchPipe();
  if (!scratch.read.valid()) return false;
  ssize_t n;
  do {
    n = ::tee(pipe, scratch.write.get(), kScratchPipeBytes, SPLICE_F_NONBLOCK);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN;  // empty
  out.resize(static_cast<size_t>(n));
  if (readExactly(scratch.read.get(), out.data(), out.size())) return true;
  discard(scratch.read.get(), bytesInPipe(scratch.read.get()));
  return false;
}

}  // namespace

LogJournal::LogJournal(std::string dir, state::UniqueFd stateFd)
    : dir_(std::move(dir)), stateFd_(std::move(stateFd)) {}

LogJournal::~LogJournal() = default;

bool LogJournal::makeHeldPipe(size_t stream, std::string& error) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    error = errnoText("log journal: a pipe");
    return false;
  }
  // One descriptor for both ends (a FIFO opened read-write): one for the keeper to hold.
  const std::string self = "/proc/self/fd/" + std::to_string(fds[0]);
  held_[stream].reset(::open(self.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK));
  const int openError = errno;
  ::close(fds[0]);
  ::close(fds[1]);
  if (!held_[stream].valid()) {
    errno = openError;
    error = errnoText("log journal: reopening a pipe read-write");
    return false;
  }
  return true;
}

std::shared_ptr<LogJournal> LogJournal::create(const std::string& dir, const std::string& logPath,
                                               std::string& error) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    error = errnoText("log journal " + dir);
    return nullptr;
  }
  const std::string path = dir + "/state";
  state::UniqueFd stateFd(
      ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_CREAT | O_TRUNC, 0600));
  if (!stateFd.valid()) {
    error = errnoText("log journal " + path);
    return nullptr;
  }
  std::shared_ptr<LogJournal> journal(new LogJournal(dir, std::move(stateFd)));
  if (!journal->makeHeldPipe(0, error) || !journal->makeHeldPipe(1, error)) return nullptr;
  struct stat log {};
  if (::stat(logPath.c_str(), &log) != 0) {
    error = errnoText("log journal: container log " + logPath);
    return nullptr;
  }
  journal->last_.logInode = log.st_ino;
  journal->last_.logSize = static_cast<uint64_t>(log.st_size);
  if (!journal->store(journal->last_, Step::kDraining, {}, &error)) return nullptr;
  return journal;
}

void LogJournal::adoptContainerPipe(LogStream stream, state::UniqueFd pipe) {
  const size_t s = static_cast<size_t>(stream);
  const int size = ::fcntl(pipe.get(), F_GETPIPE_SZ);
  if (size > 0 && ::fcntl(held_[s].get(), F_GETPIPE_SZ) < size &&
      ::fcntl(held_[s].get(), F_SETPIPE_SZ, size) < 0) {
    const int heldSize = ::fcntl(held_[s].get(), F_GETPIPE_SZ);
    if (heldSize > 0 && ::fcntl(pipe.get(), F_SETPIPE_SZ, heldSize) < 0) {
      spdlog::warn(
          "log journal {}: the container's {} pipe ({} bytes) is bigger than its held "
          "pipe ({} bytes) can be made: {}",
          dir_, logStreamName(stream), size, heldSize, std::strerror(errno));
    }
  }
  std::lock_guard lock(pipeMutex_);
  pipes_[s] = std::move(pipe);
}

PipePeek LogJournal::peek(LogStream stream, uint64_t seen, char* buffer, size_t size, size_t& got) {
  got = 0;
  const size_t s = static_cast<size_t>(stream);
  const ScratchPipe& scratch = scratchPipe();
  if (!scratch.read.valid()) return PipePeek::kFailed;
  ssize_t n;
  uint64_t skip;
  {
    std::lock_guard lock(pipeMutex_);
    skip = seen - consumed_[s];
    do {
      n = ::tee(pipes_[s].get(), scratch.write.get(), skip + size, SPLICE_F_NONBLOCK);
    } while (n < 0 && errno == EINTR);
  }
  if (n < 0) return errno == EAGAIN ? PipePeek::kEmpty : PipePeek::kFailed;
  if (n == 0) return PipePeek::kEnd;
  const size_t copied = static_cast<size_t>(n);
  const size_t fresh = copied > skip ? copied - skip : 0;
  bool ok = discard(scratch.read.get(), copied - fresh);
  if (ok && fresh > 0) ok = readExactly(scratch.read.get(), buffer, fresh);
  if (!ok) {
    discard(scratch.read.get(), bytesInPipe(scratch.read.get()));
    return PipePeek::kFailed;
  }
  got = fresh;
  return fresh > 0 ? PipePeek::kData : PipePeek::kAllSeen;
}

bool LogJournal::moveToHeld(const std::array<int, 2>& from, const std::array<uint64_t, 2>& counts,
                            std::string& error) {
  std::lock_guard lock(pipeMutex_);
  for (size_t s = 0; s < 2; ++s) {
    uint64_t left = counts[s];
    while (left > 0) {
      const ssize_t n = ::splice(from[s], nullptr, held_[s].get(), nullptr,
                                 static_cast<size_t>(left), SPLICE_F_NONBLOCK);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = n < 0 ? std::strerror(errno) : "the pipe ended";
        error = "consuming logged output of the container's " +
                std::string(logStreamName(static_cast<LogStream>(s))) + " pipe: " + error;
        return false;
      }
      left -= static_cast<uint64_t>(n);
      consumed_[s] += static_cast<uint64_t>(n);
    }
  }
  return true;
}

bool LogJournal::drainHeld(std::string& error) {
  for (size_t s = 0; s < 2; ++s) {
    if (!discard(held_[s].get(), bytesInPipe(held_[s].get()))) {
      error = errnoText("log journal: emptying a held pipe");
      return false;
    }
  }
  return true;
}

bool LogJournal::consume(const std::array<int, 2>& from, const LogJournalState& next,
                         std::string& error) {
  std::array<uint64_t, 2> counts{};
  for (size_t s = 0; s < 2; ++s)
    counts[s] = next.offsets[s] - last_.offsets[s];
  if (counts[0] == 0 && counts[1] == 0) {
    if (next.logInode == last_.logInode && next.logSize == last_.logSize &&
        next.continued == last_.continued) {
      return true;
    }
    if (!store(next, Step::kDraining, {}, &error)) return false;
    last_ = next;
    return true;
  }
  if (!store(next, Step::kMoving, counts, &error)) return false;
  // From here the state says the bytes are consumed: even a failure below leaves them so.
  last_ = next;
  return moveToHeld(from, counts, error) && store(next, Step::kDraining, counts, &error) &&
         drainHeld(error);
}

void LogJournal::commit(int logFd, const std::array<uint64_t, 2>& offsets,
                        const std::array<bool, 2>& continued) {
  struct stat log {};
  if (::fstat(logFd, &log) != 0) return;
  LogJournalState next;
  next.logInode = log.st_ino;
  next.logSize = static_cast<uint64_t>(log.st_size);
  next.continued = continued;
  for (size_t s = 0; s < 2; ++s)
    next.offsets[s] = std::max(offsets[s], last_.offsets[s]);
  std::string error;
  if (consume({pipes_[0].get(), pipes_[1].get()}, next, error)) return;
  if (!failed_) {
    spdlog::error("log journal {}: {}; logged output is consumed without it from now on", dir_,
                  error);
    failed_ = true;
  }
  // The output must leave the pipe all the same, or the container would block on it.
  std::lock_guard lock(pipeMutex_);
  for (size_t s = 0; s < 2; ++s) {
    if (next.offsets[s] > consumed_[s] &&
        discard(pipes_[s].get(), static_cast<size_t>(next.offsets[s] - consumed_[s]))) {
      consumed_[s] = next.offsets[s];
    }
  }
  last_ = next;
}

std::shared_ptr<LogJournal> LogJournal::recover(const std::string& dir, const std::string& logPath,
                                                const std::array<int, 2>& containerPipes,
                                                std::array<state::UniqueFd, 2> heldPipes,
                                                LogJournalRecovery& found, std::string& error) {
  const std::string path = dir + "/state";
  state::UniqueFd stateFd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (!stateFd.valid()) {
    error = errnoText("log journal " + path);
    return nullptr;
  }
  unsigned char bytes[kStateBytes];
  StoredState stored;
  if (::pread(stateFd.get(), bytes, kStateBytes, 0) != static_cast<ssize_t>(kStateBytes) ||
      !decodeState(bytes, stored)) {
    error = "log journal " + path + ": not a state this daemon wrote";
    return nullptr;
  }
  std::shared_ptr<LogJournal> journal(new LogJournal(dir, std::move(stateFd)));
  found = {};
  LogJournalState state = stored.state;
  for (size_t s = 0; s < 2; ++s) {
    if (heldPipes[s].valid()) {
      journal->held_[s] = std::move(heldPipes[s]);
    } else if (!journal->makeHeldPipe(s, error)) {
      return nullptr;
    }
  }
  // Finish the consumption the dead daemon was in.
  std::array<uint64_t, 2> moved{};
  if (stored.step == static_cast<uint8_t>(Step::kMoving)) {
    std::array<uint64_t, 2> left{};
    for (size_t s = 0; s < 2; ++s) {
      moved[s] = bytesInPipe(journal->held_[s].get());
      if (moved[s] > stored.moving[s]) {
        error = "log journal " + dir + ": a held pipe holds more than was being consumed";
        return nullptr;
      }
      left[s] = stored.moving[s] - moved[s];
    }
    journal->consumed_ = {state.offsets[0] - left[0], state.offsets[1] - left[1]};
    if (!journal->moveToHeld(containerPipes, left, error) ||
        !journal->store(state, Step::kDraining, stored.moving, &error)) {
      return nullptr;
    }
    found.stepFinished = true;
  }
  if (bytesInPipe(journal->held_[0].get()) + bytesInPipe(journal->held_[1].get()) > 0) {
    found.stepFinished = true;
  }
  if (!journal->drainHeld(error)) return nullptr;
  journal->consumed_ = state.offsets;
  journal->last_ = state;

  state::UniqueFd log(::open(logPath.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  struct stat logStat {};
  if (!log.valid() || ::fstat(log.get(), &logStat) != 0 || !S_ISREG(logStat.st_mode) ||
      logStat.st_ino != state.logInode || static_cast<uint64_t>(logStat.st_size) < state.logSize) {
    found.logReplaced = true;
    found.state = state;
    return journal;
  }
  const uint64_t size = static_cast<uint64_t>(logStat.st_size);
  const uint64_t after = std::min(size - state.logSize, kMaxUncommittedBytes);
  std::string tail;
  if (!readAt(log.get(), tail, after, state.logSize)) {
    error = errnoText("log journal: reading " + logPath);
    return nullptr;
  }
  // What each pipe holds next: the bytes the records past the commit were made of, if any.
  std::array<std::string, 2> pending;
  std::array<size_t, 2> matched{};
  if (!tail.empty()) {
    for (size_t s = 0; s < 2; ++s) {
      if (!peekAll(containerPipes[s], pending[s])) {
        error = errnoText("log journal: looking at the container's pipe");
        return nullptr;
      }
    }
  }
  size_t pos = 0;
  while (pos < tail.size()) {
    const size_t newline = tail.find('\n', pos);
    if (newline == std::string::npos) break;
    const std::string_view line(tail.data() + pos, newline - pos);
    pos = newline + 1;
    LogRecordView record;
    if (!parseLogRecord(line, record)) {
      ++found.ownRecordsAfterCommit;
      continue;
    }
    const size_t s = static_cast<size_t>(record.stream);
    const std::string_view expected = std::string_view(pending[s]).substr(matched[s]);
    if (expected.substr(0, record.content.size()) != record.content) {
      ++found.ownRecordsAfterCommit;  // a marker, an F closing a cut line
      continue;
    }
    ++found.recordsAfterCommit;
    matched[s] += record.content.size();
    // An F ends the line at its '\n'; one without (the container ended without it) only closes.
    if (!record.partial && expected.size() > record.content.size() &&
        expected[record.content.size()] == '\n') {
      matched[s] += 1;
    }
    state.continued[s] = record.partial;
  }
  if (pos < tail.size() && state.logSize + tail.size() == size) {
    // The batch was cut short by the daemon's death: its unfinished record goes.
    found.tornBytesCut = tail.size() - pos;
    if (::ftruncate(log.get(), static_cast<off_t>(state.logSize + pos)) != 0) {
      error = errnoText("log journal: cutting the torn record off " + logPath);
      return nullptr;
    }
  }
  state.logSize += pos;
  for (size_t s = 0; s < 2; ++s)
    state.offsets[s] += matched[s];
  if (!journal->consume(containerPipes, state, error)) return nullptr;
  found.state = state;
  return journal;
}

bool LogJournal::store(const LogJournalState& state, Step step,
                       const std::array<uint64_t, 2>& moving, std::string* error) {
  StoredState stored;
  stored.state = state;
  stored.step = static_cast<uint8_t>(step);
  stored.moving = moving;
  unsigned char bytes[kStateBytes];
  encodeState(stored, bytes);
  if (::pwrite(stateFd_.get(), bytes, kStateBytes, 0) == static_cast<ssize_t>(kStateBytes)) {
    return true;
  }
  if (error != nullptr) *error = errnoText("log journal " + dir_ + "/state");
  return false;
}

void LogJournal::removeFiles(const std::string& dir) {
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace monocri::logging
