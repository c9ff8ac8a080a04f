#include "exec/StreamingServer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "exec/StreamSessions.h"
#include "exec/http/HttpRequestParser.h"
#include "exec/websocket/WebSocketConnection.h"

namespace monocri::exec {

using grpc::Status;
using grpc::StatusCode;
using state::UniqueFd;

namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

enum class Kind { kExec, kAttach, kPortForward };

// "/exec/<token>" and the like.
bool parsePath(std::string_view path, Kind& kind, std::string& token) {
  for (auto [prefix, k] : {std::pair{std::string_view("/exec/"), Kind::kExec},
                           {"/attach/", Kind::kAttach},
                           {"/portforward/", Kind::kPortForward}}) {
    if (path.starts_with(prefix)) {
      token = std::string(path.substr(prefix.size()));
      kind = k;
      return !token.empty() && token.find('/') == std::string::npos;
    }
  }
  return false;
}

bool kindMatches(Kind kind, const StreamRequest& request) {
  switch (kind) {
    case Kind::kExec:
      return std::holds_alternative<ExecStreamRequest>(request);
    case Kind::kAttach:
      return std::holds_alternative<AttachStreamRequest>(request);
    case Kind::kPortForward:
      return std::holds_alternative<PortForwardStreamRequest>(request);
  }
  return false;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : ", ") + item;
  return out;
}

// "80,8080" → ports; a bad or missing port makes the whole list fail.
std::optional<std::vector<uint16_t>> parsePorts(const std::vector<std::string>& values) {
  std::vector<uint16_t> ports;
  for (const auto& value : values) {
    std::string_view rest = value;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      unsigned port = 0;
      auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), port);
      if (ec != std::errc() || end != item.data() + item.size() || port == 0 || port > 65535)
        return std::nullopt;
      ports.push_back(static_cast<uint16_t>(port));
    }
  }
  return ports;
}

}  // namespace

// A new connection until its request head is answered: a refusal (then the connection closes
// once the answer is written), or an upgrade handed to a session.
class StreamingServer::Handshake {
 public:
  Handshake(StreamingServer& server, uint64_t id, std::unique_ptr<ClientConnection> connection)
      : server_(server), id_(id), connection_(std::move(connection)) {
    timer_ = loop::Timer::create(server_.loop_, "stream handshake timeout");
    timer_->start(kHandshakeTimeoutMs, 0, [this] { refuse(408, "no request head in time"); });
    connection_->setLabel("stream handshake");
    const int rc = connection_->startReading([this](std::string_view bytes) { onData(bytes); },
                                             [this](int) { end(); });
    if (rc != 0) end();
  }

 private:
  void onData(std::string_view bytes) {
    size_t consumed = 0;
    switch (parser_.feed(bytes, consumed)) {
      case http::HttpRequestParser::Result::kNeedMore:
        return;
      case http::HttpRequestParser::Result::kError:
        return refuse(parser_.errorStatus(), parser_.error());
      case http::HttpRequestParser::Result::kComplete:
        connection_->stopReading();
        timer_->stop();
        // From a clean stack: the session takes the connection's read callback, this one's.
        server_.loop_.defer(lifetime_.watch(), [this, early = std::string(bytes.substr(consumed))] {
          upgrade(early);
        });
        return;
    }
  }

  void upgrade(std::string early) {
    const http::HttpRequest& request = parser_.request();
    Kind kind{};
    std::string token;
    if (!parsePath(request.path, kind, token)) return refuse(404, "no such streaming endpoint");
    std::optional<StreamRequest> stored = server_.requests_.take(token, server_.loop_.nowMs());
    if (!stored || !kindMatches(kind, *stored)) {
      return refuse(404, "unknown, expired or already used streaming token");
    }
    SessionSetup setup;
    setup.loop = &server_.loop_;
    setup.backend = &server_.backend_;
    setup.request = std::move(*stored);
    setup.early = std::move(early);
    const bool portForward = kind == Kind::kPortForward;
    Headers response{{"Connection", "Upgrade"}};
    bool websocket = false;
    if (request.headerHasToken("upgrade", "spdy/3.1")) {
      response.emplace_back("Upgrade", "SPDY/3.1");
      const std::vector<std::string> offered = request.headerValues("x-stream-protocol-version");
      std::string chosen;
      for (const auto& name : offered) {
        if (portForward ? name == "portforward.k8s.io" : commandProtocol(name, false).has_value()) {
          chosen = name;
          break;
        }
      }
      if (!offered.empty() && chosen.empty()) {
        return refuse(403, fmt::format("unable to negotiate a protocol: the client offers [{}]; "
                                       "this server speaks {}",
                                       joined(offered),
                                       portForward ? "portforward.k8s.io"
                                                   : "v5.channel.k8s.io, v4.channel.k8s.io, "
                                                     "v3.channel.k8s.io, v2.channel.k8s.io, "
                                                     "channel.k8s.io"));
      }
      if (!chosen.empty()) {
        response.emplace_back("X-Stream-Protocol-Version", chosen);
        if (!portForward) setup.protocol = *commandProtocol(chosen, false);
      }
    } else if (request.headerHasToken("upgrade", "websocket")) {
      websocket = true;
      const std::string* key = request.header("sec-websocket-key");
      const std::string* version = request.header("sec-websocket-version");
      if (version == nullptr || *version != "13") {
        return refuse(426, "WebSocket version 13 is required", {{"Sec-WebSocket-Version", "13"}});
      }
      if (key == nullptr || !ws::validKey(*key)) {
        return refuse(400, "a WebSocket upgrade needs a Sec-WebSocket-Key of 16 bytes");
      }
      const std::vector<std::string> offered = request.headerValues("sec-websocket-protocol");
      std::string chosen;
      for (const auto& name : offered) {
        auto protocol = commandProtocol(name, true);
        if (portForward && name == "portforward.k8s.io") protocol = CommandProtocol{4, false};
        if (protocol && (!portForward || protocol->version == 4 || protocol->version == 1)) {
          chosen = name;
          setup.protocol = *protocol;
          break;
        }
      }
      if (!offered.empty() && chosen.empty()) {
        return refuse(403, fmt::format("unable to negotiate a WebSocket protocol: the client "
                                       "offers [{}]",
                                       joined(offered)));
      }
      response.emplace_back("Upgrade", "websocket");
      response.emplace_back("Sec-WebSocket-Accept", ws::acceptKey(*key));
      if (!chosen.empty()) response.emplace_back("Sec-WebSocket-Protocol", chosen);
      if (portForward) {
        // kubelet's own server reads `port` (repeated or comma-separated); `ports` is taken too.
        auto values = http::queryValues(request.query, "port");
        auto more = http::queryValues(request.query, "ports");
        std::optional<std::vector<uint16_t>> ports;
        if (values && more) {
          values->insert(values->end(), more->begin(), more->end());
          ports = parsePorts(*values);
        }
        if (!ports) return refuse(400, "the port query parameter must list ports 1-65535");
        if (ports->empty()) {
          for (int32_t port : std::get<PortForwardStreamRequest>(setup.request).ports)
            if (port > 0 && port <= 65535) ports->push_back(static_cast<uint16_t>(port));
        }
        if (ports->empty()) return refuse(400, "no port to forward: give ?port=PORT[,PORT...]");
        // Two channels per port, each named by one byte (a digit in the base64 protocols).
        const size_t maxPorts = setup.protocol.base64 ? 5 : 64;
        if (ports->size() > maxPorts) {
          return refuse(400, fmt::format("at most {} ports per connection", maxPorts));
        }
        setup.ports = std::move(*ports);
      }
    } else {
      return refuse(400, "the streaming server upgrades a connection to SPDY/3.1 or WebSocket");
    }
    connection_->write(http::responseBytes(101, response));
    setup.connection = std::move(connection_);
    StreamingServer& server = server_;
    const uint64_t id = id_;
    setup.ended = [&server, id, alive = server.lifetime_.watch()] {
      if (!alive.expired()) server.sessionEnded(id);
    };
    auto session =
        websocket ? startWebSocketSession(std::move(setup)) : startSpdySession(std::move(setup));
    server.handshakeDone(id, std::move(session));  // frees this
  }

  void refuse(int status, const std::string& message, Headers headers = {}) {
    if (refused_) return;
    refused_ = true;
    timer_->stop();
    connection_->stopReading();
    spdlog::info("streaming server: refused a connection: {} {}", status, message);
    headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    headers.emplace_back("Connection", "close");
    connection_->write(http::responseBytes(status, headers, message + "\n"));
    connection_->shutdown([this, alive = lifetime_.watch()](int) {
      if (!alive.expired()) end();
    });
  }

  void end() {
    server_.loop_.defer(lifetime_.watch(), [this] { server_.handshakeDone(id_, nullptr); });
  }

  StreamingServer& server_;
  uint64_t id_;
  std::unique_ptr<ClientConnection> connection_;
  loop::HandlePtr<loop::Timer> timer_;
  http::HttpRequestParser parser_;
  bool refused_ = false;
  loop::LifetimeGuard lifetime_;
};

StreamingServer::StreamingServer(loop::Loop& loop, StreamBackend& backend)
    : loop_(loop), backend_(backend) {}

StreamingServer::~StreamingServer() = default;

std::string StreamingServer::listen(const std::string& address, const TlsFiles& tls) {
  if (tls.enabled()) {
    auto context = std::make_unique<TlsServerContext>();
    if (std::string error = context->load(tls); !error.empty()) return error;
    tls_ = std::move(context);
  }
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return fmt::format("streaming address {}: want HOST:PORT", address);
  }
  std::string host = address.substr(0, colon);
  const std::string portText = address.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (ec != std::errc() || end != portText.data() + portText.size() || port > 65535) {
    return fmt::format("streaming address {}: bad port {}", address, portText);
  }
  sockaddr_storage storage{};
  socklen_t length = 0;
  const bool v6 = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (v6) {
    host = host.substr(1, host.size() - 2);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) {
      return fmt::format("streaming address {}: {} is not an IPv6 address", address, host);
    }
    length = sizeof(sockaddr_in6);
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&storage);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) != 1) {
      return fmt::format("streaming address {}: {} is not an IPv4 address (IPv6 goes in [])",
                         address, host);
    }
    length = sizeof(sockaddr_in);
  }
  UniqueFd fd(socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fmt::format("streaming server socket: {}", std::strerror(errno));
  const int on = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    return fmt::format("streaming server: bind {}: {}", address, std::strerror(errno));
  }
  if (::listen(fd.get(), 128) != 0) {
    return fmt::format("streaming server: listen {}: {}", address, std::strerror(errno));
  }
  sockaddr_storage bound{};
  socklen_t boundLength = sizeof(bound);
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &boundLength);
  const uint16_t boundPort = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                      : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  // A wildcard address is not one kubelet can dial: the URLs name the loopback instead.
  std::string urlHost = host;
  if (host == "0.0.0.0") urlHost = "127.0.0.1";
  if (host == "::") urlHost = "::1";
  const char* scheme = tls_ ? "https" : "http";
  baseUrl_ = v6 ? fmt::format("{}://[{}]:{}", scheme, urlHost, boundPort)
                : fmt::format("{}://{}:{}", scheme, urlHost, boundPort);
  int rc = 0;
  listenerWatch_ = loop::Poll::create(loop_, fd.get(), &rc);
  if (!listenerWatch_) return fmt::format("streaming server: watch socket: {}", uv_strerror(rc));
  listener_ = std::move(fd);
  listenerWatch_->start(UV_READABLE, [this](int status, int) {
    if (status == 0) onAcceptable();
  });
  listenerWatch_->unref();  // a listening server does not keep a stopping daemon alive
  return {};
}

void StreamingServer::onAcceptable() {
  // A bounded batch per wake-up: a connection flood does not hold the loop.
  for (int i = 0; i < 64; ++i) {
    UniqueFd fd(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // The connection stays in the backlog and the socket readable: without a pause the
        // loop would spin on it. Taken again in a second.
        spdlog::warn("streaming server: accept: {}; pausing new connections for 1 s",
                     std::strerror(errno));
        listenerWatch_->stop();
        if (!acceptPause_) acceptPause_ = loop::Timer::create(loop_, "streaming accept pause");
        acceptPause_->start(1000, 0, [this] {
          listenerWatch_->start(UV_READABLE, [this](int status, int) {
            if (status == 0) onAcceptable();
          });
        });
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                 errno != ECONNABORTED) {
        spdlog::warn("streaming server: accept: {}", std::strerror(errno));
      }
      return;
    }
    if (handshakes_.size() >= kMaxHandshakes) continue;  // closed: the client retries
    const int on = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    int rc = 0;
    auto socket = loop::PipeStream::adopt(loop_, fd.get(), &rc);
    if (!socket) {
      spdlog::warn("streaming server: cannot use a connection: {}", uv_strerror(rc));
      continue;
    }
    fd.release();
    std::unique_ptr<ClientConnection> connection;
    if (tls_) {
      std::string error;
      connection = tlsConnection(loop_, std::move(socket), tls_->current(loop_.nowMs()), error);
      if (!connection) {
        spdlog::warn("streaming server: {}", error);
        continue;
      }
    } else {
      connection = plainConnection(std::move(socket));
    }
    const uint64_t id = nextId_++;
    handshakes_.emplace(id, std::make_unique<Handshake>(*this, id, std::move(connection)));
  }
}

void StreamingServer::handshakeDone(uint64_t id, std::unique_ptr<StreamSession> session) {
  auto it = handshakes_.find(id);
  if (it == handshakes_.end()) return;
  // The handshake may be on the stack (it called this): freed after.
  loop_.defer([handshake = std::shared_ptr<Handshake>(std::move(it->second))] {});
  handshakes_.erase(it);
  if (session) sessions_.emplace(id, std::move(session));
}

void StreamingServer::sessionEnded(uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  loop_.defer([session = std::shared_ptr<StreamSession>(std::move(it->second))] {});
  sessions_.erase(it);
}

grpc::Status StreamingServer::newUrl(StreamRequest request, std::string& url) {
  if (baseUrl_.empty()) {
    return Status(StatusCode::kUnavailable, "the streaming server is not listening");
  }
  const char* kind = std::holds_alternative<ExecStreamRequest>(request)     ? "exec"
                     : std::holds_alternative<AttachStreamRequest>(request) ? "attach"
                                                                            : "portforward";
  std::string token;
  Status status = requests_.insert(std::move(request), loop_.nowMs(), token);
  if (status.isOk()) url = fmt::format("{}/{}/{}", baseUrl_, kind, token);
  return status;
}

void StreamingServer::shutdown() {
  acceptPause_.reset();
  listenerWatch_.reset();
  listener_.reset();
  handshakes_.clear();
  sessions_.clear();
}

}  // namespace monocri::exec
