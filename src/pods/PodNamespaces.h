// The pod's namespaces, never entered by the daemon's own threads: net, ipc and uts made by a
// short-lived child cloned from a worker thread (no exec) and pinned by bind mounts under the
// pod's run dir; for a pod sharing one pid namespace, monocri-pod-init holds it.
//
// Network namespaces also come ready-made from a small pool: making one is most of a pod's
// setup (the kernel registers its devices and sysctls, about half a millisecond), so a few are
// made ahead, by a child at low CPU priority (nice 10), and a pod takes one instead of waiting.
#pragma once

#include <sys/types.h>

#include <nlohmann/json_fwd.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "loop/ChildProcess.h"

namespace monocri::pods {

class PodNamespaces {
 public:
  struct PoolOptions {
    std::string dir;  // pins of the ready network namespaces (under the run root)
    size_t size = 0;  // how many are kept ready; 0: none, every pod makes its own
  };
  PodNamespaces(loop::Loop& loop, std::string initBinary, PoolOptions pool);
  // Unpins the ready pool's namespaces (a pinned but unused one would outlive the daemon).
  ~PodNamespaces();

  // Removes the pins an earlier daemon left in the pool's dir, then starts filling it.
  std::string startPool();
  // The pool's figures for verbose Status.
  nlohmann::json poolInfo() const;

  struct PinRequest {
    std::string dir;  // DIR/net, DIR/ipc, DIR/uts are created there
    bool net = false, ipc = false, uts = false;
    std::string hostname;
    std::vector<std::string> sysctls;  // "key=value", already checked to be namespaced
    // Without net: the pod's network namespace, pinned already (from the pool), which its net
    // sysctls are set in.
    std::string enterNet;
  };
  void pin(const PinRequest& request, std::function<void(grpc::Status)> done);
  // Pins a pooled network namespace (loopback up) at `target` at once, a bind mount on the
  // loop: false if none is ready or the bind failed, and then pin() makes the pod's own.
  bool takePooledNetns(const std::string& target);
  // Makes pooled network namespaces (one at a time, at low CPU priority) until the pool is full.
  // Called when the pods' own work is done, so that the making competes with none of it.
  void refillPool();

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

  PoolOptions pool_;
  std::deque<std::string> poolReady_;  // pinned, loopback up, never used
  bool poolStarted_ = false, poolRefilling_ = false;
  std::string poolError_;  // the failure that stopped the refills ("" while it works)
  uint64_t poolSequence_ = 0, poolMade_ = 0, poolTaken_ = 0, poolMissed_ = 0;
  loop::LifetimeGuard lifetime_;
};

}  // namespace monocri::pods
