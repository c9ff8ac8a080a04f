#include "logging/LogJournal.h"

#include <fcntl.h>
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
constexpr uint32_t kStateVersion = 1;
constexpr size_t kStateBytes = 64;
// Past the committed size there is at most the batch being written when the daemon died (a few
// hundred KiB); more than this is not a log this journal wrote.
constexpr uint64_t kMaxUncommittedBytes = 64ull * 1024 * 1024;
constexpr uint64_t kPageBytes = 4096;
// Processed spool bytes are given back in pieces at least this big (a system call each).
constexpr uint64_t kPunchMinBytes = 1024 * 1024;

const char* const kSpoolNames[2] = {"1", "2"};

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
// offsets[2], continued[2], crc32 of everything before it.
void encodeState(const LogJournalState& s, unsigned char* out) {
  std::memset(out, 0, kStateBytes);
  put32(out, kStateMagic);
  put32(out + 4, kStateVersion);
  put64(out + 8, s.logInode);
  put64(out + 16, s.logSize);
  put64(out + 24, s.offsets[0]);
  put64(out + 32, s.offsets[1]);
  out[40] = s.continued[0] ? 1 : 0;
  out[41] = s.continued[1] ? 1 : 0;
  put32(out + 44, static_cast<uint32_t>(crc32(0, out, 44)));
}

bool decodeState(const unsigned char* in, LogJournalState& s) {
  if (get32(in) != kStateMagic || get32(in + 4) != kStateVersion) return false;
  if (get32(in + 44) != static_cast<uint32_t>(crc32(0, in, 44))) return false;
  if (in[40] > 1 || in[41] > 1) return false;
  s.logInode = get64(in + 8);
  s.logSize = get64(in + 16);
  s.offsets = {get64(in + 24), get64(in + 32)};
  s.continued = {in[40] == 1, in[41] == 1};
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

}  // namespace

std::shared_ptr<LogJournal> LogJournal::openFiles(const std::string& dir, int extraFlags,
                                                  std::string& error) {
  std::array<state::UniqueFd, 3> files;
  const char* names[3] = {kSpoolNames[0], kSpoolNames[1], "state"};
  for (size_t i = 0; i < 3; ++i) {
    const std::string path = dir + "/" + names[i];
    files[i].reset(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | extraFlags, 0600));
    if (!files[i].valid()) {
      error = errnoText("log journal " + path);
      return nullptr;
    }
  }
  return std::shared_ptr<LogJournal>(
      new LogJournal(dir, std::move(files[2]), std::move(files[0]), std::move(files[1])));
}

LogJournal::LogJournal(std::string dir, state::UniqueFd stateFd, state::UniqueFd stdoutSpool,
                       state::UniqueFd stderrSpool)
    : dir_(std::move(dir)), stateFd_(std::move(stateFd)) {
  spools_[0] = std::move(stdoutSpool);
  spools_[1] = std::move(stderrSpool);
}

LogJournal::~LogJournal() = default;

std::shared_ptr<LogJournal> LogJournal::create(const std::string& dir, const std::string& logPath,
                                               std::string& error) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    error = errnoText("log journal " + dir);
    return nullptr;
  }
  std::shared_ptr<LogJournal> journal = openFiles(dir, O_CREAT | O_TRUNC, error);
  if (!journal) return nullptr;
  struct stat log {};
  if (::stat(logPath.c_str(), &log) != 0) {
    error = errnoText("log journal: container log " + logPath);
    return nullptr;
  }
  LogJournalState first;
  first.logInode = log.st_ino;
  first.logSize = static_cast<uint64_t>(log.st_size);
  if (!journal->store(first, &error)) return nullptr;
  return journal;
}

std::shared_ptr<LogJournal> LogJournal::recover(const std::string& dir, const std::string& logPath,
                                                LogJournalRecovery& found, std::string& error) {
  std::shared_ptr<LogJournal> journal = openFiles(dir, 0, error);
  if (!journal) return nullptr;
  unsigned char stored[kStateBytes];
  LogJournalState state;
  if (::pread(journal->stateFd_.get(), stored, kStateBytes, 0) !=
          static_cast<ssize_t>(kStateBytes) ||
      !decodeState(stored, state)) {
    error = "log journal " + dir + "/state: not a state this daemon wrote";
    return nullptr;
  }
  found = {};
  for (size_t s = 0; s < 2; ++s) {
    struct stat spool {};
    if (::fstat(journal->spools_[s].get(), &spool) != 0) {
      error = errnoText("log journal " + dir + "/" + kSpoolNames[s]);
      return nullptr;
    }
    found.spoolEnds[s] = static_cast<uint64_t>(spool.st_size);
    // A spool shorter than its offset lost what it had (a reading error fell back to read(2)):
    // nothing of it is left to take up.
    if (state.offsets[s] > found.spoolEnds[s]) state.offsets[s] = found.spoolEnds[s];
    journal->punchedTo_[s] = state.offsets[s] / kPageBytes * kPageBytes;
  }

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
  size_t pos = 0;
  std::string expected;
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
    const uint64_t at = state.offsets[s];
    if (!readAt(journal->spools_[s].get(), expected, record.content.size() + 1, at)) {
      error = errnoText("log journal: reading the spool");
      return nullptr;
    }
    if (expected.size() < record.content.size() ||
        std::string_view(expected).substr(0, record.content.size()) != record.content) {
      ++found.ownRecordsAfterCommit;  // a marker, an F closing a cut line
      continue;
    }
    ++found.recordsAfterCommit;
    state.offsets[s] += record.content.size();
    // An F ends the line at its '\n'; one without (the container ended without it) only closes.
    if (!record.partial && expected.size() > record.content.size() && expected.back() == '\n') {
      state.offsets[s] += 1;
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
  journal->commit(log.get(), state.offsets, state.continued);
  found.state = state;
  found.state.logSize = state.logSize + pos;
  return journal;
}

void LogJournal::commit(int logFd, const std::array<uint64_t, 2>& offsets,
                        const std::array<bool, 2>& continued) {
  struct stat log {};
  if (::fstat(logFd, &log) != 0) return;
  LogJournalState state;
  state.logInode = log.st_ino;
  state.logSize = static_cast<uint64_t>(log.st_size);
  state.offsets = offsets;
  state.continued = continued;
  if (!store(state, nullptr)) return;
  for (size_t s = 0; s < 2; ++s) {
    const uint64_t to = offsets[s] / kPageBytes * kPageBytes;
    if (to < punchedTo_[s] + kPunchMinBytes) continue;
    // Best effort: a filesystem without hole punching keeps the bytes (the spool grows).
    (void)::fallocate(spools_[s].get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      static_cast<off_t>(punchedTo_[s]), static_cast<off_t>(to - punchedTo_[s]));
    punchedTo_[s] = to;
  }
}

bool LogJournal::store(const LogJournalState& state, std::string* error) {
  unsigned char bytes[kStateBytes];
  encodeState(state, bytes);
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
