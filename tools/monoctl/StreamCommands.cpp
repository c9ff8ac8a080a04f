// monoctl's streaming verbs: exec (and exec --sync), attach and port-forward, as kubectl runs
// them through kubelet: a CRI call gives a URL on the streaming server, then one SPDY/3.1
// connection (SpdyClient) carries the streams, driven by one poll(2) loop on one thread.
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <charconv>
#include <climits>
#include <csignal>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>

#include "api.pb.h"
#include "monoctl/Commands.h"
#include "monoctl/SpdyClient.h"
#include "monoctl/StreamIo.h"

namespace monocri::monoctl {

namespace v1 = runtime::v1;
namespace spdy = exec::spdy;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

namespace {

constexpr std::string_view kRuntimeService = "/runtime.v1.RuntimeService/";
// What exec and attach offer, best first (kubectl's list); the error stream carries a JSON
// Status from v4 on, plain text before.
const std::vector<std::string> kRemoteCommandProtocols = {"v4.channel.k8s.io", "v3.channel.k8s.io",
                                                          "v2.channel.k8s.io", "channel.k8s.io"};
const std::vector<std::string> kPortForwardProtocols = {"portforward.k8s.io"};
// kubectl waits this long for each SYN_REPLY.
constexpr std::chrono::seconds kStreamReplyTimeout{30};
// Bytes received but not yet taken by their destination (a terminal, a pipe, a local
// connection) past which the connection is not read: a slow reader slows the server down.
constexpr size_t kOutputHighWater = 256 * 1024;
// Bytes queued for the server past which stdin and local connections are not read.
constexpr size_t kInputHighWater = 256 * 1024;
// What is read from stdin or a local connection at a time (kubectl's DATA frames: 32 KiB).
constexpr size_t kInputChunkBytes = 32 * 1024;
// The most of an error stream kept (a Status is a few hundred bytes).
constexpr size_t kMaxErrorStreamBytes = 64 * 1024;
// How long the last frames (GOAWAY) get when monoctl ends a session itself.
constexpr std::chrono::milliseconds kGoodbyeTimeout{1000};
// The exit status of a process whose stdout reader went away (as if killed by SIGPIPE).
constexpr int kBrokenPipeExit = 128 + SIGPIPE;

std::string method(std::string_view name) {
  return std::string(kRuntimeService) + std::string(name);
}

int remainingMs(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, INT_MAX));
}

// ---- exec and attach: the remotecommand protocol ----

// `object[key]` when it is a string, else "" (the server's JSON is not trusted to be typed).
std::string stringField(const Json& object, const char* key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// One exec or attach session: the streams opened one after another (each once the previous
// one is answered, as kubectl does), stdin copied to the server, stdout and stderr to ours,
// the terminal's size on the resize stream, and the outcome read from the error stream.
class RemoteCommandSession final : public SpdyClient::Listener {
 public:
  RemoteCommandSession(std::string verb, SpdyClient& client, bool stdin, bool tty)
      : verb_(std::move(verb)), client_(client), stdin_(stdin), tty_(tty) {
    toOpen_.push_back("error");
    if (stdin_) toOpen_.push_back("stdin");
    toOpen_.push_back("stdout");
    if (!tty_) toOpen_.push_back("stderr");
    if (tty_ && version() >= 3) toOpen_.push_back("resize");
  }

  // The session, then its exit code (messages on stderr once the terminal is restored).
  int run() {
    const Ending ending = loop();
    if (ending.kind != Ending::kServerDone) {
      // This side ends it: the server is told (kubectl's GOAWAY), briefly.
      client_.goaway();
      client_.flush(kGoodbyeTimeout);
    }
    switch (ending.kind) {
      case Ending::kSignal:
        return 128 + ending.signal;
      case Ending::kOutputFailed:
        if (ending.error == EPIPE) return kBrokenPipeExit;
        std::cerr << "monoctl: " << verb_ << ": writing the output: " << std::strerror(ending.error)
                  << "\n";
        return 1;
      case Ending::kFailed:
        std::cerr << "monoctl: " << verb_ << ": " << failure_ << "\n";
        return 1;
      case Ending::kServerDone:
        break;
    }
    return outcome();
  }

  // ---- SpdyClient::Listener ----
  void onReply(uint32_t id) override {
    if (id != waitingFor_) return;
    const std::string& type = toOpen_[replies_];
    if (type == "error") errorStream_ = id;
    if (type == "stdin") stdinStream_ = id;
    if (type == "stdout") stdoutStream_ = id;
    if (type == "stderr") stderrStream_ = id;
    if (type == "resize") resizeStream_ = id;
    ++replies_;
    waitingFor_ = 0;
    openNext();
  }
  void onData(uint32_t id, std::string_view bytes, bool) override {
    if (id == 0) return;
    if (id == stdoutStream_) {
      stdout_.append(bytes);
    } else if (id == stderrStream_) {
      stderr_.append(bytes);
    } else if (id == errorStream_) {
      errorSeen_ = true;
      errorText_.append(bytes.substr(0, kMaxErrorStreamBytes - errorText_.size()));
    }
  }
  void onReset(uint32_t id, uint32_t status) override {
    // At the end the server resets every stream (after the status): only a stream it will
    // not open is a failure.
    if (id == waitingFor_ && failure_.empty()) {
      failure_ = fmt::format("the streaming server refused the {} stream ({})", toOpen_[replies_],
                             spdy::rstStatusName(status));
    }
  }
  void onGoaway(uint32_t, uint32_t) override {}

 private:
  struct Ending {
    enum Kind { kServerDone, kSignal, kOutputFailed, kFailed } kind = kServerDone;
    int signal = 0;
    int error = 0;
  };

  int version() const {
    const std::string& p = client_.protocol();
    if (p.size() > 1 && p[0] == 'v') return p[1] - '0';
    return 1;
  }
  bool ready() const { return replies_ == toOpen_.size(); }

  void openNext() {
    if (ready()) {
      sendSize();
      return;
    }
    waitingFor_ = client_.openStream({{"streamtype", toOpen_[replies_]}});
    replyDeadline_ = Clock::now() + kStreamReplyTimeout;
  }

  void sendSize() {
    if (resizeStream_ == 0 || sizeFd_ < 0) return;
    const std::optional<TerminalSize> size = terminalSize(sizeFd_);
    if (!size || size == lastSize_) return;
    lastSize_ = size;
    client_.sendData(resizeStream_,
                     fmt::format("{{\"Width\":{},\"Height\":{}}}\n", size->width, size->height),
                     false);
  }

  void readStdin() {
    char buffer[kInputChunkBytes];
    const ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);
    if (n > 0) {
      client_.sendData(stdinStream_, std::string_view(buffer, static_cast<size_t>(n)), false);
      return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    // EOF (or an unreadable stdin, which ends the same way): the half-close.
    client_.sendData(stdinStream_, {}, true);
    stdinOpen_ = false;
  }

  // The poll loop, with the terminal and signals set up for its duration only.
  Ending loop() {
    SignalPipe signals({SIGINT, SIGTERM, SIGHUP, SIGWINCH});
    NonBlockingFds nonBlocking({STDOUT_FILENO, STDERR_FILENO});
    std::unique_ptr<RawTerminal> raw;
    // Raw only when the keys go to the command: without -i, Ctrl-C must still stop monoctl.
    if (tty_ && stdin_ && isatty(STDIN_FILENO)) {
      std::string error;
      raw = RawTerminal::enter(STDIN_FILENO, error);
      if (!raw) std::cerr << "monoctl: " << verb_ << ": terminal not set raw: " << error << "\n";
    }
    if (tty_)
      sizeFd_ = isatty(STDOUT_FILENO) ? STDOUT_FILENO : isatty(STDIN_FILENO) ? STDIN_FILENO : -1;
    client_.start(*this);
    openNext();
    for (;;) {
      if (!failure_.empty()) return {Ending::kFailed};
      if (stdout_.failed()) return {Ending::kOutputFailed, 0, stdout_.error()};
      if (stderr_.failed()) return {Ending::kOutputFailed, 0, stderr_.error()};
      // The server is done once it said GOAWAY or closed; what it sent is written out first.
      const bool serverDone = client_.ended() || client_.goawayReceived();
      if (serverDone && stdout_.empty() && stderr_.empty()) return {Ending::kServerDone};
      client_.pauseReading(stdout_.size() + stderr_.size() > kOutputHighWater);

      PollSet set;
      const size_t sig = set.add(signals.fd(), POLLIN);
      const size_t conn = set.add(client_.fd(), serverDone ? 0 : client_.pollEvents());
      const bool wantStdin = ready() && stdinStream_ != 0 && stdinOpen_ && !serverDone &&
                             client_.queuedBytes() < kInputHighWater;
      const size_t in = set.add(STDIN_FILENO, wantStdin ? POLLIN : 0);
      const size_t out = set.add(STDOUT_FILENO, stdout_.empty() ? 0 : POLLOUT);
      const size_t err = set.add(STDERR_FILENO, stderr_.empty() ? 0 : POLLOUT);
      set.wait(ready() || serverDone ? -1 : remainingMs(replyDeadline_));

      if (set.revents(sig)) {
        for (int signo : signals.take()) {
          if (signo != SIGWINCH) return {Ending::kSignal, signo};
          sendSize();
        }
      }
      if (!serverDone) client_.handle(set.revents(conn));
      if (set.revents(in)) readStdin();
      if (set.revents(out)) stdout_.writeSome();
      if (set.revents(err)) stderr_.writeSome();
      if (!ready() && !serverDone && Clock::now() >= replyDeadline_ && failure_.empty()) {
        failure_ = fmt::format("timed out waiting for the streaming server to accept the {} stream",
                               toOpen_[replies_]);
      }
    }
  }

  // The exit code the error stream says (or the connection's end, when it said nothing).
  int outcome() {
    // As kubectl: the session is over, the server is told so (it may be gone already).
    client_.goaway();
    client_.flush(std::chrono::milliseconds(100));
    if (!errorSeen_) {
      if (!client_.endReason().empty() && !client_.goawayReceived()) {
        std::cerr << "monoctl: " << verb_
                  << ": lost the connection to the streaming server: " << client_.endReason()
                  << "\n";
        return 1;
      }
      if (version() < 4 && ready()) return 0;  // before v4 success is an empty error stream
      std::cerr << "monoctl: " << verb_
                << ": the streaming server ended the session without an exit status\n";
      return 1;
    }
    if (version() < 4) {
      std::cerr << "monoctl: " << verb_ << ": " << errorText_ << "\n";
      return 1;
    }
    // A metav1.Status: Success, or Failure with reason NonZeroExitCode and the code in
    // details.causes[reason=ExitCode].message, or another failure with its message.
    const Json status = Json::parse(errorText_, nullptr, /*allow_exceptions=*/false);
    if (status.is_discarded() || !status.is_object()) {
      std::cerr << "monoctl: " << verb_ << ": the error stream holds no Status: " << errorText_
                << "\n";
      return 1;
    }
    if (stringField(status, "status") == "Success") return 0;
    const std::string message = stringField(status, "message");
    if (stringField(status, "reason") == "NonZeroExitCode" && status.contains("details") &&
        status["details"].is_object() && status["details"].contains("causes") &&
        status["details"]["causes"].is_array()) {
      for (const auto& cause : status["details"]["causes"]) {
        if (stringField(cause, "reason") != "ExitCode") continue;
        const std::string text = stringField(cause, "message");
        int code = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), code);
        // As a process's status: 1-255 (a code past 255 must not wrap around to success).
        if (ec == std::errc() && end == text.data() + text.size() && code > 0) {
          return std::min(code, 255);
        }
      }
    }
    std::cerr << "monoctl: " << verb_ << ": "
              << (message.empty() ? "the command failed: " + errorText_ : message) << "\n";
    return 1;
  }

  const std::string verb_;
  SpdyClient& client_;
  const bool stdin_, tty_;
  std::vector<std::string> toOpen_;  // stream types, in the order they are opened
  size_t replies_ = 0;               // how many of them the server answered
  uint32_t waitingFor_ = 0;          // the stream opened and not yet answered
  Clock::time_point replyDeadline_;
  uint32_t errorStream_ = 0, stdinStream_ = 0, stdoutStream_ = 0, stderrStream_ = 0,
           resizeStream_ = 0;
  bool stdinOpen_ = true;
  OutputBuffer stdout_{STDOUT_FILENO}, stderr_{STDERR_FILENO};
  int sizeFd_ = -1;  // the terminal whose size the command gets
  std::optional<TerminalSize> lastSize_;
  bool errorSeen_ = false;
  std::string errorText_;
  std::string failure_;  // why this side gave up
};

int streamRemoteCommand(const Options& options, const std::string& verb, const std::string& url,
                        bool stdin, bool tty) {
  std::string error;
  auto client =
      SpdyClient::dial(url, kRemoteCommandProtocols,
                       std::chrono::duration_cast<std::chrono::milliseconds>(options.timeout),
                       options.streamTls, error);
  if (!client) {
    std::cerr << "monoctl: " << verb << ": " << error << "\n";
    return 1;
  }
  return RemoteCommandSession(verb, *client, stdin, tty).run();
}

// ---- port-forward ----

struct PortMapping {
  uint16_t local = 0;  // 0: any free port
  uint16_t remote = 0;
};

std::optional<uint16_t> parsePort(std::string_view text, bool zeroOk) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535 ||
      (value == 0 && !zeroOk)) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

// Local connections, each carried by a pair of streams (error, data) sharing a request id, as
// kubectl's port-forward: the error stream half-closed at once and read for the server's
// complaint, the data stream both ways, each side ending it with a FIN.
class PortForwardSession final : public SpdyClient::Listener {
 public:
  explicit PortForwardSession(SpdyClient& client) : client_(client) {}

  // Listens on 127.0.0.1 for each mapping and says where.
  bool listen(const std::vector<PortMapping>& mappings, std::string& error) {
    for (const PortMapping& mapping : mappings) {
      state::UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!fd.valid()) {
        error = fmt::format("socket: {}", std::strerror(errno));
        return false;
      }
      const int one = 1;
      setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      address.sin_port = htons(mapping.local);
      socklen_t length = sizeof address;
      if (bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
          ::listen(fd.get(), SOMAXCONN) != 0 ||
          getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        error =
            fmt::format("cannot listen on 127.0.0.1:{}: {}", mapping.local, std::strerror(errno));
        return false;
      }
      const uint16_t port = ntohs(address.sin_port);
      std::cout << "Forwarding from 127.0.0.1:" << port << " -> " << mapping.remote << std::endl;
      listeners_.push_back({std::move(fd), port, mapping.remote});
    }
    return true;
  }

  // Until SIGINT/SIGTERM/SIGHUP (0) or the connection is lost (1).
  int run() {
    SignalPipe signals({SIGINT, SIGTERM, SIGHUP});
    client_.start(*this);
    for (;;) {
      if (client_.ended() || client_.goawayReceived()) {
        for (auto& [id, c] : connections_)
          report(*c);
        const std::string& why = client_.endReason();
        std::cerr << "monoctl: port-forward: lost the connection to the streaming server"
                  << (why.empty() ? "" : ": " + why) << "\n";
        return 1;
      }
      size_t pending = 0;
      std::optional<Clock::time_point> deadline;
      for (const auto& [id, c] : connections_) {
        pending += c->toLocal.size();
        if (c->waitingFor != 0 && (!deadline || c->replyDeadline < *deadline)) {
          deadline = c->replyDeadline;
        }
      }
      client_.pauseReading(pending > kOutputHighWater);

      PollSet set;
      const size_t sig = set.add(signals.fd(), POLLIN);
      const size_t conn = set.add(client_.fd(), client_.pollEvents());
      const size_t firstListener = set.add(listeners_[0].fd.get(), POLLIN);
      for (size_t i = 1; i < listeners_.size(); ++i)
        set.add(listeners_[i].fd.get(), POLLIN);
      std::vector<std::pair<Connection*, size_t>> locals;
      for (const auto& [id, c] : connections_) {
        if (!c->socket.valid()) continue;
        short events = 0;
        if (c->dataOpen && !c->sentFin && client_.queuedBytes() < kInputHighWater) {
          events |= POLLIN;
        }
        if (!c->toLocal.empty()) events |= POLLOUT;
        locals.emplace_back(c.get(), set.add(c->socket.get(), events));
      }
      set.wait(deadline ? remainingMs(*deadline) : -1);

      if (set.revents(sig) && !signals.take().empty()) {
        // What the server said of connections still open (its FIN may not have come).
        for (auto& [id, c] : connections_)
          report(*c);
        client_.goaway();
        client_.flush(kGoodbyeTimeout);
        return 0;
      }
      client_.handle(set.revents(conn));
      for (size_t i = 0; i < listeners_.size(); ++i)
        if (set.revents(firstListener + i)) accept(listeners_[i]);
      for (auto [c, index] : locals) {
        const short revents = set.revents(index);
        if (revents & POLLOUT) c->toLocal.writeSome();
        if (revents & (POLLIN | POLLHUP | POLLERR)) readLocal(*c);
      }
      sweep();
    }
  }

  // ---- SpdyClient::Listener ----
  void onReply(uint32_t id) override {
    Connection* c = connectionOf(id);
    if (c == nullptr || id != c->waitingFor) return;
    c->waitingFor = 0;
    if (id == c->errorStream) {
      // Nothing goes to the server on the error stream: half-closed at once, as kubectl does.
      client_.sendData(c->errorStream, {}, true);
      c->dataStream = client_.openStream(headers(*c, "data"));
      streams_[c->dataStream] = c;
      c->waitingFor = c->dataStream;
      c->replyDeadline = Clock::now() + kStreamReplyTimeout;
    } else if (id == c->dataStream) {
      c->dataOpen = true;
    }
  }
  void onData(uint32_t id, std::string_view bytes, bool fin) override {
    Connection* c = connectionOf(id);
    if (c == nullptr) return;
    if (id == c->errorStream) {
      c->errorText.append(bytes.substr(0, kMaxErrorStreamBytes - c->errorText.size()));
      if (fin) c->errorDone = true;
    } else if (id == c->dataStream) {
      if (c->socket.valid()) c->toLocal.append(bytes);
      if (fin) c->remoteDone = true;
    }
  }
  void onReset(uint32_t id, uint32_t status) override {
    Connection* c = connectionOf(id);
    if (c == nullptr) return;
    if (id == c->waitingFor) {
      c->errorText =
          fmt::format("the streaming server refused the stream ({})", spdy::rstStatusName(status));
      c->waitingFor = 0;
      c->errorDone = c->remoteDone = true;
    }
    if (id == c->errorStream) c->errorDone = true;
    if (id == c->dataStream) c->remoteDone = true;
  }
  void onGoaway(uint32_t, uint32_t) override {}

 private:
  struct LocalListener {
    state::UniqueFd fd;
    uint16_t port = 0, remote = 0;
  };
  struct Connection {
    uint64_t requestId = 0;
    uint16_t localPort = 0, remote = 0;
    state::UniqueFd socket;
    OutputBuffer toLocal;
    uint32_t errorStream = 0, dataStream = 0;
    uint32_t waitingFor = 0;  // the stream opened and not yet answered
    Clock::time_point replyDeadline;
    bool dataOpen = false;    // the data stream was answered: local bytes may go
    bool sentFin = false;     // the local side ended (its FIN sent on the data stream)
    bool remoteDone = false;  // the server ended the data stream (FIN or reset)
    bool errorDone = false;   // the server ended the error stream
    std::string errorText;
  };

  spdy::HeaderList headers(const Connection& c, const char* type) const {
    return {{"streamtype", type},
            {"port", std::to_string(c.remote)},
            {"requestid", std::to_string(c.requestId)}};
  }

  Connection* connectionOf(uint32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second;
  }

  void accept(LocalListener& listener) {
    for (;;) {
      state::UniqueFd fd(
          accept4(listener.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!fd.valid()) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          std::cerr << "monoctl: port-forward: accepting on 127.0.0.1:" << listener.port << ": "
                    << std::strerror(errno) << "\n";
        }
        return;
      }
      std::cout << "Handling connection for " << listener.remote << std::endl;  // as kubectl
      auto c = std::make_unique<Connection>();
      c->requestId = nextRequestId_++;
      c->localPort = listener.port;
      c->remote = listener.remote;
      c->toLocal = OutputBuffer(fd.get());
      c->socket = std::move(fd);
      c->errorStream = client_.openStream(headers(*c, "error"));
      c->waitingFor = c->errorStream;
      c->replyDeadline = Clock::now() + kStreamReplyTimeout;
      streams_[c->errorStream] = c.get();
      connections_[c->requestId] = std::move(c);
    }
  }

  void readLocal(Connection& c) {
    if (!c.socket.valid() || !c.dataOpen || c.sentFin) return;
    char buffer[kInputChunkBytes];
    const ssize_t n = read(c.socket.get(), buffer, sizeof buffer);
    if (n > 0) {
      client_.sendData(c.dataStream, std::string_view(buffer, static_cast<size_t>(n)), false);
      return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n < 0) {
      // The local peer reset its connection: nothing more goes either way.
      return abandon(c);
    }
    client_.sendData(c.dataStream, {}, true);
    c.sentFin = true;
  }

  // The local connection is gone: the server is told to stop (RST CANCEL on the data stream).
  void abandon(Connection& c) {
    c.socket.reset();
    c.toLocal = OutputBuffer();
    if (c.dataStream != 0 && !c.remoteDone) client_.resetStream(c.dataStream, spdy::kCancel);
    c.sentFin = c.remoteDone = true;
    if (c.waitingFor != 0) {
      // Not answered yet: nothing to wait for from the server.
      c.waitingFor = 0;
      c.errorDone = true;
    }
  }

  // What the server said went wrong with a connection, once.
  void report(Connection& c) {
    if (c.errorText.empty()) return;
    std::cerr << "monoctl: port-forward: an error occurred forwarding 127.0.0.1:" << c.localPort
              << " -> " << c.remote << ": " << std::exchange(c.errorText, {}) << "\n";
  }

  // Ends what is over: after the server's FIN (and its bytes written) the local socket closes;
  // a pair whose streams both ended goes, its error text printed.
  void sweep() {
    for (auto it = connections_.begin(); it != connections_.end();) {
      Connection& c = *it->second;
      if (c.waitingFor != 0 && Clock::now() >= c.replyDeadline) {
        c.errorText = "timed out waiting for the streaming server to accept a stream";
        abandon(c);
        c.errorDone = true;
      }
      if (c.socket.valid() && c.toLocal.failed()) abandon(c);
      if (c.socket.valid() && c.remoteDone && c.toLocal.empty()) {
        c.socket.reset();
        if (!c.sentFin) {
          client_.sendData(c.dataStream, {}, true);
          c.sentFin = true;
        }
      }
      if (c.socket.valid() || !c.errorDone || (c.dataStream != 0 && !c.remoteDone)) {
        ++it;
        continue;
      }
      report(c);
      streams_.erase(c.errorStream);
      streams_.erase(c.dataStream);
      it = connections_.erase(it);
    }
  }

  SpdyClient& client_;
  std::vector<LocalListener> listeners_;
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;  // by request id
  std::map<uint32_t, Connection*> streams_;                      // both streams of each
  uint64_t nextRequestId_ = 0;
};

}  // namespace

int runExec(const Options& options, const ExecOptions& exec) {
  if (exec.command.empty()) {
    std::cerr << "monoctl: exec: give the command to run after the container id\n";
    return 2;
  }
  std::string id;
  if (grpc::Status s = resolveContainer(options, exec.container, id); !s.isOk()) {
    return fail(options, "exec", s);
  }
  if (exec.sync) {
    v1::ExecSyncRequest request;
    request.set_container_id(id);
    for (const auto& arg : exec.command)
      request.add_cmd(arg);
    request.set_timeout(exec.timeoutSeconds);
    v1::ExecSyncResponse response;
    // The call lasts as long as the command may, and a little more; no limit, no deadline.
    const std::chrono::nanoseconds deadline =
        exec.timeoutSeconds > 0 ? options.timeout + std::chrono::seconds(exec.timeoutSeconds)
                                : std::chrono::nanoseconds(0);
    if (grpc::Status s = callRuntime(options, method("ExecSync"), request, response, deadline);
        !s.isOk()) {
      return fail(options, "exec", s);
    }
    std::cout.write(response.stdout().data(),
                    static_cast<std::streamsize>(response.stdout().size()));
    std::cout.flush();
    std::cerr.write(response.stderr().data(),
                    static_cast<std::streamsize>(response.stderr().size()));
    return response.exit_code();
  }
  v1::ExecRequest request;
  request.set_container_id(id);
  for (const auto& arg : exec.command)
    request.add_cmd(arg);
  request.set_tty(exec.tty);
  request.set_stdin(exec.stdin);
  request.set_stdout(true);
  request.set_stderr(!exec.tty);  // with a terminal, stderr is the terminal
  v1::ExecResponse response;
  if (grpc::Status s = callRuntime(options, method("Exec"), request, response); !s.isOk()) {
    return fail(options, "exec", s);
  }
  return streamRemoteCommand(options, "exec", response.url(), exec.stdin, exec.tty);
}

int runAttach(const Options& options, const AttachOptions& attach) {
  std::string id;
  if (grpc::Status s = resolveContainer(options, attach.container, id); !s.isOk()) {
    return fail(options, "attach", s);
  }
  v1::AttachRequest request;
  request.set_container_id(id);
  request.set_stdin(attach.stdin);
  request.set_tty(attach.tty);
  request.set_stdout(true);
  request.set_stderr(!attach.tty);
  v1::AttachResponse response;
  if (grpc::Status s = callRuntime(options, method("Attach"), request, response); !s.isOk()) {
    return fail(options, "attach", s);
  }
  return streamRemoteCommand(options, "attach", response.url(), attach.stdin, attach.tty);
}

int runPortForward(const Options& options, const std::string& podPrefix,
                   const std::vector<std::string>& specs) {
  std::vector<PortMapping> mappings;
  for (const auto& spec : specs) {
    const size_t colon = spec.find(':');
    std::optional<uint16_t> local = 0, remote;
    if (colon == std::string::npos) {
      remote = parsePort(spec, false);
    } else {
      local = colon == 0 ? std::optional<uint16_t>(0)
                         : parsePort(std::string_view(spec).substr(0, colon), true);
      remote = parsePort(std::string_view(spec).substr(colon + 1), false);
    }
    if (!local || !remote) {
      std::cerr << "monoctl: port-forward: '" << spec
                << "' is not [LOCAL:]REMOTE (ports 1-65535, LOCAL 0 or none: any free port)\n";
      return 2;
    }
    mappings.push_back({*local, *remote});
  }
  if (mappings.empty()) {
    std::cerr << "monoctl: port-forward: give at least one [LOCAL:]REMOTE port\n";
    return 2;
  }
  std::string podId;
  if (grpc::Status s = resolvePod(options, podPrefix, podId); !s.isOk()) {
    return fail(options, "port-forward", s);
  }
  v1::PortForwardRequest request;
  request.set_pod_sandbox_id(podId);
  for (const auto& mapping : mappings)
    request.add_port(mapping.remote);
  v1::PortForwardResponse response;
  if (grpc::Status s = callRuntime(options, method("PortForward"), request, response); !s.isOk()) {
    return fail(options, "port-forward", s);
  }
  std::string error;
  auto client =
      SpdyClient::dial(response.url(), kPortForwardProtocols,
                       std::chrono::duration_cast<std::chrono::milliseconds>(options.timeout),
                       options.streamTls, error);
  if (!client) {
    std::cerr << "monoctl: port-forward: " << error << "\n";
    return 1;
  }
  PortForwardSession session(*client);
  if (!session.listen(mappings, error)) {
    std::cerr << "monoctl: port-forward: " << error << "\n";
    return 1;
  }
  return session.run();
}

}  // namespace monocri::monoctl
