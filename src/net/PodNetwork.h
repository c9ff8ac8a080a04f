// Pod networks through CNI: the network config in use (the first valid file of the config dir,
// rescanned when the dir changes), ADD when a pod is made, DEL when it stops, CHECK of the pods
// a restarted daemon finds, and the node's readiness as kubelet reads it from Status. Each ADD
// is cached under the state dir (config, arguments, result) before and after it runs, so that
// DEL runs with what ADD ran with, after a restart, a config change, or a crash in between.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "loop/FsWatch.h"
#include "loop/Loop.h"
#include "loop/Timer.h"
#include "net/PluginChain.h"
#include "net/cni/NetworkConfigList.h"
#include "net/cni/PluginInput.h"

namespace monocri::net {

struct NetworkReadiness {
  bool ready = false;
  std::string reason;   // CamelCase, for kubelet's node condition
  std::string message;  // for the operator
};

struct PodNetworkOptions {
  std::string confDir = "/etc/cni/net.d";
  std::vector<std::string> pluginDirs = {"/opt/cni/bin", "/usr/lib/cni"};
  std::string cacheDir;  // <root>/cni: results/<network>-<pod id>-<ifname>
  uint64_t pluginDeadlineMs = 60'000;
};

// What RunPodSandbox hands over for a pod's ADD.
struct PodAttachRequest {
  std::string podId;
  std::string netnsPath;
  std::string name, namespace_, uid;
  std::map<std::string, std::string> annotations;
  std::vector<cni::PortMapping> portMappings;
};

// What a pod got: the network and its addresses (IPv4 first), for PodSandboxStatus.
struct PodAttachment {
  std::string networkName;
  std::vector<std::string> ips;
};

class PodNetwork {
 public:
  PodNetwork(loop::Loop& loop, PodNetworkOptions options);
  ~PodNetwork();

  // Reads the config dir and starts watching it (made if missing, as containerd does).
  void start();

  // Stops watching the config dir and kills plugins still running (their cache records stay:
  // the next start runs DEL again where needed). For the daemon's shutdown.
  void shutdown();

  // From UpdateRuntimeConfig. "" clears it. Returns "" or why the CIDR is invalid. The pod
  // CIDRs reach plugins that declare the "ipRanges" capability (host-local).
  std::string setPodCidr(const std::string& cidr);
  const std::string& podCidr() const { return podCidr_; }

  NetworkReadiness readiness();
  // The config in use, files passed over and why, plugin dirs: `monoctl info`.
  nlohmann::json info() const;

  using AttachDone = std::function<void(grpc::Status, PodAttachment)>;
  // ADD of the network in use to the pod's namespace. A failed ADD is undone with DEL before
  // `done` reports the failure.
  void attach(const PodAttachRequest& request, AttachDone done);
  // DEL with the cached config and result; success when nothing was cached (never attached, or
  // already detached). `netnsPath` "" when the namespace is gone. One DEL per pod at a time: a
  // second call while one runs (kubelet retrying a slow stop) gets its answer.
  void detach(const std::string& podId, const std::string& netnsPath,
              std::function<void(grpc::Status)> done);
  // For a pod that is gone although its DEL failed: DEL is tried again every so often until it
  // succeeds (the addresses it holds would be lost otherwise).
  void detachLater(const std::string& podId);
  // Whether an attachment of the pod is cached (an ADD that ran, or is running).
  bool attached(const std::string& podId) const;
  // CHECK where the cached config's version has it; ok otherwise.
  void check(const std::string& podId, const std::string& netnsPath,
             std::function<void(grpc::Status)> done);
  // DEL of every cached attachment whose pod is not in `knownPods` (a crash between ADD and the
  // pod's record, or a pod removed while the daemon could not run DEL).
  void collectOrphans(const std::set<std::string>& knownPods);

  // Plugin runs so far and the time spent in them (Status verbose, benchmarks).
  uint64_t pluginNanos() const { return pluginNs_; }
  uint64_t pluginRuns() const { return pluginRuns_; }

 private:
  void rescan();
  std::string cachePath(const std::string& network, const std::string& podId) const;
  std::optional<std::string> findCache(const std::string& podId) const;
  void runChain(PluginChainRequest request, std::function<void(PluginChainOutcome)> done);
  void detachWithRecord(const std::string& podId, const std::string& path,
                        const std::string& netnsPath, size_t reached,
                        std::function<void(grpc::Status)> done);
  void retryDetaches();

  loop::Loop& loop_;
  PodNetworkOptions options_;
  std::string podCidr_;
  std::optional<cni::NetworkConfigList> config_;
  std::vector<std::string> rejected_;
  std::string scanError_;
  uint64_t lastScanMs_ = 0;
  loop::HandlePtr<loop::FsWatch> watch_;
  loop::HandlePtr<loop::Timer> rescanTimer_;
  uint64_t nextChainId_ = 0;
  std::map<uint64_t, std::unique_ptr<PluginChain>> chains_;
  // Pods whose DEL runs, and the callers waiting for it.
  std::map<std::string, std::vector<std::function<void(grpc::Status)>>> detaching_;
  // Cache records of gone pods whose DEL failed, with their pod's id.
  std::map<std::string, std::string> retries_;
  loop::HandlePtr<loop::Timer> retryTimer_;
  uint64_t pluginNs_ = 0, pluginRuns_ = 0;
  loop::LifetimeGuard lifetime_;
};

// "10.244.0.0/24" or "fd00::/64": an address and a prefix length that fits it.
bool isValidCidr(const std::string& cidr);

}  // namespace monocri::net
