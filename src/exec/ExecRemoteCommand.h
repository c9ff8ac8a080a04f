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
  // `cleanup` runs once when the process ended or this is destroyed (the process files).
  static std::unique_ptr<ExecRemoteCommand> start(loop::Loop& loop, oci::OciRuntimeClient& runtime,
                                                  monitor::ExitMonitor& exits,
                                                  ExecProcessRequest request, CommandClient& client,
                                                  std::function<void()> cleanup);
  ~ExecRemoteCommand() override;

  void input(std::string bytes) override;
  size_t inputQueuedBytes() const override;
  void whenInputWritten(std::function<void()> written) override;
  void inputEnd() override;
  void resize(uint16_t width, uint16_t height) override;
  void outputDrained() override;

 private:
  ExecRemoteCommand(CommandClient& client, std::function<void()> cleanup)
      : client_(client), cleanup_(std::move(cleanup)) {}
  void onOutput(logging::LogStream stream, std::string_view bytes) override;
  void onEnded(grpc::Status status, int exitCode) override;
  void inputWritten();
  void runCleanup();

  CommandClient& client_;
  std::function<void()> cleanup_;
  std::unique_ptr<ExecProcess> process_;
  std::vector<std::function<void()>> inputWaiters_;
  bool outputPaused_ = false;
  loop::LifetimeGuard lifetime_;
};

}  // namespace monocri::exec
