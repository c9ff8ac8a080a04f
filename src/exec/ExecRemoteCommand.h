// A streaming exec's container side: an ExecProcess whose output goes to the client and whose
// input comes from it, paused while the client is slow.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "exec/ExecProcess.h"
#include "exec/RemoteCommand.h"

namespace monocri::exec {

class ExecRemoteCommand final : public RemoteCommand, private ExecProcess::Handler {
 public:
  static std::unique_ptr<ExecRemoteCommand> start(loop::Loop& loop, oci::OciRuntimeClient& runtime,
                                                  monitor::ExitMonitor& exits,
                                                  ExecProcessRequest request,
                                                  CommandClient& client);
  ~ExecRemoteCommand() override;

  void input(std::string bytes) override;
  size_t inputQueuedBytes() const override;
  void whenInputWritten(std::function<void()> written) override;
  void inputEnd() override;
  void resize(uint16_t width, uint16_t height) override;
  void outputDrained() override;

 private:
  explicit ExecRemoteCommand(CommandClient& client) : client_(client) {}
  void onOutput(logging::LogStream stream, std::string_view bytes) override;
  void onEnded(grpc::Status status, int exitCode) override;

  CommandClient& client_;
  std::unique_ptr<ExecProcess> process_;
  InputWaiters inputWaiters_;
  bool outputPaused_ = false;
  loop::LifetimeGuard lifetime_;
};

}  // namespace monocri::exec
