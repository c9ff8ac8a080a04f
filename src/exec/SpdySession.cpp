// SPDY/3.1 sessions: what kubelet relays from `kubectl exec/attach/port-forward` today. The
// client opens every stream (SYN_STREAM, a `streamtype` header) and waits for each SYN_REPLY
// before it opens the next; neither side uses SPDY's flow control (see the fixtures' notes), so
// back-pressure is the TCP window: a session stops reading its client while the command's input
// is backed up, and pauses the command while its output to the client is.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <charconv>
#include <map>
#include <optional>
#include <set>

#include "exec/StreamSessions.h"
#include "exec/spdy/SpdyFrames.h"
#include "exec/spdy/SpdyHeaderBlock.h"
#include "loop/Timer.h"

namespace monocri::exec {

namespace {

using grpc::Status;
using grpc::StatusCode;
using logging::LogStream;
using spdy::HeaderList;

// How long a client has to open the streams its request needs (kubelet's own server: 30 s).
constexpr uint64_t kStreamWaitMs = 30'000;
// How long the end of a session (status, resets, GOAWAY) may take to reach the client.
constexpr uint64_t kCloseMs = 10'000;

const std::string* findHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [key, value] : headers)
    if (key == name) return &value;
  return nullptr;
}

class SpdySession final : public StreamSession,
                          public spdy::SpdyFrameParser::Handler,
                          public CommandClient {
 public:
  explicit SpdySession(SessionSetup setup)
      : setup_(std::move(setup)),
        loop_(*setup_.loop),
        connection_(std::move(setup_.connection)),
        parser_(*this),
        portForward_(std::holds_alternative<PortForwardStreamRequest>(setup_.request)) {}

  ~SpdySession() override {
    // A command still running loses its client; pod connections close.
    command_.reset();
    forwards_.clear();
  }

  void begin() {
    connection_->setLabel("spdy session");
    if (!portForward_) {
      streamWait_ = loop::Timer::create(loop_, "spdy stream wait");
      streamWait_->start(kStreamWaitMs, 0, [this] {
        fail(Status(StatusCode::kDeadlineExceeded,
                    "timed out waiting for the client to create the streams it asked for"));
      });
    }
    const int rc = connection_->startReading(
        [this](std::string_view bytes) { onSocketData(bytes); }, [this](int) { end(); });
    if (rc != 0) return end();
    if (!setup_.early.empty()) {
      const std::string early = std::move(setup_.early);
      onSocketData(early);
    }
  }

  // ---- CommandClient ----
  void sendOutput(LogStream stream, std::string_view bytes) override {
    const uint32_t id = stream == LogStream::kStdout ? stdoutStream_ : stderrStream_;
    if (id == 0 || bytes.empty() || closing_) return;
    writeData(id, bytes, false);
  }
  size_t outputQueuedBytes() const override { return connection_->writeQueueBytes(); }
  void finish(const CommandOutcome& outcome) override {
    if (closing_) return;
    if (!outcome.status.isOk()) {
      spdlog::info("exec/attach session ended: {}", outcome.status.message());
    }
    const std::string message = errorStreamMessage(outcome, setup_.protocol.version);
    if (errorStream_ != 0 && !message.empty()) writeData(errorStream_, message, false);
    closeConnection(spdy::kGoawayOk);
  }

  // ---- SpdyFrameParser::Handler ----
  void onSynStream(uint32_t id, uint32_t, uint8_t, bool fin, bool, HeaderList headers) override {
    if (closing_) return;
    if (id % 2 == 0 || id <= lastStreamId_) {
      return protocolError(
          fmt::format("stream id {} after {}: client streams are odd and rise", id, lastStreamId_));
    }
    lastStreamId_ = id;
    const std::string* type = findHeader(headers, "streamtype");
    if (type == nullptr) {
      write(spdy::rstStreamFrame(id, spdy::kProtocolError));
      return;
    }
    if (portForward_) return openForwardStream(id, fin, *type, headers);
    uint32_t* slot = nullptr;
    if (*type == "error") slot = &errorStream_;
    if (*type == "stdin") slot = &stdinStream_;
    if (*type == "stdout") slot = &stdoutStream_;
    if (*type == "stderr") slot = &stderrStream_;
    if (*type == "resize") slot = &resizeStream_;
    if (slot == nullptr || *slot != 0) {
      write(spdy::rstStreamFrame(id, spdy::kRefusedStream));
      return;
    }
    *slot = id;
    open_.insert(id);
    write(spdy::synReplyFrame(id, false, deflater_.encode({})));
    if (fin && id == stdinStream_) inputEnded();
    maybeStartCommand();
  }
  void onSynReply(uint32_t, bool, HeaderList) override {
    protocolError("SYN_REPLY from the client: the server opens no streams");
  }
  void onHeaders(uint32_t, bool, HeaderList) override {}
  void onRstStream(uint32_t id, uint32_t) override {
    open_.erase(id);
    if (portForward_) return closeForwardOf(id);
    // A client that resets a stream of its command is gone from it.
    if (id == errorStream_ || id == stdoutStream_ || id == stderrStream_) end();
  }
  void onSettings(std::vector<std::pair<uint32_t, uint32_t>>) override {}
  void onPing(uint32_t id) override { write(spdy::pingFrame(id)); }
  void onGoaway(uint32_t, uint32_t) override { end(); }
  void onWindowUpdate(uint32_t, uint32_t) override {}
  void onData(uint32_t id, std::string_view bytes, bool fin) override {
    if (closing_) return;
    if (!open_.contains(id)) {
      if (id <= lastStreamId_) return;  // a stream we closed: late bytes
      write(spdy::rstStreamFrame(id, spdy::kInvalidStream));
      return;
    }
    if (portForward_) return forwardData(id, bytes, fin);
    if (id == stdinStream_) {
      if (!bytes.empty()) input(std::string(bytes));
      if (fin) inputEnded();
    } else if (id == resizeStream_) {
      const bool ok = resizes_.feed(bytes, [this](uint16_t width, uint16_t height) {
        if (command_) {
          command_->resize(width, height);
        } else {
          pendingSize_ = {width, height};
        }
      });
      if (!ok) write(spdy::rstStreamFrame(id, spdy::kProtocolError));
    }
  }

 private:
  // ---- the connection ----
  void onSocketData(std::string_view bytes) {
    if (closing_) return;
    if (!parser_.feed(bytes)) return protocolError(parser_.error());
    // Replies (PING, RST) to a client that sends and never reads back up here: it is not read
    // until they went out.
    if (connection_->writeQueueBytes() > kOutputHighWater) connection_->stopReading();
  }

  void write(std::string frame, std::function<void(int)> done = nullptr) {
    connection_->write(std::move(frame), std::move(done));
  }

  void writeData(uint32_t id, std::string_view bytes, bool fin) {
    if (closing_) return;  // after the resets and GOAWAY nothing more goes out
    // Frames of at most 16 MiB - 1 (24-bit length), as anyone would send them.
    do {
      const size_t length = std::min<size_t>(bytes.size(), 1 << 20);
      std::string frame =
          spdy::dataFrame(id, bytes.substr(0, length), fin && length == bytes.size());
      bytes.remove_prefix(length);
      write(std::move(frame), [this, alive = lifetime_.watch()](int status) {
        if (!alive.expired()) outputWritten(status);
      });
    } while (!bytes.empty());
  }

  void outputWritten(int status) {
    // A write that failed (not one cancelled by our own close): the client is gone.
    if (status != 0 && status != UV_ECANCELED) return end();
    if (connection_->writeQueueBytes() > kOutputHighWater / 2) return;
    resumeClient();
    if (command_) command_->outputDrained();
    for (auto& [key, forward] : forwards_)
      if (forward.podPaused && forward.pod) {
        forward.podPaused = false;
        forward.pod->resumeReading();
      }
  }

  // A client that breaks the protocol gets GOAWAY; its command loses it (no status can reach
  // it through a broken stream).
  void protocolError(const std::string& why) {
    spdlog::info("spdy session: {}: closing the connection", why);
    closeConnection(spdy::kGoawayProtocolError);
  }

  void fail(Status status) { finish(CommandOutcome{std::move(status), 0}); }

  // Every open stream reset (CANCEL), GOAWAY, then the socket closes once that is written.
  void closeConnection(uint32_t goawayStatus) {
    if (closing_) return;
    closing_ = true;
    if (streamWait_) streamWait_->stop();
    parser_.stop();
    for (uint32_t id : open_)
      write(spdy::rstStreamFrame(id, spdy::kCancel));
    open_.clear();
    write(spdy::goawayFrame(lastStreamId_, goawayStatus));
    connection_->stopReading();
    // A client that does not read what is left does not hold the session.
    closeTimer_ = loop::Timer::create(loop_, "spdy session close");
    closeTimer_->start(kCloseMs, 0, [this] { end(); });
    connection_->shutdown([this, alive = lifetime_.watch()](int) {
      if (!alive.expired()) end();
    });
    // The command may be calling us: it goes after this turn.
    loop_.defer(lifetime_.watch(), [this] {
      command_.reset();
      forwards_.clear();
    });
  }

  // The client went away, or the connection is done: the server frees this session.
  void end() {
    if (ended_) return;
    ended_ = true;
    closing_ = true;
    parser_.stop();
    connection_->stopReading();
    loop_.defer(lifetime_.watch(), [this] { setup_.ended(); });
  }

  // ---- exec and attach ----
  // The streams a request needs, as kubelet's own server waits for them: the error stream, one
  // per stdio stream asked for (no stderr with a tty: it is the terminal), and from v3 on a
  // resize stream with a tty.
  bool haveStreams() const {
    const Wants w = wants();
    if (errorStream_ == 0) return false;
    if (w.stdin && stdinStream_ == 0) return false;
    if (w.stdout && stdoutStream_ == 0) return false;
    if (!w.tty && w.stderr && stderrStream_ == 0) return false;
    if (w.tty && setup_.protocol.version >= 3 && resizeStream_ == 0) return false;
    return true;
  }

  struct Wants {
    bool tty = false, stdin = false, stdout = false, stderr = false;
  };
  Wants wants() const {
    if (const auto* e = std::get_if<ExecStreamRequest>(&setup_.request))
      return {e->tty, e->stdin, e->stdout, e->stderr};
    if (const auto* a = std::get_if<AttachStreamRequest>(&setup_.request))
      return {a->tty, a->stdin, a->stdout, a->stderr};
    return {};
  }

  void maybeStartCommand() {
    if (started_ || closing_ || !haveStreams()) return;
    started_ = true;
    streamWait_->stop();
    Status error;
    if (auto* exec = std::get_if<ExecStreamRequest>(&setup_.request)) {
      command_ = setup_.backend->exec(*exec, *this, error);
    } else {
      command_ =
          setup_.backend->attach(std::get<AttachStreamRequest>(setup_.request), *this, error);
    }
    if (!command_) return fail(error);
    if (pendingSize_) command_->resize(pendingSize_->first, pendingSize_->second);
    if (!pendingInput_.empty()) input(std::exchange(pendingInput_, {}));
    if (!connection_->reading()) pauseClient();  // paused for input kept until now
    if (inputEnded_) command_->inputEnd();
  }

  void input(std::string bytes) {
    if (!command_) {
      // Before the last stream came: kept, the client reading paused past the high water mark
      // (resumed once the command took it).
      pendingInput_ += bytes;
      if (pendingInput_.size() > RemoteCommand::kInputHighWater) pauseClient();
      return;
    }
    command_->input(std::move(bytes));
    if (command_->inputQueuedBytes() > RemoteCommand::kInputHighWater) pauseClient();
  }

  // Input backed up: the client is not read until the command's queue drained.
  void pauseClient() {
    connection_->stopReading();
    if (!command_ || waitingForInput_) return;
    waitingForInput_ = true;
    command_->whenInputWritten([this, alive = lifetime_.watch()] {
      if (alive.expired()) return;
      waitingForInput_ = false;
      resumeClient();
    });
  }
  // Reading goes on once neither the command's input nor the replies to the client back up.
  void resumeClient() {
    if (closing_ || connection_->reading() || waitingForInput_ ||
        connection_->writeQueueBytes() > kOutputHighWater / 2) {
      return;
    }
    if (connection_->resumeReading() != 0) end();
  }

  void inputEnded() {
    if (inputEnded_) return;
    inputEnded_ = true;
    if (command_) command_->inputEnd();
  }

  // ---- port-forward ----
  // A pair of streams (error, data) for one local connection of the client, matched by their
  // `requestid` header, and the connection to the pod's port once both came.
  struct Forward {
    uint32_t errorStream = 0, dataStream = 0;
    uint16_t port = 0;
    bool connecting = false;
    loop::HandlePtr<loop::PipeStream> pod;
    std::string toPod;  // client bytes before the connection was up
    bool clientFin = false, podFin = false, podPaused = false;
  };

  void openForwardStream(uint32_t id, bool fin, const std::string& type,
                         const HeaderList& headers) {
    const std::string* portText = findHeader(headers, "port");
    unsigned port = 0;
    if (portText != nullptr) {
      auto [end, ec] = std::from_chars(portText->data(), portText->data() + portText->size(), port);
      if (ec != std::errc() || end != portText->data() + portText->size()) port = 0;
    }
    if ((type != "error" && type != "data") || port == 0 || port > 65535) {
      write(spdy::rstStreamFrame(id, spdy::kProtocolError));
      return;
    }
    // Without a requestid (old clients) a pair is the error stream and the data stream after it.
    const std::string* requestId = findHeader(headers, "requestid");
    const std::string key =
        requestId != nullptr ? *requestId : std::to_string(type == "data" ? id - 2 : id);
    Forward& forward = forwards_[key];
    uint32_t& slot = type == "error" ? forward.errorStream : forward.dataStream;
    if (slot != 0 || (forward.port != 0 && forward.port != port)) {
      write(spdy::rstStreamFrame(id, spdy::kRefusedStream));
      return;
    }
    slot = id;
    forward.port = static_cast<uint16_t>(port);
    forwardKey_[id] = key;
    open_.insert(id);
    write(spdy::synReplyFrame(id, false, deflater_.encode({})));
    if (fin && type == "data") forward.clientFin = true;
    if (forward.errorStream != 0 && forward.dataStream != 0 && !forward.connecting) {
      forward.connecting = true;
      const auto& podId = std::get<PortForwardStreamRequest>(setup_.request).podId;
      setup_.backend->connectPort(
          podId, forward.port,
          [this, key, alive = lifetime_.watch()](Status status, state::UniqueFd socket) {
            if (!alive.expired()) connected(key, std::move(status), std::move(socket));
          });
    }
  }

  Forward* forwardOf(uint32_t id, std::string* keyOut = nullptr) {
    auto it = forwardKey_.find(id);
    if (it == forwardKey_.end()) return nullptr;
    auto f = forwards_.find(it->second);
    if (f == forwards_.end()) return nullptr;
    if (keyOut) *keyOut = it->second;
    return &f->second;
  }

  void connected(const std::string& key, Status status, state::UniqueFd socket) {
    auto it = forwards_.find(key);
    if (it == forwards_.end() || closing_) return;
    Forward& forward = it->second;
    if (!status.isOk()) {
      const auto& podId = std::get<PortForwardStreamRequest>(setup_.request).podId;
      writeData(forward.errorStream,
                fmt::format("error forwarding port {} to pod {}: {}", forward.port, podId,
                            status.message()),
                false);
      return closeForward(key, true);
    }
    int rc = 0;
    forward.pod = loop::PipeStream::adopt(loop_, socket.get(), &rc);
    if (!forward.pod) return closeForward(key, true);
    socket.release();
    forward.pod->setLabel("port-forward connection");
    const uint32_t dataStream = forward.dataStream;
    forward.pod->startReading(
        [this, key, dataStream](std::string_view bytes) {
          writeData(dataStream, bytes, false);
          Forward* f = forwardOf(dataStream);
          if (f && connection_->writeQueueBytes() > kOutputHighWater && !f->podPaused) {
            f->podPaused = true;
            f->pod->stopReading();
          }
        },
        [this, key](int) { podEnded(key); });
    if (!forward.toPod.empty()) writeToPod(*forward.pod, std::exchange(forward.toPod, {}));
    if (forward.clientFin) shutdownPodWrite(forward);
  }

  // Client bytes to a pod connection; the client is not read while they back up there.
  void writeToPod(loop::PipeStream& pod, std::string bytes) {
    pod.write(std::move(bytes), [this, alive = lifetime_.watch(), pod = &pod](int) {
      if (alive.expired() || pod->writeQueueBytes() > RemoteCommand::kInputHighWater / 2) return;
      resumeClient();
    });
    if (pod.writeQueueBytes() > RemoteCommand::kInputHighWater) connection_->stopReading();
  }

  void shutdownPodWrite(Forward& forward) {
    if (forward.pod) forward.pod->shutdown();
  }

  void forwardData(uint32_t id, std::string_view bytes, bool fin) {
    std::string key;
    Forward* forward = forwardOf(id, &key);
    if (forward == nullptr || id != forward->dataStream) return;  // error stream: nothing to do
    if (!bytes.empty()) {
      if (forward->pod) {
        writeToPod(*forward->pod, std::string(bytes));
      } else {
        forward->toPod.append(bytes);
        if (forward->toPod.size() > RemoteCommand::kInputHighWater) connection_->stopReading();
      }
    }
    if (fin && !forward->clientFin) {
      forward->clientFin = true;
      if (forward->pod) shutdownPodWrite(*forward);
      if (forward->podFin) closeForward(key, false);
    }
  }

  void podEnded(const std::string& key) {
    auto it = forwards_.find(key);
    if (it == forwards_.end()) return;
    Forward& forward = it->second;
    forward.podFin = true;
    writeData(forward.dataStream, {}, true);
    if (forward.clientFin) closeForward(key, false);
  }

  // The pair is done: the error stream half-closed (the data stream too if `both`), the pod
  // connection closed.
  void closeForward(const std::string& key, bool both) {
    auto it = forwards_.find(key);
    if (it == forwards_.end()) return;
    Forward& forward = it->second;
    if (both && !forward.podFin) writeData(forward.dataStream, {}, true);
    writeData(forward.errorStream, {}, true);
    open_.erase(forward.errorStream);
    open_.erase(forward.dataStream);
    forwardKey_.erase(forward.errorStream);
    forwardKey_.erase(forward.dataStream);
    // Its callbacks may be on the stack: the pod connection goes after this turn, and reads
    // nothing more until then.
    if (forward.pod) forward.pod->stopReading();
    loop_.defer(
        [pod = std::make_shared<loop::HandlePtr<loop::PipeStream>>(std::move(forward.pod))] {});
    forwards_.erase(it);
    resumeClient();  // the client may have been paused for bytes this pair held
  }

  void closeForwardOf(uint32_t id) {
    std::string key;
    if (forwardOf(id, &key) != nullptr) closeForward(key, false);
  }

  SessionSetup setup_;
  loop::Loop& loop_;
  std::unique_ptr<ClientConnection> connection_;
  spdy::SpdyFrameParser parser_;
  spdy::HeaderBlockDeflater deflater_;
  const bool portForward_;
  uint32_t lastStreamId_ = 0;
  std::set<uint32_t> open_;  // streams neither side has reset
  bool closing_ = false, ended_ = false;

  uint32_t errorStream_ = 0, stdinStream_ = 0, stdoutStream_ = 0, stderrStream_ = 0,
           resizeStream_ = 0;
  bool started_ = false, inputEnded_ = false;
  std::string pendingInput_;
  std::optional<std::pair<uint16_t, uint16_t>> pendingSize_;
  ResizeDecoder resizes_;
  std::unique_ptr<RemoteCommand> command_;
  loop::HandlePtr<loop::Timer> streamWait_, closeTimer_;
  bool waitingForInput_ = false;

  std::map<std::string, Forward> forwards_;     // by request id
  std::map<uint32_t, std::string> forwardKey_;  // stream → request id
  loop::LifetimeGuard lifetime_;
};

}  // namespace

std::unique_ptr<StreamSession> startSpdySession(SessionSetup setup) {
  auto session = std::make_unique<SpdySession>(std::move(setup));
  session->begin();
  return session;
}

}  // namespace monocri::exec
