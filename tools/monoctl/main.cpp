// monoctl: the operator's command line for monocri (crictl-like), over the same gRPC code.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcClient.h"
#include "daemon/Version.h"
#include "health.pb.h"
#include "loop/Loop.h"
#include "monoctl/Commands.h"
#include "monoctl/Runtime.h"

namespace v1 = runtime::v1;
using monocri::grpc::Status;
using monocri::grpc::StatusCode;
using monocri::monoctl::callRuntime;
using monocri::monoctl::fail;
using monocri::monoctl::Options;
using monocri::monoctl::OutputFormat;
using monocri::monoctl::print;
using Json = nlohmann::ordered_json;

namespace {

constexpr const char* kDefaultEndpoint = "unix:///run/monocri/monocri.sock";

// "10s", "500ms", "2m", "1h", or a plain number of seconds.
std::optional<std::chrono::nanoseconds> parseDuration(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) {
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  double amount = 0;
  try {
    amount = std::stod(text.substr(0, digits));
  } catch (...) {
    return std::nullopt;
  }
  const std::string unit = text.substr(digits);
  double seconds = 0;
  if (unit.empty() || unit == "s") {
    seconds = amount;
  } else if (unit == "ms") {
    seconds = amount / 1000;
  } else if (unit == "m") {
    seconds = amount * 60;
  } else if (unit == "h") {
    seconds = amount * 3600;
  } else {
    return std::nullopt;
  }
  if (seconds <= 0) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9));
}

// "unix:///run/x.sock" or "/run/x.sock" → "/run/x.sock".
std::optional<std::string> socketPathOf(const std::string& endpoint) {
  constexpr std::string_view kScheme = "unix://";
  if (endpoint.starts_with(kScheme)) return endpoint.substr(kScheme.size());
  if (endpoint.starts_with("/")) return endpoint;
  return std::nullopt;
}

int runVersion(const Options& options, OutputFormat format) {
  v1::VersionRequest request;
  request.set_version("v1");
  v1::VersionResponse response;
  if (Status s = callRuntime(options, "/runtime.v1.RuntimeService/Version", request, response);
      !s.isOk()) {
    return fail(options, "version", s);
  }
  if (format == OutputFormat::kTable) {
    std::cout << monocri::monoctl::formatTable(
        {{"Version:", response.version()},
         {"RuntimeName:", response.runtime_name()},
         {"RuntimeVersion:", response.runtime_version()},
         {"RuntimeApiVersion:", response.runtime_api_version()}});
  } else {
    print(format, monocri::monoctl::messageToJson(response));
  }
  return 0;
}

int runInfo(const Options& options, OutputFormat format) {
  v1::StatusRequest request;
  request.set_verbose(true);
  v1::StatusResponse response;
  if (Status s = callRuntime(options, "/runtime.v1.RuntimeService/Status", request, response);
      !s.isOk()) {
    return fail(options, "info", s);
  }
  if (format == OutputFormat::kTable) {
    std::vector<std::vector<std::string>> rows = {{"CONDITION", "STATUS", "REASON", "MESSAGE"}};
    for (const auto& condition : response.status().conditions()) {
      rows.push_back({condition.type(), condition.status() ? "true" : "false", condition.reason(),
                      condition.message()});
    }
    std::cout << monocri::monoctl::formatTable(rows);
    // The CNI network in use (verbose info "network"), as `crictl info` shows cniconfig.
    if (auto it = response.info().find("network"); it != response.info().end()) {
      const Json network = Json::parse(it->second, nullptr, /*allow_exceptions=*/false);
      if (network.is_object() && network.contains("network") && network["network"].is_object()) {
        const Json& in = network["network"];
        std::string plugins;
        for (const auto& type : in.value("plugins", Json::array()))
          if (type.is_string()) plugins += (plugins.empty() ? "" : ", ") + type.get<std::string>();
        std::cout << "\nCNI network: " << in.value("name", "") << " (" << in.value("path", "")
                  << "), cniVersion " << in.value("cniVersion", "") << ", plugins: " << plugins
                  << "\n";
      } else if (network.is_object()) {
        std::cout << "\nCNI network: none in " << network.value("confDir", "") << "\n";
      }
    }
    return 0;
  }
  // As crictl: the status, then each verbose info entry decoded from its JSON text.
  Json out;
  out["status"] = monocri::monoctl::messageToJson(response.status());
  std::vector<std::string> keys;
  for (const auto& [key, value] : response.info())
    keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  for (const auto& key : keys) {
    const std::string& text = response.info().at(key);
    Json parsed = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    out[key] = parsed.is_discarded() ? Json(text) : parsed;
  }
  print(format, out);
  return 0;
}

int runRuntimeConfig(const Options& options, OutputFormat format) {
  v1::RuntimeConfigRequest request;
  v1::RuntimeConfigResponse response;
  if (Status s =
          callRuntime(options, "/runtime.v1.RuntimeService/RuntimeConfig", request, response);
      !s.isOk()) {
    return fail(options, "runtime-config", s);
  }
  if (format == OutputFormat::kTable) {
    std::string driver =
        response.linux().cgroup_driver() == v1::CgroupDriver::SYSTEMD ? "systemd" : "cgroupfs";
    std::cout << monocri::monoctl::formatTable({{"CgroupDriver:", driver}});
  } else {
    print(format, monocri::monoctl::messageToJson(response));
  }
  return 0;
}

int runHealth(const Options& options, OutputFormat format, const std::string& service) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  if (Status s = callRuntime(options, "/grpc.health.v1.Health/Check", request, response);
      !s.isOk()) {
    return fail(options, "health", s);
  }
  const std::string& name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  if (format == OutputFormat::kTable) {
    std::cout << name << "\n";
  } else {
    print(format, Json{{"status", name}});
  }
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"monoctl: talk to the monocri container runtime over its CRI socket"};
  app.require_subcommand(1);
  app.fallthrough();  // global options after the verb too: `monoctl images -o json`
  Options options;
  const char* env = std::getenv("MONOCRI_ENDPOINT");
  options.endpoint = env && *env ? env : kDefaultEndpoint;
  app.add_option("-r,--runtime-endpoint", options.endpoint,
                 "CRI endpoint, unix:///path (env MONOCRI_ENDPOINT)")
      ->capture_default_str();
  app.add_option("-t,--timeout", options.timeoutText, "Per-call timeout: 10s, 500ms, 2m")
      ->capture_default_str();
  app.add_option("-o,--output", options.output, "json, yaml or table (default depends on verb)")
      ->check(CLI::IsMember({"json", "yaml", "table"}));
  app.add_option("--stream-ca", options.streamTls.caFile,
                 "CA bundle (PEM) an https streaming server's certificate may chain to, besides "
                 "the system's");
  app.add_option("--stream-cert", options.streamTls.certFile,
                 "Client certificate (PEM) for a streaming server that asks for one");
  app.add_option("--stream-key", options.streamTls.keyFile, "Private key of --stream-cert");
  app.add_flag("--stream-insecure-skip-verify", options.streamTls.insecureSkipVerify,
               "Do not check an https streaming server's certificate (crictl never does)");
  app.set_version_flag("--version", std::string("monoctl ") + monocri::kVersion + " (commit " +
                                        monocri::kGitCommit + ")");

  auto* version = app.add_subcommand("version", "Runtime name and versions");
  auto* info = app.add_subcommand("info", "Runtime status and configuration (verbose Status)");
  auto* runtimeConfig = app.add_subcommand("runtime-config", "Runtime configuration kubelet reads");
  std::string healthService;
  auto* health = app.add_subcommand("health", "grpc.health.v1 check (exit 0 when SERVING)");
  health->add_option("service", healthService, "Service name ('' = the whole server)");

  monocri::monoctl::PullOptions pull;
  auto* pullCommand = app.add_subcommand("pull", "Pull an image (live progress on a terminal)");
  pullCommand->add_option("image", pull.image, "Image reference")->required();
  pullCommand->add_option("--creds", pull.creds, "Registry credentials, user:password");
  pullCommand->add_option("--auth", pull.auth, "Registry credentials, base64 of user:password");
  pullCommand->add_option("--identity-token", pull.identityToken, "OAuth2 refresh token");
  pullCommand->add_option("--registry-token", pull.registryToken, "Bearer token, used as is");
  pullCommand->add_option("--server", pull.serverAddress,
                          "Registry the credentials are for (others get none)");
  std::string imagesFilter;
  bool quiet = false, digests = false;
  auto* images = app.add_subcommand("images", "List images");
  images->alias("image");
  images->add_option("image", imagesFilter, "Only this image");
  images->add_flag("-q,--quiet", quiet, "Image ids only");
  images->add_flag("--digests", digests, "Show digests");
  std::vector<std::string> inspected;
  auto* inspecti = app.add_subcommand("inspecti", "Image status, config and layers");
  inspecti->add_option("image", inspected, "Images")->required();
  std::vector<std::string> removed;
  bool removeAll = false;
  auto* rmi = app.add_subcommand("rmi", "Remove images");
  rmi->add_option("image", removed, "Images (id, tag or digest)");
  rmi->add_flag("-a,--all", removeAll, "Every image");
  auto* imagefsinfo = app.add_subcommand("imagefsinfo", "Image store usage");
  std::string importPath, importName;
  auto* importCommand = app.add_subcommand(
      "import", "Import an OCI image layout (dir or tar) or a docker-archive tar");
  importCommand->add_option("path", importPath, "Path on this node")->required();
  importCommand->add_option("--name", importName,
                            "registry/name for images a layout tags only as e.g. 'latest'");

  std::string podConfig, runtimeHandler;
  auto* runp = app.add_subcommand("runp", "Run a pod sandbox from a JSON or YAML pod config");
  runp->add_option("config", podConfig, "Pod config file, shaped like crictl's")->required();
  runp->add_option("--runtime", runtimeHandler, "Runtime handler");
  std::vector<std::string> stoppedPods, removedPods, inspectedPods;
  bool stopAllPods = false, removeAllPods = false;
  auto* stopp = app.add_subcommand("stopp", "Stop pod sandboxes");
  stopp->add_option("pod", stoppedPods, "Pod ids (or unique prefixes)");
  stopp->add_flag("-a,--all", stopAllPods, "Every pod");
  auto* rmp = app.add_subcommand("rmp", "Remove pod sandboxes (their containers too)");
  rmp->add_option("pod", removedPods, "Pod ids (or unique prefixes)");
  rmp->add_flag("-a,--all", removeAllPods, "Every pod");
  monocri::monoctl::PodListOptions podList;
  auto* podsCommand = app.add_subcommand("pods", "List pod sandboxes");
  podsCommand->add_option("--id", podList.id, "Pods whose id starts so");
  podsCommand->add_option("--state", podList.state, "ready or notready");
  podsCommand->add_option("--name", podList.name, "Pods whose name holds this");
  podsCommand->add_option("--namespace", podList.ns, "Pods of this namespace");
  podsCommand->add_option("--label", podList.labels, "key=value (all must match)");
  podsCommand->add_flag("-q,--quiet", podList.quiet, "Pod ids only");
  auto* inspectp = app.add_subcommand("inspectp", "Pod status, namespaces and files (verbose)");
  inspectp->add_option("pod", inspectedPods, "Pod ids (or unique prefixes)")->required();

  std::string createPod, containerConfig, createPodConfig;
  auto* createCommand = app.add_subcommand("create", "Create a container in a pod");
  createCommand->add_option("pod", createPod, "Pod id (or unique prefix)")->required();
  createCommand->add_option("container-config", containerConfig, "Container config file")
      ->required();
  createCommand->add_option("pod-config", createPodConfig, "The pod's config file");
  auto* runCommand = app.add_subcommand("run", "Create and start a container in a pod");
  runCommand->add_option("pod", createPod, "Pod id (or unique prefix)")->required();
  runCommand->add_option("container-config", containerConfig, "Container config file")->required();
  runCommand->add_option("pod-config", createPodConfig, "The pod's config file");
  std::vector<std::string> startIds, stopIds, rmIds, inspectIds;
  int64_t stopTimeout = 10;
  auto* startCommand = app.add_subcommand("start", "Start created containers");
  startCommand->add_option("container", startIds, "Container ids (or unique prefixes)")->required();
  auto* stopCommand = app.add_subcommand("stop", "Stop containers");
  stopCommand->add_option("container", stopIds, "Container ids (or unique prefixes)")->required();
  stopCommand->add_option("--timeout", stopTimeout, "Seconds before SIGKILL [10]");
  auto* rmCommand = app.add_subcommand("rm", "Remove containers (running ones are killed)");
  rmCommand->add_option("container", rmIds, "Container ids (or unique prefixes)")->required();
  monocri::monoctl::PsOptions ps;
  auto* psCommand = app.add_subcommand("ps", "List containers (running ones; -a: all)");
  psCommand->add_flag("-a,--all", ps.all, "Every container");
  psCommand->add_flag("-q,--quiet", ps.quiet, "Container ids only");
  psCommand->add_option("--id", ps.id, "Containers whose id starts so");
  psCommand->add_option("-p,--pod", ps.pod, "Containers of this pod");
  psCommand->add_option("--state", ps.state, "created, running or exited");
  psCommand->add_option("--name", ps.name, "Containers whose name holds this");
  psCommand->add_option("--label", ps.labels, "key=value (all must match)");
  monocri::monoctl::UpdateOptions update;
  auto* updateCommand =
      app.add_subcommand("update", "Change containers' cgroup limits (those given only)");
  updateCommand->add_option("container", update.containers, "Container ids (or unique prefixes)")
      ->required();
  updateCommand->add_option("--cpu-shares", update.cpuShares, "CPU shares (relative weight)");
  updateCommand->add_option("--cpu-quota", update.cpuQuota, "CPU CFS quota, microseconds");
  updateCommand->add_option("--cpu-period", update.cpuPeriod, "CPU CFS period, microseconds");
  updateCommand->add_option("--cpuset-cpus", update.cpusetCpus, "CPUs allowed, e.g. 0-1");
  updateCommand->add_option("--cpuset-mems", update.cpusetMems, "Memory nodes allowed, e.g. 0");
  updateCommand->add_option("--memory", update.memory, "Memory limit: bytes, or 64m, 1g...")
      ->transform(CLI::AsSizeValue(false));
  auto* inspectCommand = app.add_subcommand("inspect", "Container status (verbose)");
  inspectCommand->add_option("container", inspectIds, "Container ids (or unique prefixes)")
      ->required();
  monocri::monoctl::LogsOptions logs;
  auto* logsCommand = app.add_subcommand("logs",
                                         "A container's log (stdout to stdout, stderr "
                                         "to stderr)");
  logsCommand->add_option("container", logs.container, "Container id (or unique prefix)")
      ->required();
  logsCommand->add_flag("-f,--follow", logs.follow,
                        "Follow, across kubelet's rotations, while the container runs");
  logsCommand->add_flag("--timestamps", logs.timestamps, "Show each line's time");
  logsCommand->add_option("--tail", logs.tail, "The last N lines");
  logsCommand->add_option("--since", logs.since, "Lines from this RFC 3339 time on");
  // exec CONTAINER CMD...: everything from the command on is the command's (prefix_command),
  // its own options included; `--` before it is allowed.
  monocri::monoctl::ExecOptions execOptions;
  auto* execCommand = app.add_subcommand("exec", "Run a command in a running container");
  execCommand->add_flag("-i,--interactive", execOptions.stdin, "Pass stdin to the command");
  execCommand->add_flag("-t,--tty", execOptions.tty,
                        "Run the command on a terminal (raw mode when stdin is one, with -i)");
  execCommand->add_flag("-s,--sync", execOptions.sync,
                        "Run it with ExecSync: output printed once it exits");
  execCommand->add_option("--timeout", execOptions.timeoutSeconds,
                          "With --sync: seconds before the command is killed (0: no limit)");
  execCommand->add_option("container", execOptions.container, "Container id (or unique prefix)")
      ->required();
  // The command is collected by prefix_command() as remaining(): this positional takes nothing
  // (its check refuses every word) but keeps `exec ID -- CMD` from handing `--` and what follows
  // to the top level, and names the command in --help.
  std::vector<std::string> commandWords;
  execCommand
      ->add_option("command", commandWords, "The command and its arguments (`--` before: allowed)")
      ->check(CLI::Validator([](std::string&) { return std::string("not a positional"); }, "CMD...",
                             "command"));
  execCommand->validate_positionals();
  execCommand->fallthrough(false);
  execCommand->prefix_command();
  monocri::monoctl::AttachOptions attachOptions;
  auto* attachCommand = app.add_subcommand("attach", "Attach to a running container's stdio");
  attachCommand->add_flag("-i,--stdin", attachOptions.stdin, "Pass stdin to the container");
  attachCommand->add_flag("-t,--tty", attachOptions.tty,
                          "The container has a terminal (created with tty)");
  attachCommand->add_option("container", attachOptions.container, "Container id (or unique prefix)")
      ->required();
  std::string forwardPod;
  std::vector<std::string> forwardPorts;
  auto* portForward =
      app.add_subcommand("port-forward", "Forward local ports to a pod's ports, until interrupted");
  portForward->add_option("pod", forwardPod, "Pod id (or unique prefix)")->required();
  portForward
      ->add_option("ports", forwardPorts,
                   "[LOCAL:]REMOTE: 127.0.0.1:LOCAL to the pod's REMOTE (LOCAL 0 or none: "
                   "any free port)")
      ->required();
  CLI11_PARSE(app, argc, argv);
  if (*execCommand) {
    execOptions.command = execCommand->remaining();
    if (!execOptions.command.empty() && execOptions.command.front() == "--") {
      execOptions.command.erase(execOptions.command.begin());
    }
  }

  auto timeout = parseDuration(options.timeoutText);
  if (!timeout) {
    std::cerr << "monoctl: --timeout: '" << options.timeoutText
              << "' is not a duration such as 10s, 500ms or 2m\n";
    return 2;
  }
  options.timeout = *timeout;
  auto socketPath = socketPathOf(options.endpoint);
  if (!socketPath) {
    std::cerr << "monoctl: --runtime-endpoint: '" << options.endpoint
              << "' is not unix:///path (only unix sockets are supported)\n";
    return 2;
  }
  options.socketPath = *socketPath;

  auto format = [&](OutputFormat fallback) { return options.format(fallback); };
  if (*version) return runVersion(options, format(OutputFormat::kTable));
  if (*info) return runInfo(options, format(OutputFormat::kJson));
  if (*runtimeConfig) return runRuntimeConfig(options, format(OutputFormat::kTable));
  if (*health) return runHealth(options, format(OutputFormat::kTable), healthService);
  using namespace monocri::monoctl;
  if (*pullCommand) return runPull(options, pull);
  if (*images) return runImages(options, imagesFilter, quiet, digests);
  if (*inspecti) return runInspectImages(options, inspected);
  if (*rmi) return runRemoveImages(options, removed, removeAll);
  if (*imagefsinfo) return runImageFsInfo(options);
  if (*importCommand) return runImport(options, importPath, importName);
  if (*runp) return runRunPod(options, podConfig, runtimeHandler);
  if (*stopp) return runStopOrRemovePods(options, stoppedPods, false, stopAllPods);
  if (*rmp) return runStopOrRemovePods(options, removedPods, true, removeAllPods);
  if (*podsCommand) return runPods(options, podList);
  if (*inspectp) return runInspectPods(options, inspectedPods);
  if (*createCommand)
    return runCreateContainer(options, createPod, containerConfig, createPodConfig, false);
  if (*runCommand)
    return runCreateContainer(options, createPod, containerConfig, createPodConfig, true);
  if (*startCommand) return runContainerVerb(options, "start", startIds, 0);
  if (*stopCommand) return runContainerVerb(options, "stop", stopIds, stopTimeout);
  if (*rmCommand) return runContainerVerb(options, "rm", rmIds, 0);
  if (*psCommand) return runPs(options, ps);
  if (*inspectCommand) return runInspectContainers(options, inspectIds);
  if (*updateCommand) return runUpdateContainers(options, update);
  if (*logsCommand) return runLogs(options, logs);
  if (*execCommand) return runExec(options, execOptions);
  if (*attachCommand) return runAttach(options, attachOptions);
  if (*portForward) return runPortForward(options, forwardPod, forwardPorts);
  return 2;
}
