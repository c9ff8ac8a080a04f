// The byte stream between the streaming server and one client: a TCP connection as it is, or
// the same connection under TLS. The handshake and the sessions speak HTTP, SPDY and WebSocket
// over it without knowing which; the calls mean what loop::PipeStream's do.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "loop/PipeStream.h"

namespace monocri::exec {

class ClientConnection {
 public:
  using DataCallback = loop::PipeStream::DataCallback;
  using EndCallback = loop::PipeStream::EndCallback;

  virtual ~ClientConnection() = default;

  // `onData` gets the client's bytes (valid during the call); `onEnd` runs once, reading
  // stopped, with UV_EOF at an orderly end or an error. Callbacks may stop or resume reading
  // and write, never destroy the connection.
  virtual int startReading(DataCallback onData, EndCallback onEnd) = 0;
  virtual void stopReading() = 0;
  virtual int resumeReading() = 0;
  virtual bool reading() const = 0;

  // Queues `data` for the client; `done` (optional) gets 0 or a libuv error once it left.
  virtual int write(std::string data, std::function<void(int status)> done = nullptr) = 0;
  // The bytes written and not yet taken by the kernel: what the connection holds in memory.
  virtual size_t writeQueueBytes() const = 0;
  // Lets queued writes finish, then ends the write side (under TLS: close_notify first).
  virtual int shutdown(std::function<void(int status)> done = nullptr) = 0;

  virtual void setLabel(std::string_view label) = 0;
};

// A connection that is the TCP stream itself.
std::unique_ptr<ClientConnection> plainConnection(loop::HandlePtr<loop::PipeStream> socket);

}  // namespace monocri::exec
