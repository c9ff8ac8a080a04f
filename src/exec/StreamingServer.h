// The streaming server kubelet proxies `kubectl exec/attach/port-forward` to: HTTP/1.1 on the
// loop, a connection per session, upgraded to SPDY/3.1 (what kubelet's proxy speaks today) or
// WebSocket. Exec, Attach and PortForward leave their request here and answer with a URL holding
// a single-use token; the connection that brings the token runs it against the StreamBackend.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "exec/ClientConnection.h"
#include "exec/RemoteCommand.h"
#include "exec/StreamRequestCache.h"
#include "exec/TlsConnection.h"
#include "loop/Loop.h"
#include "loop/Poll.h"
#include "loop/Timer.h"
#include "state/UniqueFd.h"

namespace monocri::exec {

// One upgraded connection, owned by the server until it ends.
class StreamSession {
 public:
  virtual ~StreamSession() = default;
};

class StreamingServer {
 public:
  // A client must send its whole request head within this time.
  static constexpr uint64_t kHandshakeTimeoutMs = 10'000;
  // Connections still in their handshake at once (beyond, new ones are closed at once).
  static constexpr size_t kMaxHandshakes = 256;

  StreamingServer(loop::Loop& loop, StreamBackend& backend);
  ~StreamingServer();
  StreamingServer(const StreamingServer&) = delete;
  StreamingServer& operator=(const StreamingServer&) = delete;

  // Listens on "HOST:PORT" (an IPv4 address, or an IPv6 one in brackets; port 0 picks one),
  // speaking TLS with `tls` when it names a certificate. Returns "" or a message naming the
  // address or file and the cause.
  std::string listen(const std::string& address, const TlsFiles& tls = {});
  // "http://127.0.0.1:40123" (https with TLS): what the URLs start with.
  const std::string& baseUrl() const { return baseUrl_; }

  // Stores `request` and gives the URL kubelet is to dial for it.
  grpc::Status newUrl(StreamRequest request, std::string& url);

  size_t sessions() const { return sessions_.size(); }
  size_t handshakes() const { return handshakes_.size(); }

  // Every connection closed (sessions end as if their clients went away) and no new one taken.
  void shutdown();

 private:
  class Handshake;
  friend class Handshake;
  void onAcceptable();
  void handshakeDone(uint64_t id, std::unique_ptr<StreamSession> session);
  void sessionEnded(uint64_t id);

  loop::Loop& loop_;
  StreamBackend& backend_;
  StreamRequestCache requests_;
  state::UniqueFd listener_;
  std::string baseUrl_;
  std::unique_ptr<TlsServerContext> tls_;  // null: plain http
  std::map<uint64_t, std::unique_ptr<Handshake>> handshakes_;
  std::map<uint64_t, std::unique_ptr<StreamSession>> sessions_;
  uint64_t nextId_ = 1;
  loop::LifetimeGuard lifetime_;
  loop::HandlePtr<loop::Timer> acceptPause_;
  // Declared last: closed before the descriptor it watches.
  loop::HandlePtr<loop::Poll> listenerWatch_;
};

}  // namespace monocri::exec
