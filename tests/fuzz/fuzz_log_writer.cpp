// The CRI log writer on arbitrary container output, split at arbitrary points across stdout and
// stderr, with kubelet's rename + reopen in between: every record in the files is well-formed
// to the byte, no record is longer than the cap, each carries the arrival time of its first
// byte, and each stream's records give back exactly the bytes the container wrote (plus the '\n'
// that finish() adds to an unfinished last line). The reader's decoder must agree.
//
// Input: [max line byte] [flags byte] then operations: a byte 0xFF renames the file and
// reopens it; any other byte o writes the next (o >> 1) input bytes to stream (o & 1).
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "logging/LogDecoder.h"
#include "logging/LogWriter.h"

using namespace monocri::logging;

namespace {

#define CHECK(condition)                                                       \
  do {                                                                         \
    if (!(condition)) {                                                        \
      std::fprintf(stderr, "fuzz_log_writer: check failed: %s\n", #condition); \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

struct ScratchDir {
  ScratchDir() {
    char tmpl[] = "/tmp/fuzz-log-writer-XXXXXX";
    CHECK(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string path;
};

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ScratchDir dir;
  if (size < 2) return 0;
  LogWriterOptions options;
  options.maxLineBytes = data[0] & 0x80 ? 16 * 1024 : 1 + data[0] % 64;
  const uint8_t flags = data[1];
  options.partialFlushMs = flags & 1 ? 0 : 1000;  // the timer never fires here (no loop run)
  const bool newlineRich = flags & 2;
  int64_t clockNs = 1'795'304'460'000'000'000;
  options.clock = [&clockNs] { return clockNs; };

  const std::string path = dir.path + "/0.log";
  std::vector<std::string> files;  // rotated files, in order
  std::array<Arrivals, 2> streams;
  int64_t finishNs = 0;
  {
    monocri::loop::Loop loop;
    std::string error;
    auto writer = LogWriter::open(loop, path, options, error);
    CHECK(writer != nullptr);
    size_t at = 2;
    while (at < size) {
      const uint8_t op = data[at++];
      if (op == 0xFF) {
        files.push_back(path + "." + std::to_string(files.size()));
        CHECK(std::rename(path.c_str(), files.back().c_str()) == 0);
        CHECK(writer->reopen().isOk());
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
      Arrivals& stream = streams[op & 1];
      clockNs += 1000;
      stream.calls.emplace_back(stream.bytes.size(), clockNs);
      stream.bytes += bytes;
      writer->write(op & 1 ? LogStream::kStderr : LogStream::kStdout, bytes);
    }
    clockNs += 1000;
    finishNs = clockNs;
    writer->finish();
    CHECK(writer->stats().writeErrors == 0);
  }
  files.push_back(path);

  std::string all;
  for (const std::string& file : files) {
    const std::string bytes = readFile(file);
    // Each file holds whole records only.
    CHECK(bytes.empty() || bytes.back() == '\n');
    all += bytes;
    std::filesystem::remove(file);
  }

  // Record by record, strictly.
  std::array<std::string, 2> rebuilt;
  std::array<bool, 2> afterChunk{false, false};
  size_t pos = 0;
  while (pos < all.size()) {
    const size_t newline = all.find('\n', pos);
    const std::string_view line(all.data() + pos, newline - pos);
    pos = newline + 1;
    LogRecord record;
    CHECK(parseLogRecord(line, record));
    CHECK(line.size() >= kLogTimestampBytes + 10);
    CHECK(line.substr(0, kLogTimestampBytes) == formatLogTimestamp(record.timeNs));
    CHECK(line.substr(kLogTimestampBytes, 10) ==
          " " + std::string(logStreamName(record.stream)) + (record.partial ? " P " : " F "));
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

  // The reader's decoder gives back the same lines.
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
  return 0;
}
