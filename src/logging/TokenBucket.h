// A token bucket of bytes: up to `burstBytes` at once, refilled at `bytesPerSecond` by a
// monotonic millisecond clock the caller reads (the loop's, in the daemon). Pure arithmetic, no
// timer: the owner asks when it has bytes to pass.
#pragma once

#include <cstdint>

namespace monocri::logging {

class TokenBucket {
 public:
  // The largest rate and burst accepted: 1 TiB, far above any disk, and small enough that the
  // arithmetic in thousandths of a byte cannot overflow.
  static constexpr uint64_t kMaxBytes = uint64_t{1} << 40;

  // Starts full. `bytesPerSecond` is 1 to kMaxBytes, `burstBytes` 1 to kMaxBytes.
  TokenBucket(uint64_t bytesPerSecond, uint64_t burstBytes, uint64_t nowMs);

  // Takes up to `wanted` bytes' worth of tokens; returns how many it took.
  uint64_t take(uint64_t wanted, uint64_t nowMs);
  // Whole bytes available now.
  uint64_t available(uint64_t nowMs);

 private:
  void refill(uint64_t nowMs);

  // In thousandths of a byte, so that a refill every millisecond loses nothing to rounding
  // (bytesPerSecond thousandths per millisecond).
  uint64_t bytesPerSecond_;
  uint64_t capacityMilli_;
  uint64_t levelMilli_;
  uint64_t lastRefillMs_;
};

}  // namespace monocri::logging
