// The log journal's recovery on arbitrary crash leftovers: whatever the log holds past the
// committed size (the container's records, the daemon's own, garbage, a torn record) and
// whatever the container's pipes hold. Beyond not crashing:
// - the log ends with a whole record (or is empty) and its size is the state's;
// - every whole line past the commit is counted once, as the container's or as not;
// - the offsets never pass what the pipes held, move only over bytes the log's records hold,
//   and exactly that much left each pipe;
// - a second recovery finds nothing more to do.
//
// Input: [stdout length: 2 bytes] [stderr length: 2 bytes] what the stdout pipe holds, what the
// stderr pipe holds, then the log's bytes past the commit.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "FuzzScratch.h"
#include "logging/LogJournal.h"
#include "state/UniqueFd.h"

using namespace monocri::logging;

namespace {

void writeFile(const std::string& path, std::string_view bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string readFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const size_t outLength = static_cast<size_t>(data[0]) << 8 | data[1];
  const size_t errLength = static_cast<size_t>(data[2]) << 8 | data[3];
  std::string_view rest(reinterpret_cast<const char*>(data) + 4, size - 4);
  if (outLength + errLength > rest.size()) return 0;
  const std::string_view held[2] = {rest.substr(0, outLength), rest.substr(outLength, errLength)};
  const std::string_view logTail = rest.substr(outLength + errLength);

  ScratchDir dir("fuzz-log-journal");
  const std::string log = dir.path + "/0.log";
  const std::string journalDir = dir.path + "/journal";
  writeFile(log, "");
  {
    std::string error;
    CHECK(LogJournal::create(journalDir, log, error) != nullptr);
  }
  writeFile(log, logTail);
  std::array<monocri::state::UniqueFd, 2> readEnds, writeEnds;
  for (size_t s = 0; s < 2; ++s) {
    int fds[2];
    CHECK(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
    readEnds[s].reset(fds[0]);
    writeEnds[s].reset(fds[1]);
    CHECK(::fcntl(fds[0], F_SETPIPE_SZ, 256 * 1024) > 0);
    CHECK(::write(fds[1], held[s].data(), held[s].size()) == static_cast<ssize_t>(held[s].size()));
  }
  const std::array<int, 2> pipes = {readEnds[0].get(), readEnds[1].get()};

  LogJournalRecovery found;
  std::string error;
  auto journal = LogJournal::recover(journalDir, log, pipes, {}, found, error);
  CHECK(journal != nullptr);
  const std::string after = readFile(log);
  CHECK(after.empty() || after.back() == '\n');
  CHECK(after == logTail.substr(0, after.size()));
  CHECK(found.tornBytesCut == logTail.size() - after.size());
  CHECK(found.state.logSize == after.size());
  size_t lines = 0;
  for (char c : after)
    lines += c == '\n' ? 1 : 0;
  CHECK(found.recordsAfterCommit + found.ownRecordsAfterCommit == lines);
  for (size_t s = 0; s < 2; ++s) {
    CHECK(found.state.offsets[s] <= held[s].size());
    // Exactly the logged bytes left the pipe; the rest is there, in order.
    std::string left(held[s].size(), '\0');
    const ssize_t n = left.empty() ? 0 : ::read(pipes[s], left.data(), left.size());
    left.resize(n > 0 ? static_cast<size_t>(n) : 0);
    CHECK(left == held[s].substr(found.state.offsets[s]));
    CHECK(::write(writeEnds[s].get(), left.data(), left.size()) ==
          static_cast<ssize_t>(left.size()));
  }
  CHECK(found.state.offsets[0] + found.state.offsets[1] <= after.size());
  journal.reset();

  // Nothing is left to reconcile: the state now covers the whole log.
  LogJournalRecovery again;
  auto second = LogJournal::recover(journalDir, log, pipes, {}, again, error);
  CHECK(second != nullptr);
  CHECK(again.recordsAfterCommit == 0 && again.ownRecordsAfterCommit == 0);
  CHECK(again.tornBytesCut == 0);
  CHECK(again.state.offsets == found.state.offsets);
  CHECK(again.state.continued == found.state.continued);
  return 0;
}
