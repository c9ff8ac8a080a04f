// What Kubernetes' remotecommand protocols (channel.k8s.io, v2..v5) put on their error and
// resize streams, shared by the SPDY and WebSocket sessions.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exec/RemoteCommand.h"

namespace monocri::exec {

// A negotiated remotecommand protocol: 1 for channel.k8s.io (and none), 2..5 for vN.
struct CommandProtocol {
  int version = 1;
  bool base64 = false;  // WebSocket's base64.channel.k8s.io and v4.base64.channel.k8s.io
};

// The protocol for a name offered by a client ("v4.channel.k8s.io"...), if the server speaks it.
std::optional<CommandProtocol> commandProtocol(std::string_view name, bool websocket);

// What the error stream carries at the end. From v4 on, a JSON metav1.Status (Success, or
// Failure with reason NonZeroExitCode and the code as an ExitCode cause: kubectl exits with it);
// before, a plain message, empty on success.
std::string errorStreamMessage(const CommandOutcome& outcome, int version);

// The resize stream: one JSON object {"Width":W,"Height":H} per event, each ending in a newline
// (kubectl), though a last one without it is taken too. Returns false on bytes that are not
// such objects, or a line over 4 KiB.
class ResizeDecoder {
 public:
  using Resize = std::function<void(uint16_t width, uint16_t height)>;
  bool feed(std::string_view bytes, const Resize& resize);
  // A WebSocket message is one whole event, newline or not.
  bool feedMessage(std::string_view message, const Resize& resize);

 private:
  bool decodeLine(std::string_view line, const Resize& resize);
  std::string partial_;
};

}  // namespace monocri::exec
