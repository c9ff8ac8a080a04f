// The pod's namespaces, never entered by the daemon's own threads: net, ipc and uts made by a
// short-lived child cloned from a worker thread (no exec) and pinned by bind mounts under the
// pod's run dir; for a pod sharing one pid namespace, monocri-pod-init holds it.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "loop/ChildProcess.h"

namespace monocri::pods {

class PodNamespaces {
 public:
  PodNamespaces(loop::Loop& loop, std::string initBinary);
  ~PodNamespaces();

  struct PinRequest {
    std::string dir;  // DIR/net, DIR/ipc, DIR/uts are created there
    bool net = false, ipc = false, uts = false;
    std::string hostname;
    std::vector<std::string> sysctls;  // "key=value", already checked to be namespaced
  };
  void pin(const PinRequest& request, std::function<void(grpc::Status)> done);

  // Starts the init of a new pid namespace; done gets its pid (re-parented to the subreaper).
  void startPidNamespace(const std::string& pidFile, std::function<void(grpc::Status, pid_t)> done);

  // Unmounts and removes a pinned namespace file; a missing one is fine.
  static grpc::Status unpin(const std::string& path);

 private:
  void run(std::vector<std::string> args, std::function<void(grpc::Status)> done);

  loop::Loop& loop_;
  std::string initBinary_;
  // Children in flight, by a sequence number, kept until their exit is seen.
  std::vector<std::pair<uint64_t, std::unique_ptr<loop::ChildProcess>>> running_;
  uint64_t nextId_ = 0;
  loop::LifetimeGuard lifetime_;
};

}  // namespace monocri::pods
