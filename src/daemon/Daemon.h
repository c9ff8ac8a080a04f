// The monocri daemon: wires the parts of the runtime onto the one event loop and runs it.
#pragma once

#include <functional>
#include <memory>

#include "cri-bridge/CriContainerService.h"
#include "cri-bridge/CriImageService.h"
#include "cri-bridge/CriPodService.h"
#include "cri-bridge/CriService.h"
#include "cri-bridge/CriStreamingService.h"
#include "cri-bridge/HealthService.h"
#include "cri-bridge/grpc/GrpcServer.h"
#include "daemon/Config.h"
#include "exec/StreamingServer.h"
#include "loop/Loop.h"
#include "loop/Signal.h"
#include "loop/Timer.h"
#include "monitor/ExitMonitor.h"
#include "monitor/KeeperLink.h"
#include "net/PodNetwork.h"
#include "oci/OciRuntimeBinary.h"
#include "oci/image/ContainerRootfs.h"
#include "oci/image/ImageManager.h"
#include "oci/runtime-client/OciRuntimeClient.h"
#include "pods/ContainerManager.h"
#include "pods/ContainerStreams.h"
#include "pods/PodManager.h"

namespace monocri::daemon {

class Daemon {
 public:
  // `keeperFd`: the socket to the keeper this daemon runs under, or -1 (monocri --no-keeper).
  Daemon(Config config, int keeperFd);
  ~Daemon();

  // Called every few seconds on the loop to hand freed memory back to the kernel.
  void setMemoryReclaimer(std::function<void()> reclaim) { reclaimMemory_ = std::move(reclaim); }

  // Serves until SIGTERM or SIGINT, then shuts down gracefully. Returns the exit code.
  int run();

 private:
  void beginShutdown(int signum);

  Config config_;
  loop::Loop loop_;  // first: destroyed last, after every handle below is closed
  grpc::GrpcServer server_{loop_};
  oci::OciRuntimeBinary runtime_;
  std::unique_ptr<net::PodNetwork> network_;
  std::unique_ptr<oci::ImageManager> images_;
  std::unique_ptr<oci::ContainerRootfs> rootfs_;
  std::unique_ptr<cri::CriService> cri_;
  std::unique_ptr<cri::CriImageService> criImages_;
  std::unique_ptr<pods::PodManager> pods_;
  std::unique_ptr<cri::CriPodService> criPods_;
  int keeperFd_;
  std::unique_ptr<monitor::KeeperLink> keeper_;
  std::unique_ptr<monitor::ExitMonitor> exits_;
  std::unique_ptr<oci::OciRuntimeClient> runtimeClient_;
  // Before the containers: their writers' last records are queued on it when they go, and its
  // destructor writes them.
  std::unique_ptr<logging::LogWriteThread> logWrites_;
  std::unique_ptr<pods::ContainerManager> containers_;
  std::unique_ptr<cri::CriContainerService> criContainers_;
  // After the containers: sessions end before what they run in goes.
  std::unique_ptr<pods::ContainerStreams> streams_;
  std::unique_ptr<exec::StreamingServer> streaming_;
  std::unique_ptr<cri::CriStreamingService> criStreaming_;
  std::unique_ptr<cri::HealthService> health_;
  loop::HandlePtr<loop::Signal> sigterm_;
  loop::HandlePtr<loop::Signal> sigint_;
  loop::HandlePtr<loop::Signal> sighup_;
  loop::HandlePtr<loop::Timer> reclaimTimer_;
  std::function<void()> reclaimMemory_;
  bool shuttingDown_ = false;
};

}  // namespace monocri::daemon
