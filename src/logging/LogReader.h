// Reads a container's CRI log file back as whole lines, for `monoctl logs` (-f, --tail N,
// --since, --timestamps, a stream filter). Blocking file I/O: a tool's reader, not the loop's.
//
// --tail N selects the last N complete lines of the streams read, found by scanning the file
// backwards from its end; a line's P records are found however far they are from its F. An
// unfinished line at the end of the file (P records with no F yet) is shown after them.
// --since keeps the lines whose first record is not older; it applies to what --tail selected,
// as kubelet does.
//
// Following, the reader waits for more bytes (inotify on the file's directory, and a check every
// pollIntervalMs in any case) and follows kubelet's rotation: when the path names another file
// and that file has bytes (so the writer has moved on to it, every byte of the old file being
// written before), it reads the old file to its end, then goes on in the new one. Lines cut by
// a rotation are joined across the two files.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "logging/LogDecoder.h"
#include "state/UniqueFd.h"

namespace monocri::logging {

struct LogReadOptions {
  std::optional<uint64_t> tailLines;  // the last N complete lines; nullopt: all of them
  std::optional<int64_t> sinceNs;     // leave out lines whose first record is older
  bool includeStdout = true;
  bool includeStderr = true;
  bool follow = false;                // go on into the file that replaces the path
  size_t maxLineBytes = 1024 * 1024;  // longer lines are handed on in fragments
  uint64_t pollIntervalMs = 250;      // follow(): the longest wait between two checks
};

class LogReader {
 public:
  // Opens the log file and, for a tail, finds where its last lines start. NOT_FOUND if there
  // is no file at `path`.
  static std::unique_ptr<LogReader> open(std::string path, LogReadOptions options,
                                         grpc::Status& status);
  ~LogReader();
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  // Hands on what the file holds now (and, following, what the file that replaced it holds),
  // then the unfinished lines as fragments. Not following, this is the whole reading: a last
  // record without its '\n' is reported as cut short. Stops early, with an OK status, once the
  // sink returns false (see stopped()).
  grpc::Status readAvailable(const LogLineSink& sink);
  // readAvailable, then waiting for more, until the sink stops or `keepFollowing` (asked after
  // each read, at least every pollIntervalMs) returns false. Needs options.follow.
  grpc::Status follow(const LogLineSink& sink, const std::function<bool()>& keepFollowing);

  bool stopped() const { return decoder_.stopped(); }
  const LogDecoderStats& decoderStats() const { return decoder_.stats(); }
  uint64_t bytesRead() const { return bytesRead_; }
  uint64_t rotationsFollowed() const { return rotationsFollowed_; }

 private:
  LogReader(std::string path, LogReadOptions options, state::UniqueFd fd);
  // Reads `fd_` from readOffset_ to its current end.
  grpc::Status drain(const LogLineSink& sink);
  // Following: true if the path names another file holding bytes, which is then open in `next`.
  bool replacedByNewFile(state::UniqueFd& next);
  grpc::Status positionForTail(uint64_t lines);
  void waitForChange();

  std::string path_;
  LogReadOptions options_;
  state::UniqueFd fd_;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  uint64_t readOffset_ = 0;
  LogDecoder decoder_;
  state::UniqueFd inotify_;
  std::string buffer_;
  uint64_t bytesRead_ = 0;
  uint64_t rotationsFollowed_ = 0;
};

}  // namespace monocri::logging
