// monoctl's pod verbs: runp, stopp, rmp, pods, inspectp.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "api.pb.h"
#include "monoctl/Commands.h"
#include "monoctl/ConfigFile.h"

namespace monocri::monoctl {

namespace v1 = runtime::v1;
using Json = nlohmann::ordered_json;

namespace {

constexpr std::string_view kRuntimeService = "/runtime.v1.RuntimeService/";

std::string method(std::string_view name) {
  return std::string(kRuntimeService) + std::string(name);
}

}  // namespace

int runRunPod(const Options& options, const std::string& configPath,
              const std::string& runtimeHandler) {
  v1::RunPodSandboxRequest request;
  if (std::string error = readConfigFile(configPath, *request.mutable_config()); !error.empty()) {
    std::cerr << "monoctl: runp: " << error << "\n";
    return 2;
  }
  request.set_runtime_handler(runtimeHandler);
  v1::RunPodSandboxResponse response;
  if (grpc::Status s = callRuntime(options, method("RunPodSandbox"), request, response);
      !s.isOk()) {
    return fail(options, "runp", s);
  }
  std::cout << response.pod_sandbox_id() << "\n";
  return 0;
}

int runStopOrRemovePods(const Options& options, const std::vector<std::string>& prefixes,
                        bool remove, bool all) {
  const char* verb = remove ? "rmp" : "stopp";
  std::vector<std::string> ids;
  if (all) {
    v1::ListPodSandboxResponse response;
    if (grpc::Status s =
            callRuntime(options, method("ListPodSandbox"), v1::ListPodSandboxRequest(), response);
        !s.isOk()) {
      return fail(options, verb, s);
    }
    for (const auto& pod : response.items())
      ids.push_back(pod.id());
  } else {
    for (const auto& prefix : prefixes) {
      std::string id;
      if (grpc::Status s = resolvePod(options, prefix, id); !s.isOk())
        return fail(options, verb, s);
      ids.push_back(id);
    }
  }
  if (ids.empty() && !all) {
    std::cerr << "monoctl: " << verb << ": name the pods, or give -a\n";
    return 2;
  }
  int exitCode = 0;
  for (const auto& id : ids) {
    grpc::Status s;
    if (remove) {
      v1::RemovePodSandboxRequest request;
      request.set_pod_sandbox_id(id);
      v1::RemovePodSandboxResponse response;
      s = callRuntime(options, method("RemovePodSandbox"), request, response);
    } else {
      v1::StopPodSandboxRequest request;
      request.set_pod_sandbox_id(id);
      v1::StopPodSandboxResponse response;
      s = callRuntime(options, method("StopPodSandbox"), request, response);
    }
    if (!s.isOk()) {
      exitCode = fail(options, verb, s);
      continue;
    }
    std::cout << (remove ? "Removed sandbox " : "Stopped sandbox ") << id << "\n";
  }
  return exitCode;
}

int runPods(const Options& options, const PodListOptions& list) {
  v1::ListPodSandboxRequest request;
  auto* filter = request.mutable_filter();
  filter->set_id(list.id);
  if (!list.state.empty()) {
    if (list.state != "ready" && list.state != "notready") {
      std::cerr << "monoctl: pods: --state is ready or notready\n";
      return 2;
    }
    filter->mutable_state()->set_state(list.state == "ready" ? v1::SANDBOX_READY
                                                             : v1::SANDBOX_NOTREADY);
  }
  if (!parseLabelSelector("pods", list.labels, *filter->mutable_label_selector())) {
    return 2;
  }
  v1::ListPodSandboxResponse response;
  if (grpc::Status s = callRuntime(options, method("ListPodSandbox"), request, response);
      !s.isOk()) {
    return fail(options, "pods", s);
  }
  // Newest first, as crictl lists them; --name and --namespace filter here (the CRI cannot).
  std::vector<const v1::PodSandbox*> pods;
  for (const auto& pod : response.items()) {
    if (!list.name.empty() && pod.metadata().name().find(list.name) == std::string::npos) continue;
    if (!list.ns.empty() && pod.metadata().namespace_() != list.ns) continue;
    pods.push_back(&pod);
  }
  std::sort(pods.begin(), pods.end(),
            [](auto* a, auto* b) { return a->created_at() > b->created_at(); });
  const OutputFormat format = options.format(OutputFormat::kTable);
  if (format != OutputFormat::kTable) {
    Json items = Json::array();
    for (const auto* pod : pods)
      items.push_back(messageToJson(*pod));
    print(format, Json{{"items", items}});
    return 0;
  }
  if (list.quiet) {
    for (const auto* pod : pods)
      std::cout << pod->id() << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"}};
  for (const auto* pod : pods) {
    rows.push_back({pod->id().substr(0, 13), timeAgo(pod->created_at()),
                    pod->state() == v1::SANDBOX_READY ? "Ready" : "NotReady",
                    pod->metadata().name(), pod->metadata().namespace_(),
                    std::to_string(pod->metadata().attempt()),
                    pod->runtime_handler().empty() ? "(default)" : pod->runtime_handler()});
  }
  std::cout << formatTable(rows);
  return 0;
}

int runInspectPods(const Options& options, const std::vector<std::string>& prefixes) {
  const OutputFormat format = options.format(OutputFormat::kJson);
  int exitCode = 0;
  for (const auto& prefix : prefixes) {
    std::string id;
    if (grpc::Status s = resolvePod(options, prefix, id); !s.isOk()) {
      exitCode = fail(options, "inspectp", s);
      continue;
    }
    v1::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    request.set_verbose(true);
    v1::PodSandboxStatusResponse response;
    if (grpc::Status s = callRuntime(options, method("PodSandboxStatus"), request, response);
        !s.isOk()) {
      exitCode = fail(options, "inspectp", s);
      continue;
    }
    const Json out = verboseDocument(messageToJson(response.status()), response.info());
    if (format == OutputFormat::kTable) {
      const auto& s = response.status();
      std::string ips = s.network().ip();
      for (const auto& more : s.network().additional_ips())
        ips += "," + more.ip();
      std::cout << formatTable({{"ID", "NAME", "NAMESPACE", "STATE", "IP", "CREATED"},
                                {s.id(), s.metadata().name(), s.metadata().namespace_(),
                                 s.state() == v1::SANDBOX_READY ? "Ready" : "NotReady",
                                 ips.empty() ? "-" : ips, timeAgo(s.created_at())}});
    } else {
      print(format, out);
    }
  }
  return exitCode;
}

}  // namespace monocri::monoctl
