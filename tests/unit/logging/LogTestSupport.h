// What the logging tests share: a temporary directory, and a CRI log file read back and checked
// independently of the reader under test (a strict reading of the format the writer must
// produce).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "logging/LogRecord.h"

namespace monocri::logging::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/monocri-logging-XXXXXX";
    const char* made = ::mkdtemp(tmpl);
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// Files this process writes may not grow past `bytes` for the scope (RLIMIT_FSIZE, SIGXFSZ
// ignored): a write past it stops short, the next one fails with EFBIG, as on a full device.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    EXPECT_EQ(::getrlimit(RLIMIT_FSIZE, &saved_), 0);
    previous_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit limited = saved_;
    limited.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, previous_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  sighandler_t previous_ = SIG_DFL;
};

inline std::string readFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

inline void writeFile(const std::string& path, std::string_view bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The records of a file the writer produced, each checked to the byte: the fixed-width UTC
// timestamp, one space, stdout|stderr, one space, F|P, one space, the content, '\n'.
inline std::vector<LogRecord> strictRecords(const std::string& fileBytes) {
  std::vector<LogRecord> records;
  size_t pos = 0;
  while (pos < fileBytes.size()) {
    const size_t newline = fileBytes.find('\n', pos);
    EXPECT_NE(newline, std::string::npos) << "the file ends in the middle of a record";
    if (newline == std::string::npos) break;
    const std::string_view line(fileBytes.data() + pos, newline - pos);
    pos = newline + 1;
    EXPECT_GE(line.size(), kLogTimestampBytes + 10) << line;
    if (line.size() < kLogTimestampBytes + 10) continue;
    const std::string_view stamp = line.substr(0, kLogTimestampBytes);
    for (size_t i = 0; i < stamp.size(); ++i) {
      const char c = stamp[i];
      const char expected = std::string_view("0000-00-00T00:00:00.000000000Z")[i];
      if (expected == '0') {
        EXPECT_TRUE(c >= '0' && c <= '9') << "timestamp " << stamp;
      } else {
        EXPECT_EQ(c, expected) << "timestamp " << stamp;
      }
    }
    const std::string_view fields = line.substr(kLogTimestampBytes, 10);
    EXPECT_TRUE(fields == " stdout F " || fields == " stdout P " || fields == " stderr F " ||
                fields == " stderr P ")
        << line;
    LogRecord record;
    std::string why;
    EXPECT_TRUE(parseLogRecord(line, record, &why)) << why << ": " << line;
    EXPECT_EQ(record.content, line.substr(kLogTimestampBytes + 10));
    records.push_back(std::move(record));
  }
  return records;
}

// A stream's bytes as the records give them back: P contents, F contents followed by '\n'.
inline std::string streamBytes(const std::vector<LogRecord>& records, LogStream stream) {
  std::string bytes;
  for (const LogRecord& r : records) {
    if (r.stream != stream) continue;
    bytes += r.content;
    if (!r.partial) bytes += '\n';
  }
  return bytes;
}

inline std::string describe(const LogRecord& r) {
  return std::string(logStreamName(r.stream)) + (r.partial ? " P " : " F ") + r.content;
}

}  // namespace monocri::logging::testing
