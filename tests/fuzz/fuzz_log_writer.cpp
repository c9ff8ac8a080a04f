// The CRI log writer on arbitrary container output, split at arbitrary points across stdout and
// stderr, with kubelet's rename + reopen in between: every record in the files is well-formed
// to the byte, no record is longer than the cap, each carries the arrival time of its first
// byte, and each stream's records give back exactly the bytes the container wrote (plus the '\n'
// that finish() adds to an unfinished last line). The reader's decoder must agree.
//
// With a size cap or a rate limit, each stream's lines in the files (markers aside) are
// prefixes of the lines the container wrote, in order, none twice, each record still stamped
// with its first byte's arrival; no file holds container records past the cap, nor more than one
// size marker; the content that passed stays within the rate; every byte is written or counted
// as dropped; the rate markers tell no more than was dropped (all of it without a cap).
//
// Input: [max line byte] [flags byte] [cap byte if flags & 4] [rate byte, burst byte if
// flags & 8] then operations: a byte 0xFF renames the file and reopens it; with a rate limit,
// 0xFE moves the loop clock on by 4 ms times the next byte; any other byte o writes the next
// (o >> 1) input bytes to stream (o & 1).
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "FuzzScratch.h"
#include "logging/LogDecoder.h"
#include "logging/LogWriter.h"

using namespace monocri::logging;

namespace {

std::string readFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

// When each byte of a stream arrived: the write calls as (first byte's offset, clock).
struct Arrivals {
  std::vector<std::pair<size_t, int64_t>> calls;
  std::string bytes;
  int64_t timeOf(size_t offset, int64_t finishNs) const {
    if (offset >= bytes.size()) return finishNs;  // the '\n' finish() adds
    auto it = std::upper_bound(calls.begin(), calls.end(), std::make_pair(offset, INT64_MAX));
    return std::prev(it)->second;
  }
};

// One record, checked to the byte against what the writer must produce.
LogRecord strictRecord(std::string_view line) {
  LogRecord record;
  CHECK(parseLogRecord(line, record));
  CHECK(line.size() >= kLogTimestampBytes + 10);
  CHECK(line.substr(0, kLogTimestampBytes) == formatLogTimestamp(record.timeNs));
  CHECK(line.substr(kLogTimestampBytes, 10) ==
        " " + std::string(logStreamName(record.stream)) + (record.partial ? " P " : " F "));
  return record;
}

// Only the size marker (one at most) and the empty F records closing cut lines lie past the cap.
void checkSizeCap(const std::string& file, uint64_t maxFileBytes) {
  const std::string sizeMarker = "[monocri] log size limit of " + std::to_string(maxFileBytes) +
                                 " bytes reached: further output is dropped until the log is "
                                 "rotated";
  uint64_t end = 0;
  size_t sizeMarkers = 0;
  size_t pos = 0;
  while (pos < file.size()) {
    const size_t newline = file.find('\n', pos);
    const LogRecord record = strictRecord(std::string_view(file).substr(pos, newline - pos));
    pos = newline + 1;
    if (record.content == sizeMarker) {
      ++sizeMarkers;
    } else if (!record.content.empty()) {
      end = pos;
    }
  }
  CHECK(end <= maxFileBytes);
  CHECK(sizeMarkers <= 1);
  CHECK(file.size() <= maxFileBytes + 3 * (kLogTimestampBytes + 11) + sizeMarker.size());
}

// The reader's decoder gives back the same lines.
void checkDecoderAgrees(const std::string& all, const std::array<std::string, 2>& rebuilt) {
  LogDecoder decoder({});
  std::array<std::string, 2> decoded;
  std::array<std::string, 2> joined;
  decoder.feed(all, [&](const LogLine& line) {
    const size_t s = static_cast<size_t>(line.stream);
    joined[s] += line.content;
    if (line.complete) {
      decoded[s] += joined[s] + "\n";
      joined[s].clear();
    }
    return true;
  });
  decoder.restart();
  CHECK(decoder.stats().malformedRecords == 0);
  CHECK(decoded[0] == rebuilt[0] && decoded[1] == rebuilt[1]);
}

void checkExactLog(const std::string& all, const std::array<Arrivals, 2>& streams, int64_t finishNs,
                   const LogWriterOptions& options) {
  // Record by record, strictly.
  std::array<std::string, 2> rebuilt;
  std::array<bool, 2> afterChunk{false, false};
  size_t pos = 0;
  while (pos < all.size()) {
    const size_t newline = all.find('\n', pos);
    const std::string_view line(all.data() + pos, newline - pos);
    pos = newline + 1;
    const LogRecord record = strictRecord(line);
    CHECK(record.content.size() <= options.maxLineBytes);
    if (record.partial) {
      CHECK(!record.content.empty());
      // Without the timer, a P record is only ever a full-size chunk.
      if (options.partialFlushMs != 0) CHECK(record.content.size() == options.maxLineBytes);
    }
    const size_t s = static_cast<size_t>(record.stream);
    // A line of at most maxLineBytes is one F record: a chunked line ends in a non-empty F.
    if (!record.partial && afterChunk[s] && options.partialFlushMs != 0) {
      CHECK(!record.content.empty());
    }
    afterChunk[s] = record.partial;
    CHECK(record.timeNs == streams[s].timeOf(rebuilt[s].size(), finishNs));
    rebuilt[s] += record.content;
    if (!record.partial) rebuilt[s] += '\n';
  }
  for (size_t s = 0; s < 2; ++s) {
    std::string expected = streams[s].bytes;
    if (!expected.empty() && expected.back() != '\n') expected += '\n';
    CHECK(rebuilt[s] == expected);
  }
  checkDecoderAgrees(all, rebuilt);
}

// The lines the container wrote into a stream, each with the offset of its first byte; an
// unfinished last line counts as a line.
std::vector<std::pair<size_t, std::string_view>> writtenLines(const std::string& bytes) {
  std::vector<std::pair<size_t, std::string_view>> lines;
  size_t start = 0;
  while (start < bytes.size()) {
    size_t end = bytes.find('\n', start);
    if (end == std::string::npos) end = bytes.size();
    lines.emplace_back(start, std::string_view(bytes).substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

void checkLimitedLog(const std::string& all, const std::array<Arrivals, 2>& streams,
                     int64_t finishNs, const LogWriterOptions& options,
                     const LogWriter::Stats& stats, uint64_t elapsedMs) {
  struct StreamCheck {
    std::vector<std::pair<size_t, std::string_view>> written;
    size_t nextWritten = 0;
    std::string line;  // the P contents so far of the line in progress
    std::vector<std::pair<int64_t, size_t>> records;  // its records: time, offset in the line
    std::string rebuilt;  // every record, markers included, as the decoder must see them
  };
  std::array<StreamCheck, 2> checks;
  for (size_t s = 0; s < 2; ++s)
    checks[s].written = writtenLines(streams[s].bytes);
  const std::string rateMarkerStart = "[monocri] rate limit of " +
                                      std::to_string(options.rateBytesPerSecond) +
                                      " bytes/s exceeded: ";
  uint64_t content = 0, finals = 0, rateTold = 0;
  size_t pos = 0;
  while (pos < all.size()) {
    const size_t newline = all.find('\n', pos);
    const std::string_view text(all.data() + pos, newline - pos);
    pos = newline + 1;
    const LogRecord record = strictRecord(text);
    const size_t s = static_cast<size_t>(record.stream);
    StreamCheck& check = checks[s];
    check.rebuilt += record.content;
    if (!record.partial) check.rebuilt += '\n';
    const bool atLineStart = check.records.empty();
    if (!record.partial && atLineStart && record.content.rfind("[monocri] ", 0) == 0) {
      if (record.content.rfind(rateMarkerStart, 0) == 0) {
        constexpr std::string_view kEnd = " bytes dropped";
        std::string_view count = std::string_view(record.content).substr(rateMarkerStart.size());
        CHECK(count.size() > kEnd.size() && count.substr(count.size() - kEnd.size()) == kEnd);
        count.remove_suffix(kEnd.size());
        CHECK(count.size() <= 19 && count.front() != '0');
        uint64_t told = 0;
        for (char digit : count) {
          CHECK(digit >= '0' && digit <= '9');
          told = told * 10 + static_cast<uint64_t>(digit - '0');
        }
        rateTold += told;
      } else {
        CHECK(options.maxFileBytes != 0);
        CHECK(record.content == "[monocri] log size limit of " +
                                    std::to_string(options.maxFileBytes) +
                                    " bytes reached: further output is dropped until the log "
                                    "is rotated");
      }
      continue;
    }
    CHECK(record.content.size() <= options.maxLineBytes);
    if (record.partial) {
      CHECK(!record.content.empty());
      if (options.partialFlushMs != 0) CHECK(record.content.size() == options.maxLineBytes);
    }
    check.records.emplace_back(record.timeNs, check.line.size());
    check.line += record.content;
    content += record.content.size();
    if (record.partial) continue;
    // The line ends: it is the prefix of a line written after the one the last line came from,
    // each record stamped with the arrival of its first byte (an empty F closing a cut line
    // with when it was written). The earliest such line is as good a match as any later one.
    ++finals;
    auto isSource = [&](const std::pair<size_t, std::string_view>& written) {
      if (written.second.substr(0, check.line.size()) != check.line) return false;
      for (const auto& [timeNs, offset] : check.records) {
        if (offset == check.line.size() && !check.line.empty()) continue;
        if (timeNs != streams[s].timeOf(written.first + offset, finishNs)) return false;
      }
      return true;
    };
    while (check.nextWritten < check.written.size() &&
           !isSource(check.written[check.nextWritten])) {
      ++check.nextWritten;
    }
    CHECK(check.nextWritten < check.written.size());
    ++check.nextWritten;
    check.line.clear();
    check.records.clear();
  }
  for (const StreamCheck& check : checks)
    CHECK(check.records.empty());  // finish() ended every line

  if (options.rateBytesPerSecond != 0) {
    const uint64_t burst =
        options.rateBurstBytes != 0 ? options.rateBurstBytes : options.rateBytesPerSecond;
    CHECK(content <= burst + options.rateBytesPerSecond * elapsedMs / 1000);
  }
  // Each byte handed over is in a record or counted as dropped; a line's '\n' may be either.
  const uint64_t dropped = stats.bytesDroppedBySizeLimit + stats.bytesDroppedByRateLimit;
  CHECK(content + dropped <= stats.bytesIn);
  CHECK(content + dropped + finals >= stats.bytesIn);
  CHECK(rateTold <= stats.bytesDroppedByRateLimit);
  if (options.maxFileBytes == 0) CHECK(rateTold == stats.bytesDroppedByRateLimit);
  checkDecoderAgrees(all, {checks[0].rebuilt, checks[1].rebuilt});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ScratchDir dir("fuzz-log-writer");
  if (size < 2) return 0;
  LogWriterOptions options;
  options.maxLineBytes = data[0] & 0x80 ? 16 * 1024 : 1 + data[0] % 64;
  const uint8_t flags = data[1];
  options.partialFlushMs = flags & 1 ? 0 : 1000;  // the timer never fires here (no loop run)
  const bool newlineRich = flags & 2;
  size_t at = 2;
  if (flags & 4) {
    if (at >= size) return 0;
    options.maxFileBytes = 64 + data[at++] * uint64_t{16};
  }
  if (flags & 8) {
    if (at + 2 > size) return 0;
    options.rateBytesPerSecond = 1 + data[at++] * uint64_t{8};
    options.rateBurstBytes = data[at++] * uint64_t{4};
  }
  const bool limited = options.maxFileBytes != 0 || options.rateBytesPerSecond != 0;
  int64_t clockNs = 1'795'304'460'000'000'000;
  options.clock = [&clockNs] { return clockNs; };
  uint64_t loopMs = 1'000'000;
  options.loopClockMs = [&loopMs] { return loopMs; };
  const uint64_t startMs = loopMs;

  const std::string path = dir.path + "/0.log";
  std::vector<std::string> files;  // rotated files, in order
  std::array<Arrivals, 2> streams;
  int64_t finishNs = 0;
  LogWriter::Stats stats;
  {
    monocri::loop::Loop loop;
    std::string error;
    auto writer = LogWriter::open(loop, path, options, error);
    CHECK(writer != nullptr);
    while (at < size) {
      const uint8_t op = data[at++];
      if (op == 0xFF) {
        files.push_back(path + "." + std::to_string(files.size()));
        CHECK(std::rename(path.c_str(), files.back().c_str()) == 0);
        CHECK(writer->reopen().isOk());
        continue;
      }
      if (op == 0xFE && options.rateBytesPerSecond != 0) {
        if (at < size) loopMs += data[at++] * uint64_t{4};
        continue;
      }
      const size_t length = std::min<size_t>(op >> 1, size - at);
      std::string bytes(reinterpret_cast<const char*>(data + at), length);
      at += length;
      if (newlineRich) {
        for (char& c : bytes) {
          if (static_cast<uint8_t>(c) % 16 == 0) c = '\n';
        }
      }
      if (limited) {
        // No container line may look like a marker: an F record "[monocri] ..." at a line's
        // start is the writer's.
        for (char& c : bytes) {
          if (c == '[') c = '{';
        }
      }
      Arrivals& stream = streams[op & 1];
      clockNs += 1000;
      stream.calls.emplace_back(stream.bytes.size(), clockNs);
      stream.bytes += bytes;
      writer->write(op & 1 ? LogStream::kStderr : LogStream::kStdout, bytes);
    }
    clockNs += 1000;
    finishNs = clockNs;
    writer->finish();
    stats = writer->stats();
    CHECK(stats.writeErrors == 0);
  }
  files.push_back(path);

  std::string all;
  for (const std::string& file : files) {
    const std::string bytes = readFile(file);
    // Each file holds whole records only.
    CHECK(bytes.empty() || bytes.back() == '\n');
    if (options.maxFileBytes != 0) checkSizeCap(bytes, options.maxFileBytes);
    all += bytes;
    std::filesystem::remove(file);
  }
  CHECK(stats.bytesIn == streams[0].bytes.size() + streams[1].bytes.size());
  if (limited) {
    checkLimitedLog(all, streams, finishNs, options, stats, loopMs - startMs);
  } else {
    CHECK(stats.bytesDroppedBySizeLimit == 0 && stats.bytesDroppedByRateLimit == 0);
    checkExactLog(all, streams, finishNs, options);
  }
  return 0;
}
