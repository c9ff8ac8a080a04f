#include "monoctl/SpdyClient.h"

#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "daemon/Version.h"

namespace monocri::monoctl {

namespace spdy = exec::spdy;

namespace {

using Clock = std::chrono::steady_clock;

int remainingMs(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, INT_MAX));
}

// Waits until `fd` is ready for `events` or the deadline passes (false).
bool waitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int rc = poll(&p, 1, remainingMs(deadline));
    if (rc > 0) return true;
    if (rc == 0 || errno != EINTR) return false;
  }
}

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

// RFC 9110 token characters (header names).
bool isToken(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c))) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

// A printable one-line rendering of a peer's text (a refusal's body) for an error message.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : trim(text)) {
    if (c == '\r') continue;
    out += (c == '\n' || c == '\t') ? ' ' : (std::isprint(static_cast<unsigned char>(c)) ? c : '?');
  }
  while (!out.empty() && out.back() == ' ')
    out.pop_back();
  return out;
}

state::UniqueFd connectTo(const HttpUrl& url, Clock::time_point deadline, std::string& error) {
  const std::string where = url.host.find(':') != std::string::npos
                                ? fmt::format("[{}]:{}", url.host, url.port)
                                : fmt::format("{}:{}", url.host, url.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &found); rc != 0) {
    error =
        fmt::format("cannot connect to the streaming server at {}: {}", where, gai_strerror(rc));
    return {};
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);
  std::string why = "no address";
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    state::UniqueFd fd(
        socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd.valid()) {
      why = std::strerror(errno);
      continue;
    }
    int rc = connect(fd.get(), a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      if (!waitFor(fd.get(), POLLOUT, deadline)) {
        why = "timed out";
        continue;
      }
      int soError = 0;
      socklen_t length = sizeof soError;
      getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soError, &length);
      rc = soError == 0 ? 0 : -1;
      errno = soError;
    }
    if (rc != 0) {
      why = std::strerror(errno);
      continue;
    }
    // Interactive sessions: keystrokes go out at once, as kubectl's (Go's default).
    const int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
  }
  error = fmt::format("cannot connect to the streaming server at {}: {}", where, why);
  return {};
}

bool sendAll(StreamTransport& transport, std::string_view bytes, Clock::time_point deadline,
             std::string& error) {
  while (!bytes.empty()) {
    const ssize_t n = transport.send(bytes.data(), bytes.size());
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
        waitFor(transport.fd(), transport.waitEvents(POLLOUT), deadline)) {
      continue;
    }
    error = fmt::format("sending the upgrade request to the streaming server: {}",
                        n < 0 && errno == EPROTO   ? transport.error()
                        : n < 0 && errno != EAGAIN ? std::strerror(errno)
                                                   : "timed out");
    return false;
  }
  return true;
}

// Appends what the socket has to `buffer` (at most `limit` in all), waiting until the
// deadline. 0 at EOF, -1 with `error` on an error or the timeout.
ssize_t receiveSome(StreamTransport& transport, std::string& buffer, size_t limit,
                    Clock::time_point deadline, std::string& error) {
  char chunk[4096];
  for (;;) {
    const size_t room = std::min(sizeof chunk, limit - buffer.size());
    const ssize_t n = transport.recv(chunk, room);
    if (n >= 0) {
      buffer.append(chunk, static_cast<size_t>(n));
      return n;
    }
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == EWOULDBLOCK) &&
        waitFor(transport.fd(), transport.waitEvents(POLLIN), deadline)) {
      continue;
    }
    error = errno == EAGAIN || errno == EWOULDBLOCK ? "timed out"
            : errno == EPROTO                       ? transport.error()
                                                    : std::strerror(errno);
    return -1;
  }
}

}  // namespace

bool parseHttpUrl(std::string_view url, HttpUrl& out, std::string& error) {
  out.tls = url.starts_with("https://");
  const std::string_view scheme = out.tls ? "https://" : "http://";
  if (!url.starts_with(scheme)) {
    error = fmt::format("the streaming URL '{}' is not http[s]://HOST:PORT/PATH", printable(url));
    return false;
  }
  std::string_view rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  std::string_view host = authority, port;
  if (authority.starts_with("[")) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos)
      host = {};
    else {
      host = authority.substr(1, close - 1);
      std::string_view after = authority.substr(close + 1);
      if (after.starts_with(":"))
        port = after.substr(1);
      else if (!after.empty())
        host = {};
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  const bool portOk =
      port.empty() || (port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) {
                         return c >= '0' && c <= '9';
                       }));
  const bool pathOk = std::none_of(out.path.begin(), out.path.end(), [](char c) {
    return static_cast<unsigned char>(c) <= ' ' || c == 0x7f;
  });
  if (host.empty() || authority.find('@') != std::string_view::npos || !portOk || !pathOk) {
    error = fmt::format("the streaming URL '{}' is not http[s]://HOST:PORT/PATH", printable(url));
    return false;
  }
  out.host = std::string(host);
  out.port = !port.empty() ? std::string(port) : out.tls ? "443" : "80";
  return true;
}

const std::string* HttpResponseHead::find(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (equalsIgnoringCase(key, name)) return &value;
  return nullptr;
}

bool parseHttpResponseHead(std::string_view head, HttpResponseHead& out, std::string& error) {
  out = {};
  auto nextLine = [&head](std::string_view& line) {
    const size_t end = head.find("\r\n");
    if (end == std::string_view::npos) return false;
    line = head.substr(0, end);
    head.remove_prefix(end + 2);
    return true;
  };
  std::string_view line;
  // "HTTP/1.1 101 Switching Protocols": version, one space, three digits, a space and the
  // reason (which may be empty).
  if (!nextLine(line) || !line.starts_with("HTTP/1.") || line.size() < 12 ||
      !std::isdigit(static_cast<unsigned char>(line[7])) || line[8] != ' ' ||
      !std::all_of(line.begin() + 9, line.begin() + 12,
                   [](char c) { return c >= '0' && c <= '9'; }) ||
      (line.size() > 12 && line[12] != ' ')) {
    error = fmt::format("the streaming server's answer is not HTTP/1.x: '{}'",
                        printable(line.substr(0, 80)));
    return false;
  }
  out.status = std::stoi(std::string(line.substr(9, 3)));
  out.reason = line.size() > 13 ? printable(line.substr(13)) : "";
  while (!head.empty()) {
    if (!nextLine(line)) {
      error = "the streaming server's answer has a header line not ending in CRLF";
      return false;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || !isToken(line.substr(0, colon))) {
      error = fmt::format("the streaming server's answer has a malformed header line '{}'",
                          printable(line.substr(0, 80)));
      return false;
    }
    out.headers.emplace_back(std::string(line.substr(0, colon)),
                             std::string(trim(line.substr(colon + 1))));
  }
  return true;
}

std::unique_ptr<SpdyClient> SpdyClient::dial(std::string_view url,
                                             const std::vector<std::string>& protocols,
                                             std::chrono::milliseconds timeout,
                                             const TlsClientOptions& tls, std::string& error) {
  HttpUrl target;
  if (!parseHttpUrl(url, target, error)) return nullptr;
  const Clock::time_point deadline = Clock::now() + timeout;
  state::UniqueFd fd = connectTo(target, deadline, error);
  if (!fd.valid()) return nullptr;
  std::unique_ptr<StreamTransport> transport =
      target.tls ? StreamTransport::tls(std::move(fd), target.host, tls, deadline, error)
                 : StreamTransport::plain(std::move(fd));
  if (!transport) return nullptr;

  std::string request = fmt::format(
      "POST {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: monoctl/{}\r\nContent-Length: 0\r\n"
      "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n",
      target.path,
      target.host.find(':') != std::string::npos ? "[" + target.host + "]" : target.host,
      target.port, kVersion);
  for (const auto& protocol : protocols)
    request += fmt::format("X-Stream-Protocol-Version: {}\r\n", protocol);
  request += "\r\n";
  if (!sendAll(*transport, request, deadline, error)) return nullptr;

  // The head, bounded; frames may follow it in the same segment.
  std::string received;
  size_t headEnd = std::string::npos;
  while ((headEnd = received.find("\r\n\r\n")) == std::string::npos) {
    if (received.size() >= kMaxResponseHeadBytes) {
      error = fmt::format("the streaming server's answer has no end of head in {} bytes",
                          kMaxResponseHeadBytes);
      return nullptr;
    }
    std::string why;
    const ssize_t n = receiveSome(*transport, received, kMaxResponseHeadBytes, deadline, why);
    if (n == 0) {
      error = received.empty()
                  ? "the streaming server closed the connection without answering the upgrade"
                  : "the streaming server closed the connection in the middle of its answer";
      return nullptr;
    }
    if (n < 0) {
      error = fmt::format("waiting for the streaming server's answer: {}", why);
      return nullptr;
    }
  }
  HttpResponseHead head;
  if (!parseHttpResponseHead(std::string_view(received).substr(0, headEnd + 2), head, error)) {
    return nullptr;
  }
  std::string rest = received.substr(headEnd + 4);
  // What TLS decrypted past the head is not seen by poll(2): taken now, with the frames.
  for (std::string why; transport->pending() > 0;) {
    if (receiveSome(*transport, rest, rest.size() + transport->pending(), deadline, why) <= 0) {
      break;
    }
  }

  if (head.status != 101) {
    // The server says why in a short text body: shown, bounded, if it comes in time.
    size_t bodyLength = 0;
    if (const std::string* length = head.find("Content-Length")) {
      bodyLength =
          std::min<size_t>(std::strtoull(length->c_str(), nullptr, 10), kMaxRefusalBodyBytes);
    }
    std::string why;
    while (rest.size() < bodyLength &&
           receiveSome(*transport, rest, bodyLength, deadline, why) > 0) {
    }
    const std::string body = printable(rest.substr(0, bodyLength));
    error = fmt::format("the streaming server refused: {} {}{}{}", head.status, head.reason,
                        body.empty() ? "" : ": ", body);
    return nullptr;
  }
  const std::string* upgrade = head.find("Upgrade");
  if (upgrade == nullptr || !equalsIgnoringCase(*upgrade, "SPDY/3.1")) {
    error = fmt::format("the streaming server answered 101 but did not upgrade to SPDY/3.1 ({})",
                        upgrade ? "Upgrade: " + printable(*upgrade) : "no Upgrade header");
    return nullptr;
  }
  const std::string* chosen = head.find("X-Stream-Protocol-Version");
  if (chosen == nullptr ||
      std::find(protocols.begin(), protocols.end(), *chosen) == protocols.end()) {
    error = chosen ? fmt::format("the streaming server chose '{}', which monoctl did not offer",
                                 printable(*chosen))
                   : "the streaming server's 101 answer names no X-Stream-Protocol-Version";
    return nullptr;
  }
  return std::unique_ptr<SpdyClient>(
      new SpdyClient(std::move(transport), *chosen, std::move(rest)));
}

SpdyClient::SpdyClient(std::unique_ptr<StreamTransport> transport, std::string protocol,
                       std::string early)
    : transport_(std::move(transport)),
      protocol_(std::move(protocol)),
      early_(std::move(early)),
      parser_(*this) {}

SpdyClient::~SpdyClient() = default;

void SpdyClient::start(Listener& listener) {
  listener_ = &listener;
  if (early_.empty()) return;
  const std::string early = std::move(early_);
  if (!parser_.feed(early)) endReading(parser_.error());
}

uint32_t SpdyClient::openStream(const spdy::HeaderList& headers) {
  const uint32_t id = nextStreamId_;
  nextStreamId_ += 2;
  queue(spdy::synStreamFrame(id, 0, 0, false, deflater_.encode(headers)));
  return id;
}

void SpdyClient::sendData(uint32_t streamId, std::string_view bytes, bool fin) {
  do {
    const size_t length = std::min(bytes.size(), kMaxDataFrameBytes);
    const bool last = length == bytes.size();
    if (!writeFailed_) {
      const auto header =
          spdy::dataFrameHeader(streamId, static_cast<uint32_t>(length), fin && last);
      out_.append(header.data(), header.size());
      out_.append(bytes.substr(0, length));
    }
    bytes.remove_prefix(length);
  } while (!bytes.empty());
  writeSome();
}

void SpdyClient::resetStream(uint32_t streamId, uint32_t status) {
  queue(spdy::rstStreamFrame(streamId, status));
}

void SpdyClient::goaway() {
  if (goawaySent_) return;
  goawaySent_ = true;
  queue(spdy::goawayFrame(0, spdy::kGoawayOk));
}

short SpdyClient::pollEvents() const {
  short events = 0;
  if (!ended_ && !paused_) events |= POLLIN;
  if (queuedBytes() > 0 && !writeFailed_) events |= POLLOUT;
  return events;
}

void SpdyClient::handle(short revents) {
  if (revents & POLLOUT) writeSome();
  // POLLHUP/POLLERR: the read says what happened (EOF or the error).
  if ((revents & (POLLIN | POLLHUP | POLLERR)) && !ended_ && !paused_) readSome();
  if ((revents & (POLLHUP | POLLERR)) && queuedBytes() > 0) writeSome();
}

bool SpdyClient::flush(std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  writeSome();
  while (queuedBytes() > 0 && !writeFailed_) {
    if (!waitFor(fd(), transport_->waitEvents(POLLOUT), deadline)) return false;
    writeSome();
  }
  return queuedBytes() == 0;
}

void SpdyClient::queue(std::string bytes) {
  if (writeFailed_) return;
  if (outOffset_ == out_.size()) {
    out_.clear();
    outOffset_ = 0;
  }
  out_ += bytes;
  writeSome();
}

void SpdyClient::writeSome() {
  while (outOffset_ < out_.size() && !writeFailed_) {
    const ssize_t n = transport_->send(out_.data() + outOffset_, out_.size() - outOffset_);
    if (n > 0) {
      outOffset_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // The server is gone (EPIPE, ECONNRESET): what it sent may still be read.
    writeFailed_ = true;
  }
  if (outOffset_ == out_.size() || writeFailed_) {
    out_.clear();
    outOffset_ = 0;
  } else if (outOffset_ > kReadChunkBytes && outOffset_ * 2 > out_.size()) {
    out_.erase(0, outOffset_);
    outOffset_ = 0;
  }
}

void SpdyClient::readSome() {
  if (readBuffer_.empty()) readBuffer_.resize(kReadChunkBytes);
  ssize_t n;
  do {
    // A buffer larger than a TLS record: what OpenSSL read from the socket is all taken, so
    // poll(2) says when more is there (it does not see bytes OpenSSL holds).
    n = transport_->recv(readBuffer_.data(), readBuffer_.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    return endReading(errno == EPROTO ? transport_->error() : std::strerror(errno));
  }
  if (n == 0) return endReading("");
  if (!parser_.feed(std::string_view(readBuffer_.data(), static_cast<size_t>(n)))) {
    endReading(parser_.error());
  }
}

void SpdyClient::endReading(std::string reason) {
  if (ended_) return;
  ended_ = true;
  endReason_ = std::move(reason);
}

// ---- SpdyFrameParser::Handler ----

void SpdyClient::onSynStream(uint32_t streamId, uint32_t, uint8_t, bool, bool, spdy::HeaderList) {
  // The client opens every stream of these protocols.
  resetStream(streamId, spdy::kRefusedStream);
}

void SpdyClient::onSynReply(uint32_t streamId, bool, spdy::HeaderList) {
  listener_->onReply(streamId);
}

void SpdyClient::onHeaders(uint32_t, bool, spdy::HeaderList) {}

void SpdyClient::onRstStream(uint32_t streamId, uint32_t status) {
  listener_->onReset(streamId, status);
}

void SpdyClient::onSettings(std::vector<std::pair<uint32_t, uint32_t>>) {}

void SpdyClient::onPing(uint32_t id) {
  // Echoed whatever its id: this client sends no pings, so none is an answer to one of ours.
  queue(spdy::pingFrame(id));
}

void SpdyClient::onGoaway(uint32_t lastGoodStreamId, uint32_t status) {
  goawayReceived_ = true;
  listener_->onGoaway(lastGoodStreamId, status);
}

void SpdyClient::onWindowUpdate(uint32_t, uint32_t) {}

void SpdyClient::onData(uint32_t streamId, std::string_view bytes, bool fin) {
  listener_->onData(streamId, bytes, fin);
}

}  // namespace monocri::monoctl
