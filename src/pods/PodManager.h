// Pod sandboxes: created, stopped, removed, listed and reported, persisted so that a restarted
// daemon knows them. Runs on the loop; the namespaces are made by children (see PodNamespaces).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "loop/Loop.h"
#include "monitor/ExitMonitor.h"
#include "net/PodNetwork.h"
#include "pods/PodNamespaces.h"
#include "pods/PodSandbox.h"

namespace monocri::pods {

struct PodManagerOptions {
  std::string stateRoot;                     // <root>: pods/<id>/ persisted
  std::string runRoot;                       // <run_root>: pods/<id>/ mounts and files
  std::string initBinary;                    // monocri-pod-init
  uint64_t shmSizeBytes = 64 * 1024 * 1024;  // as containerd and CRI-O
  std::string hostResolvConf = "/etc/resolv.conf";
  std::string hostHosts = "/etc/hosts";
  size_t netnsPoolSize = 0;  // network namespaces made ahead (PodNamespaces)
};

class PodManager {
 public:
  PodManager(loop::Loop& loop, PodManagerOptions options, net::PodNetwork& network);
  ~PodManager();

  // Reads the persisted pods and checks what survived (namespaces, the pid namespace's init).
  std::string load(std::vector<std::string>& notes);
  // The pool of ready network namespaces, for verbose Status.
  nlohmann::json netnsPoolInfo() const;
  // The monitor that reaps the pid namespace inits and reports their exits (an init that dies
  // ends its pod's pid namespace: the pod becomes NOTREADY). Inits that survived a restart are
  // watched again from here.
  void superviseInits(monitor::ExitMonitor& exits);
  // After load: DEL of cached CNI attachments whose pod is gone, CHECK of the ready pods'.
  void reconcileNetworks();

  using RunDone = std::function<void(grpc::Status, const std::string& id)>;
  // A second call with the same metadata (kubelet retrying after its deadline) gets the first
  // one's answer, whether that one is still running or done.
  void run(const runtime::v1::PodSandboxConfig& config, const std::string& runtimeHandler,
           RunDone done);
  // Idempotent: a stopped or unknown pod is success.
  void stop(const std::string& id, std::function<void(grpc::Status)> done);
  void remove(const std::string& id, std::function<void(grpc::Status)> done);

  const PodSandbox* find(const std::string& id) const;
  std::vector<const PodSandbox*> list(const runtime::v1::PodSandboxFilter& filter) const;
  nlohmann::json verboseInfo(const PodSandbox& pod) const;

  // Set by the container manager: stops (and for remove, removes) every container of a pod
  // before the pod itself goes.
  std::function<void(const std::string&podId, std::function<void(grpc::Status)>)> stopContainersOf,
      removeContainersOf;

 private:
  struct Pending;  // a run in progress and the calls waiting for it
  void finishRun(const std::string& key, grpc::Status status, const std::string& id);
  void undo(PodSandbox& pod);
  grpc::Status persist(const PodSandbox& pod);
  grpc::Status persistConfig(const PodSandbox& pod);
  // The pod's files, /dev/shm, log directory and config record, made while its namespaces are.
  grpc::Status prepareFiles(PodSandbox& pod, const std::string& hostname, const std::string& hosts,
                            const std::string& resolvConf);
  void killInit(PodSandbox& pod);
  bool initAlive(const PodSandbox& pod) const;
  void watchInit(const PodSandbox& pod, bool startedByUs);
  void initExited(const std::string& id, const monitor::ExitInfo& exit);
  // Runs `then` once the pod's CNI attachment (if any) is gone; a failed DEL is reported to
  // `failed` instead, the pod kept as it was.
  void detachNetwork(PodSandbox& pod, std::function<void()> then,
                     std::function<void(grpc::Status)> failed);

  loop::Loop& loop_;
  PodManagerOptions options_;
  PodNamespaces namespaces_;
  net::PodNetwork& network_;
  monitor::ExitMonitor* exits_ = nullptr;
  std::map<std::string, std::unique_ptr<PodSandbox>> pods_;  // by id
  std::map<std::string, std::vector<RunDone>> pendingRuns_;  // by key: waiters of a run
  loop::LifetimeGuard lifetime_;
};

// 64 hex characters from the kernel's CSPRNG.
std::string newPodOrContainerId();

// Sysctls a pod may set: those namespaced by the pod's ipc or net namespace.
grpc::Status checkPodSysctl(const std::string& key, bool hostNetwork, bool hostIpc);

}  // namespace monocri::pods
