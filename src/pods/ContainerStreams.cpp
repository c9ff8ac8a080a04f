#include "pods/ContainerStreams.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "exec/ExecRemoteCommand.h"
#include "exec/PortConnector.h"
#include "loop/PipeStream.h"

namespace monocri::pods {

using grpc::Status;
using grpc::StatusCode;
using logging::LogStream;

namespace {

Status runningContainer(const ContainerManager& containers, const std::string& id,
                        const Container*& out) {
  if (id.empty()) return Status(StatusCode::kInvalidArgument, "container_id is required");
  out = containers.find(id);
  if (out == nullptr)
    return Status(StatusCode::kNotFound, fmt::format("container {} not found", id));
  if (out->state != ContainerState::kRunning) {
    return Status(StatusCode::kFailedPrecondition, fmt::format("container {} is not running", id));
  }
  return Status::ok();
}

// An attachment to a running container's stdio: a tap on its output, its stdin (a pipe, or the
// terminal) written through a descriptor of our own. Several may attach at once; each sees all
// the output. A client too slow to take it loses output past kMaxBacklog (counted, logged)
// rather than slowing the container or its log.
class AttachCommand final : public exec::RemoteCommand {
 public:
  static constexpr size_t kMaxBacklog = 8 * 1024 * 1024;

  AttachCommand(ContainerManager& containers, exec::AttachStreamRequest request,
                exec::CommandClient& client)
      : containers_(containers), request_(std::move(request)), client_(client) {}

  ~AttachCommand() override {
    if (monitor::ContainerIo* io = containerIo(); io != nullptr && tap_ != 0) io->removeTap(tap_);
    if (lost_ > 0) {
      spdlog::info("attach to {}: {} bytes of output dropped for a client that did not keep up",
                   request_.containerId, lost_);
    }
  }

  Status begin() {
    monitor::ContainerIo* io = containerIo();
    if (io == nullptr) {
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("container {} has no stdio to attach to", request_.containerId));
    }
    tty_ = io->mode().tty;
    tap_ = io->addTap([this](LogStream stream, std::string_view bytes) { onOutput(stream, bytes); },
                      [this, alive = lifetime_.watch()] {
                        if (alive.expired()) return;
                        tap_ = 0;
                        client_.finish(exec::CommandOutcome{});
                      });
    return Status::ok();
  }

  void input(std::string bytes) override {
    monitor::ContainerIo* io = containerIo();
    if (!request_.stdin || io == nullptr) return;
    io->writeStdin(std::move(bytes), [this, alive = lifetime_.watch()] {
      if (!alive.expired()) waiters_.inputWritten(inputQueuedBytes());
    });
  }
  size_t inputQueuedBytes() const override {
    monitor::ContainerIo* io = containerIo();
    return io != nullptr ? io->stdinQueuedBytes() : 0;
  }
  void whenInputWritten(std::function<void()> written) override {
    waiters_.add(inputQueuedBytes(), std::move(written));
  }
  // stdin_once: the client's end of input is the container's (kubelet's StdinOnce), after
  // what it sent before.
  void inputEnd() override {
    const Container* c = containers_.find(request_.containerId);
    if (request_.stdin && c != nullptr && c->config.stdin_once()) {
      containers_.closeStdin(request_.containerId);
    }
  }
  void resize(uint16_t width, uint16_t height) override {
    monitor::ContainerIo* io = containerIo();
    if (!tty_ || io == nullptr || io->stdinFd() < 0 || width == 0 || height == 0) return;
    winsize size{};
    size.ws_col = width;
    size.ws_row = height;
    ioctl(io->stdinFd(), TIOCSWINSZ, &size);
  }
  void outputDrained() override {}

 private:
  monitor::ContainerIo* containerIo() const {
    const Container* c = containers_.find(request_.containerId);
    return c != nullptr ? c->io.get() : nullptr;
  }

  void onOutput(LogStream stream, std::string_view bytes) {
    if (stream == LogStream::kStdout ? !request_.stdout : !request_.stderr) return;
    if (client_.outputQueuedBytes() > kMaxBacklog) {
      lost_ += bytes.size();
      return;
    }
    client_.sendOutput(stream, bytes);
  }

  ContainerManager& containers_;
  exec::AttachStreamRequest request_;
  exec::CommandClient& client_;
  bool tty_ = false;
  uint64_t tap_ = 0;
  uint64_t lost_ = 0;
  exec::InputWaiters waiters_;
  loop::LifetimeGuard lifetime_;
};

}  // namespace

Status ContainerStreams::checkExec(const std::string& containerId, bool) const {
  const Container* c = nullptr;
  return runningContainer(containers_, containerId, c);
}

Status ContainerStreams::checkAttach(const std::string& containerId) const {
  const Container* c = nullptr;
  return runningContainer(containers_, containerId, c);
}

Status ContainerStreams::checkPortForward(const std::string& podId) const {
  if (podId.empty()) return Status(StatusCode::kInvalidArgument, "pod_sandbox_id is required");
  const PodSandbox* pod = pods_.find(podId);
  if (pod == nullptr) return Status(StatusCode::kNotFound, fmt::format("pod {} not found", podId));
  if (pod->state != PodState::kReady) {
    return Status(StatusCode::kFailedPrecondition, fmt::format("pod {} is not ready", podId));
  }
  return Status::ok();
}

std::unique_ptr<exec::RemoteCommand> ContainerStreams::exec(const exec::ExecStreamRequest& request,
                                                            exec::CommandClient& client,
                                                            Status& error) {
  exec::ExecProcessRequest process;
  error = containers_.prepareExec(request.containerId, request.cmd, request.tty, process);
  if (!error.isOk()) return nullptr;
  process.stdin = request.stdin;
  return exec::ExecRemoteCommand::start(loop_, runtime_, exits_, std::move(process), client);
}

std::unique_ptr<exec::RemoteCommand> ContainerStreams::attach(
    const exec::AttachStreamRequest& request, exec::CommandClient& client, Status& error) {
  error = checkAttach(request.containerId);
  if (!error.isOk()) return nullptr;
  auto command = std::make_unique<AttachCommand>(containers_, request, client);
  error = command->begin();
  if (!error.isOk()) return nullptr;
  return command;
}

void ContainerStreams::connectPort(const std::string& podId, uint16_t port, Connected done) {
  Status status = checkPortForward(podId);
  if (!status.isOk()) {
    loop_.defer([done = std::move(done), status] { done(status, state::UniqueFd()); });
    return;
  }
  exec::connectInNamespace(loop_, pods_.find(podId)->netnsPath(), port, std::move(done));
}

}  // namespace monocri::pods
