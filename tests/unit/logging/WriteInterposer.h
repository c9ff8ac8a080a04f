// The write(2)/writev(2) interposer of the logging tests (defined in LogWriterTest.cpp): calls
// on the watched descriptor are counted, the calling thread noted, and each may be delayed.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>

namespace monocri::logging {

extern std::atomic<int> watchedFd;
extern std::atomic<uint64_t> watchedWrites;
extern std::atomic<pid_t> watchedWriterThread;     // the thread of the last watched call
extern std::atomic<unsigned> watchedWriteDelayMs;  // each watched call sleeps this long first

// The descriptor this process has open on `path` (-1 if none).
inline int descriptorOf(const std::string& path) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(entry.path(), ec) == path) {
      return std::stoi(entry.path().filename().string());
    }
  }
  return -1;
}

}  // namespace monocri::logging
