#include "exec/ExecRemoteCommand.h"

namespace monocri::exec {

std::unique_ptr<ExecRemoteCommand> ExecRemoteCommand::start(loop::Loop& loop,
                                                            oci::OciRuntimeClient& runtime,
                                                            monitor::ExitMonitor& exits,
                                                            ExecProcessRequest request,
                                                            CommandClient& client) {
  std::unique_ptr<ExecRemoteCommand> command(new ExecRemoteCommand(client));
  command->process_ = ExecProcess::start(loop, runtime, exits, std::move(request), *command);
  return command;
}

ExecRemoteCommand::~ExecRemoteCommand() = default;

void ExecRemoteCommand::onOutput(logging::LogStream stream, std::string_view bytes) {
  client_.sendOutput(stream, bytes);
  if (!outputPaused_ && client_.outputQueuedBytes() > CommandClient::kOutputHighWater) {
    outputPaused_ = true;
    process_->pauseOutput();
  }
}

void ExecRemoteCommand::outputDrained() {
  if (!outputPaused_) return;
  outputPaused_ = false;
  process_->resumeOutput();
}

void ExecRemoteCommand::onEnded(grpc::Status status, int exitCode) {
  client_.finish(CommandOutcome{std::move(status), exitCode});
}

void ExecRemoteCommand::input(std::string bytes) {
  process_->writeInput(std::move(bytes), [this, alive = lifetime_.watch()] {
    if (!alive.expired()) inputWaiters_.inputWritten(process_->inputQueuedBytes());
  });
}

size_t ExecRemoteCommand::inputQueuedBytes() const {
  return process_->inputQueuedBytes();
}

void ExecRemoteCommand::whenInputWritten(std::function<void()> written) {
  inputWaiters_.add(process_->inputQueuedBytes(), std::move(written));
}

void ExecRemoteCommand::inputEnd() {
  process_->closeInput();
}

void ExecRemoteCommand::resize(uint16_t width, uint16_t height) {
  process_->resize(width, height);
}

}  // namespace monocri::exec
