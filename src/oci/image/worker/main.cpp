// monocri-image-worker: talks to registries and unpacks layers for the monocri daemon, which
// starts it with a socketpair on fd 3 and lets it go (closes the socket) when idle.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <csignal>

#include "cri-bridge/grpc/GrpcServer.h"
#include "loop/Loop.h"
#include "loop/PipeStream.h"
#include "loop/Signal.h"
#include "oci/image/HttpClient.h"
#include "oci/image/RegistryClient.h"
#include "oci/image/worker/ImageWorkerService.h"

int main(int argc, char** argv) {
  CLI::App app{"monocri-image-worker: registry and layer work for the monocri daemon"};
  int fd = 3;
  uint64_t stallMs = 60'000;
  uint64_t connectMs = 30'000;
  std::string userAgent = "monocri";
  std::string logLevel = "info";
  app.add_option("--fd", fd, "The daemon's end of the socketpair");
  app.add_option("--stall-timeout-ms", stallMs, "A registry silent this long has failed");
  app.add_option("--connect-timeout-ms", connectMs, "Connection timeout");
  app.add_option("--user-agent", userAgent, "HTTP User-Agent");
  app.add_option("--log-level", logLevel, "trace, debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_logger_mt("image-worker");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l image-worker: %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(logLevel));
  spdlog::flush_on(spdlog::level::trace);
  std::signal(SIGPIPE, SIG_IGN);

  monocri::loop::Loop loop;
  {
    monocri::oci::HttpClient http(loop, userAgent);
    monocri::oci::RegistryClient registry(loop, http, {connectMs, stallMs});
    monocri::grpc::GrpcServer server(loop);
    monocri::oci::ImageWorkerService service(loop, server, registry);
    int error = 0;
    auto stream = monocri::loop::PipeStream::adopt(loop, fd, &error);
    if (!stream) {
      spdlog::critical("cannot use fd {}: {}", fd, uv_strerror(error));
      return 2;
    }
    server.adoptConnection(std::move(stream));
    // The daemon closing its end is the signal to go; SIGTERM too.
    auto idle = monocri::loop::Timer::create(loop, "worker exit check");
    idle->start(100, 100, [&] {
      if (server.connectionCount() == 0) loop.stop();
    });
    auto term = monocri::loop::Signal::create(loop);
    term->start(SIGTERM, [&](int) { loop.stop(); });
    loop.run();
  }
  return 0;
}
