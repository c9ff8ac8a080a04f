#include "cri-bridge/CriService.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "api.pb.h"
#include "cri-bridge/CriMethods.h"
#include "net/PodNetwork.h"
#include "oci/OciRuntimeBinary.h"

namespace monocri::cri {

namespace v1 = runtime::v1;
using grpc::Status;
using grpc::StatusCode;
using grpc::UnaryResponder;

namespace {

uint64_t nowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

uint64_t residentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

CriService::CriService(grpc::GrpcServer& server, CriServiceOptions options,
                       oci::OciRuntimeBinary& runtime, net::PodNetwork& network)
    : server_(server),
      options_(std::move(options)),
      runtime_(runtime),
      network_(network),
      startedAtMs_(nowMs()) {
  server_.addUnary<v1::VersionRequest, v1::VersionResponse>(
      runtimeMethod("Version"),
      [this](v1::VersionRequest&&, UnaryResponder<v1::VersionResponse> r) {
        v1::VersionResponse response;
        response.set_version(kKubeletApiVersion);
        response.set_runtime_name(kRuntimeName);
        response.set_runtime_version(options_.runtimeVersion);
        response.set_runtime_api_version(kRuntimeApiVersion);
        r.finish(response);
      });

  server_.addUnary<v1::StatusRequest, v1::StatusResponse>(
      runtimeMethod("Status"),
      [this](v1::StatusRequest&& request, UnaryResponder<v1::StatusResponse> r) {
        v1::StatusResponse response;
        auto* status = response.mutable_status();

        auto* runtimeReady = status->add_conditions();
        runtimeReady->set_type("RuntimeReady");
        std::string why;
        if (runtime_.resolve(&why)) {
          runtimeReady->set_status(true);
        } else {
          runtimeReady->set_status(false);
          runtimeReady->set_reason("OCIRuntimeNotFound");
          runtimeReady->set_message(why);
        }

        const net::NetworkReadiness network = network_.readiness();
        auto* networkReady = status->add_conditions();
        networkReady->set_type("NetworkReady");
        networkReady->set_status(network.ready);
        networkReady->set_reason(network.reason);
        networkReady->set_message(network.message);

        if (request.verbose()) {
          const nlohmann::json info = verboseInfo();
          for (auto& [key, value] : info.items()) {
            (*response.mutable_info())[key] = value.dump();
          }
        }
        r.finish(response);
      });

  server_.addUnary<v1::RuntimeConfigRequest, v1::RuntimeConfigResponse>(
      runtimeMethod("RuntimeConfig"),
      [](v1::RuntimeConfigRequest&&, UnaryResponder<v1::RuntimeConfigResponse> r) {
        v1::RuntimeConfigResponse response;
        response.mutable_linux()->set_cgroup_driver(v1::CgroupDriver::CGROUPFS);
        r.finish(response);
      });

  server_.addUnary<v1::UpdateRuntimeConfigRequest, v1::UpdateRuntimeConfigResponse>(
      runtimeMethod("UpdateRuntimeConfig"),
      [this](v1::UpdateRuntimeConfigRequest&& request,
             UnaryResponder<v1::UpdateRuntimeConfigResponse> r) {
        const std::string& cidr = request.runtime_config().network_config().pod_cidr();
        const std::string previous = network_.podCidr();
        if (std::string error = network_.setPodCidr(cidr); !error.empty()) {
          r.fail(Status(StatusCode::kInvalidArgument, "pod CIDR: " + error));
          return;
        }
        if (cidr != previous) spdlog::info("pod CIDR is now '{}'", cidr);
        r.finish(v1::UpdateRuntimeConfigResponse());
      });
}

nlohmann::json CriService::verboseInfo() const {
  const grpc::ServerStats& stats = server_.stats();
  nlohmann::json methods = nlohmann::json::object();
  for (const auto& [path, method] : server_.methodStats())
    methods[path] = {{"calls", method.calls}, {"handlingNanos", method.handlingNanos}};
  return nlohmann::json{
      {"config", options_.config},
      {"daemon",
       {
           {"version", options_.runtimeVersion},
           {"gitCommit", options_.gitCommit},
           {"pid", getpid()},
           {"startedAtMs", startedAtMs_},
           {"rssBytes", residentBytes()},
       }},
      {"grpc",
       {
           {"openConnections", server_.connectionCount()},
           {"connectionsAccepted", stats.connectionsAccepted},
           {"connectionsRefused", stats.connectionsRefused},
           {"callsStarted", stats.callsStarted},
           {"callsFailed", stats.callsFailed},
           {"methods", methods},
       }},
      {"network", network_.info()},
      {"ociRuntime", options_.runtimeCallStats ? options_.runtimeCallStats() : nlohmann::json()},
      {"containerLogWrites", options_.logWriteStats ? options_.logWriteStats() : nlohmann::json()},
      {"netnsPool", options_.netnsPoolStats ? options_.netnsPoolStats() : nlohmann::json()},
  };
}

}  // namespace monocri::cri
