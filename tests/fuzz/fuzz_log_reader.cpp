// The CRI log reader on arbitrary file bytes. Beyond not crashing:
// - the decoder gives the same lines and counts however the bytes are split;
// - lines are consistent: no fragment over maxLineBytes, continuations only after a fragment;
// - --since gives exactly the full reading's lines at or after the limit;
// - --tail N gives exactly the full reading's last N complete lines (with their fragments and
//   the unfinished lines after them), found by the backward scan;
// - a record that parses prints back to one that parses to the same fields, and the parser's
//   verdict on a record depends on its first kMaxLogHeaderBytes bytes only.
//
// Input: [options byte] [tail byte] [since byte], then the file's bytes.
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "FuzzScratch.h"
#include "logging/LogDecoder.h"
#include "logging/LogReader.h"

using namespace monocri::logging;

namespace {

struct Seen {
  int64_t timeNs;
  LogStream stream;
  std::string content;
  bool continuation;
  bool complete;
  bool operator==(const Seen&) const = default;
};

LogLineSink collectInto(std::vector<Seen>& out) {
  return [&out](const LogLine& line) {
    out.push_back(
        {line.timeNs, line.stream, std::string(line.content), line.continuation, line.complete});
    return true;
  };
}

std::vector<Seen> readFile(const std::string& path, const LogReadOptions& options,
                           uint64_t* malformed = nullptr) {
  monocri::grpc::Status status;
  auto reader = LogReader::open(path, options, status);
  CHECK(reader != nullptr);
  std::vector<Seen> lines;
  CHECK(reader->readAvailable(collectInto(lines)).isOk());
  if (malformed != nullptr) *malformed = reader->decoderStats().malformedRecords;
  return lines;
}

// What --tail N must give, computed from the full reading: the items of the last N complete
// lines, and for each stream everything after its last complete line that was not selected.
std::vector<Seen> expectedTail(const std::vector<Seen>& all, uint64_t n) {
  std::vector<size_t> completions;
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i].complete) completions.push_back(i);
  }
  std::array<int64_t, 2> boundary{-1, -1};
  const size_t unselected = completions.size() > n ? completions.size() - n : 0;
  for (size_t k = 0; k < unselected; ++k) {
    const size_t i = completions[k];
    boundary[static_cast<size_t>(all[i].stream)] = static_cast<int64_t>(i);
  }
  std::vector<Seen> out;
  for (size_t i = 0; i < all.size(); ++i) {
    if (static_cast<int64_t>(i) > boundary[static_cast<size_t>(all[i].stream)]) {
      out.push_back(all[i]);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ScratchDir dir("fuzz-log-reader");
  if (size < 3) return 0;
  const uint8_t flags = data[0];
  LogReadOptions options;
  options.includeStdout = (flags & 3) != 1;
  options.includeStderr = (flags & 3) != 2;
  options.maxLineBytes = flags & 4 ? 1 + (flags >> 3) : 1024 * 1024;
  const std::string_view file(reinterpret_cast<const char*>(data + 3), size - 3);

  // Split anywhere, decoded the same.
  LogDecoderOptions decoderOptions{options.includeStdout, options.includeStderr, std::nullopt,
                                   options.maxLineBytes};
  std::vector<Seen> whole;
  uint64_t wholeMalformed = 0;
  {
    LogDecoder decoder(decoderOptions);
    decoder.feed(file, collectInto(whole));
    decoder.restart();
    decoder.flushUnfinished(collectInto(whole));
    wholeMalformed = decoder.stats().malformedRecords;
  }
  {
    LogDecoder decoder(decoderOptions);
    std::vector<Seen> pieces;
    std::minstd_rand random(static_cast<uint32_t>(size) * 2654435761u + data[1]);
    for (size_t at = 0; at < file.size();) {
      const size_t n = std::min<size_t>(file.size() - at, 1 + random() % 97);
      decoder.feed(file.substr(at, n), collectInto(pieces));
      at += n;
    }
    decoder.restart();
    decoder.flushUnfinished(collectInto(pieces));
    CHECK(pieces == whole);
    CHECK(decoder.stats().malformedRecords == wholeMalformed);
  }

  // Lines are consistent.
  std::array<bool, 2> inFragment{false, false};
  for (const Seen& line : whole) {
    const size_t s = static_cast<size_t>(line.stream);
    CHECK(s == 0 ? options.includeStdout : options.includeStderr);
    CHECK(line.content.size() <= options.maxLineBytes);
    CHECK(line.continuation == inFragment[s]);
    inFragment[s] = !line.complete;
  }

  // The file reader agrees with the decoder, and --since and --tail with the full reading.
  const std::string path = dir.path + "/0.log";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(file.data(), static_cast<std::streamsize>(file.size()));
  }
  uint64_t fileMalformed = 0;
  CHECK(readFile(path, options, &fileMalformed) == whole);
  CHECK(fileMalformed == wholeMalformed);

  if (!whole.empty()) {
    LogReadOptions since = options;
    since.sinceNs = whole[data[2] % whole.size()].timeNs;
    std::vector<Seen> expected;
    for (const Seen& line : whole) {
      if (line.timeNs >= *since.sinceNs) expected.push_back(line);
    }
    CHECK(readFile(path, since) == expected);
  }

  LogReadOptions tail = options;
  tail.tailLines = data[1] % 16;
  const std::vector<Seen> tailed = readFile(path, tail);
  if (*tail.tailLines == 0) {
    // Only a record still being written at the end (no '\n' yet) may show.
    for (const Seen& line : tailed)
      CHECK(!line.complete);
  } else {
    CHECK(tailed == expectedTail(whole, *tail.tailLines));
  }

  // Records print back to themselves; a record's header decides its verdict.
  for (size_t pos = 0; pos < file.size();) {
    size_t end = file.find('\n', pos);
    if (end == std::string_view::npos) end = file.size();
    const std::string_view line = file.substr(pos, end - pos);
    pos = end + 1;
    LogRecord record, fromPrefix, again;
    const bool parsed = parseLogRecord(line, record);
    CHECK(parsed == parseLogRecord(line.substr(0, kMaxLogHeaderBytes), fromPrefix));
    if (!parsed) continue;
    const std::string printed = formatLogTimestamp(record.timeNs) + " " +
                                std::string(logStreamName(record.stream)) +
                                (record.partial ? " P " : " F ") + record.content;
    CHECK(parseLogRecord(printed, again));
    CHECK(again.timeNs == record.timeNs && again.stream == record.stream &&
          again.partial == record.partial && again.content == record.content);
  }
  std::filesystem::remove(path);
  return 0;
}
