#include "cri-bridge/grpc/GrpcTimeout.h"

#include <cstdint>
#include <limits>

namespace monocri::grpc {

namespace {

constexpr size_t kMaxTimeoutDigits = 8;

struct TimeoutUnit {
  char symbol;
  int64_t nanos;
};

// Finest first: formatting picks the first unit in which the value fits in 8 digits.
constexpr TimeoutUnit kUnits[] = {
    {'n', 1},
    {'u', 1'000},
    {'m', 1'000'000},
    {'S', 1'000'000'000},
    {'M', 60LL * 1'000'000'000},
    {'H', 3600LL * 1'000'000'000},
};

}  // namespace

std::optional<std::chrono::nanoseconds> parseGrpcTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > kMaxTimeoutDigits + 1) return std::nullopt;
  const char symbol = value.back();
  int64_t unitNanos = 0;
  for (const auto& unit : kUnits) {
    if (unit.symbol == symbol) unitNanos = unit.nanos;
  }
  if (unitNanos == 0) return std::nullopt;
  int64_t amount = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    amount = amount * 10 + (c - '0');
  }
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (amount > kMax / unitNanos) return std::chrono::nanoseconds(kMax);
  return std::chrono::nanoseconds(amount * unitNanos);
}

std::string formatGrpcTimeout(std::chrono::nanoseconds timeout) {
  constexpr int64_t kMaxAmount = 99'999'999;
  const int64_t nanos = timeout.count() > 0 ? timeout.count() : 1;
  for (const auto& unit : kUnits) {
    const int64_t amount = nanos / unit.nanos + (nanos % unit.nanos != 0 ? 1 : 0);
    if (amount <= kMaxAmount) return std::to_string(amount) + unit.symbol;
  }
  return std::to_string(kMaxAmount) + 'H';
}

}  // namespace monocri::grpc
