// One CNI operation over a network config list: ADD runs the plugins in order, each given the
// previous one's result; DEL runs them in reverse with the cached result; CHECK in order with
// it. Each plugin is a child process on the loop (stdin from memory, stdout and stderr captured,
// a deadline), never waited for on the loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "loop/Loop.h"
#include "net/cni/NetworkConfigList.h"
#include "net/cni/PluginInput.h"

namespace monocri::oci {
class RuntimeCall;
struct RuntimeOutcome;
}  // namespace monocri::oci

namespace monocri::net {

enum class CniCommand { kAdd, kDel, kCheck };
const char* cniCommandName(CniCommand command);

struct PluginChainRequest {
  CniCommand command = CniCommand::kAdd;
  cni::NetworkConfigList list;
  std::string containerId;
  std::string netnsPath;  // "" for a DEL whose namespace is gone
  std::string ifName = "eth0";
  std::vector<std::pair<std::string, std::string>> args;  // CNI_ARGS
  cni::RuntimeConfig runtimeConfig;
  nlohmann::json cachedResult;  // DEL and CHECK: the ADD's result (null if unknown)
  // DEL: only the first `reached` plugins of the list (those an ADD that failed got to);
  // npos: all.
  size_t reached = std::string::npos;
  std::vector<std::string> pluginDirs;
  uint64_t pluginDeadlineMs = 60'000;
};

struct PluginChainOutcome {
  grpc::Status status;
  nlohmann::json result;    // ADD: the last plugin's result
  uint64_t pluginNs = 0;    // time spent inside plugins
  unsigned pluginRuns = 0;  // plugins run
  size_t reached = 0;       // ADD: plugins started, the failing one included
};

class PluginChain {
 public:
  using Done = std::function<void(PluginChainOutcome)>;
  // Starts the operation; `done` runs once on the loop, never from within start().
  static std::unique_ptr<PluginChain> start(loop::Loop& loop, PluginChainRequest request,
                                            Done done);
  ~PluginChain();  // a plugin still running is killed; `done` does not run
  PluginChain(const PluginChain&) = delete;
  PluginChain& operator=(const PluginChain&) = delete;

  // A plugin's stdout beyond this is a broken plugin.
  static constexpr size_t kMaxPluginOutputBytes = 1 << 20;

 private:
  PluginChain(loop::Loop& loop, PluginChainRequest request, Done done);
  void runNext();
  void pluginEnded(size_t index, oci::RuntimeOutcome outcome);
  void finish(grpc::Status status);
  void finishSoon(grpc::Status status);  // finish() from the loop, never from the caller's stack

  loop::Loop& loop_;
  PluginChainRequest request_;
  Done done_;
  std::vector<std::string> env_;
  size_t step_ = 0;          // plugins run so far
  nlohmann::json previous_;  // prevResult for the next plugin
  PluginChainOutcome outcome_;
  std::unique_ptr<oci::RuntimeCall> running_;
  loop::LifetimeGuard lifetime_;
};

// "eth0 in /run/.../ns/net": which plugin failed and why, from its error object, its stderr or
// its exit.
std::string describePluginFailure(const std::string& type, CniCommand command,
                                  const oci::RuntimeOutcome& outcome);

}  // namespace monocri::net
