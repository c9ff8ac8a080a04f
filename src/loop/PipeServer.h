// A listening unix socket on the loop.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "loop/Handle.h"
#include "loop/PipeStream.h"

namespace monocri::loop {

class PipeServer : public Handle<PipeServer, uv_pipe_t> {
 public:
  static HandlePtr<PipeServer> create(Loop& loop);

  using ConnectionCallback = std::function<void(HandlePtr<PipeStream> connection)>;

  // Binds `path` with permissions `mode` and listens. A socket file nobody listens on (left by
  // a daemon that died) is replaced; a live socket or a file that is not a socket is an error.
  // Returns an empty string or a message naming the path and the cause.
  std::string listen(const std::string& path, mode_t mode, int backlog,
                     ConnectionCallback onConnection);

 private:
  friend class Handle<PipeServer, uv_pipe_t>;
  explicit PipeServer(Loop& loop) : Handle(loop) {}
  ~PipeServer() = default;

  ConnectionCallback onConnection_;
};

}  // namespace monocri::loop
