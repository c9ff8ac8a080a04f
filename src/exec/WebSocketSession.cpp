// WebSocket sessions (Kubernetes' channel.k8s.io family): every message starts with its channel,
// a byte in the binary protocols, a digit followed by base64 in the base64 ones. Exec and attach
// use channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize, and from v5 on 255 to close one
// (stdin's end of input). Port-forward gives port N of the URL's list the channels 2N (data) and
// 2N+1 (error), each opened with a message holding the port (v4, little-endian).
#include <fmt/format.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <map>

#include "exec/StreamSessions.h"
#include "exec/websocket/WebSocketConnection.h"
#include "loop/Timer.h"

namespace monocri::exec {

namespace {

using grpc::Status;
using grpc::StatusCode;
using logging::LogStream;

// How long the end of a session (status, close frame) may take to reach the client.
constexpr uint64_t kCloseMs = 10'000;
constexpr uint8_t kStdin = 0, kStdout = 1, kStderr = 2, kError = 3, kResize = 4, kClose = 255;

std::string base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out(3 * (text.size() / 4), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  size_t size = static_cast<size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  for (size_t i = text.size(); i > 0 && text[i - 1] == '=' && size > 0; --i)
    --size;
  out.resize(size);
  return out;
}

class WebSocketSession final : public StreamSession,
                               public ws::WebSocketConnection::Handler,
                               public CommandClient {
 public:
  explicit WebSocketSession(SessionSetup setup)
      : setup_(std::move(setup)),
        loop_(*setup_.loop),
        transport_(std::move(setup_.connection)),
        connection_(*this),
        portForward_(std::holds_alternative<PortForwardStreamRequest>(setup_.request)) {}

  ~WebSocketSession() override {
    command_.reset();
    ports_.clear();
  }

  void begin() {
    transport_->setLabel("websocket session");
    const int rc = transport_->startReading([this](std::string_view bytes) { onSocketData(bytes); },
                                            [this](int) { end(); });
    if (rc != 0) return end();
    if (portForward_) {
      startForwarding();
    } else {
      startCommand();
    }
    if (!setup_.early.empty()) {
      const std::string early = std::move(setup_.early);
      onSocketData(early);
    }
    flush();
  }

  // ---- CommandClient ----
  void sendOutput(LogStream stream, std::string_view bytes) override {
    if (closing_ || bytes.empty()) return;
    send(stream == LogStream::kStdout ? kStdout : kStderr, bytes);
    flush();
  }
  size_t outputQueuedBytes() const override {
    return transport_->writeQueueBytes() + connection_.pendingBytes();
  }
  void finish(const CommandOutcome& outcome) override {
    if (closing_) return;
    const std::string message = errorStreamMessage(outcome, setup_.protocol.version);
    if (!message.empty()) send(kError, message);
    close(1000, "");
  }

  // ---- WebSocketConnection::Handler ----
  void onMessage(bool binary, std::string_view payload) override {
    if (closing_) return;
    std::optional<std::string> decoded;
    uint8_t channel = 0;
    if (setup_.protocol.base64) {
      if (binary || payload.empty() || payload[0] < '0' || payload[0] > '9') {
        return close(1003, "base64 protocols carry text messages led by a channel digit");
      }
      channel = static_cast<uint8_t>(payload[0] - '0');
      decoded = base64Decode(payload.substr(1));
      if (!decoded) return close(1007, "a message that is not base64");
      payload = *decoded;
    } else {
      if (payload.empty()) return;  // kubectl's keep-alive: nothing on no channel
      channel = static_cast<uint8_t>(payload[0]);
      payload.remove_prefix(1);
    }
    if (portForward_) return forwardData(channel, payload);
    if (channel == kStdin) {
      if (!payload.empty()) input(std::string(payload));
    } else if (channel == kResize) {
      if (!resizes_.feedMessage(payload, [this](uint16_t width, uint16_t height) {
            if (command_) command_->resize(width, height);
          })) {
        return close(1007, "a resize message that is not {\"Width\":W,\"Height\":H}");
      }
    } else if (channel == kClose && setup_.protocol.version >= 5) {
      if (!payload.empty() && static_cast<uint8_t>(payload[0]) == kStdin && command_)
        command_->inputEnd();
    }
  }
  // The client is done: the answering close frame (wslay's) goes out, then the connection.
  void onPeerClose(uint16_t, std::string_view) override {
    flush();
    if (closing_) return;  // it answered ours
    closing_ = true;
    transport_->shutdown([this, alive = lifetime_.watch()](int) {
      if (!alive.expired()) end();
    });
    closeTimer_ = loop::Timer::create(loop_, "websocket session close");
    closeTimer_->start(kCloseMs, 0, [this] { end(); });
  }

 private:
  void onSocketData(std::string_view bytes) {
    if (ended_) return;
    if (!connection_.feed(bytes)) {
      spdlog::info("websocket session: {}: closing", connection_.error());
      flush();  // the close frame saying why
      transport_->stopReading();
      if (closing_) return;
      closing_ = true;
      transport_->shutdown([this, alive = lifetime_.watch()](int) {
        if (!alive.expired()) end();
      });
      closeTimer_ = loop::Timer::create(loop_, "websocket session close");
      closeTimer_->start(kCloseMs, 0, [this] { end(); });
      return;
    }
    flush();
    // Pongs to a client that pings and never reads back up here: it is not read until they
    // went out.
    if (outputQueuedBytes() > kOutputHighWater) transport_->stopReading();
  }

  // Reading goes on once neither the command's input nor what goes to the client backs up.
  void resumeClient() {
    if (closing_ || transport_->reading() || waitingForInput_ ||
        outputQueuedBytes() > kOutputHighWater / 2) {
      return;
    }
    if (transport_->resumeReading() != 0) end();
  }

  void send(uint8_t channel, std::string_view bytes) {
    if (setup_.protocol.base64) {
      std::string text(1, static_cast<char>('0' + channel));
      text += base64Encode(bytes);
      connection_.sendText(text);
      return;
    }
    std::string message(1, static_cast<char>(channel));
    message.append(bytes);
    connection_.sendBinary(message);
  }

  void flush() {
    std::string out = connection_.takeOutput();
    if (out.empty()) return;
    transport_->write(std::move(out), [this, alive = lifetime_.watch()](int status) {
      if (!alive.expired()) outputWritten(status);
    });
  }

  void outputWritten(int status) {
    // A write that failed (not one cancelled by our own close): the client is gone.
    if (status != 0 && status != UV_ECANCELED) return end();
    if (outputQueuedBytes() > kOutputHighWater / 2) return;
    resumeClient();
    if (command_) command_->outputDrained();
    for (auto& [channel, port] : ports_)
      if (port.paused && port.pod) {
        port.paused = false;
        port.pod->resumeReading();
      }
  }

  void close(uint16_t code, const std::string& reason) {
    if (closing_) return;
    closing_ = true;
    connection_.sendClose(code, reason);
    flush();
    transport_->stopReading();
    // A client that does not read what is left does not hold the session.
    closeTimer_ = loop::Timer::create(loop_, "websocket session close");
    closeTimer_->start(kCloseMs, 0, [this] { end(); });
    transport_->shutdown([this, alive = lifetime_.watch()](int) {
      if (!alive.expired()) end();
    });
    loop_.defer(lifetime_.watch(), [this] {
      command_.reset();
      ports_.clear();
    });
  }

  void end() {
    if (ended_) return;
    ended_ = true;
    closing_ = true;
    transport_->stopReading();
    loop_.defer(lifetime_.watch(), [this] { setup_.ended(); });
  }

  // ---- exec and attach ----
  void startCommand() {
    Status error;
    bool stdout = false, stderr = false;
    if (auto* exec = std::get_if<ExecStreamRequest>(&setup_.request)) {
      stdout = exec->stdout;
      stderr = exec->stderr && !exec->tty;
      command_ = setup_.backend->exec(*exec, *this, error);
    } else {
      const auto& attach = std::get<AttachStreamRequest>(setup_.request);
      stdout = attach.stdout;
      stderr = attach.stderr && !attach.tty;
      command_ = setup_.backend->attach(attach, *this, error);
    }
    // The client learns the session is up from an empty message on the first output channel.
    send(stdout ? kStdout : stderr ? kStderr : kError, {});
    if (!command_) finish(CommandOutcome{error, 0});
  }

  void input(std::string bytes) {
    if (!command_) return;
    command_->input(std::move(bytes));
    if (command_->inputQueuedBytes() > RemoteCommand::kInputHighWater && !waitingForInput_) {
      transport_->stopReading();
      waitingForInput_ = true;
      command_->whenInputWritten([this, alive = lifetime_.watch()] {
        if (alive.expired()) return;
        waitingForInput_ = false;
        resumeClient();
      });
    }
  }

  // ---- port-forward ----
  struct Port {
    uint16_t number = 0;
    loop::HandlePtr<loop::PipeStream> pod;
    std::string toPod;
    bool done = false, paused = false;
  };

  void startForwarding() {
    const auto& podId = std::get<PortForwardStreamRequest>(setup_.request).podId;
    for (size_t i = 0; i < setup_.ports.size(); ++i) {
      const auto channel = static_cast<uint8_t>(2 * i);
      ports_[channel].number = setup_.ports[i];
      if (setup_.protocol.version >= 4) {
        const char prefix[2] = {static_cast<char>(setup_.ports[i] & 0xff),
                                static_cast<char>(setup_.ports[i] >> 8)};
        send(channel, std::string_view(prefix, 2));
        send(static_cast<uint8_t>(channel + 1), std::string_view(prefix, 2));
      }
      setup_.backend->connectPort(
          podId, setup_.ports[i],
          [this, channel, alive = lifetime_.watch()](Status status, state::UniqueFd socket) {
            if (!alive.expired()) connected(channel, std::move(status), std::move(socket));
          });
    }
  }

  void connected(uint8_t channel, Status status, state::UniqueFd socket) {
    if (closing_) return;
    Port& port = ports_[channel];
    int rc = 0;
    if (status.isOk()) {
      port.pod = loop::PipeStream::adopt(loop_, socket.get(), &rc);
      if (port.pod) {
        socket.release();
      } else {
        status = Status(StatusCode::kInternal, uv_strerror(rc));
      }
    }
    if (!status.isOk()) {
      const auto& podId = std::get<PortForwardStreamRequest>(setup_.request).podId;
      send(static_cast<uint8_t>(channel + 1), fmt::format("error forwarding port {} to pod {}: {}",
                                                          port.number, podId, status.message()));
      flush();
      return portDone(channel);
    }
    port.pod->setLabel("port-forward connection");
    port.pod->startReading(
        [this, channel](std::string_view bytes) {
          send(channel, bytes);
          flush();
          Port& p = ports_[channel];
          if (outputQueuedBytes() > kOutputHighWater && !p.paused) {
            p.paused = true;
            p.pod->stopReading();
          }
        },
        [this, channel](int) { portDone(channel); });
    if (!port.toPod.empty()) writeToPod(*port.pod, std::exchange(port.toPod, {}));
  }

  void forwardData(uint8_t channel, std::string_view bytes) {
    auto it = ports_.find(channel);
    if (it == ports_.end() || bytes.empty()) return;  // error channels carry nothing inbound
    Port& port = it->second;
    if (!port.pod) {
      port.toPod.append(bytes);
      if (port.toPod.size() > RemoteCommand::kInputHighWater) transport_->stopReading();
      return;
    }
    writeToPod(*port.pod, std::string(bytes));
  }

  // Client bytes to a pod connection; the client is not read while they back up there.
  void writeToPod(loop::PipeStream& pod, std::string bytes) {
    pod.write(std::move(bytes), [this, alive = lifetime_.watch(), pod = &pod](int) {
      if (alive.expired() || pod->writeQueueBytes() > RemoteCommand::kInputHighWater / 2) return;
      resumeClient();
    });
    if (pod.writeQueueBytes() > RemoteCommand::kInputHighWater) transport_->stopReading();
  }

  // One port's connection ended; the session ends with the last.
  void portDone(uint8_t channel) {
    Port& port = ports_[channel];
    if (port.done) return;
    port.done = true;
    if (port.pod) port.pod->stopReading();
    port.toPod.clear();
    resumeClient();  // the client may have been paused for bytes this port held
    for (const auto& [c, p] : ports_)
      if (!p.done) return;
    close(1000, "");
  }

  SessionSetup setup_;
  loop::Loop& loop_;
  std::unique_ptr<ClientConnection> transport_;  // the client's TCP or TLS stream
  ws::WebSocketConnection connection_;
  const bool portForward_;
  bool closing_ = false, ended_ = false;
  ResizeDecoder resizes_;
  std::unique_ptr<RemoteCommand> command_;
  std::map<uint8_t, Port> ports_;  // by data channel
  loop::HandlePtr<loop::Timer> closeTimer_;
  bool waitingForInput_ = false;
  loop::LifetimeGuard lifetime_;
};

}  // namespace

std::unique_ptr<StreamSession> startWebSocketSession(SessionSetup setup) {
  auto session = std::make_unique<WebSocketSession>(std::move(setup));
  session->begin();
  return session;
}

}  // namespace monocri::exec
