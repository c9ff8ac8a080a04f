#include "monitor/keeper/ExitRecordFile.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace monocri::monitor {

namespace {

constexpr char kHeader[] = "monocri-exit-record 1\n";

// Reads a strict text cursor: fixed words, a token up to '\n', canonical decimal numbers.
class Cursor {
 public:
  Cursor(const char* data, size_t size) : text_(data, size) {}

  bool literal(std::string_view word) {
    if (text_.substr(0, word.size()) != word) return false;
    text_.remove_prefix(word.size());
    return true;
  }
  bool line(std::string_view& out) {
    const size_t end = text_.find('\n');
    if (end == std::string_view::npos) return false;
    out = text_.substr(0, end);
    text_.remove_prefix(end + 1);
    return true;
  }
  // Decimal without sign, no leading zero (but "0"), at most `max`, ending the line.
  bool number(uint64_t max, uint64_t& out) {
    std::string_view digits;
    if (!line(digits) || digits.empty() || digits.size() > 19) return false;
    if (digits.size() > 1 && digits[0] == '0') return false;
    out = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      out = out * 10 + static_cast<uint64_t>(c - '0');
    }
    return out <= max;
  }
  bool done() const { return text_.empty(); }

 private:
  std::string_view text_;
};

}  // namespace

size_t formatExitRecord(const ExitInfo& exit, char* out) {
  const int n = std::snprintf(
      out, kMaxExitRecordBytes, "%sowner %.*s\npid %d\nwait_status %d\ntime_ns %" PRId64 "\n",
      kHeader, static_cast<int>(exit.owner.length), exit.owner.bytes, static_cast<int>(exit.pid),
      static_cast<int>(exit.waitStatus), exit.timeNs);
  return n < 0 ? 0 : static_cast<size_t>(n);
}

const char* parseExitRecord(const char* data, size_t size, ExitInfo& out) {
  out = ExitInfo{};
  if (size > kMaxExitRecordBytes) return "larger than an exit record";
  Cursor cursor(data, size);
  if (!cursor.literal(kHeader)) return "not an exit record (first line)";
  std::string_view owner;
  if (!cursor.literal("owner ") || !cursor.line(owner) || !Owner::parse(owner, out.owner)) {
    return "bad owner line";
  }
  uint64_t pid = 0, status = 0, time = 0;
  if (!cursor.literal("pid ") || !cursor.number(INT32_MAX, pid) || pid == 0) {
    return "bad pid line";
  }
  if (!cursor.literal("wait_status ") || !cursor.number(0xffff, status) ||
      !isTerminationWaitStatus(static_cast<int32_t>(status))) {
    return "bad wait_status line";
  }
  if (!cursor.literal("time_ns ") || !cursor.number(INT64_MAX, time)) return "bad time_ns line";
  if (!cursor.done()) return "bytes after the last line";
  out.pid = static_cast<pid_t>(pid);
  out.waitStatus = static_cast<int32_t>(status);
  out.timeNs = static_cast<int64_t>(time);
  return nullptr;
}

void exitRecordName(const Owner& owner, pid_t pid, char (&out)[kMaxExitRecordNameBytes]) {
  std::snprintf(out, sizeof out, "%.*s.%d", static_cast<int>(owner.length), owner.bytes,
                static_cast<int>(pid));
}

void exitRecordTempName(const Owner& owner, pid_t pid, char (&out)[kMaxExitRecordNameBytes]) {
  std::snprintf(out, sizeof out, ".%.*s.%d.tmp", static_cast<int>(owner.length), owner.bytes,
                static_cast<int>(pid));
}

}  // namespace monocri::monitor
