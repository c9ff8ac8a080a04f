#include "monoctl/Runtime.h"

#include <fmt/format.h>

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

}  // namespace monocri::monoctl
