// What every monoctl verb needs: where the runtime is, how long to wait, how to print, and
// calls over the shared gRPC client, each on a loop of its own.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/map.h>

#include "cri-bridge/grpc/GrpcClient.h"
#include "loop/Loop.h"
#include "monoctl/OutputFormat.h"
#include "monoctl/StreamTransport.h"

namespace monocri::monoctl {

struct Options {
  std::string endpoint;
  std::string timeoutText = "10s";
  std::chrono::nanoseconds timeout{};
  std::string output;  // json, yaml, table, or "" for the verb's default
  std::string socketPath;
  TlsClientOptions streamTls;  // for an https streaming server (exec, attach, port-forward)

  OutputFormat format(OutputFormat fallback) const;
};

// One unary call.
template <typename Request, typename Response>
grpc::Status callRuntime(const Options& options, std::string_view path, const Request& request,
                         Response& response,
                         std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
  loop::Loop loop;
  grpc::Status result(grpc::StatusCode::kUnknown, "no answer");
  auto client = grpc::GrpcClient::connect(loop, options.socketPath);
  client->unary<Request, Response>(path, request,
                                   grpc::CallOptions{timeout.value_or(options.timeout), false},
                                   [&](const grpc::Status& status, Response&& answer) {
                                     result = status;
                                     response = std::move(answer);
                                     client->close();
                                   });
  loop.run();
  return result;
}

// A server-streaming call: `onMessage` for each message, the final status returned.
grpc::Status streamRuntime(const Options& options, std::string_view path,
                           const std::string& request,
                           const std::function<void(std::string_view)>& onMessage);

// Prints a failed call's status to stderr the way every verb does; returns exit code 1.
int fail(const Options& options, std::string_view what, const grpc::Status& status);

void print(OutputFormat format, const nlohmann::ordered_json& value);

// "1.03MB", as crictl writes sizes.
std::string humanSize(uint64_t bytes);

// "5 minutes ago", as crictl shows creation times (ns since the epoch).
std::string timeAgo(int64_t createdNs);

// A verbose status answer as one document: {"status": ..., and each info entry, parsed as JSON
// where it is JSON}.
nlohmann::ordered_json verboseDocument(const nlohmann::ordered_json& status,
                                       const google::protobuf::Map<std::string, std::string>& info);

// --label key=value options into a CRI label selector; false (with the message printed) on a
// malformed one.
bool parseLabelSelector(std::string_view verb, const std::vector<std::string>& labels,
                        google::protobuf::Map<std::string, std::string>& selector);

// Ids given by unique prefix, as crictl accepts them: resolved through ListContainers or
// ListPodSandbox. NOT_FOUND when nothing matches, INVALID_ARGUMENT when several do.
grpc::Status resolveContainer(const Options& options, const std::string& prefix, std::string& id);
grpc::Status resolvePod(const Options& options, const std::string& prefix, std::string& id);

}  // namespace monocri::monoctl
