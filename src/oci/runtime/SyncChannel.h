// Messages between the runtime and the container process it cloned (framed over a stream
// socketpair): the parent says when the child may go on, the child says how far it got or why
// it failed. The child's end is close-on-exec, so EOF after its last message means it exec'd.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace monocri::runtime {

enum class SyncType : uint32_t {
  kGo = 1,      // parent: id maps written, cgroup joined
  kMounted,     // child: mounts done, waiting for the prestart/createRuntime hooks
  kHooksDone,   // parent: hooks ran; payload the state JSON for createContainer hooks
  kReady,       // child: set up, about to wait for `start`
  kError,       // child: payload the error message
  kIdMaps,      // staged child: in its new user namespace, waiting for the parent to map it
  kIdMapsDone,  // parent: uid_map/gid_map written
  kInitPid,     // staged child: payload the init's pid (itself, or its child in a new pid ns)
};

struct SyncMessage {
  SyncType type{};
  std::string payload;
};

// Throws RuntimeError when the peer is gone.
void sendSync(int fd, SyncType type, std::string_view payload = {});
// False at EOF (the peer exited or exec'd). Throws on a broken frame.
bool receiveSync(int fd, SyncMessage& message);

}  // namespace monocri::runtime
