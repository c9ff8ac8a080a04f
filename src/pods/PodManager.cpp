#include "pods/PodManager.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>

#include "loop/ChildProcess.h"
#include "pods/PodFiles.h"
#include "state/StateFiles.h"
#include "state/UniqueFd.h"

namespace monocri::pods {

namespace v1 = runtime::v1;
using grpc::Status;
using grpc::StatusCode;

namespace {

constexpr size_t kMaxPodRecordBytes = 1 << 20;
constexpr size_t kMaxPodConfigBytes = 4 << 20;
constexpr int64_t kNsfsMagic = 0x6e736673;  // NSFS_MAGIC: a pinned namespace is mounted

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
uint64_t startTicksOf(pid_t pid) {
  std::string stat;
  if (!state::readFile(fmt::format("/proc/{}/stat", pid), 4096, stat).empty()) return 0;
  const size_t close = stat.rfind(')');  // the name may hold spaces and parentheses
  if (close == std::string::npos) return 0;
  size_t pos = close + 2;
  for (int field = 3; field < 22 && pos != std::string::npos; ++field) {
    pos = stat.find(' ', pos);
    if (pos != std::string::npos) ++pos;
  }
  if (pos == std::string::npos) return 0;
  return std::strtoull(stat.c_str() + pos, nullptr, 10);
}

bool isPinned(const std::string& path) {
  struct statfs fs {};
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == kNsfsMagic;
}

bool isMountPoint(const std::string& path) {
  struct stat self {
  }, parent{};
  if (stat(path.c_str(), &self) != 0) return false;
  if (stat((path + "/..").c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev;
}

const char* stateName(PodState state) {
  switch (state) {
    case PodState::kCreating:
      return "creating";
    case PodState::kReady:
      return "ready";
    case PodState::kNotReady:
      return "notready";
  }
  return "?";
}

std::string podDir(const std::string& stateRoot, const std::string& id) {
  return stateRoot + "/pods/" + id;
}

bool isValidId(const std::string& id) {
  return id.size() == 64 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

std::string PodSandbox::netnsPath() const {
  return networkMode == v1::NODE ? std::string() : runDir + "/ns/net";
}
std::string PodSandbox::ipcnsPath() const {
  return ipcMode == v1::NODE ? std::string() : runDir + "/ns/ipc";
}
std::string PodSandbox::utsnsPath() const {
  return networkMode == v1::NODE ? std::string() : runDir + "/ns/uts";
}
std::string PodSandbox::pidnsPath() const {
  return initPid > 0 ? fmt::format("/proc/{}/ns/pid", initPid) : std::string();
}

std::string podKeyOf(const v1::PodSandboxMetadata& metadata) {
  // Fields joined with a separator that none of them may hold ('/' is refused in names).
  return fmt::format("{}/{}/{}/{}", metadata.name(), metadata.namespace_(), metadata.uid(),
                     metadata.attempt());
}

std::string PodSandbox::key() const {
  return podKeyOf(config.metadata());
}

std::string newPodOrContainerId() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) std::abort();  // no kernel randomness: nothing sensible to do
    got += static_cast<size_t>(n);
  }
  std::string id;
  for (unsigned char byte : bytes)
    id += fmt::format("{:02x}", byte);
  return id;
}

Status checkPodSysctl(const std::string& key, bool hostNetwork, bool hostIpc) {
  static const std::array<std::string_view, 6> kIpc = {"kernel.shmmax", "kernel.shmall",
                                                       "kernel.shmmni", "kernel.shm_rmid_forced",
                                                       "kernel.msgmax", "kernel.msgmnb"};
  const bool ipc = std::find(kIpc.begin(), kIpc.end(), key) != kIpc.end() ||
                   key == "kernel.msgmni" || key == "kernel.sem" || key.starts_with("fs.mqueue.");
  const bool net = key.starts_with("net.");
  if (key.empty() || key.find("..") != std::string::npos || key.find('/') != std::string::npos ||
      (!ipc && !net)) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("sysctl '{}' is not namespaced: a pod may set only kernel.shm*, "
                              "kernel.msg*, kernel.sem, fs.mqueue.* and net.*",
                              key.substr(0, 100)));
  }
  if (ipc && hostIpc) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("sysctl '{}' would change the node's IPC namespace", key));
  }
  if (net && hostNetwork) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("sysctl '{}' would change the node's network namespace", key));
  }
  return Status::ok();
}

PodManager::PodManager(loop::Loop& loop, PodManagerOptions options, net::PodNetwork& network)
    : loop_(loop),
      options_(std::move(options)),
      namespaces_(loop, options_.initBinary,
                  {options_.runRoot + "/netns-pool", options_.netnsPoolSize}),
      network_(network) {}

PodManager::~PodManager() = default;

Status PodManager::persistConfig(const PodSandbox& pod) {
  const std::string dir = podDir(options_.stateRoot, pod.id);
  if (std::string error = state::makeDirectories(dir, 0700); !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  std::string config;
  if (!pod.config.SerializeToString(&config)) {
    return Status(StatusCode::kInternal, "cannot encode the pod config");
  }
  if (std::string error = state::writeFileAtomically(dir + "/config.pb", config, 0600,
                                                     state::Durability::kProcessCrash);
      !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  return Status::ok();
}

Status PodManager::persist(const PodSandbox& pod) {
  const std::string dir = podDir(options_.stateRoot, pod.id);
  // Kubelet's config never changes after RunPodSandbox: written once.
  if (!std::filesystem::exists(dir + "/config.pb")) {
    if (Status s = persistConfig(pod); !s.isOk()) return s;
  }
  nlohmann::json record = {
      {"id", pod.id},
      {"runtime_handler", pod.runtimeHandler},
      {"created_at", pod.createdAtNs},
      {"state", stateName(pod.state)},
      {"network_mode", static_cast<int>(pod.networkMode)},
      {"pid_mode", static_cast<int>(pod.pidMode)},
      {"ipc_mode", static_cast<int>(pod.ipcMode)},
      {"run_dir", pod.runDir},
      {"shm_mounted", pod.shmMounted},
      {"init_pid", pod.initPid},
      {"init_start_ticks", pod.initStartTicks},
      {"stop_reason", pod.stopReason},
      {"network_name", pod.networkName},
      {"pod_ips", pod.podIps},
      {"network_check", pod.networkCheck},
  };
  if (std::string error = state::writeFileAtomically(dir + "/pod.json", record.dump(), 0600,
                                                     state::Durability::kProcessCrash);
      !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  return Status::ok();
}

std::string PodManager::load(std::vector<std::string>& notes) {
  const std::string root = options_.stateRoot + "/pods";
  if (std::string error = state::makeDirectories(root, 0700); !error.empty()) return error;
  if (std::string error = state::makeDirectories(options_.runRoot + "/pods", 0711);
      !error.empty()) {
    return error;
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    const std::string id = entry.path().filename();
    const std::string dir = entry.path();
    std::string text, config;
    auto pod = std::make_unique<PodSandbox>();
    bool ok = isValidId(id) &&
              state::readFile(dir + "/pod.json", kMaxPodRecordBytes, text).empty() &&
              state::readFile(dir + "/config.pb", kMaxPodConfigBytes, config).empty() &&
              pod->config.ParseFromString(config);
    if (ok) {
      try {
        const auto record = nlohmann::json::parse(text);
        pod->id = record.at("id").get<std::string>();
        pod->runtimeHandler = record.at("runtime_handler").get<std::string>();
        pod->createdAtNs = record.at("created_at").get<int64_t>();
        const std::string state = record.at("state").get<std::string>();
        pod->state = state == "ready" ? PodState::kReady : PodState::kNotReady;
        pod->networkMode = static_cast<v1::NamespaceMode>(record.at("network_mode").get<int>());
        pod->pidMode = static_cast<v1::NamespaceMode>(record.at("pid_mode").get<int>());
        pod->ipcMode = static_cast<v1::NamespaceMode>(record.at("ipc_mode").get<int>());
        pod->runDir = record.at("run_dir").get<std::string>();
        pod->shmMounted = record.at("shm_mounted").get<bool>();
        pod->initPid = record.at("init_pid").get<pid_t>();
        pod->initStartTicks = record.at("init_start_ticks").get<uint64_t>();
        pod->stopReason = record.at("stop_reason").get<std::string>();
        // Absent from records written before pods had CNI networks.
        pod->networkName = record.value("network_name", std::string());
        pod->podIps = record.value("pod_ips", std::vector<std::string>());
        pod->networkCheck = record.value("network_check", std::string());
        ok = pod->id == id;
      } catch (const nlohmann::json::exception&) {
        ok = false;
      }
    }
    if (!ok) {
      // A pod whose creation never completed (or a damaged record): nothing to keep.
      notes.push_back(fmt::format("pod {}: unreadable or unfinished record, removed", id));
      state::removeTree(dir);
      continue;
    }
    // What survived: after a reboot the run dir is gone, and with it the namespaces.
    if (pod->state == PodState::kReady) {
      std::string lost;
      if (!pod->netnsPath().empty() && !isPinned(pod->netnsPath())) lost = "network namespace";
      if (!pod->ipcnsPath().empty() && !isPinned(pod->ipcnsPath())) lost = "IPC namespace";
      if (pod->pidMode == v1::POD && !initAlive(*pod)) lost = "pid namespace init";
      if (!lost.empty()) {
        pod->state = PodState::kNotReady;
        pod->stopReason = fmt::format(
            "the pod's {} did not survive a restart of the node or the "
            "daemon",
            lost);
        notes.push_back(fmt::format("pod {}: {}", id, pod->stopReason));
        persist(*pod);
      }
    }
    pod->shmMounted = pod->shmMounted && isMountPoint(pod->runDir + "/shm");
    pods_[id] = std::move(pod);
  }
  // Run dirs of pods with no record, or an unfinished one (a daemon that stopped in the middle
  // of RunPodSandbox): their pinned namespaces and /dev/shm go too. Their CNI attachment, if
  // any, is DEL'd by reconcileNetworks; the namespace is gone by then, and its veth with it.
  std::error_code runDirs;
  for (const auto& entry :
       std::filesystem::directory_iterator(options_.runRoot + "/pods", runDirs)) {
    const std::string id = entry.path().filename();
    if (pods_.contains(id)) continue;
    const std::string runDir = entry.path();
    for (const char* ns : {"net", "ipc", "uts"}) {
      if (Status s = PodNamespaces::unpin(runDir + "/ns/" + ns); !s.isOk()) {
        notes.push_back(s.message());
      }
    }
    if (isMountPoint(runDir + "/shm")) umount2((runDir + "/shm").c_str(), MNT_DETACH);
    state::removeTree(runDir);
    notes.push_back(fmt::format("pod {}: its run dir had no finished record, removed", id));
  }
  if (ec) return fmt::format("read {}: {}", root, ec.message());
  return namespaces_.startPool();
}

nlohmann::json PodManager::netnsPoolInfo() const {
  return namespaces_.poolInfo();
}

const PodSandbox* PodManager::find(const std::string& id) const {
  auto it = pods_.find(id);
  return it == pods_.end() || it->second->state == PodState::kCreating ? nullptr : it->second.get();
}

void PodManager::run(const v1::PodSandboxConfig& config, const std::string& runtimeHandler,
                     RunDone done) {
  const auto& metadata = config.metadata();
  for (const auto& [what, value] : {std::pair{"name", &metadata.name()},
                                    {"namespace", &metadata.namespace_()},
                                    {"uid", &metadata.uid()}}) {
    if (value->empty()) {
      return done(
          Status(StatusCode::kInvalidArgument, fmt::format("pod metadata: {} is required", what)),
          "");
    }
    if (value->find('/') != std::string::npos || value->size() > 253) {
      return done(Status(StatusCode::kInvalidArgument,
                         fmt::format("pod metadata: {} '{}' may not hold '/' or exceed 253 "
                                     "characters",
                                     what, value->substr(0, 100))),
                  "");
    }
  }
  if (!runtimeHandler.empty() && runtimeHandler != "runc") {
    return done(Status(StatusCode::kNotFound,
                       fmt::format("runtime handler '{}' is not configured (monocri has "
                                   "\"runc\", also the default)",
                                   runtimeHandler.substr(0, 100))),
                "");
  }

  // kubelet's retry of a call still running, or already done: the same pod.
  const std::string key = podKeyOf(metadata);
  if (auto waiting = pendingRuns_.find(key); waiting != pendingRuns_.end()) {
    waiting->second.push_back(std::move(done));
    return;
  }
  for (const auto& [id, pod] : pods_) {
    if (pod->key() == key) return done(Status::ok(), id);
  }

  auto pod = std::make_unique<PodSandbox>();
  pod->id = newPodOrContainerId();
  pod->config = config;
  pod->runtimeHandler = runtimeHandler;
  pod->createdAtNs = nowNs();
  pod->runDir = options_.runRoot + "/pods/" + pod->id;
  const auto& security = config.linux().security_context();
  const auto& modes = security.namespace_options();
  pod->networkMode = modes.network() == v1::NODE ? v1::NODE : v1::POD;
  pod->ipcMode = modes.ipc() == v1::NODE ? v1::NODE : v1::POD;
  pod->pidMode = modes.pid();
  if (modes.pid() == v1::TARGET) {
    return done(Status(StatusCode::kInvalidArgument,
                       "pod namespace_options: pid mode TARGET applies to containers, not pods"),
                "");
  }
  if (modes.has_userns_options() && modes.userns_options().mode() != v1::NODE) {
    return done(Status(StatusCode::kUnimplemented,
                       "user namespaces for pods are not supported by monocri yet"),
                "");
  }
  if (Status s = checkHostname(config.hostname()); !s.isOk()) return done(s, "");
  if (pod->networkMode == v1::POD) {
    // As CRI-O and containerd: no pod without the network kubelet expects it to have.
    if (const net::NetworkReadiness network = network_.readiness(); !network.ready) {
      return done(Status(StatusCode::kFailedPrecondition, network.message), "");
    }
  }
  std::vector<std::string> sysctls;
  for (const auto& [sysctl, value] : config.linux().sysctls()) {
    if (Status s = checkPodSysctl(sysctl, pod->networkMode == v1::NODE, pod->ipcMode == v1::NODE);
        !s.isOk()) {
      return done(s, "");
    }
    if (value.find_first_of("\n\0", 0, 2) != std::string::npos || value.size() > 4096) {
      return done(Status(StatusCode::kInvalidArgument,
                         fmt::format("sysctl '{}': the value may not hold a newline", sysctl)),
                  "");
    }
    sysctls.push_back(sysctl + "=" + value);
  }
  DnsSettings dns;
  dns.servers.assign(config.dns_config().servers().begin(), config.dns_config().servers().end());
  dns.searches.assign(config.dns_config().searches().begin(), config.dns_config().searches().end());
  dns.options.assign(config.dns_config().options().begin(), config.dns_config().options().end());
  std::string resolvConf;
  if (dns.empty()) {
    if (std::string error = state::readFile(options_.hostResolvConf, 1 << 20, resolvConf);
        !error.empty()) {
      resolvConf.clear();  // a node without resolv.conf: containers get an empty one
    }
  } else if (Status s = resolvConfFor(dns, resolvConf); !s.isOk()) {
    return done(s, "");
  }
  const auto& logDirectory = config.log_directory();
  if (!logDirectory.empty() && logDirectory.front() != '/') {
    return done(Status(StatusCode::kInvalidArgument,
                       fmt::format("log_directory '{}' is not an absolute path",
                                   logDirectory.substr(0, 200))),
                "");
  }

  // From here the pod exists, in state kCreating, and its key is taken.
  PodSandbox& ref = *pod;
  const std::string id = pod->id;
  pods_[id] = std::move(pod);
  pendingRuns_[key].push_back(std::move(done));

  auto fail = [this, key, id](Status status) {
    auto drop = [this, key, id, status] {
      if (auto it = pods_.find(id); it != pods_.end()) {
        undo(*it->second);
        pods_.erase(it);
      }
      finishRun(key, status, "");
    };
    auto it = pods_.find(id);
    if (it == pods_.end()) return drop();
    // The pod goes even if its DEL fails: then DEL is tried again until it succeeds.
    detachNetwork(*it->second, drop, [this, id, drop](Status detachFailed) {
      spdlog::warn("{}; tried again later", detachFailed.message());
      network_.detachLater(id);
      drop();
    });
  };

  // Files, the pod's /dev/shm, the log directory.
  std::string hosts;
  if (ref.networkMode == v1::NODE) {
    if (!state::readFile(options_.hostHosts, 1 << 20, hosts).empty()) hosts = podHostsFile("");
  } else {
    hosts = podHostsFile(config.hostname());
  }
  std::string hostname = config.hostname();
  if (hostname.empty() || ref.networkMode == v1::NODE) {
    char buffer[256] = {};
    gethostname(buffer, sizeof(buffer) - 1);
    if (hostname.empty() || ref.networkMode == v1::NODE) hostname = buffer;
  }
  for (const auto& dir : {ref.runDir, ref.runDir + "/ns"}) {
    if (std::string error = state::makeDirectories(dir, 0711); !error.empty()) {
      return fail(Status(StatusCode::kInternal, error));
    }
  }

  // Three parts at once where they can be: the namespaces (a worker's child), the pod's network
  // (CNI plugins, once its network namespace is pinned) and the pod's files (here, on the
  // loop). A network namespace ready in the pool is pinned at once and the plugins start before
  // the rest, unless the pod sets net sysctls: the child sets them in it first.
  PodNamespaces::PinRequest pin;
  pin.dir = ref.runDir + "/ns";
  pin.net = ref.networkMode != v1::NODE;
  pin.uts = ref.networkMode != v1::NODE;  // a host-network pod has the node's name too
  pin.ipc = ref.ipcMode != v1::NODE;
  pin.hostname = pin.uts ? hostname : std::string();
  const bool netSysctls = std::any_of(sysctls.begin(), sysctls.end(),
                                      [](const std::string& s) { return s.starts_with("net."); });
  pin.sysctls = std::move(sysctls);
  if (pin.net && namespaces_.takePooledNetns(ref.netnsPath())) {
    pin.net = false;
    pin.enterNet = ref.netnsPath();
  }
  // Its network can start now, unless net sysctls are still to be set in it.
  const bool networkFirst = !pin.enterNet.empty() && !netSysctls;

  struct Join {
    int pending = 0;
    Status failed;
  };
  auto join = std::make_shared<Join>();
  auto ready = [this, id, key, fail](Status status) {
    auto it = pods_.find(id);
    if (it == pods_.end()) return;
    if (!status.isOk()) return fail(status);
    PodSandbox& pod = *it->second;
    pod.state = PodState::kReady;
    if (Status s = persist(pod); !s.isOk()) return fail(s);
    spdlog::info("pod {} ({}/{}) is ready", id, pod.config.metadata().namespace_(),
                 pod.config.metadata().name());
    finishRun(key, Status::ok(), id);
  };
  auto startPidNamespace = [this, id, ready] {
    auto it = pods_.find(id);
    if (it == pods_.end()) return;
    if (it->second->pidMode != v1::POD) return ready(Status::ok());
    namespaces_.startPidNamespace(
        it->second->runDir + "/init.pid",
        [this, id, ready, alive = lifetime_.watch()](Status status, pid_t pid) {
          if (alive.expired()) return;
          auto it = pods_.find(id);
          if (it != pods_.end() && status.isOk()) {
            it->second->initPid = pid;
            it->second->initStartTicks = startTicksOf(pid);
            watchInit(*it->second, true);
          }
          ready(status);
        });
  };
  // Each part ends here; the last one decides: a failure undoes the pod only when nothing of
  // it is still running (a DEL never races its ADD).
  auto partDone = [this, id, join, fail, startPidNamespace](Status status) {
    if (!status.isOk() && join->failed.isOk()) join->failed = status;
    if (--join->pending > 0) return;
    if (pods_.find(id) == pods_.end()) return;
    if (!join->failed.isOk()) return fail(join->failed);
    startPidNamespace();
  };
  auto attachNetwork = [this, id, partDone] {
    auto it = pods_.find(id);
    if (it == pods_.end()) return partDone(Status::ok());
    PodSandbox& pod = *it->second;
    net::PodAttachRequest attach;
    attach.podId = id;
    attach.netnsPath = pod.netnsPath();
    attach.name = pod.config.metadata().name();
    attach.namespace_ = pod.config.metadata().namespace_();
    attach.uid = pod.config.metadata().uid();
    attach.annotations.insert(pod.config.annotations().begin(), pod.config.annotations().end());
    for (const auto& port : pod.config.port_mappings()) {
      if (port.host_port() <= 0) continue;  // kubelet sends every container port
      const char* protocol = port.protocol() == v1::UDP    ? "udp"
                             : port.protocol() == v1::SCTP ? "sctp"
                                                           : "tcp";
      attach.portMappings.push_back(
          {port.host_port(), port.container_port(), protocol, port.host_ip()});
    }
    network_.attach(attach, [this, id, partDone, alive = lifetime_.watch()](
                                Status status, net::PodAttachment attachment) {
      if (alive.expired()) return;
      auto it = pods_.find(id);
      if (it != pods_.end() && status.isOk()) {
        it->second->networkName = std::move(attachment.networkName);
        it->second->podIps = std::move(attachment.ips);
      }
      partDone(status);
    });
  };
  const bool podNetwork = ref.networkMode != v1::NODE;
  join->pending = 2 + (podNetwork ? 1 : 0);  // the namespaces, the files, the network
  if (networkFirst) attachNetwork();
  namespaces_.pin(pin, [this, networkFirst, podNetwork, partDone, attachNetwork,
                        alive = lifetime_.watch()](Status status) {
    if (alive.expired()) return;
    // The plugins waited for the namespaces: they start now, or never.
    if (podNetwork && !networkFirst) {
      if (status.isOk()) {
        attachNetwork();
      } else {
        partDone(Status::ok());  // the network part never started
      }
    }
    partDone(status);
  });
  // The pod stays until every part has ended, even one that failed at once.
  partDone(prepareFiles(ref, hostname, hosts, resolvConf));
}

Status PodManager::prepareFiles(PodSandbox& pod, const std::string& hostname,
                                const std::string& hosts, const std::string& resolvConf) {
  if (std::string error = state::makeDirectories(pod.runDir + "/shm", 0711); !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  for (const auto& [path, contents] : {std::pair{pod.hostnamePath(), hostname + "\n"},
                                       {pod.hostsPath(), hosts},
                                       {pod.resolvConfPath(), resolvConf}}) {
    // Under the run dir, which a reboot empties: no fsync.
    if (std::string error =
            state::writeFileAtomically(path, contents, 0644, state::Durability::kProcessCrash);
        !error.empty()) {
      return Status(StatusCode::kInternal, error);
    }
  }
  if (pod.ipcMode != v1::NODE) {
    if (Status s = mountPodShm(pod.runDir + "/shm", options_.shmSizeBytes); !s.isOk()) return s;
    pod.shmMounted = true;
  }
  const std::string& logDirectory = pod.config.log_directory();
  if (!logDirectory.empty()) {
    if (std::string error = state::makeDirectories(logDirectory, 0755); !error.empty()) {
      return Status(StatusCode::kInternal, error);
    }
  }
  // The record's first part (kubelet's config): a pod without pod.json is an unfinished one,
  // which a restarted daemon removes.
  return persistConfig(pod);
}

void PodManager::finishRun(const std::string& key, Status status, const std::string& id) {
  // The pod's own work is over: the pool's next network namespace competes with none of it.
  namespaces_.refillPool();
  auto it = pendingRuns_.find(key);
  if (it == pendingRuns_.end()) return;
  auto waiters = std::move(it->second);
  pendingRuns_.erase(it);
  for (auto& waiter : waiters)
    waiter(status, id);
}

void PodManager::superviseInits(monitor::ExitMonitor& exits) {
  exits_ = &exits;
  for (const auto& [id, pod] : pods_) {
    if (pod->state == PodState::kReady && initAlive(*pod)) watchInit(*pod, false);
  }
}

// Re-parented to the subreaper (the keeper, or the daemon without one) when monocri-pod-init's
// first process exited: the monitor reaps it like a container's process.
void PodManager::watchInit(const PodSandbox& pod, bool startedByUs) {
  if (exits_ == nullptr || pod.initPid <= 0) return;
  auto exited = [this, id = pod.id](const monitor::ExitInfo& exit) { initExited(id, exit); };
  if (startedByUs) {
    exits_->track(pod.id, pod.initPid, std::move(exited));
  } else {
    exits_->expect(pod.id, pod.initPid, std::move(exited));
  }
}

void PodManager::initExited(const std::string& id, const monitor::ExitInfo& exit) {
  exits_->acknowledge(id, exit.pid);
  auto it = pods_.find(id);
  if (it == pods_.end()) return;
  PodSandbox& pod = *it->second;
  if (pod.initPid != exit.pid) return;  // killed by stop or remove: expected
  pod.initPid = 0;
  pod.initStartTicks = 0;
  if (pod.state != PodState::kReady) return;
  // Its pid namespace is gone, and the kernel killed every process in it.
  pod.state = PodState::kNotReady;
  pod.stopReason = fmt::format(
      "the init holding the pod's pid namespace exited (code {}): the pod must be recreated",
      exit.exitCode());
  spdlog::warn("pod {}: {}", id, pod.stopReason);
  if (Status s = persist(pod); !s.isOk()) spdlog::error("pod {}: {}", id, s.message());
}

bool PodManager::initAlive(const PodSandbox& pod) const {
  return pod.initPid > 0 && pod.initStartTicks != 0 &&
         startTicksOf(pod.initPid) == pod.initStartTicks;
}

void PodManager::killInit(PodSandbox& pod) {
  if (pod.initPid <= 0) return;
  if (initAlive(pod)) {
    // Through a pidfd, checked again after opening it: never a recycled pid.
    state::UniqueFd pidfd(loop::pidfdOpen(pod.initPid));
    if (pidfd.valid() && startTicksOf(pod.initPid) == pod.initStartTicks) {
      loop::pidfdSendSignal(pidfd.get(), SIGKILL);
    }
  }
  pod.initPid = 0;
  pod.initStartTicks = 0;
}

void PodManager::undo(PodSandbox& pod) {
  killInit(pod);
  for (const auto& path : {pod.netnsPath(), pod.ipcnsPath(), pod.utsnsPath()}) {
    if (path.empty()) continue;
    if (Status s = PodNamespaces::unpin(path); !s.isOk()) spdlog::warn("{}", s.message());
  }
  if (pod.shmMounted || isMountPoint(pod.runDir + "/shm")) {
    if (umount2((pod.runDir + "/shm").c_str(), MNT_DETACH) != 0) {
      spdlog::warn("unmount {}/shm: {}", pod.runDir, std::strerror(errno));
    }
    pod.shmMounted = false;
  }
  if (std::string error = state::removeTree(pod.runDir); !error.empty()) {
    spdlog::warn("pod {}: {}", pod.id, error);
  }
  if (std::string error = state::removeTree(podDir(options_.stateRoot, pod.id)); !error.empty()) {
    spdlog::warn("pod {}: {}", pod.id, error);
  }
}

void PodManager::stop(const std::string& id, std::function<void(Status)> done) {
  auto it = pods_.find(id);
  if (it == pods_.end() || it->second->state == PodState::kCreating) {
    // Gone (or never made): stopping it is done, as the CRI asks.
    return done(Status::ok());
  }
  auto finish = [this, id, done = std::move(done)](Status status) {
    if (!status.isOk()) return done(status);
    auto it = pods_.find(id);
    if (it == pods_.end()) return done(Status::ok());
    // The network goes first (its addresses return to the pool), then the pod's processes. A
    // failed DEL fails the stop: kubelet calls it again.
    const bool attached = !it->second->networkName.empty();
    detachNetwork(
        *it->second,
        [this, id, attached, done] {
          auto it = pods_.find(id);
          if (it == pods_.end()) return done(Status::ok());
          PodSandbox& pod = *it->second;
          killInit(pod);
          const bool stopping = pod.state != PodState::kNotReady;
          if (stopping) {
            pod.state = PodState::kNotReady;
            pod.stopReason = "stopped";
          }
          if (stopping || attached) {
            if (Status s = persist(pod); !s.isOk()) return done(s);
          }
          if (stopping) spdlog::info("pod {} stopped", id);
          done(Status::ok());
        },
        done);
  };
  if (stopContainersOf) {
    stopContainersOf(id, std::move(finish));
  } else {
    finish(Status::ok());
  }
}

void PodManager::remove(const std::string& id, std::function<void(Status)> done) {
  auto it = pods_.find(id);
  if (it == pods_.end() || it->second->state == PodState::kCreating) return done(Status::ok());
  stop(id, [this, id, done = std::move(done)](Status status) {
    if (!status.isOk()) return done(status);
    auto removePod = [this, id, done](Status status) {
      if (!status.isOk()) return done(status);
      auto it = pods_.find(id);
      if (it == pods_.end()) return done(Status::ok());
      undo(*it->second);
      pods_.erase(it);
      spdlog::info("pod {} removed", id);
      done(Status::ok());
    };
    if (removeContainersOf) {
      removeContainersOf(id, std::move(removePod));
    } else {
      removePod(Status::ok());
    }
  });
}

void PodManager::detachNetwork(PodSandbox& pod, std::function<void()> then,
                               std::function<void(Status)> failed) {
  if (pod.networkMode == v1::NODE) return then();
  // A namespace that is gone (a reboot) is not handed to the plugins: their DEL still releases
  // the addresses and host-side rules.
  const std::string netns = isPinned(pod.netnsPath()) ? pod.netnsPath() : std::string();
  network_.detach(
      pod.id, netns,
      [this, id = pod.id, then = std::move(then), failed = std::move(failed),
       alive = lifetime_.watch()](Status status) {
        if (alive.expired()) return;
        if (!status.isOk()) {
          return failed(Status(status.code(), fmt::format("pod {}: {}", id, status.message())));
        }
        if (auto it = pods_.find(id); it != pods_.end()) {
          it->second->networkName.clear();
          it->second->podIps.clear();
        }
        then();
      });
}

void PodManager::reconcileNetworks() {
  std::set<std::string> known;
  for (const auto& [id, pod] : pods_)
    known.insert(id);
  network_.collectOrphans(known);
  for (const auto& [id, pod] : pods_) {
    if (!pod->networkName.empty() && !network_.attached(id)) {
      // Its DEL ran, and the daemon stopped before it recorded that: the addresses are not its.
      pod->networkName.clear();
      pod->podIps.clear();
      persist(*pod);
      continue;
    }
    if (pod->state != PodState::kReady || pod->networkName.empty()) continue;
    network_.check(id, pod->netnsPath(), [this, id = id, alive = lifetime_.watch()](Status status) {
      if (alive.expired()) return;
      auto it = pods_.find(id);
      if (it == pods_.end()) return;
      it->second->networkCheck = status.isOk() ? "" : status.message();
      if (!status.isOk()) {
        spdlog::warn("pod {}: CNI CHECK after the restart: {}", id, status.message());
      }
    });
  }
}

std::vector<const PodSandbox*> PodManager::list(const v1::PodSandboxFilter& filter) const {
  std::vector<const PodSandbox*> out;
  for (const auto& [id, pod] : pods_) {
    if (pod->state == PodState::kCreating) continue;
    if (!filter.id().empty() && !id.starts_with(filter.id())) continue;
    if (filter.has_state()) {
      const bool ready = pod->state == PodState::kReady;
      if (ready != (filter.state().state() == v1::SANDBOX_READY)) continue;
    }
    bool labelsMatch = true;
    for (const auto& [label, value] : filter.label_selector()) {
      auto found = pod->config.labels().find(label);
      if (found == pod->config.labels().end() || found->second != value) labelsMatch = false;
    }
    if (labelsMatch) out.push_back(pod.get());
  }
  return out;
}

nlohmann::json PodManager::verboseInfo(const PodSandbox& pod) const {
  auto modeName = [](v1::NamespaceMode mode) { return v1::NamespaceMode_Name(mode); };
  nlohmann::json namespaces = nlohmann::json::object();
  if (!pod.netnsPath().empty()) namespaces["network"] = pod.netnsPath();
  if (!pod.ipcnsPath().empty()) namespaces["ipc"] = pod.ipcnsPath();
  if (!pod.utsnsPath().empty()) namespaces["uts"] = pod.utsnsPath();
  if (!pod.pidnsPath().empty()) namespaces["pid"] = pod.pidnsPath();
  return {
      {"id", pod.id},
      {"state", stateName(pod.state)},
      {"stopReason", pod.stopReason},
      {"runtimeHandler", pod.runtimeHandler.empty() ? "runc" : pod.runtimeHandler},
      {"namespaceModes",
       {{"network", modeName(pod.networkMode)},
        {"pid", modeName(pod.pidMode)},
        {"ipc", modeName(pod.ipcMode)}}},
      {"namespaces", namespaces},
      {"pidNamespaceInit", pod.initPid},
      {"runDir", pod.runDir},
      {"shm", pod.shmPath()},
      {"hostname", pod.hostnamePath()},
      {"hosts", pod.hostsPath()},
      {"resolvConf", pod.resolvConfPath()},
      {"cgroupParent", pod.config.linux().cgroup_parent()},
      {"logDirectory", pod.config.log_directory()},
      {"network", {{"name", pod.networkName}, {"ips", pod.podIps}, {"check", pod.networkCheck}}},
  };
}

}  // namespace monocri::pods
