#include "logging/TokenBucket.h"

#include <algorithm>

namespace monocri::logging {

TokenBucket::TokenBucket(uint64_t bytesPerSecond, uint64_t burstBytes, uint64_t nowMs)
    : bytesPerSecond_(bytesPerSecond),
      capacityMilli_(burstBytes * 1000),
      levelMilli_(capacityMilli_),
      lastRefillMs_(nowMs) {}

void TokenBucket::refill(uint64_t nowMs) {
  if (nowMs <= lastRefillMs_) return;  // a clock that went back adds nothing
  const uint64_t elapsedMs = nowMs - lastRefillMs_;
  lastRefillMs_ = nowMs;
  const uint64_t room = capacityMilli_ - levelMilli_;
  // Compared before multiplying: a long idle time fills the bucket without overflowing.
  if (elapsedMs > room / bytesPerSecond_) {
    levelMilli_ = capacityMilli_;
  } else {
    levelMilli_ += elapsedMs * bytesPerSecond_;
  }
}

uint64_t TokenBucket::take(uint64_t wanted, uint64_t nowMs) {
  refill(nowMs);
  const uint64_t taken = std::min(wanted, levelMilli_ / 1000);
  levelMilli_ -= taken * 1000;
  return taken;
}

uint64_t TokenBucket::available(uint64_t nowMs) {
  refill(nowMs);
  return levelMilli_ / 1000;
}

}  // namespace monocri::logging
