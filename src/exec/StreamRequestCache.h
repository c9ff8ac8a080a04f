// The requests behind the streaming server's URLs. Exec, Attach and PortForward store what
// kubelet asked for under a token and answer with a URL holding it; the connection that comes
// with the token takes the request. A token is 128 bits from the kernel's CSPRNG, works once,
// and expires after a minute, as the CRI expects of a URL anyone on the path could read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "exec/RemoteCommand.h"

namespace monocri::exec {

class StreamRequestCache {
 public:
  static constexpr uint64_t kTokenLifetimeMs = 60'000;
  // Requests waiting for their connection at once (kubelet's own streaming server allows 1000):
  // a client asking for URLs it never uses cannot grow the daemon.
  static constexpr size_t kMaxWaiting = 1000;

  // Stores `request` and gives its token (URL-safe base64, 22 characters); RESOURCE_EXHAUSTED
  // while kMaxWaiting unexpired requests wait.
  grpc::Status insert(StreamRequest request, uint64_t nowMs, std::string& token);
  // The request under `token`, removed: a token works once. Nothing for an unknown, used or
  // expired token.
  std::optional<StreamRequest> take(const std::string& token, uint64_t nowMs);
  size_t waiting() const { return entries_.size(); }

 private:
  void dropExpired(uint64_t nowMs);

  struct Entry {
    StreamRequest request;
    uint64_t expiresAtMs;
  };
  std::map<std::string, Entry> entries_;
  std::deque<std::pair<uint64_t, std::string>> byExpiry_;  // (expiry, token), oldest first
};

// 16 bytes from getrandom(2) as URL-safe base64 without padding.
std::string newStreamToken();

}  // namespace monocri::exec
