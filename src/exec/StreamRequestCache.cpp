#include "exec/StreamRequestCache.h"

#include <fmt/format.h>
#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace monocri::exec {

std::string newStreamToken() {
  std::array<unsigned char, 16> bytes{};
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    // getrandom of 16 bytes without GRND_NONBLOCK fails only on a broken kernel: a predictable
    // token would be worse than no URL.
    if (n < 0) throw std::runtime_error(fmt::format("getrandom: {}", std::strerror(errno)));
    got += static_cast<size_t>(n);
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string token;
  uint32_t bits = 0;
  int count = 0;
  for (unsigned char byte : bytes) {
    bits = (bits << 8) | byte;
    count += 8;
    while (count >= 6) {
      count -= 6;
      token.push_back(kAlphabet[(bits >> count) & 63]);
    }
  }
  if (count > 0) token.push_back(kAlphabet[(bits << (6 - count)) & 63]);
  return token;
}

void StreamRequestCache::dropExpired(uint64_t nowMs) {
  while (!byExpiry_.empty() && byExpiry_.front().first <= nowMs) {
    entries_.erase(byExpiry_.front().second);  // gone already if it was taken
    byExpiry_.pop_front();
  }
}

grpc::Status StreamRequestCache::insert(StreamRequest request, uint64_t nowMs, std::string& token) {
  dropExpired(nowMs);
  if (entries_.size() >= kMaxWaiting) {
    return grpc::Status(grpc::StatusCode::kResourceExhausted,
                        fmt::format("{} streaming requests are already waiting for their "
                                    "connection; retry once some are used or expired",
                                    kMaxWaiting));
  }
  // Taken entries leave stale queue items behind; an entry of a reused token cannot appear
  // (128 random bits), but the queue stays bounded by the waiting entries plus those taken.
  if (byExpiry_.size() > 4 * kMaxWaiting) {
    std::erase_if(byExpiry_, [this](const auto& item) { return !entries_.contains(item.second); });
  }
  token = newStreamToken();
  const uint64_t expiresAtMs = nowMs + kTokenLifetimeMs;
  entries_.insert_or_assign(token, Entry{std::move(request), expiresAtMs});
  byExpiry_.emplace_back(expiresAtMs, token);
  return grpc::Status::ok();
}

std::optional<StreamRequest> StreamRequestCache::take(const std::string& token, uint64_t nowMs) {
  dropExpired(nowMs);
  auto it = entries_.find(token);
  if (it == entries_.end()) return std::nullopt;
  std::optional<StreamRequest> request;
  if (it->second.expiresAtMs > nowMs) request = std::move(it->second.request);
  entries_.erase(it);
  return request;
}

}  // namespace monocri::exec
