// The OCI runtime's JSON log (`--log-format json`: one object per line, `{"level":"error",
// "msg":"...","time":"..."}` from runc and crun alike), scanned as it arrives for the last
// error: the runtime's own explanation of a failed call. The bytes come from another program and
// may be cut anywhere: lines are reassembled across reads, bounded, and anything that is not a
// log object is skipped.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace monocri::oci {

// A longer log line is skipped whole (no runtime writes one; its end could not be trusted).
inline constexpr size_t kMaxRuntimeLogLineBytes = 64 * 1024;
// An error message is cut to this many bytes (at a character boundary) before it reaches a user.
inline constexpr size_t kMaxRuntimeMessageBytes = 2048;

class RuntimeLogScanner {
 public:
  // Bytes as read: any split, any number of calls.
  void feed(std::string_view bytes);
  // The log has ended: a last line without its newline counts too.
  void finish();

  // The message of the last line at level error, fatal or panic; "" if none.
  const std::string& lastError() const { return lastError_; }

 private:
  void scanLine(std::string_view line);

  std::string partial_;
  bool skippingLongLine_ = false;
  std::string lastError_;
};

// Text another program wrote, made fit for an error message: control characters and runs of
// white space become one space, invalid UTF-8 becomes '?', trimmed, and cut to `maxBytes` at a
// character boundary (with "..." when cut).
std::string cleanRuntimeText(std::string_view text, size_t maxBytes = kMaxRuntimeMessageBytes);

}  // namespace monocri::oci
