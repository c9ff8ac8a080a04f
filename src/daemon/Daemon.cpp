#include "daemon/Daemon.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

#include "daemon/Version.h"

namespace monocri::daemon {

namespace {

constexpr uint64_t kReclaimIntervalMs = 5'000;

// mkdir -p, then the leaf's mode. Returns "" or an error naming the path.
std::string makeDirectory(const std::string& path, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return fmt::format("create directory {}: {}", path, ec.message());
  if (chmod(path.c_str(), mode) != 0) {
    return fmt::format("chmod {:o} {}: {}", mode, path, std::strerror(errno));
  }
  return {};
}

constexpr const char* kBundledRuntime = "monocri-runtime";

// monocri's helper programs (monocri-image-worker, monocri-pod-init, monocri-runtime) are
// installed beside it.
std::string helperPath(const char* name) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (ec ? std::filesystem::path("/usr/local/bin") : self.parent_path()) / name;
}

}  // namespace

Daemon::Daemon(Config config, int keeperFd)
    : config_(std::move(config)),
      runtime_(config_.ociRuntime == kBundledRuntime ? helperPath(kBundledRuntime)
                                                     : config_.ociRuntime),
      keeperFd_(keeperFd) {}

Daemon::~Daemon() = default;

int Daemon::run() {
  const std::string socketPath = config_.listenPath();
  for (auto [path, mode] : {std::pair<std::string, mode_t>{config_.root, 0700},
                            {config_.runRoot, 0711},
                            {std::filesystem::path(socketPath).parent_path().string(), 0711}}) {
    if (std::string error = makeDirectory(path, mode); !error.empty()) {
      spdlog::critical("{}", error);
      return 1;
    }
  }

  loop_.setStallThresholdMs(config_.stallThresholdMs);

  oci::ImageManagerOptions imageOptions;
  imageOptions.stateRoot = config_.root;
  imageOptions.registriesConf = config_.registriesConf;
  imageOptions.pinned = config_.pinnedImages;
  imageOptions.maxConcurrentDownloads = config_.maxConcurrentDownloads;
  imageOptions.worker.executable = helperPath("monocri-image-worker");
  imageOptions.worker.stallTimeoutMs = config_.pullProgressTimeoutMs;
  imageOptions.worker.userAgent = std::string("monocri/") + kVersion;
  imageOptions.worker.logLevel = config_.logLevel;
  images_ = std::make_unique<oci::ImageManager>(loop_, imageOptions);
  rootfs_ = std::make_unique<oci::ContainerRootfs>(loop_, images_->store(), config_.root,
                                                   config_.runRoot);
  pods::PodManagerOptions podOptions;
  podOptions.stateRoot = config_.root;
  podOptions.runRoot = config_.runRoot;
  podOptions.initBinary = helperPath("monocri-pod-init");
  podOptions.netnsPoolSize = config_.netnsPoolSize;
  net::PodNetworkOptions networkOptions;
  networkOptions.confDir = config_.cniConfDir;
  networkOptions.pluginDirs = config_.cniPluginDirs;
  networkOptions.cacheDir = config_.root + "/cni";
  network_ = std::make_unique<net::PodNetwork>(loop_, networkOptions);
  network_->start();
  pods_ = std::make_unique<pods::PodManager>(loop_, podOptions, *network_);
  std::vector<std::string> notes;
  std::string error = images_->start(notes);
  if (error.empty()) error = rootfs_->load(notes);
  if (error.empty()) error = pods_->load(notes);
  for (const auto& note : notes)
    spdlog::info("{}", note);
  if (!error.empty()) {
    spdlog::critical("cannot open the state in {}: {}", config_.root, error);
    return 1;
  }
  if (keeperFd_ >= 0) {
    std::string linkError;
    keeper_ = monitor::KeeperLink::adopt(loop_, keeperFd_, linkError);
    if (!keeper_) {
      spdlog::critical("cannot talk to the keeper: {}", linkError);
      return 1;
    }
  }
  exits_ = std::make_unique<monitor::ExitMonitor>(loop_, keeper_.get());
  // Everything that can still exit was registered (track, or expect after a restart) before
  // the keeper's replay: an exit nobody claims is of something gone (a pod init that died
  // during an outage, a half-created container removed at load). Acknowledged, or the keeper
  // would keep it and replay it to every daemon.
  exits_->setUnclaimedHandler([this](const std::string& owner, const monitor::ExitInfo& exit) {
    spdlog::info("exit of pid {} ({}) belongs to nothing this daemon knows: acknowledged", exit.pid,
                 owner);
    exits_->acknowledge(owner, exit.pid);
  });
  if (keeper_) {
    keeper_->onExit([this](const monitor::KeeperLink::Exit& exit) {
      exits_->deliver(exit.owner, monitor::ExitInfo{exit.pid, exit.waitStatus, exit.timeNs});
    });
    keeper_->onReady([this](std::vector<monitor::KeeperLink::HeldFd> held,
                            std::vector<monitor::KeeperLink::Exit> pending) {
      std::vector<std::pair<std::string, std::pair<uint32_t, int>>> fds;
      for (auto& fd : held)
        fds.push_back({fd.owner, {fd.tag, fd.fd}});
      containers_->adoptHeld(std::move(fds));
      for (const auto& exit : pending)
        exits_->deliver(exit.owner, monitor::ExitInfo{exit.pid, exit.waitStatus, exit.timeNs});
    });
    keeper_->onLost([this] {
      spdlog::critical("the keeper is gone: containers' exits can no longer be seen; stopping");
      beginShutdown(SIGTERM);
    });
  }
  runtimeClient_ =
      std::make_unique<oci::OciRuntimeClient>(loop_, runtime_, config_.runRoot + "/runc");
  pods::ContainerManagerOptions containerOptions;
  containerOptions.stateRoot = config_.root;
  containerOptions.runRoot = config_.runRoot;
  containerOptions.host = oci::probeHostLimits();
  containerOptions.log.maxLineBytes = config_.containerLogMaxLineBytes;
  containerOptions.log.maxFileBytes = config_.containerLogSizeMax;
  containerOptions.log.rateBytesPerSecond = config_.containerLogRateBytesPerSecond;
  containerOptions.log.rateBurstBytes = config_.containerLogRateBurstBytes;
  containerOptions.logJournal = config_.containerLogJournal;
  {
    std::string error;
    logWrites_ = logging::LogWriteThread::start(loop_, error);
    if (!logWrites_) {
      spdlog::critical("{}", error);
      return 1;
    }
    containerOptions.log.writeThread = logWrites_.get();
  }
  containers_ = std::make_unique<pods::ContainerManager>(loop_, containerOptions, *pods_, *images_,
                                                         *rootfs_, *runtimeClient_, *exits_);
  pods_->superviseInits(*exits_);
  pods_->reconcileNetworks();
  {
    std::vector<std::string> containerNotes;
    if (std::string loadError = containers_->load(containerNotes); !loadError.empty()) {
      spdlog::critical("cannot read the containers' state: {}", loadError);
      return 1;
    }
    for (const auto& note : containerNotes)
      spdlog::info("{}", note);
  }
  images_->setInUseCheck(
      [this](const oci::Digest& imageId) { return rootfs_->containersUsing(imageId); });
  cri::CriServiceOptions criOptions;
  criOptions.runtimeVersion = kVersion;
  criOptions.gitCommit = kGitCommit;
  criOptions.config = configToJson(config_);
  criOptions.runtimeCallStats = [this] {
    return nlohmann::json{{"callsFinished", runtimeClient_->callsFinished()},
                          {"callsInFlight", runtimeClient_->callsInFlight()},
                          {"runtimeNanos", runtimeClient_->runtimeNanos()}};
  };
  criOptions.netnsPoolStats = [this] { return pods_->netnsPoolInfo(); };
  criOptions.logWriteStats = [this] {
    const logging::LogWriteThread::Stats stats = logWrites_->stats();
    return nlohmann::json{{"batchesWritten", stats.batchesWritten},
                          {"bytesWritten", stats.bytesWritten},
                          {"queuedBatches", stats.queuedBatches},
                          {"longestWriteNanos", stats.longestWriteNs},
                          {"cpuMoves", stats.cpuMoves}};
  };
  cri_ = std::make_unique<cri::CriService>(server_, std::move(criOptions), runtime_, *network_);
  health_ = std::make_unique<cri::HealthService>(server_);
  criImages_ = std::make_unique<cri::CriImageService>(server_, *images_);
  criPods_ = std::make_unique<cri::CriPodService>(server_, *pods_, *containers_);
  criContainers_ = std::make_unique<cri::CriContainerService>(server_, *containers_, *pods_);
  streams_ = std::make_unique<pods::ContainerStreams>(loop_, *containers_, *pods_, *runtimeClient_,
                                                      *exits_);
  streaming_ = std::make_unique<exec::StreamingServer>(loop_, *streams_);
  const exec::TlsFiles streamTls{config_.streamTlsCert, config_.streamTlsKey, config_.streamTlsCa};
  if (std::string error = streaming_->listen(config_.streamAddress, streamTls); !error.empty()) {
    spdlog::critical("cannot start the streaming server: {}", error);
    return 1;
  }
  criStreaming_ = std::make_unique<cri::CriStreamingService>(server_, *streaming_, *streams_);

  if (std::string error = server_.listen(socketPath, 0660); !error.empty()) {
    spdlog::critical("cannot serve the CRI: {}", error);
    return 1;
  }

  sigterm_ = loop::Signal::create(loop_);
  sigint_ = loop::Signal::create(loop_);
  sigterm_->start(SIGTERM, [this](int signum) { beginShutdown(signum); });
  sigint_->start(SIGINT, [this](int signum) { beginShutdown(signum); });
  // The keeper turns SIGHUP into a restart of the daemon; one running alone has nothing to do
  // with it, and must not die of it.
  sighup_ = loop::Signal::create(loop_);
  sighup_->start(SIGHUP, [this](int) {
    spdlog::info("SIGHUP: {}", keeper_ ? "the keeper restarts the daemon (send it to the keeper)"
                                       : "ignored (no keeper to restart the daemon)");
  });
  sighup_->unref();

  if (reclaimMemory_) {
    reclaimTimer_ = loop::Timer::create(loop_, "memory reclaim");
    reclaimTimer_->start(kReclaimIntervalMs, kReclaimIntervalMs, [this] { reclaimMemory_(); });
    reclaimTimer_->unref();
  }

  std::string why;
  if (!runtime_.resolve(&why))
    spdlog::warn("{}: RuntimeReady stays false until it is installed", why);
  spdlog::info(
      "monocri {} ({}) serving the CRI on {}, streams on {} (pid {}, state in {}, run state in {})",
      kVersion, kGitCommit, socketPath, streaming_->baseUrl(), getpid(), config_.root,
      config_.runRoot);
  loop_.run();
  spdlog::info("monocri stopped");
  return 0;
}

void Daemon::beginShutdown(int signum) {
  if (shuttingDown_) {
    spdlog::warn("{} again: failing the calls still in flight now", strsignal(signum));
    server_.endGracePeriod();
    return;
  }
  shuttingDown_ = true;
  spdlog::info("{}: shutting down", strsignal(signum));
  health_->beginShutdown();
  server_.shutdown(std::chrono::milliseconds(config_.shutdownGraceMs), [this] {
    sigterm_.reset();
    sigint_.reset();
    sighup_.reset();
    reclaimTimer_.reset();
    streaming_->shutdown();
    images_->shutdown();
    network_->shutdown();
  });
}

}  // namespace monocri::daemon
