#include "monoctl/Runtime.h"

#include "api.pb.h"

#include <fmt/format.h>

#include <chrono>
#include <iostream>

namespace monocri::monoctl {

OutputFormat Options::format(OutputFormat fallback) const {
  if (output == "json") return OutputFormat::kJson;
  if (output == "yaml") return OutputFormat::kYaml;
  if (output == "table") return OutputFormat::kTable;
  return fallback;
}

grpc::Status streamRuntime(const Options& options, std::string_view path,
                           const std::string& request,
                           const std::function<void(std::string_view)>& onMessage) {
  loop::Loop loop;
  grpc::Status result(grpc::StatusCode::kUnknown, "no answer");
  auto client = grpc::GrpcClient::connect(loop, options.socketPath);
  // No deadline: a pull takes as long as the layers take; --timeout bounds single calls.
  client->startCall(path, request, {}, onMessage, [&](const grpc::Status& status) {
    result = status;
    client->close();
  });
  loop.run();
  return result;
}

int fail(const Options& options, std::string_view what, const grpc::Status& status) {
  if (status.code() == grpc::StatusCode::kUnavailable &&
      status.message().find("cannot connect") != std::string::npos) {
    std::cerr << "monoctl: " << what << ": cannot reach the runtime at " << options.endpoint << ": "
              << status.message() << " (is monocri running?)\n";
  } else {
    std::cerr << "monoctl: " << what << ": " << status.toString() << "\n";
  }
  return 1;
}

void print(OutputFormat format, const nlohmann::ordered_json& value) {
  std::cout << (format == OutputFormat::kYaml ? toYaml(value) : toPrettyJson(value));
}

std::string humanSize(uint64_t bytes) {
  constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1000 && unit + 1 < std::size(kUnits)) {
    value /= 1000;
    ++unit;
  }
  if (unit == 0) return fmt::format("{}B", bytes);
  return fmt::format("{:.3g}{}", value, kUnits[unit]);
}

std::string timeAgo(int64_t createdNs) {
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const int64_t seconds = std::max<int64_t>(0, (now - createdNs) / 1'000'000'000);
  if (seconds < 60) return fmt::format("{} seconds ago", seconds);
  if (seconds < 3600) return fmt::format("{} minutes ago", seconds / 60);
  if (seconds < 86400) return fmt::format("{} hours ago", seconds / 3600);
  return fmt::format("{} days ago", seconds / 86400);
}

nlohmann::ordered_json verboseDocument(
    const nlohmann::ordered_json& status,
    const google::protobuf::Map<std::string, std::string>& info) {
  nlohmann::ordered_json out;
  out["status"] = status;
  for (const auto& [key, value] : info) {
    try {
      out[key] = nlohmann::ordered_json::parse(value);
    } catch (const nlohmann::ordered_json::exception&) {
      out[key] = value;
    }
  }
  return out;
}

bool parseLabelSelector(std::string_view verb, const std::vector<std::string>& labels,
                        google::protobuf::Map<std::string, std::string>& selector) {
  for (const auto& label : labels) {
    const size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "monoctl: " << verb << ": --label is key=value, not '" << label << "'\n";
      return false;
    }
    selector[label.substr(0, eq)] = label.substr(eq + 1);
  }
  return true;
}

grpc::Status resolveContainer(const Options& options, const std::string& prefix, std::string& id) {
  runtime::v1::ListContainersRequest request;
  request.mutable_filter()->set_id(prefix);
  runtime::v1::ListContainersResponse response;
  if (grpc::Status s =
          callRuntime(options, "/runtime.v1.RuntimeService/ListContainers", request, response);
      !s.isOk()) {
    return s;
  }
  if (response.containers_size() != 1) {
    return grpc::Status(response.containers_size() == 0 ? grpc::StatusCode::kNotFound
                                                        : grpc::StatusCode::kInvalidArgument,
                        response.containers_size() == 0
                            ? fmt::format("no container matches '{}'", prefix)
                            : fmt::format("'{}' matches {} containers: give more of the id", prefix,
                                          response.containers_size()));
  }
  id = response.containers(0).id();
  return grpc::Status::ok();
}

grpc::Status resolvePod(const Options& options, const std::string& prefix, std::string& id) {
  runtime::v1::ListPodSandboxRequest request;
  request.mutable_filter()->set_id(prefix);
  runtime::v1::ListPodSandboxResponse response;
  if (grpc::Status s =
          callRuntime(options, "/runtime.v1.RuntimeService/ListPodSandbox", request, response);
      !s.isOk()) {
    return s;
  }
  if (response.items_size() == 0) {
    return grpc::Status(grpc::StatusCode::kNotFound, fmt::format("no pod matches '{}'", prefix));
  }
  if (response.items_size() > 1) {
    return grpc::Status(
        grpc::StatusCode::kInvalidArgument,
        fmt::format("'{}' matches {} pods: give more of the id", prefix, response.items_size()));
  }
  id = response.items(0).id();
  return grpc::Status::ok();
}

}  // namespace monocri::monoctl
