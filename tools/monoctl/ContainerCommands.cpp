// monoctl's container verbs: create, start, stop, rm, ps, inspect, logs.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <optional>

#include "api.pb.h"
#include "logging/LogDecoder.h"
#include "logging/LogReader.h"
#include "logging/LogRecord.h"
#include "monoctl/Commands.h"
#include "monoctl/ConfigFile.h"

namespace monocri::monoctl {

namespace v1 = runtime::v1;
using Json = nlohmann::ordered_json;

namespace {

constexpr std::string_view kRuntimeService = "/runtime.v1.RuntimeService/";
// How long `logs -f` goes on reading after it saw the container stopped.
constexpr std::chrono::milliseconds kExitGrace{500};

std::string method(std::string_view name) {
  return std::string(kRuntimeService) + std::string(name);
}

std::string stateName(v1::ContainerState state) {
  switch (state) {
    case v1::CONTAINER_CREATED:
      return "Created";
    case v1::CONTAINER_RUNNING:
      return "Running";
    case v1::CONTAINER_EXITED:
      return "Exited";
    default:
      return "Unknown";
  }
}

// As crictl (kubelet's log reader): following ends once the container is not running. Its
// last output may reach the file just after its exit is reported (the daemon drains the pipes
// after the exit), so the reading goes on for kExitGrace after the exit was seen. A daemon
// that does not answer (restarting) does not end it: the file is read without the daemon.
std::function<bool()> followWhileRunning(const Options& options, const std::string& id,
                                         const logging::LogReadOptions& read) {
  using Clock = std::chrono::steady_clock;
  const auto askEvery = std::chrono::milliseconds(read.pollIntervalMs);
  struct Watch {
    Clock::time_point lastAsked{};
    std::optional<Clock::time_point> exitSeen;
  };
  return [&options, id, askEvery, watch = Watch{}]() mutable {
    const Clock::time_point now = Clock::now();
    if (watch.exitSeen) return now - *watch.exitSeen < kExitGrace;
    if (now - watch.lastAsked < askEvery) return true;
    watch.lastAsked = now;
    v1::ContainerStatusRequest request;
    request.set_container_id(id);
    v1::ContainerStatusResponse response;
    const grpc::Status s = callRuntime(options, method("ContainerStatus"), request, response);
    if ((s.isOk() && response.status().state() != v1::CONTAINER_RUNNING) ||
        s.code() == grpc::StatusCode::kNotFound) {
      watch.exitSeen = now;
    }
    return true;
  };
}

}  // namespace

int runCreateContainer(const Options& options, const std::string& podPrefix,
                       const std::string& containerConfig, const std::string& podConfig,
                       bool startToo) {
  v1::CreateContainerRequest request;
  if (std::string error = readConfigFile(containerConfig, *request.mutable_config());
      !error.empty()) {
    std::cerr << "monoctl: create: " << error << "\n";
    return 2;
  }
  if (!podConfig.empty()) {
    if (std::string error = readConfigFile(podConfig, *request.mutable_sandbox_config());
        !error.empty()) {
      std::cerr << "monoctl: create: " << error << "\n";
      return 2;
    }
  }
  v1::ListPodSandboxRequest list;
  list.mutable_filter()->set_id(podPrefix);
  v1::ListPodSandboxResponse pods;
  if (grpc::Status s = callRuntime(options, method("ListPodSandbox"), list, pods); !s.isOk()) {
    return fail(options, "create", s);
  }
  if (pods.items_size() != 1) {
    std::cerr << "monoctl: create: " << pods.items_size() << " pods match '" << podPrefix << "'\n";
    return 1;
  }
  request.set_pod_sandbox_id(pods.items(0).id());
  v1::CreateContainerResponse response;
  if (grpc::Status s = callRuntime(options, method("CreateContainer"), request, response);
      !s.isOk()) {
    return fail(options, "create", s);
  }
  if (startToo) {
    v1::StartContainerRequest start;
    start.set_container_id(response.container_id());
    v1::StartContainerResponse started;
    if (grpc::Status s = callRuntime(options, method("StartContainer"), start, started);
        !s.isOk()) {
      return fail(options, "start", s);
    }
  }
  std::cout << response.container_id() << "\n";
  return 0;
}

int runContainerVerb(const Options& options, const std::string& verb,
                     const std::vector<std::string>& prefixes, int64_t timeoutSeconds) {
  int exitCode = 0;
  for (const auto& prefix : prefixes) {
    std::string id;
    if (grpc::Status s = resolveContainer(options, prefix, id); !s.isOk()) {
      exitCode = fail(options, verb, s);
      continue;
    }
    grpc::Status s;
    if (verb == "start") {
      v1::StartContainerRequest request;
      request.set_container_id(id);
      v1::StartContainerResponse response;
      s = callRuntime(options, method("StartContainer"), request, response);
    } else if (verb == "stop") {
      v1::StopContainerRequest request;
      request.set_container_id(id);
      request.set_timeout(timeoutSeconds);
      v1::StopContainerResponse response;
      // The call lasts as long as the container takes to stop, and a little more.
      s = callRuntime(options, method("StopContainer"), request, response,
                      options.timeout + std::chrono::seconds(timeoutSeconds));
    } else {
      v1::RemoveContainerRequest request;
      request.set_container_id(id);
      v1::RemoveContainerResponse response;
      s = callRuntime(options, method("RemoveContainer"), request, response,
                      options.timeout + std::chrono::seconds(30));
    }
    if (!s.isOk()) {
      exitCode = fail(options, verb, s);
      continue;
    }
    std::cout << id << "\n";
  }
  return exitCode;
}

int runPs(const Options& options, const PsOptions& ps) {
  v1::ListContainersRequest request;
  auto* filter = request.mutable_filter();
  filter->set_id(ps.id);
  filter->set_pod_sandbox_id(ps.pod);
  if (!ps.all) filter->mutable_state()->set_state(v1::CONTAINER_RUNNING);
  if (!ps.state.empty()) {
    static const std::map<std::string, v1::ContainerState> kStates = {
        {"created", v1::CONTAINER_CREATED},
        {"running", v1::CONTAINER_RUNNING},
        {"exited", v1::CONTAINER_EXITED}};
    auto it = kStates.find(ps.state);
    if (it == kStates.end()) {
      std::cerr << "monoctl: ps: --state is created, running or exited\n";
      return 2;
    }
    filter->mutable_state()->set_state(it->second);
  }
  if (!parseLabelSelector("ps", ps.labels, *filter->mutable_label_selector())) {
    return 2;
  }
  v1::ListContainersResponse response;
  if (grpc::Status s = callRuntime(options, method("ListContainers"), request, response);
      !s.isOk()) {
    return fail(options, "ps", s);
  }
  std::vector<const v1::Container*> containers;
  for (const auto& c : response.containers()) {
    if (!ps.name.empty() && c.metadata().name().find(ps.name) == std::string::npos) continue;
    containers.push_back(&c);
  }
  std::sort(containers.begin(), containers.end(),
            [](auto* a, auto* b) { return a->created_at() > b->created_at(); });
  const OutputFormat format = options.format(OutputFormat::kTable);
  if (format != OutputFormat::kTable) {
    Json items = Json::array();
    for (const auto* c : containers)
      items.push_back(messageToJson(*c));
    print(format, Json{{"containers", items}});
    return 0;
  }
  if (ps.quiet) {
    for (const auto* c : containers)
      std::cout << c->id() << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID"}};
  for (const auto* c : containers) {
    rows.push_back({c->id().substr(0, 13), c->image().image(), timeAgo(c->created_at()),
                    stateName(c->state()), c->metadata().name(),
                    std::to_string(c->metadata().attempt()), c->pod_sandbox_id().substr(0, 13)});
  }
  std::cout << formatTable(rows);
  return 0;
}

int runInspectContainers(const Options& options, const std::vector<std::string>& prefixes) {
  const OutputFormat format = options.format(OutputFormat::kJson);
  int exitCode = 0;
  for (const auto& prefix : prefixes) {
    std::string id;
    if (grpc::Status s = resolveContainer(options, prefix, id); !s.isOk()) {
      exitCode = fail(options, "inspect", s);
      continue;
    }
    v1::ContainerStatusRequest request;
    request.set_container_id(id);
    request.set_verbose(true);
    v1::ContainerStatusResponse response;
    if (grpc::Status s = callRuntime(options, method("ContainerStatus"), request, response);
        !s.isOk()) {
      exitCode = fail(options, "inspect", s);
      continue;
    }
    const Json out = verboseDocument(messageToJson(response.status()), response.info());
    print(format == OutputFormat::kTable ? OutputFormat::kJson : format, out);
  }
  return exitCode;
}

int runUpdateContainers(const Options& options, const UpdateOptions& update) {
  v1::UpdateContainerResourcesRequest request;
  auto* resources = request.mutable_linux();
  resources->set_cpu_shares(update.cpuShares);
  resources->set_cpu_quota(update.cpuQuota);
  resources->set_cpu_period(update.cpuPeriod);
  resources->set_memory_limit_in_bytes(update.memory);
  resources->set_cpuset_cpus(update.cpusetCpus);
  resources->set_cpuset_mems(update.cpusetMems);
  if (resources->ByteSizeLong() == 0) {
    std::cerr << "monoctl: update: nothing to change (see --help for the limits)\n";
    return 2;
  }
  int exitCode = 0;
  for (const auto& prefix : update.containers) {
    std::string id;
    if (grpc::Status s = resolveContainer(options, prefix, id); !s.isOk()) {
      exitCode = fail(options, "update", s);
      continue;
    }
    request.set_container_id(id);
    v1::UpdateContainerResourcesResponse response;
    if (grpc::Status s =
            callRuntime(options, method("UpdateContainerResources"), request, response);
        !s.isOk()) {
      exitCode = fail(options, "update", s);
      continue;
    }
    std::cout << id << "\n";
  }
  return exitCode;
}

int runLogs(const Options& options, const LogsOptions& logs) {
  std::string id;
  if (grpc::Status s = resolveContainer(options, logs.container, id); !s.isOk()) {
    return fail(options, "logs", s);
  }
  v1::ContainerStatusRequest request;
  request.set_container_id(id);
  v1::ContainerStatusResponse response;
  if (grpc::Status s = callRuntime(options, method("ContainerStatus"), request, response);
      !s.isOk()) {
    return fail(options, "logs", s);
  }
  const std::string& path = response.status().log_path();
  if (path.empty()) {
    std::cerr << "monoctl: logs: container " << id << " has no log file\n";
    return 1;
  }
  logging::LogReadOptions read;
  if (logs.tail >= 0) read.tailLines = static_cast<uint64_t>(logs.tail);
  if (!logs.since.empty()) {
    auto since = logging::parseLogTimestamp(logs.since);
    if (!since) {
      std::cerr << "monoctl: logs: --since is an RFC 3339 time such as "
                   "2026-11-22T10:00:00.000000000Z\n";
      return 2;
    }
    read.sinceNs = since;
  }
  read.follow = logs.follow;
  grpc::Status status;
  auto reader = logging::LogReader::open(path, read, status);
  if (!reader) return fail(options, "logs", status);
  std::string out, err;
  auto sink = [&](const logging::LogLine& line) {
    std::string& buffer = line.stream == logging::LogStream::kStdout ? out : err;
    buffer.clear();
    logging::appendLogLine(buffer, line, logs.timestamps);
    (line.stream == logging::LogStream::kStdout ? std::cout : std::cerr) << buffer;
    if (logs.follow) (line.stream == logging::LogStream::kStdout ? std::cout : std::cerr).flush();
    return true;
  };
  status = logs.follow ? reader->follow(sink, followWhileRunning(options, id, read))
                       : reader->readAvailable(sink);
  std::cout.flush();
  if (!status.isOk()) return fail(options, "logs", status);
  return 0;
}

}  // namespace monocri::monoctl
