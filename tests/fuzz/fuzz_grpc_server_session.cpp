// A whole server connection on hostile bytes: HTTP/2 framing and HPACK (nghttp2), the gRPC
// layer above it, flow control and call lifetimes. The bytes arrive through a real socket, the
// answers are read and thrown away, then the client hangs up: the server must survive, answer or
// close, and release the connection (ASan/LSan catch what it leaks).
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcServer.h"
#include "loop/PipeStream.h"

namespace v1 = runtime::v1;
using namespace monocri;

namespace {

void drain(int fd) {
  char buf[65536];
  while (read(fd, buf, sizeof(buf)) > 0) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    std::signal(SIGPIPE, SIG_IGN);  // as the daemon does
    return true;
  }();
  (void)quiet;
  loop::Loop loop;
  {
    grpc::GrpcServer server(loop);
    server.addUnary<v1::VersionRequest, v1::VersionResponse>(
        "/runtime.v1.RuntimeService/Version",
        [](v1::VersionRequest&&, grpc::UnaryResponder<v1::VersionResponse> r) {
          r.finish(v1::VersionResponse());
        });
    // A handler that never answers: its call must still be released when the client goes.
    std::vector<grpc::UnaryResponder<v1::VersionResponse>> parked;
    server.addUnary<v1::VersionRequest, v1::VersionResponse>(
        "/runtime.v1.RuntimeService/Status",
        [&parked](v1::VersionRequest&&, grpc::UnaryResponder<v1::VersionResponse> r) {
          parked.push_back(std::move(r));
        });

    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    server.adoptConnection(loop::PipeStream::adopt(loop, fds[0]));

    size_t pos = 0;
    for (int stuck = 0; pos < size && stuck < 64;) {
      ssize_t n = write(fds[1], data + pos, std::min<size_t>(size - pos, 4096));
      if (n > 0) {
        pos += static_cast<size_t>(n);
        stuck = 0;
      } else {
        ++stuck;  // the server stopped reading (back-pressure) or closed
      }
      drain(fds[1]);
      for (int i = 0; i < 4; ++i)
        uv_run(loop.raw(), UV_RUN_NOWAIT);
    }
    drain(fds[1]);
    close(fds[1]);
    for (int i = 0; i < 1000 && server.connectionCount() != 0; ++i) {
      uv_run(loop.raw(), UV_RUN_NOWAIT);
    }
    if (server.connectionCount() != 0) std::abort();  // a hung-up client must be released
    parked.clear();
  }
  uv_run(loop.raw(), UV_RUN_NOWAIT);
  return 0;
}
