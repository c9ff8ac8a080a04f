// The two halves of a streaming exec or attach, whatever the wire protocol (SPDY/3.1 or
// WebSocket) and whatever runs behind it (an exec'd process, a container's stdio):
// a CommandClient is the connection's side, a RemoteCommand the container's. The streaming
// server joins them; what the requests carry is fixed when kubelet asked for the URL.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "logging/LogRecord.h"
#include "state/UniqueFd.h"

namespace monocri::exec {

struct ExecStreamRequest {
  std::string containerId;
  std::vector<std::string> cmd;
  bool tty = false, stdin = false, stdout = false, stderr = false;
};

struct AttachStreamRequest {
  std::string containerId;
  bool tty = false, stdin = false, stdout = false, stderr = false;
};

struct PortForwardStreamRequest {
  std::string podId;
  std::vector<int32_t> ports;  // what the RPC named; a WebSocket client may name its own
};

using StreamRequest =
    std::variant<ExecStreamRequest, AttachStreamRequest, PortForwardStreamRequest>;

// How a command ended, for the client's error stream.
struct CommandOutcome {
  grpc::Status status;  // not ok: the command could not run, or the session failed
  int exitCode = 0;     // with an ok status
};

// The connection's side: what the command produces goes to the client through it.
class CommandClient {
 public:
  // Output the client takes before the command is paused (back-pressure to a slow client).
  static constexpr size_t kOutputHighWater = 1024 * 1024;

  virtual ~CommandClient() = default;
  virtual void sendOutput(logging::LogStream stream, std::string_view bytes) = 0;
  // Output queued towards the client and not yet written to its socket.
  virtual size_t outputQueuedBytes() const = 0;
  // Once: the command ended (or could not start). The client gets the outcome and the
  // connection closes; the RemoteCommand may be destroyed within the call.
  virtual void finish(const CommandOutcome& outcome) = 0;
};

// The container's side, driven by the connection.
class RemoteCommand {
 public:
  // Input the command has queued and not yet written, past which the connection stops reading
  // its client (back-pressure: no SPDY client uses flow control, a TCP window does the job).
  static constexpr size_t kInputHighWater = 1024 * 1024;

  // Destroyed when the client is gone or finish() ran: it releases what it holds (an exec'd
  // process keeps running, as upstream; its pipes close).
  virtual ~RemoteCommand() = default;
  virtual void input(std::string bytes) = 0;
  virtual size_t inputQueuedBytes() const = 0;
  // `written` runs once the input queued so far is written (the connection resumes reading).
  virtual void whenInputWritten(std::function<void()> written) = 0;
  virtual void inputEnd() = 0;
  virtual void resize(uint16_t width, uint16_t height) = 0;
  // The client's output queue fell below half the high water mark: output may flow again.
  virtual void outputDrained() = 0;
};

// The callbacks of RemoteCommand::whenInputWritten, run once the queued input fell to half the
// high water mark.
class InputWaiters {
 public:
  void add(size_t queuedBytes, std::function<void()> written) {
    if (queuedBytes <= RemoteCommand::kInputHighWater / 2) return written();
    waiters_.push_back(std::move(written));
  }
  // Some input went out; `queuedBytes` is what is still queued.
  void inputWritten(size_t queuedBytes) {
    if (waiters_.empty() || queuedBytes > RemoteCommand::kInputHighWater / 2) return;
    for (auto& waiter : std::exchange(waiters_, {}))
      waiter();
  }

 private:
  std::vector<std::function<void()>> waiters_;
};

// What the streaming server asks of the runtime behind it.
class StreamBackend {
 public:
  virtual ~StreamBackend() = default;
  // Null with `error` set when the command cannot start at all (container gone, not running);
  // else the command reports its end through client.finish(), never from within this call.
  virtual std::unique_ptr<RemoteCommand> exec(const ExecStreamRequest& request,
                                              CommandClient& client, grpc::Status& error) = 0;
  virtual std::unique_ptr<RemoteCommand> attach(const AttachStreamRequest& request,
                                                CommandClient& client, grpc::Status& error) = 0;
  // A TCP connection to localhost:`port` inside the pod's network namespace (the socket made
  // there, connected from the loop). `done` runs on the loop, never from within this call.
  using Connected = std::function<void(grpc::Status, state::UniqueFd socket)>;
  virtual void connectPort(const std::string& podId, uint16_t port, Connected done) = 0;
};

}  // namespace monocri::exec
