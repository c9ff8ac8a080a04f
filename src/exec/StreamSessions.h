// The upgraded connections: SPDY/3.1 and WebSocket sessions for exec/attach (Kubernetes'
// remotecommand protocols) and port-forward. Made by the streaming server once the handshake
// is answered; each ends by calling `ended` (deferred: never from within its own callbacks).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "exec/ClientConnection.h"
#include "exec/RemoteCommand.h"
#include "exec/RemoteCommandProtocol.h"
#include "exec/StreamingServer.h"
#include "loop/Loop.h"

namespace monocri::exec {

struct SessionSetup {
  loop::Loop* loop = nullptr;
  std::unique_ptr<ClientConnection> connection;  // reading stopped; the 101 response queued
  StreamBackend* backend = nullptr;
  StreamRequest request;
  CommandProtocol protocol;     // exec and attach
  std::vector<uint16_t> ports;  // port-forward over WebSocket: the ports of the URL's query
  std::string early;            // bytes the client sent behind its request head
  std::function<void()> ended;
};

std::unique_ptr<StreamSession> startSpdySession(SessionSetup setup);
std::unique_ptr<StreamSession> startWebSocketSession(SessionSetup setup);

}  // namespace monocri::exec
