// An exit record on disk: <exitDir>/<owner>.<pid>, written by the keeper (temp file, fsync,
// rename, fsync of the directory) before the daemon hears of the exit, removed when the daemon
// acknowledges it. Fixed-format text, so that an operator can read it:
//
//   monocri-exit-record 1
//   owner 4f2a...
//   pid 1234
//   wait_status 256
//   time_ns 1763772122199529000
//
// Exactly these five lines in this order, each ending in '\n', decimal numbers without sign
// (wait_status as waitpid(2) reports it). The parser refuses anything else: a file the keeper
// did not write whole is skipped, never guessed at.
#pragma once

#include <cstddef>
#include <cstdint>

#include "monitor/keeper/KeeperProtocol.h"

namespace monocri::monitor {

struct ExitInfo {
  Owner owner;
  pid_t pid = 0;
  int32_t waitStatus = 0;
  int64_t timeNs = 0;
};

// Bounds of the format: files larger than this are not exit records.
inline constexpr size_t kMaxExitRecordBytes = 256;
// "<owner>.<pid>" and ".<owner>.<pid>.tmp", with their terminating zero.
inline constexpr size_t kMaxExitRecordNameBytes = 1 + kMaxOwnerLength + 1 + 10 + 4 + 1;

// Writes the text into `out` (at least kMaxExitRecordBytes); returns its length.
size_t formatExitRecord(const ExitInfo& exit, char* out);

// Null and `out` filled, or a static string saying what is wrong.
const char* parseExitRecord(const char* data, size_t size, ExitInfo& out);

// The record's file name, and the temp name it is written under first (a leading '.', which
// no owner has, so that a scan of the directory tells them apart).
void exitRecordName(const Owner& owner, pid_t pid, char (&out)[kMaxExitRecordNameBytes]);
void exitRecordTempName(const Owner& owner, pid_t pid, char (&out)[kMaxExitRecordNameBytes]);

}  // namespace monocri::monitor
