// One record of a CRI log file, as kubelet and node log collectors read it:
//
//   2026-11-21T23:41:00.123456789Z stdout F the line
//   └ timestamp (RFC 3339, UTC) ┘ └stream┘ │ └ content: any bytes but '\n' ┘
//                                          └ tag: F ends a line, P is a chunk of a longer one
//
// Fields are separated by one space; the space after the tag is there even when the content is
// empty. A line is zero or more P records and one F record of the same stream; the contents
// concatenated are the line's bytes, its '\n' excluded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace monocri::logging {

enum class LogStream { kStdout, kStderr };

inline constexpr std::string_view logStreamName(LogStream stream) {
  return stream == LogStream::kStdout ? "stdout" : "stderr";
}

// "2026-11-21T23:41:00.123456789Z": what the writer always produces (fixed width, sortable).
inline constexpr size_t kLogTimestampBytes = 30;
// Longest header the parser accepts: a timestamp with an offset instead of Z
// ("...56.123456789+05:30", 35 bytes), a stream, a tag of kMaxLogTagBytes, three spaces.
inline constexpr size_t kMaxLogTagBytes = 32;
inline constexpr size_t kMaxLogHeaderBytes = 35 + 1 + 6 + 1 + kMaxLogTagBytes + 1;

struct LogRecord {
  int64_t timeNs = 0;  // nanoseconds since the Unix epoch, UTC
  LogStream stream = LogStream::kStdout;
  bool partial = false;  // a P record: the line goes on in a later record
  std::string content;
};

// The same, pointing into the parsed line.
struct LogRecordView {
  int64_t timeNs = 0;
  LogStream stream = LogStream::kStdout;
  bool partial = false;
  std::string_view content;
};

// Parses one line without its '\n'. Accepts what kubelet accepts from any runtime: an RFC 3339
// timestamp with 0 to 9 fractional digits and Z or a ±hh:mm offset; stream stdout or stderr; a
// tag whose first ':'-separated part is F or P (later parts, a forward-compatible extension,
// are ignored). False if malformed, with the reason in `why` when given.
bool parseLogRecord(std::string_view line, LogRecordView& out, std::string* why = nullptr);
bool parseLogRecord(std::string_view line, LogRecord& out, std::string* why = nullptr);

// Writes the kLogTimestampBytes characters of `timeNs` in UTC to `out` (no terminating NUL).
void formatLogTimestamp(int64_t timeNs, char* out);
std::string formatLogTimestamp(int64_t timeNs);

// An RFC 3339 timestamp as parseLogRecord accepts it; nullopt if malformed or outside what
// int64 nanoseconds hold (1677-09-21 to 2262-04-11).
std::optional<int64_t> parseLogTimestamp(std::string_view text);

}  // namespace monocri::logging
