#include "exec/ClientConnection.h"

namespace monocri::exec {

namespace {

class PlainConnection final : public ClientConnection {
 public:
  explicit PlainConnection(loop::HandlePtr<loop::PipeStream> socket) : socket_(std::move(socket)) {}

  int startReading(DataCallback onData, EndCallback onEnd) override {
    return socket_->startReading(std::move(onData), std::move(onEnd));
  }
  void stopReading() override { socket_->stopReading(); }
  int resumeReading() override { return socket_->resumeReading(); }
  bool reading() const override { return socket_->reading(); }
  int write(std::string data, std::function<void(int)> done) override {
    return socket_->write(std::move(data), std::move(done));
  }
  size_t writeQueueBytes() const override { return socket_->writeQueueBytes(); }
  int shutdown(std::function<void(int)> done) override {
    return socket_->shutdown(std::move(done));
  }
  void setLabel(std::string_view label) override { socket_->setLabel(label); }

 private:
  loop::HandlePtr<loop::PipeStream> socket_;
};

}  // namespace

std::unique_ptr<ClientConnection> plainConnection(loop::HandlePtr<loop::PipeStream> socket) {
  return std::make_unique<PlainConnection>(std::move(socket));
}

}  // namespace monocri::exec
