// Throughput of the CRI log writer (a measurement program, not a test): container output fed
// in 64 KiB pieces, as the loop's reads deliver it, for short lines and for 1 MiB lines, and
// short lines again with the size cap and the rate limit on but never reached (what checking
// them costs). Each case is measured next to plain write(2) calls of the same bytes to a file,
// the ceiling a writer that formats nothing would reach.
//
//   bench-log-writer [--mib 256] [--dir /var/tmp] [--runs 3]
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "logging/LogWriter.h"

using monocri::logging::LogStream;
using monocri::logging::LogWriter;

namespace {

constexpr size_t kReadBytes = 64 * 1024;

double cpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Lines of `lineBytes` (the '\n' included) cut in 64 KiB reads: a whole number of lines that is
// also a whole number of reads, so that replaying the reads repeats the lines exactly.
std::vector<std::string> makeReads(size_t lineBytes) {
  std::string pattern;
  for (size_t i = 0; pattern.size() < (4u << 20) || pattern.size() % kReadBytes != 0; ++i) {
    std::string line(lineBytes - 1, static_cast<char>('a' + i % 26));
    for (size_t k = 0; k < line.size(); k += 7)
      line[k] = static_cast<char>('A' + (i + k) % 26);
    pattern += line + "\n";
  }
  std::vector<std::string> reads;
  for (size_t at = 0; at < pattern.size(); at += kReadBytes)
    reads.push_back(pattern.substr(at, kReadBytes));
  return reads;
}

struct Result {
  double seconds = 0;
  double cpu = 0;
};

Result measureWriter(const std::string& path, const std::vector<std::string>& reads, size_t passes,
                     const monocri::logging::LogWriterOptions& options) {
  monocri::loop::Loop loop;
  std::string error;
  auto writer = LogWriter::open(loop, path, options, error);
  if (writer == nullptr) {
    std::fprintf(stderr, "bench-log-writer: %s\n", error.c_str());
    std::exit(1);
  }
  const double cpu0 = cpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  for (size_t pass = 0; pass < passes; ++pass) {
    for (const std::string& read : reads)
      writer->write(LogStream::kStdout, read);
  }
  writer->finish();
  const auto end = std::chrono::steady_clock::now();
  Result result{std::chrono::duration<double>(end - start).count(), cpuSeconds() - cpu0};
  if (writer->stats().writeErrors != 0) {
    std::fprintf(stderr, "bench-log-writer: %s\n", writer->stats().lastError.c_str());
    std::exit(1);
  }
  if (writer->stats().bytesDroppedBySizeLimit + writer->stats().bytesDroppedByRateLimit != 0) {
    std::fprintf(stderr, "bench-log-writer: the limits were reached\n");
    std::exit(1);
  }
  return result;
}

Result measureRawWrites(const std::string& path, const std::vector<std::string>& reads,
                        size_t passes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    std::perror("bench-log-writer: open");
    std::exit(1);
  }
  const double cpu0 = cpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  for (size_t pass = 0; pass < passes; ++pass) {
    for (const std::string& read : reads) {
      if (::write(fd, read.data(), read.size()) != static_cast<ssize_t>(read.size())) {
        std::perror("bench-log-writer: write");
        std::exit(1);
      }
    }
  }
  const auto end = std::chrono::steady_clock::now();
  ::close(fd);
  return {std::chrono::duration<double>(end - start).count(), cpuSeconds() - cpu0};
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 256;
  std::string dirBase = "/var/tmp";
  int runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--mib") == 0) mib = std::strtoul(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--dir") == 0) dirBase = argv[i + 1];
    if (std::strcmp(argv[i], "--runs") == 0) runs = std::atoi(argv[i + 1]);
  }
  std::string tmpl = dirBase + "/bench-log-writer-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("bench-log-writer: mkdtemp");
    return 1;
  }
  const std::string dir = tmpl;
  const std::string path = dir + "/0.log";
  const size_t total = mib * 1024 * 1024;

  std::printf(
      "CRI log writer, %zu MiB of container output per run in 64 KiB reads, file in %s,\n"
      "median of %d runs. MB/s of input (1 MB = 10^6 bytes) per second of wall time and per\n"
      "second of CPU time (user + system: what the loop thread spends, whatever else runs).\n\n",
      mib, dir.c_str(), runs);
  std::printf("%-10s | %-22s | %-22s | %s\n", "", "LogWriter", "raw write(2)", "ratio");
  std::printf("%-10s | %10s %11s | %10s %11s | %6s %6s\n", "lines", "MB/s wall", "MB/s CPU",
              "MB/s wall", "MB/s CPU", "wall", "CPU");
  struct Case {
    const char* name;
    size_t lineBytes;
    bool limits;
  };
  for (const Case& c : {Case{"80 bytes", 80, false}, Case{"1 MiB", 1024 * 1024, false},
                        Case{"80 B, lim.", 80, true}}) {
    monocri::logging::LogWriterOptions options;
    if (c.limits) {
      options.maxFileBytes = UINT64_MAX;
      options.rateBytesPerSecond = monocri::logging::TokenBucket::kMaxBytes;
    }
    // A few MiB of reads, replayed: the input stays in the cache, as a pipe's does.
    const std::vector<std::string> reads = makeReads(c.lineBytes);
    const size_t passes = std::max<size_t>(1, total / (reads.size() * kReadBytes));
    const double inputBytes = static_cast<double>(passes * reads.size() * kReadBytes);
    std::vector<double> writerRates, writerCpuRates, rawRates, rawCpuRates;
    for (int run = 0; run < runs; ++run) {
      std::filesystem::remove(path);
      const Result w = measureWriter(path, reads, passes, options);
      std::filesystem::remove(path);
      const Result r = measureRawWrites(path, reads, passes);
      std::filesystem::remove(path);
      writerRates.push_back(inputBytes / w.seconds / 1e6);
      writerCpuRates.push_back(inputBytes / w.cpu / 1e6);
      rawRates.push_back(inputBytes / r.seconds / 1e6);
      rawCpuRates.push_back(inputBytes / r.cpu / 1e6);
    }
    const double writerRate = median(writerRates), rawRate = median(rawRates);
    const double writerCpuRate = median(writerCpuRates), rawCpuRate = median(rawCpuRates);
    std::printf("%-10s | %10.0f %11.0f | %10.0f %11.0f | %6.2f %6.2f\n", c.name, writerRate,
                writerCpuRate, rawRate, rawCpuRate, writerRate / rawRate,
                writerCpuRate / rawCpuRate);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
