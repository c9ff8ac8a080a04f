#include "net/PodNetwork.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "net/cni/CniResult.h"
#include "state/StateFiles.h"

namespace monocri::net {

using grpc::Status;
using grpc::StatusCode;

namespace {

constexpr const char* kPodInterface = "eth0";
constexpr size_t kMaxCacheRecordBytes = 4 << 20;
constexpr uint64_t kRescanDelayMs = 100;   // a burst of writes to the dir is one rescan
constexpr uint64_t kRescanPollMs = 5'000;  // when the dir cannot be watched
constexpr uint64_t kRescanWhileNotReadyMs = 1'000;
constexpr uint64_t kDetachRetryMs = 30'000;  // a gone pod's failed DEL, tried again
constexpr const char* kIpsAnnotation = "io.monocri.cni-ips";  // "10.1.2.3,fd00::3"
constexpr const char* kMacAnnotation = "io.monocri.cni-mac";  // "0a:58:0a:01:02:03"

std::vector<std::string> splitCidrs(const std::string& cidrs) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < cidrs.size()) {
    const size_t comma = cidrs.find(',', start);
    std::string one = cidrs.substr(start, comma == std::string::npos ? comma : comma - start);
    if (!one.empty()) out.push_back(std::move(one));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// A MAC address as the plugins take it: six pairs of hex digits separated by ':'.
bool isValidMac(const std::string& mac) {
  if (mac.size() != 17) return false;
  for (size_t i = 0; i < mac.size(); ++i) {
    if (i % 3 == 2 ? mac[i] != ':' : !std::isxdigit(static_cast<unsigned char>(mac[i]))) {
      return false;
    }
  }
  return true;
}

bool isValidAddress(const std::string& address) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, address.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, address.c_str(), buf) == 1;
}

// The pod's annotations asking for given addresses or a MAC address: the `ips` and `mac`
// capabilities (CNI conventions), for plugins that declare them (host-local, bridge, tuning).
std::string requestedAddresses(const std::map<std::string, std::string>& annotations,
                               cni::RuntimeConfig& out) {
  if (auto ips = annotations.find(kIpsAnnotation); ips != annotations.end()) {
    for (const auto& ip : splitCidrs(ips->second)) {
      if (!isValidAddress(ip) && !isValidCidr(ip)) {
        return fmt::format("annotation {}: '{}' is not an IP address or CIDR", kIpsAnnotation,
                           ip.substr(0, 64));
      }
      out.ips.push_back(ip);
    }
    if (out.ips.empty()) return fmt::format("annotation {} holds no address", kIpsAnnotation);
  }
  if (auto mac = annotations.find(kMacAnnotation); mac != annotations.end()) {
    if (!isValidMac(mac->second)) {
      return fmt::format("annotation {}: '{}' is not a MAC address (aa:bb:cc:dd:ee:ff)",
                         kMacAnnotation, mac->second.substr(0, 64));
    }
    out.mac = mac->second;
  }
  return {};
}

}  // namespace

bool isValidCidr(const std::string& cidr) {
  const size_t slash = cidr.find('/');
  if (slash == std::string::npos || slash + 1 == cidr.size()) return false;
  const std::string address = cidr.substr(0, slash);
  unsigned char buf[sizeof(in6_addr)];
  int maxPrefix = 0;
  if (inet_pton(AF_INET, address.c_str(), buf) == 1) {
    maxPrefix = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), buf) == 1) {
    maxPrefix = 128;
  } else {
    return false;
  }
  int prefix = -1;
  const char* first = cidr.data() + slash + 1;
  const char* last = cidr.data() + cidr.size();
  auto [end, ec] = std::from_chars(first, last, prefix);
  return ec == std::errc() && end == last && prefix >= 0 && prefix <= maxPrefix;
}

PodNetwork::PodNetwork(loop::Loop& loop, PodNetworkOptions options)
    : loop_(loop), options_(std::move(options)) {}

PodNetwork::~PodNetwork() = default;

void PodNetwork::start() {
  if (std::string error = state::makeDirectories(options_.cacheDir + "/results", 0700);
      !error.empty()) {
    spdlog::warn("CNI result cache: {}", error);
  }
  // containerd makes the config dir too, so that it can be watched before a network provider
  // (a DaemonSet) writes its file there.
  if (access(options_.confDir.c_str(), F_OK) != 0) {
    if (std::string error = state::makeDirectories(options_.confDir, 0755); !error.empty()) {
      spdlog::warn("CNI config dir: {}", error);
    }
  }
  rescan();
  rescanTimer_ = loop::Timer::create(loop_, "CNI config rescan");
  watch_ = loop::FsWatch::create(loop_, "CNI config dir");
  const int rc = watch_->start(options_.confDir, [this] {
    // Restarted by each event: a file written in several steps is read once, complete.
    rescanTimer_->start(kRescanDelayMs, 0, [this] { rescan(); });
  });
  if (rc != 0) {
    spdlog::warn("cannot watch the CNI config dir {} ({}): it is read again every {} s instead",
                 options_.confDir, uv_strerror(rc), kRescanPollMs / 1000);
    watch_.reset();
    rescanTimer_->start(kRescanPollMs, kRescanPollMs, [this] { rescan(); });
  }
}

void PodNetwork::shutdown() {
  watch_.reset();
  rescanTimer_.reset();
  retryTimer_.reset();
  chains_.clear();
}

void PodNetwork::rescan() {
  lastScanMs_ = loop_.nowMs();
  cni::ConfigDirScan scan = cni::scanConfigDir(options_.confDir, &options_.pluginDirs);
  const bool changed =
      scan.chosen.has_value() != config_.has_value() ||
      (scan.chosen && (scan.chosen->path != config_->path || scan.chosen->raw != config_->raw));
  if (changed) {
    if (scan.chosen) {
      spdlog::info("CNI network '{}' (cniVersion {}, {} plugin(s)) from {} is the pod network",
                   scan.chosen->name, scan.chosen->cniVersion, scan.chosen->plugins.size(),
                   scan.chosen->path);
    } else {
      spdlog::warn("no valid CNI network config in {}: pods cannot get a network",
                   options_.confDir);
    }
  }
  if (scan.rejected != rejected_) {
    for (const auto& why : scan.rejected)
      spdlog::warn("CNI config passed over: {}", why);
  }
  config_ = std::move(scan.chosen);
  rejected_ = std::move(scan.rejected);
  scanError_ = std::move(scan.error);
}

std::string PodNetwork::setPodCidr(const std::string& cidr) {
  for (const auto& one : splitCidrs(cidr)) {
    if (!isValidCidr(one)) return fmt::format("'{}' is not a valid CIDR", one);
  }
  if (!cidr.empty() && splitCidrs(cidr).empty()) {
    return fmt::format("'{}' is not a valid CIDR", cidr);
  }
  podCidr_ = cidr;
  return {};
}

NetworkReadiness PodNetwork::readiness() {
  // Plugin binaries are not watched: while nothing is usable, kubelet's Status calls (every few
  // seconds) look again, so that a plugin installed after its config is found.
  if (!config_ && loop_.nowMs() - lastScanMs_ >= kRescanWhileNotReadyMs) rescan();
  if (config_) return NetworkReadiness{true, "", ""};
  std::string message = fmt::format("no valid CNI network config in {}", options_.confDir);
  if (!scanError_.empty()) message += ": " + scanError_;
  // Each file passed over and why, the last ones first (a provider's file sorts late), a few.
  constexpr size_t kShown = 4;
  std::vector<std::string> shown(rejected_.rbegin(),
                                 rejected_.rbegin() + std::min(rejected_.size(), kShown));
  if (!shown.empty()) {
    message += fmt::format(" ({} passed over: {}{})", rejected_.size(), fmt::join(shown, "; "),
                           rejected_.size() > kShown ? "; ..." : "");
  }
  message +=
      "; pods other than host-network ones cannot start until a network provider "
      "installs one";
  return NetworkReadiness{false, "NetworkPluginNotReady", message};
}

nlohmann::json PodNetwork::info() const {
  nlohmann::json network = nullptr;
  if (config_) {
    nlohmann::json types = nlohmann::json::array();
    for (const auto& plugin : config_->plugins)
      types.push_back(plugin.value("type", ""));
    network = {{"name", config_->name},
               {"cniVersion", config_->cniVersion},
               {"path", config_->path},
               {"plugins", types},
               {"config", config_->raw}};
  }
  return {{"confDir", options_.confDir}, {"pluginDirs", options_.pluginDirs},
          {"network", network},          {"passedOver", rejected_},
          {"dirError", scanError_},      {"podCIDR", podCidr_},
          {"pluginRuns", pluginRuns_},   {"pluginNanos", pluginNs_}};
}

std::string PodNetwork::cachePath(const std::string& network, const std::string& podId) const {
  return fmt::format("{}/results/{}-{}-{}", options_.cacheDir, network, podId, kPodInterface);
}

std::optional<std::string> PodNetwork::findCache(const std::string& podId) const {
  const std::string dir = options_.cacheDir + "/results";
  const std::string suffix = fmt::format("-{}-{}", podId, kPodInterface);
  DIR* stream = opendir(dir.c_str());
  if (stream == nullptr) return std::nullopt;
  std::optional<std::string> found;
  while (const dirent* entry = readdir(stream)) {
    const std::string_view name = entry->d_name;
    if (name.size() > suffix.size() && name.ends_with(suffix)) {
      found = dir + "/" + std::string(name);
      break;
    }
  }
  closedir(stream);
  return found;
}

void PodNetwork::runChain(PluginChainRequest request,
                          std::function<void(PluginChainOutcome)> done) {
  request.pluginDirs = options_.pluginDirs;
  request.pluginDeadlineMs = options_.pluginDeadlineMs;
  const uint64_t id = nextChainId_++;
  chains_[id] = PluginChain::start(
      loop_, std::move(request), [this, id, done = std::move(done)](PluginChainOutcome outcome) {
        pluginNs_ += outcome.pluginNs;
        pluginRuns_ += outcome.pluginRuns;
        // The chain's own method is on the stack: freed after this callback.
        loop_.defer(lifetime_.watch(), [this, id] { chains_.erase(id); });
        done(std::move(outcome));
      });
}

void PodNetwork::attach(const PodAttachRequest& request, AttachDone done) {
  if (!config_) {
    return done(Status(StatusCode::kFailedPrecondition, readiness().message), {});
  }
  std::string error;
  cni::RuntimeConfig runtimeConfig;
  runtimeConfig.portMappings = request.portMappings;
  runtimeConfig.bandwidth = cni::bandwidthFromAnnotations(request.annotations, error);
  if (!error.empty()) return done(Status(StatusCode::kInvalidArgument, error), {});
  if (error = requestedAddresses(request.annotations, runtimeConfig); !error.empty()) {
    return done(Status(StatusCode::kInvalidArgument, error), {});
  }
  runtimeConfig.podCidrs = splitCidrs(podCidr_);

  cni::CacheRecord record;
  record.containerId = request.podId;
  record.ifName = kPodInterface;
  record.networkName = config_->name;
  record.config = config_->raw;
  record.configIsList = config_->path.ends_with(".conflist");
  record.cniArgs = {{"K8S_POD_NAMESPACE", request.namespace_},
                    {"K8S_POD_NAME", request.name},
                    {"K8S_POD_INFRA_CONTAINER_ID", request.podId},
                    {"K8S_POD_UID", request.uid}};
  record.runtimeConfig = runtimeConfig.toJson();
  // Checked before anything is cached: a record whose arguments cannot be passed could never
  // be undone by DEL either.
  if (cni::cniArgs(record.cniArgs, error); !error.empty()) {
    return done(Status(StatusCode::kInvalidArgument, "pod metadata: " + error), {});
  }
  const std::string path = cachePath(config_->name, request.podId);
  // Before the ADD: a crash in the middle leaves a record that DEL can undo.
  if (std::string writeError = state::writeFileAtomically(path, cni::encodeCacheRecord(record),
                                                          0600, state::Durability::kProcessCrash);
      !writeError.empty()) {
    return done(Status(StatusCode::kInternal, writeError), {});
  }

  PluginChainRequest add;
  add.command = CniCommand::kAdd;
  add.list = *config_;
  add.containerId = request.podId;
  add.netnsPath = request.netnsPath;
  add.ifName = kPodInterface;
  add.args = record.cniArgs;
  add.runtimeConfig = runtimeConfig;
  runChain(std::move(add), [this, record, path, netns = request.netnsPath,
                            done = std::move(done)](PluginChainOutcome outcome) mutable {
    if (!outcome.status.isOk()) {
      // Undo what the plugins before the failing one did (and what it did itself).
      spdlog::warn("pod {}: {}; undoing with DEL", record.containerId, outcome.status.message());
      detachWithRecord(record.containerId, path, netns, outcome.reached,
                       [status = outcome.status, done](Status undone) {
                         if (!undone.isOk()) {
                           spdlog::warn("DEL after a failed ADD: {}", undone.message());
                         }
                         done(status, {});
                       });
      return;
    }
    cni::Result result;
    if (std::string error = cni::resultFromJson(outcome.result, result); !error.empty()) {
      // Checked plugin by plugin already; kept for a chain whose last result is odd.
      return done(Status(StatusCode::kUnknown, "CNI result: " + error), {});
    }
    record.result = outcome.result;
    if (std::string writeError = state::writeFileAtomically(path, cni::encodeCacheRecord(record),
                                                            0600, state::Durability::kProcessCrash);
        !writeError.empty()) {
      spdlog::warn("pod {}: cannot cache its CNI result: {}", record.containerId, writeError);
    }
    PodAttachment attachment{record.networkName, result.podIps(kPodInterface)};
    spdlog::info("pod {}: network '{}' attached ({})", record.containerId, record.networkName,
                 attachment.ips.empty() ? std::string("no address")
                                        : fmt::format("{}", fmt::join(attachment.ips, ", ")));
    done(Status::ok(), std::move(attachment));
  });
}

namespace {

// A cached ADD, with the config list it ran with: "" or why the file cannot be used.
std::string loadCacheRecord(const std::string& path, cni::CacheRecord& record,
                            cni::NetworkConfigList& list) {
  std::string bytes;
  std::string error = state::readFile(path, kMaxCacheRecordBytes, bytes);
  if (error.empty()) error = cni::decodeCacheRecord(bytes, record);
  if (error.empty()) error = cni::networkConfigFromJson(record.config, record.configIsList, list);
  return error;
}

// DEL or CHECK of a cached ADD: its config, arguments, runtime config and result.
PluginChainRequest requestFromRecord(CniCommand command, const cni::CacheRecord& record,
                                     cni::NetworkConfigList list, const std::string& netnsPath) {
  PluginChainRequest request;
  request.command = command;
  request.list = std::move(list);
  request.containerId = record.containerId;
  request.netnsPath = netnsPath;
  request.ifName = record.ifName;
  request.args = record.cniArgs;
  request.runtimeConfig = cni::runtimeConfigFromJson(record.runtimeConfig);
  request.cachedResult = record.result;
  return request;
}

}  // namespace

void PodNetwork::detachWithRecord(const std::string& podId, const std::string& path,
                                  const std::string& netnsPath, size_t reached,
                                  std::function<void(Status)> done) {
  if (auto running = detaching_.find(podId); running != detaching_.end()) {
    running->second.push_back(std::move(done));  // one DEL per pod at a time
    return;
  }
  cni::CacheRecord record;
  cni::NetworkConfigList list;
  if (std::string error = loadCacheRecord(path, record, list); !error.empty()) {
    // Nothing to run DEL with: the record is set aside rather than retried forever.
    spdlog::warn("CNI cache record {} cannot be used ({}): renamed to .bad", path, error);
    ::rename(path.c_str(), (path + ".bad").c_str());
    return done(Status::ok());
  }
  detaching_[podId].push_back(std::move(done));
  PluginChainRequest request =
      requestFromRecord(CniCommand::kDel, record, std::move(list), netnsPath);
  request.reached = reached;
  runChain(std::move(request), [this, podId, path](PluginChainOutcome outcome) {
    if (outcome.status.isOk()) {
      if (unlink(path.c_str()) != 0 && errno != ENOENT) {
        spdlog::warn("remove {}: {}", path, std::strerror(errno));
      }
      retries_.erase(path);
      spdlog::info("pod {}: network detached", podId);
    }
    auto waiters = std::move(detaching_[podId]);
    detaching_.erase(podId);
    for (auto& waiter : waiters)
      waiter(outcome.status);
  });
}

void PodNetwork::detach(const std::string& podId, const std::string& netnsPath,
                        std::function<void(Status)> done) {
  const std::optional<std::string> path = findCache(podId);
  if (!path) return done(Status::ok());  // never attached, or detached already
  detachWithRecord(podId, *path, netnsPath, std::string::npos, std::move(done));
}

bool PodNetwork::attached(const std::string& podId) const {
  return findCache(podId).has_value();
}

void PodNetwork::detachLater(const std::string& podId) {
  if (const std::optional<std::string> path = findCache(podId)) {
    retries_[*path] = podId;
    if (!retryTimer_) {
      retryTimer_ = loop::Timer::create(loop_, "CNI DEL retry");
      retryTimer_->start(kDetachRetryMs, kDetachRetryMs, [this] { retryDetaches(); });
    }
  }
}

void PodNetwork::retryDetaches() {
  for (const auto& [path, podId] : std::map<std::string, std::string>(retries_)) {
    if (access(path.c_str(), F_OK) != 0) {
      retries_.erase(path);
      continue;
    }
    detachWithRecord(podId, path, "", std::string::npos, [path](Status status) {
      if (!status.isOk()) spdlog::warn("DEL of {} (tried again): {}", path, status.message());
    });
  }
}

void PodNetwork::check(const std::string& podId, const std::string& netnsPath,
                       std::function<void(Status)> done) {
  const std::optional<std::string> path = findCache(podId);
  if (!path || detaching_.contains(podId)) return done(Status::ok());
  cni::CacheRecord record;
  cni::NetworkConfigList list;
  if (std::string error = loadCacheRecord(*path, record, list); !error.empty()) {
    return done(Status(StatusCode::kInternal, error));
  }
  if (!cni::versionHasCheck(list.cniVersion) || list.disableCheck || record.result.is_null()) {
    return done(Status::ok());
  }
  runChain(requestFromRecord(CniCommand::kCheck, record, std::move(list), netnsPath),
           [done = std::move(done)](PluginChainOutcome outcome) { done(outcome.status); });
}

void PodNetwork::collectOrphans(const std::set<std::string>& knownPods) {
  const std::string dir = options_.cacheDir + "/results";
  DIR* stream = opendir(dir.c_str());
  if (stream == nullptr) return;
  std::vector<std::pair<std::string, std::string>> orphans;  // path, pod id
  const std::string suffix = std::string("-") + kPodInterface;
  while (const dirent* entry = readdir(stream)) {
    const std::string_view name = entry->d_name;
    // <network>-<64 hex pod id>-eth0
    if (!name.ends_with(suffix) || name.size() < suffix.size() + 65) continue;
    const std::string podId(name.substr(name.size() - suffix.size() - 64, 64));
    if (!knownPods.contains(podId)) orphans.emplace_back(dir + "/" + std::string(name), podId);
  }
  closedir(stream);
  for (const auto& [path, podId] : orphans) {
    spdlog::info("CNI attachment {} belongs to no pod: running DEL", path);
    detachWithRecord(podId, path, "", std::string::npos, [this, path, podId](Status status) {
      if (status.isOk()) return;
      spdlog::warn("DEL of {}: {}; tried again later", path, status.message());
      detachLater(podId);
    });
  }
}

}  // namespace monocri::net
