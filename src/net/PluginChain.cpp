#include "net/PluginChain.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "net/cni/CniResult.h"
#include "oci/runtime-client/RuntimeCall.h"

extern char** environ;

namespace monocri::net {

using grpc::Status;
using grpc::StatusCode;

const char* cniCommandName(CniCommand command) {
  switch (command) {
    case CniCommand::kAdd:
      return "ADD";
    case CniCommand::kDel:
      return "DEL";
    case CniCommand::kCheck:
      return "CHECK";
  }
  return "?";
}

std::string describePluginFailure(const std::string& type, CniCommand command,
                                  const oci::RuntimeOutcome& outcome) {
  const std::string what = fmt::format("CNI plugin {} ({})", type, cniCommandName(command));
  switch (outcome.end) {
    case oci::RuntimeOutcome::End::kNotStarted:
      return fmt::format("{} did not start: {}", what, outcome.startError);
    case oci::RuntimeOutcome::End::kTimedOut:
      return fmt::format("{} did not finish within {} ms and was killed", what, outcome.deadlineMs);
    case oci::RuntimeOutcome::End::kOutputTooLarge:
      return fmt::format("{} printed more than {} bytes and was killed", what, outcome.stdoutLimit);
    case oci::RuntimeOutcome::End::kExited:
      break;
  }
  cni::PluginError error;
  if (cni::parsePluginError(outcome.stdoutBytes, error)) {
    return fmt::format("{} failed: {}", what, error.describe());
  }
  std::string stderrTail = outcome.stderrTail;
  while (!stderrTail.empty() && (stderrTail.back() == '\n' || stderrTail.back() == '\r'))
    stderrTail.pop_back();
  if (stderrTail.size() > 1024) stderrTail = "..." + stderrTail.substr(stderrTail.size() - 1024);
  return fmt::format("{} failed with {}{}{}", what, outcome.exit.describe(),
                     stderrTail.empty() ? "" : ": ", stderrTail);
}

PluginChain::PluginChain(loop::Loop& loop, PluginChainRequest request, Done done)
    : loop_(loop), request_(std::move(request)), done_(std::move(done)) {}

PluginChain::~PluginChain() = default;

std::unique_ptr<PluginChain> PluginChain::start(loop::Loop& loop, PluginChainRequest request,
                                                Done done) {
  std::unique_ptr<PluginChain> chain(new PluginChain(loop, std::move(request), std::move(done)));
  PluginChain& self = *chain;
  // The daemon's environment (PATH: plugins run iptables, ip), without CNI_* of its own.
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, "CNI_", 4) != 0) self.env_.emplace_back(*entry);
  }
  std::string argsError;
  const std::string args = cni::cniArgs(self.request_.args, argsError);
  std::string path;
  for (const auto& dir : self.request_.pluginDirs)
    path += (path.empty() ? "" : ":") + dir;
  self.env_.push_back(std::string("CNI_COMMAND=") + cniCommandName(self.request_.command));
  self.env_.push_back("CNI_CONTAINERID=" + self.request_.containerId);
  self.env_.push_back("CNI_NETNS=" + self.request_.netnsPath);
  self.env_.push_back("CNI_IFNAME=" + self.request_.ifName);
  self.env_.push_back("CNI_ARGS=" + args);
  self.env_.push_back("CNI_PATH=" + path);
  if (self.request_.command != CniCommand::kAdd) self.previous_ = self.request_.cachedResult;
  if (!argsError.empty()) {
    loop.defer(self.lifetime_.watch(), [&self, argsError] {
      self.finish(Status(StatusCode::kInvalidArgument, "CNI_ARGS: " + argsError));
    });
  } else {
    self.runNext();  // the first plugin starts now: a pod's start waits for it
  }
  return chain;
}

void PluginChain::finishSoon(Status status) {
  loop_.defer(lifetime_.watch(), [this, status] { finish(status); });
}

void PluginChain::runNext() {
  const auto& plugins = request_.list.plugins;
  // DEL after an ADD that failed part-way undoes only the plugins it got to.
  const size_t count = request_.command == CniCommand::kDel
                           ? std::min(plugins.size(), request_.reached)
                           : plugins.size();
  // Never an answer from within start(): each end below comes from the loop.
  if (step_ == count) {
    if (request_.command == CniCommand::kAdd) outcome_.result = previous_;
    return finishSoon(Status::ok());
  }
  const size_t index = request_.command == CniCommand::kDel ? count - 1 - step_ : step_;
  const std::string type = plugins[index].value("type", "");
  const std::string binary = cni::findPlugin(type, request_.pluginDirs);
  // A DEL missing a plugin fails too, as libcni's: what that plugin made (an address in its
  // own store) would be lost with the cache record. The record stays, and DEL is tried again.
  if (binary.empty()) {
    std::string dirs;
    for (const auto& dir : request_.pluginDirs)
      dirs += (dirs.empty() ? "" : ", ") + dir;
    return finishSoon(Status(StatusCode::kFailedPrecondition,
                             fmt::format("CNI plugin '{}' ({}) of network '{}' ({}) is not in the "
                                         "plugin directories ({}): install it or set "
                                         "cni_plugin_dirs",
                                         type, cniCommandName(request_.command), request_.list.name,
                                         request_.list.path, dirs)));
  }
  const nlohmann::json input = cni::pluginInput(request_.list, index, request_.runtimeConfig,
                                                previous_.is_null() ? nullptr : &previous_);
  std::string error;
  state::UniqueFd stdinFile = oci::bufferInMemory(input.dump(), error);
  if (!stdinFile.valid()) return finishSoon(Status(StatusCode::kInternal, error));

  oci::RuntimeInvocation invocation;
  invocation.argv = {binary};
  invocation.stdinFd = stdinFile.get();  // the child gets its own copy at once
  invocation.stdoutLimit = kMaxPluginOutputBytes;
  invocation.deadlineMs = request_.pluginDeadlineMs;
  invocation.runtimeLog = false;
  invocation.env = env_;
  ++outcome_.pluginRuns;
  outcome_.reached = step_ + 1;
  running_ = oci::RuntimeCall::start(
      loop_, std::move(invocation),
      [this, index, alive = lifetime_.watch()](oci::RuntimeOutcome outcome) {
        if (alive.expired()) return;
        // The call is on the stack: freed after this callback.
        loop_.defer(lifetime_.watch(), [this, index, outcome = std::move(outcome)]() mutable {
          running_.reset();
          pluginEnded(index, std::move(outcome));
        });
      });
}

void PluginChain::pluginEnded(size_t index, oci::RuntimeOutcome outcome) {
  outcome_.pluginNs += outcome.elapsedNs;
  const std::string type = request_.list.plugins[index].value("type", "");
  if (!outcome.succeeded()) {
    cni::PluginError pluginError;
    const bool tryAgain =
        cni::parsePluginError(outcome.stdoutBytes, pluginError) && pluginError.code == 11;
    return finish(Status(tryAgain ? StatusCode::kUnavailable : StatusCode::kUnknown,
                         describePluginFailure(type, request_.command, outcome)));
  }
  if (request_.command == CniCommand::kAdd) {
    cni::Result result;
    if (std::string error = cni::parseResult(outcome.stdoutBytes, result); !error.empty()) {
      return finish(Status(StatusCode::kUnknown,
                           fmt::format("CNI plugin {} (ADD) printed a result monocri cannot "
                                       "read: {}",
                                       type, error)));
    }
    previous_ = std::move(result.raw);
  }
  ++step_;
  runNext();
}

void PluginChain::finish(Status status) {
  outcome_.status = std::move(status);
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(outcome_));  // last: it may free this chain
}

}  // namespace monocri::net
