// Turns the bytes of a CRI log file into lines: records are parsed, and a stream's P records are
// joined with the F record that ends their line. Resumable: bytes may be fed in pieces of any
// size, split anywhere, with the same result. Hostile input is expected: a malformed record is
// counted, reported in stats() and skipped up to its '\n'; memory stays bounded whatever the
// input (a record's content is never held whole, a line is handed on in fragments of at most
// maxLineBytes).
//
//   record bytes ──▶ [header: ≤ kMaxLogHeaderBytes buffered] ──parsed──▶ [content: streamed]
//                          │ malformed                                        │ '\n'
//                          ▼                                                  ▼
//                    [skip to '\n']                           F: the line is complete
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "logging/LogRecord.h"

namespace monocri::logging {

struct LogLine {
  int64_t timeNs = 0;  // the timestamp of the line's first record
  LogStream stream = LogStream::kStdout;
  std::string_view content;   // without '\n'; valid during the call only
  bool continuation = false;  // an earlier fragment of this line was handed on before
  bool complete = false;      // the line ends here; false: a fragment, more of it may follow
};

// Receives lines; returns false to stop the reading.
using LogLineSink = std::function<bool(const LogLine&)>;

// The line as `monoctl logs` prints it: "<timestamp> " when asked for (only at the start of a
// line), the content, and '\n' if the line is complete.
void appendLogLine(std::string& out, const LogLine& line, bool timestamps);

struct LogDecoderOptions {
  bool includeStdout = true;
  bool includeStderr = true;
  std::optional<int64_t> sinceNs;     // lines whose first record is older are left out
  size_t maxLineBytes = 1024 * 1024;  // a longer line is handed on in fragments of this size
};

struct LogDecoderStats {
  uint64_t records = 0;           // well-formed records
  uint64_t malformedRecords = 0;  // skipped (or, if cut short at the end, kept in part)
  std::string lastMalformed;      // "byte 1234: malformed RFC 3339 timestamp"
};

class LogDecoder {
 public:
  explicit LogDecoder(LogDecoderOptions options);

  // The bytes that follow those fed before. Returns false once the sink asked to stop; the
  // decoder takes nothing more after that.
  bool feed(std::string_view bytes, const LogLineSink& sink);
  // No more bytes for now (the end of the file so far): what unfinished lines hold is handed on
  // as fragments. Their lines go on if later records continue them.
  bool flushUnfinished(const LogLineSink& sink);
  // The data ended, or the next bytes start another file (kubelet rotated it) at `offset`: a
  // record without its '\n' is reported as cut short. Unfinished lines go on.
  void restart(uint64_t offset = 0);
  // Records of `stream` that start before `offset` are skipped (where a tail begins).
  void skipBefore(LogStream stream, uint64_t offset) {
    skipBefore_[static_cast<size_t>(stream)] = offset;
  }

  uint64_t offset() const { return offset_; }  // of the next byte to be fed
  bool stopped() const { return stopped_; }
  const LogDecoderStats& stats() const { return stats_; }

 private:
  enum class State { kHeader, kContent, kSkipping };
  // The line being joined on one stream.
  struct OpenLine {
    std::string joined;  // content not handed on yet, at most maxLineBytes
    int64_t timeNs = 0;
    uint64_t startOffset = 0;
    bool open = false;            // records of it were seen, its F not yet
    bool leftOut = false;         // older than sinceNs
    bool handedOnBefore = false;  // a fragment went to the sink
  };

  void wholeRecord(std::string_view line, const LogLineSink& sink);
  // Starts the record whose header is at the front of `bytes` (a whole line or at least
  // kMaxLogHeaderBytes of it); false if malformed.
  bool beginRecord(std::string_view bytes, LogRecordView& record);
  void addContent(std::string_view piece, const LogLineSink& sink);
  void endRecord(const LogLineSink& sink);
  void handOn(OpenLine& line, LogStream stream, std::string_view content, bool complete,
              const LogLineSink& sink);
  void malformed(uint64_t at, std::string_view why);
  OpenLine& line(LogStream stream) { return lines_[static_cast<size_t>(stream)]; }

  LogDecoderOptions options_;
  State state_ = State::kHeader;
  std::string header_;  // the current record's first bytes, while its header is incomplete
  uint64_t offset_ = 0;
  uint64_t recordOffset_ = 0;
  // The record being read.
  LogStream stream_ = LogStream::kStdout;
  bool partial_ = false;
  bool wanted_ = false;  // of a stream and at a position the reader wants
  bool taken_ = false;   // wanted, and its line is not left out
  std::array<OpenLine, 2> lines_;
  std::array<uint64_t, 2> skipBefore_{};
  bool stopped_ = false;
  LogDecoderStats stats_;
};

}  // namespace monocri::logging
