#include "logging/LogDecoder.h"

#include <algorithm>
#include <cstring>

namespace monocri::logging {

namespace {

// A joined-line buffer emptied with more capacity than this gives it back.
constexpr size_t kKeptLineCapacity = 64 * 1024;

}  // namespace

void appendLogLine(std::string& out, const LogLine& line, bool timestamps) {
  if (timestamps && !line.continuation) {
    const size_t at = out.size();
    out.resize(at + kLogTimestampBytes);
    formatLogTimestamp(line.timeNs, out.data() + at);
    out.push_back(' ');
  }
  out.append(line.content);
  if (line.complete) out.push_back('\n');
}

LogDecoder::LogDecoder(LogDecoderOptions options) : options_(std::move(options)) {
  if (options_.maxLineBytes == 0) options_.maxLineBytes = 1;
}

bool LogDecoder::feed(std::string_view bytes, const LogLineSink& sink) {
  while (!bytes.empty() && !stopped_) {
    switch (state_) {
      case State::kHeader: {
        if (header_.empty()) recordOffset_ = offset_;
        const size_t want = kMaxLogHeaderBytes + 1 - header_.size();
        if (header_.empty()) {
          const auto* newline =
              static_cast<const char*>(std::memchr(bytes.data(), '\n', bytes.size()));
          if (newline != nullptr) {  // the common case: the whole record is here
            const size_t length = static_cast<size_t>(newline - bytes.data());
            wholeRecord(bytes.substr(0, length), sink);
            bytes.remove_prefix(length + 1);
            offset_ += length + 1;
            break;
          }
          if (bytes.size() >= want) {  // a long record: its header is here, its end is not
            LogRecordView record;
            if (beginRecord(bytes, record)) {
              state_ = State::kContent;
              addContent(record.content, sink);
            } else {
              state_ = State::kSkipping;
            }
            offset_ += bytes.size();
            bytes = {};
            break;
          }
        }
        // Gather the header, up to the record's end or enough bytes to parse it.
        const size_t take = std::min(bytes.size(), want);
        const auto* newline = static_cast<const char*>(std::memchr(bytes.data(), '\n', take));
        if (newline != nullptr) {
          const size_t length = static_cast<size_t>(newline - bytes.data());
          header_.append(bytes.substr(0, length));
          wholeRecord(header_, sink);
          header_.clear();
          bytes.remove_prefix(length + 1);
          offset_ += length + 1;
          break;
        }
        header_.append(bytes.substr(0, take));
        bytes.remove_prefix(take);
        offset_ += take;
        if (header_.size() > kMaxLogHeaderBytes) {
          LogRecordView record;
          if (beginRecord(header_, record)) {
            state_ = State::kContent;
            addContent(record.content, sink);
          } else {
            state_ = State::kSkipping;
          }
          header_.clear();
        }
        break;
      }
      case State::kContent: {
        const auto* newline =
            static_cast<const char*>(std::memchr(bytes.data(), '\n', bytes.size()));
        const size_t length =
            newline != nullptr ? static_cast<size_t>(newline - bytes.data()) : bytes.size();
        addContent(bytes.substr(0, length), sink);
        if (newline == nullptr) {
          offset_ += length;
          bytes = {};
          break;
        }
        endRecord(sink);
        state_ = State::kHeader;
        bytes.remove_prefix(length + 1);
        offset_ += length + 1;
        break;
      }
      case State::kSkipping: {
        const auto* newline =
            static_cast<const char*>(std::memchr(bytes.data(), '\n', bytes.size()));
        if (newline == nullptr) {
          offset_ += bytes.size();
          bytes = {};
          break;
        }
        const size_t length = static_cast<size_t>(newline - bytes.data());
        state_ = State::kHeader;
        bytes.remove_prefix(length + 1);
        offset_ += length + 1;
        break;
      }
    }
  }
  return !stopped_;
}

void LogDecoder::wholeRecord(std::string_view bytes, const LogLineSink& sink) {
  LogRecordView record;
  if (!beginRecord(bytes, record)) return;
  OpenLine& open = line(stream_);
  // The common case, handed on from where it lies: an F record that is a whole line.
  if (taken_ && !partial_ && open.joined.empty() &&
      record.content.size() <= options_.maxLineBytes) {
    handOn(open, stream_, record.content, true, sink);
    open.open = false;
    return;
  }
  addContent(record.content, sink);
  endRecord(sink);
}

bool LogDecoder::beginRecord(std::string_view bytes, LogRecordView& record) {
  std::string why;
  if (!parseLogRecord(bytes, record, &why)) {
    malformed(recordOffset_, why);
    return false;
  }
  ++stats_.records;
  stream_ = record.stream;
  partial_ = record.partial;
  const size_t index = static_cast<size_t>(record.stream);
  const bool included =
      record.stream == LogStream::kStdout ? options_.includeStdout : options_.includeStderr;
  wanted_ = included && recordOffset_ >= skipBefore_[index];
  taken_ = false;
  if (!wanted_) return true;
  OpenLine& open = line(stream_);
  if (!open.open) {
    open.open = true;
    open.timeNs = record.timeNs;
    open.startOffset = recordOffset_;
    open.leftOut = options_.sinceNs && record.timeNs < *options_.sinceNs;
    open.handedOnBefore = false;
  }
  taken_ = !open.leftOut;
  return true;
}

void LogDecoder::addContent(std::string_view piece, const LogLineSink& sink) {
  if (!taken_) return;
  OpenLine& open = line(stream_);
  while (!piece.empty() && !stopped_) {
    const size_t room = options_.maxLineBytes - open.joined.size();
    if (piece.size() <= room) {
      open.joined.append(piece);
      return;
    }
    // The line outgrows the bound: hand on a full fragment, keep joining after it.
    open.joined.append(piece.substr(0, room));
    piece.remove_prefix(room);
    handOn(open, stream_, open.joined, false, sink);
    open.joined.clear();
  }
}

void LogDecoder::endRecord(const LogLineSink& sink) {
  if (!wanted_ || partial_) return;
  OpenLine& open = line(stream_);
  if (taken_) handOn(open, stream_, open.joined, true, sink);
  open.joined.clear();
  if (open.joined.capacity() > kKeptLineCapacity) std::string().swap(open.joined);
  open.open = false;
}

void LogDecoder::handOn(OpenLine& open, LogStream stream, std::string_view content, bool complete,
                        const LogLineSink& sink) {
  if (stopped_) return;
  LogLine out;
  out.timeNs = open.timeNs;
  out.stream = stream;
  out.content = content;
  out.continuation = open.handedOnBefore;
  out.complete = complete;
  open.handedOnBefore = !complete;
  if (!sink(out)) stopped_ = true;
}

bool LogDecoder::flushUnfinished(const LogLineSink& sink) {
  // Oldest line first.
  std::array<LogStream, 2> order{LogStream::kStdout, LogStream::kStderr};
  if (line(LogStream::kStderr).startOffset < line(LogStream::kStdout).startOffset) {
    std::swap(order[0], order[1]);
  }
  for (LogStream stream : order) {
    OpenLine& open = line(stream);
    if (!open.open || open.leftOut || open.joined.empty()) continue;
    handOn(open, stream, open.joined, false, sink);
    open.joined.clear();
  }
  return !stopped_;
}

void LogDecoder::restart(uint64_t offset) {
  if (state_ == State::kContent || (state_ == State::kHeader && !header_.empty())) {
    malformed(recordOffset_, "record cut short (no '\\n' before the end of the file)");
  }
  state_ = State::kHeader;
  header_.clear();
  offset_ = offset;
  skipBefore_ = {};
  // A line the new file continues started in the old one: the offset of its start is gone.
  for (OpenLine& open : lines_)
    open.startOffset = 0;
}

void LogDecoder::malformed(uint64_t at, std::string_view why) {
  ++stats_.malformedRecords;
  stats_.lastMalformed = "byte " + std::to_string(at) + ": " + std::string(why);
}

}  // namespace monocri::logging
