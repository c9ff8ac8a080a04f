#include "loop/PipeServer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace monocri::loop {

namespace {

// Removes a socket left behind by a dead process; refuses to touch anything else.
std::string removeStaleSocket(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return fmt::format("stat {}: {}", path, std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return fmt::format("{} exists and is not a socket; refusing to replace it", path);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fmt::format("socket: {}", std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int connectErrno = errno;
  ::close(fd);
  if (rc == 0) return fmt::format("another process is already listening on {}", path);
  if (connectErrno != ECONNREFUSED) {
    return fmt::format("probing existing socket {}: {}", path, std::strerror(connectErrno));
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fmt::format("removing stale socket {}: {}", path, std::strerror(errno));
  }
  spdlog::info("replaced stale socket {}", path);
  return {};
}

}  // namespace

HandlePtr<PipeServer> PipeServer::create(Loop& loop) {
  HandlePtr<PipeServer> server(new PipeServer(loop));
  uv_pipe_init(loop.raw(), &server->handle_, 0);
  server->markInitialized();
  return server;
}

std::string PipeServer::listen(const std::string& path, mode_t mode, int backlog,
                               ConnectionCallback onConnection) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return fmt::format("socket path {} is {} bytes long; unix sockets allow at most {}", path,
                       path.size(), sizeof(sockaddr_un::sun_path) - 1);
  }
  if (std::string error = removeStaleSocket(path); !error.empty()) return error;

  // Bind under a umask that leaves the socket unreachable until its mode is set.
  mode_t oldMask = umask(0177);
  int rc = uv_pipe_bind(&handle_, path.c_str());
  umask(oldMask);
  if (rc != 0) return fmt::format("bind {}: {}", path, uv_strerror(rc));
  if (chmod(path.c_str(), mode) != 0) {
    return fmt::format("chmod {:o} {}: {}", mode, path, std::strerror(errno));
  }
  onConnection_ = std::move(onConnection);
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(&handle_), backlog,
                 [](uv_stream_t* server, int status) {
                   PipeServer* self = fromHandle(server);
                   if (self->closing()) return;
                   Loop::Activity activity(self->loop_, "accept");
                   if (status != 0) {
                     spdlog::warn("accept on socket: {}", uv_strerror(status));
                     return;
                   }
                   HandlePtr<PipeStream> connection = PipeStream::create(self->loop_);
                   if (int err = uv_accept(server, connection->asStream()); err != 0) {
                     spdlog::warn("accept on socket: {}", uv_strerror(err));
                     return;
                   }
                   self->onConnection_(std::move(connection));
                 });
  if (rc != 0) return fmt::format("listen {}: {}", path, uv_strerror(rc));
  return {};
}

}  // namespace monocri::loop
