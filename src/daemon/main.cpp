// monocri: the Kubernetes container runtime daemon.
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "daemon/Config.h"
#include "daemon/Daemon.h"
#include "daemon/DaemonLog.h"
#include "daemon/Version.h"
#include "monitor/keeper/Keeper.h"

#ifdef MONOCRI_JEMALLOC
#include <jemalloc/jemalloc.h>

// jemalloc for a daemon whose state lives on one thread: one arena, no thread caches, no
// background threads, and freed pages returned within a second of going idle (see reclaim).
extern "C" {
const char* malloc_conf =
    "narenas:1,tcache:false,background_thread:false,dirty_decay_ms:1000,muzzy_decay_ms:0";
}

namespace {
static_assert(MALLCTL_ARENAS_ALL == 4096, "the mallctl name below spells it out");
// Decay runs on allocator activity; an idle daemon allocates nothing, so nudge it.
void reclaimFreedMemory() {
  mallctl("arena.4096.decay", nullptr, nullptr, nullptr, 0);
}
}  // namespace
#endif

namespace {
// The daemon is this binary as found at its path: after an upgrade replaced the file, a restart
// asked with SIGHUP starts the new one. /proc/self/exe (this very binary) if the path is gone.
std::string daemonExecutable() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return "/proc/self/exe";
  const std::string resolved(path, static_cast<size_t>(n));
  if (resolved.ends_with(" (deleted)")) return "/proc/self/exe";
  return resolved;
}
// Each container costs the daemon three descriptors (its pipes and its log): the soft limit
// (often 1024 from a shell) goes up to the hard one, which no privilege is needed for.
void raiseDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    spdlog::warn("cannot raise the descriptor limit from {}: {}", before, std::strerror(errno));
  }
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "monocri: a Kubernetes CRI container runtime that supervises every container "
      "from one event loop"};
  std::string configPath = monocri::daemon::kDefaultConfigPath;
  monocri::daemon::ConfigOverrides overrides;
  bool printConfig = false;
  bool noKeeper = false;
  bool showVersion = false;
  auto* configOption =
      app.add_option("--config", configPath, "TOML configuration file (absent default = defaults)");
  app.add_option("--root", overrides.root, "Directory for persistent state [/var/lib/monocri]");
  app.add_option("--run-root", overrides.runRoot, "Directory for runtime state [/run/monocri]");
  app.add_option("--listen", overrides.listen, "CRI socket path [<run-root>/monocri.sock]");
  app.add_option("--log-level", overrides.logLevel, "trace, debug, info, warn or error [info]");
  app.add_option("--stall-threshold-ms", overrides.stallThresholdMs,
                 "Log event-loop turns longer than this [50]");
  app.add_option("--shutdown-grace-ms", overrides.shutdownGraceMs,
                 "On SIGTERM, time given to calls in flight [10000]");
  app.add_option("--oci-runtime", overrides.ociRuntime,
                 "OCI runtime binary: monocri-runtime (bundled), a name in PATH or a path "
                 "[monocri-runtime]");
  app.add_option("--registries-conf", overrides.registriesConf,
                 "Registry configuration, containers-registries.conf v2 format "
                 "[/etc/containers/registries.conf]");
  app.add_option("--pull-progress-timeout-ms", overrides.pullProgressTimeoutMs,
                 "A registry that sends nothing this long fails the pull [60000]");
  app.add_option("--stream-address", overrides.streamAddress,
                 "Streaming server for exec/attach/port-forward, HOST:PORT [127.0.0.1:0]");
  app.add_option(
      "--stream-tls-cert", overrides.streamTlsCert,
      "PEM certificate chain: the streaming server speaks https (with --stream-tls-key)");
  app.add_option("--stream-tls-key", overrides.streamTlsKey,
                 "PEM private key of --stream-tls-cert");
  app.add_option("--stream-tls-ca", overrides.streamTlsCa,
                 "PEM CA bundle: streaming clients must present a certificate it signed");
  app.add_option("--cni-conf-dir", overrides.cniConfDir,
                 "CNI network configs: the first *.conflist, *.conf or *.json is the pod "
                 "network [/etc/cni/net.d]");
  app.add_option("--cni-plugin-dir", overrides.cniPluginDirs,
                 "Where CNI plugin binaries are (repeat for several) [/opt/cni/bin "
                 "/usr/lib/cni]");
  app.add_flag("--no-keeper", noKeeper,
               "Run without the keeper process: a crash of the daemon then loses containers' "
               "exits and output (tests, debugging)");
  app.add_flag("--print-config", printConfig, "Print the effective configuration as TOML and exit");
  app.add_flag("--version", showVersion, "Print the version and exit");
  CLI11_PARSE(app, argc, argv);

  if (showVersion) {
    std::printf("monocri %s (commit %s), CRI runtime API v1\n", monocri::kVersion,
                monocri::kGitCommit);
    return 0;
  }

  monocri::daemon::Config config;
  std::string error = monocri::daemon::loadConfig(configPath, configOption->count() > 0, config);
  if (error.empty()) error = monocri::daemon::applyOverrides(overrides, config);
  if (!error.empty()) {
    std::cerr << "monocri: configuration: " << error << "\n";
    return 2;
  }
  if (printConfig) {
    std::cout << monocri::daemon::configToToml(config);
    return 0;
  }

  // `monocri` starts as the keeper, which re-executes this binary as the daemon (DESIGN.md, "a
  // keeper under the loop"); the daemon finds the keeper's socket in its environment.
  const int keeperFd = monocri::monitor::takeKeeperFd();
  if (keeperFd < 0 && !noKeeper) {
    monocri::monitor::KeeperOptions keeper;
    keeper.daemonArgv.emplace_back(daemonExecutable());
    for (int i = 1; i < argc; ++i)
      keeper.daemonArgv.emplace_back(argv[i]);
    keeper.exitDir = config.runRoot + "/exits";
    return monocri::monitor::runKeeper(keeper);
  }

  monocri::daemon::setupDaemonLog(config.logLevel);
  raiseDescriptorLimit();
  // A client that disconnects must cost a write error, not the daemon.
  std::signal(SIGPIPE, SIG_IGN);

  monocri::daemon::Daemon daemon(std::move(config), keeperFd);
#ifdef MONOCRI_JEMALLOC
  daemon.setMemoryReclaimer(reclaimFreedMemory);
#endif
  return daemon.run();
}
