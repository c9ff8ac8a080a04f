// The log journal's recovery on arbitrary crash leftovers: whatever the log holds past the
// committed size (the container's records, the daemon's own, garbage, a torn record) and
// whatever the spools hold. Beyond not crashing:
// - the log ends with a whole record (or is empty) and its size is the state's;
// - every whole line past the commit is counted once, as the container's or as not;
// - the offsets never pass the spools' ends, and move only over bytes the log's records hold;
// - a second recovery finds nothing more to do.
//
// Input: [stdout spool length: 2 bytes] [stderr spool length: 2 bytes] stdout spool, stderr
// spool, then the log's bytes past the commit.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "logging/LogJournal.h"

using namespace monocri::logging;

namespace {

#define CHECK(condition)                                                        \
  do {                                                                          \
    if (!(condition)) {                                                         \
      std::fprintf(stderr, "fuzz_log_journal: check failed: %s\n", #condition); \
      std::abort();                                                             \
    }                                                                           \
  } while (0)

struct ScratchDir {
  ScratchDir() {
    char tmpl[] = "/tmp/fuzz-log-journal-XXXXXX";
    CHECK(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string path;
};

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
  const std::string_view spools[2] = {rest.substr(0, outLength), rest.substr(outLength, errLength)};
  const std::string_view logTail = rest.substr(outLength + errLength);

  ScratchDir dir;
  const std::string log = dir.path + "/0.log";
  const std::string journalDir = dir.path + "/journal";
  writeFile(log, "");
  {
    std::string error;
    CHECK(LogJournal::create(journalDir, log, error) != nullptr);
  }
  writeFile(journalDir + "/1", spools[0]);
  writeFile(journalDir + "/2", spools[1]);
  writeFile(log, logTail);

  LogJournalRecovery found;
  std::string error;
  auto journal = LogJournal::recover(journalDir, log, found, error);
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
  uint64_t contentBound = after.size();
  for (size_t s = 0; s < 2; ++s) {
    CHECK(found.spoolEnds[s] == spools[s].size());
    CHECK(found.state.offsets[s] <= found.spoolEnds[s]);
  }
  CHECK(found.state.offsets[0] + found.state.offsets[1] <= contentBound);
  journal.reset();

  // Nothing is left to reconcile: the state now covers the whole log.
  LogJournalRecovery again;
  auto second = LogJournal::recover(journalDir, log, again, error);
  CHECK(second != nullptr);
  CHECK(again.recordsAfterCommit == 0 && again.ownRecordsAfterCommit == 0);
  CHECK(again.tornBytesCut == 0);
  CHECK(again.state.offsets == found.state.offsets);
  CHECK(again.state.continued == found.state.continued);
  return 0;
}
