// What a CNI plugin prints (a result or an error object), a config file and a cache record, on
// arbitrary bytes: no crash, an error or a value that keeps the parsers' promises.
#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/cni/CniResult.h"
#include "net/cni/NetworkConfigList.h"
#include "net/cni/PluginInput.h"

using namespace monocri::net::cni;

namespace {

bool isIp(const std::string& text) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

void checkResult(std::string_view bytes) {
  Result result;
  const std::string error = parseResult(bytes, result);
  if (!error.empty()) {
    if (!result.raw.is_null() || !result.ips.empty()) std::abort();
    return;
  }
  if (!result.raw.is_object() || result.cniVersion.empty()) std::abort();
  if (result.interfaces.size() > 1024 || result.ips.size() > 1024) std::abort();
  for (const auto& ip : result.ips) {
    if (ip.interface < -1 || ip.interface >= static_cast<int>(result.interfaces.size())) {
      std::abort();
    }
    if (ip.address.find('/') == std::string::npos) std::abort();
  }
  for (const std::string ifName : {"eth0", "net1", ""}) {
    const auto ips = result.podIps(ifName);
    bool seenV6 = false;
    for (const auto& ip : ips) {
      if (!isIp(ip)) std::abort();
      const bool v6 = ip.find(':') != std::string::npos;
      if (seenV6 && !v6) std::abort();  // IPv4 first
      seenV6 = seenV6 || v6;
    }
  }
  Result again;  // the cached copy parses the same
  if (!resultFromJson(result.raw, again).empty() || again.ips.size() != result.ips.size()) {
    std::abort();
  }
}

void checkPluginError(std::string_view bytes) {
  PluginError error;
  if (!parsePluginError(bytes, error)) {
    if (error.code != 0 || !error.msg.empty()) std::abort();
    return;
  }
  const std::string text = error.describe();
  if (text.rfind("code ", 0) != 0) std::abort();
}

void checkConfig(std::string_view bytes, bool isList) {
  const std::string path = isList ? "fuzz.conflist" : "fuzz.conf";
  NetworkConfigList list;
  const std::string error = parseNetworkConfig(bytes, path, isList, list);
  if (!error.empty()) {
    if (error.rfind(path + ": ", 0) != 0) std::abort();  // says which file
    return;
  }
  if (list.plugins.empty() || list.name.empty() || list.path != path) std::abort();
  if (!isList && list.plugins.size() != 1) std::abort();
  RuntimeConfig config;
  config.portMappings = {{80, 8080, "tcp", ""}};
  config.bandwidth = Bandwidth{1000, 4294967295u, 0, 0};
  config.podCidrs = {"10.0.0.0/8"};
  const nlohmann::json prev = nlohmann::json::object();
  for (size_t i = 0; i < list.plugins.size(); ++i) {
    const std::string& type = list.plugins[i]["type"].get_ref<const std::string&>();
    if (type.empty() || type.find('/') != std::string::npos) std::abort();
    const nlohmann::json input = pluginInput(list, i, config, &prev);
    if (!input.is_object() || input["name"] != list.name || input["cniVersion"] != list.cniVersion)
      std::abort();
    (void)input.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  NetworkConfigList again;
  if (!networkConfigFromJson(list.raw, isList, again).empty()) std::abort();
}

void checkCacheRecord(std::string_view bytes) {
  CacheRecord record;
  const std::string error = decodeCacheRecord(bytes, record);
  if (!error.empty()) {
    if (error.rfind("CNI cache record", 0) != 0 || !record.containerId.empty()) std::abort();
    return;
  }
  CacheRecord again;
  if (!decodeCacheRecord(encodeCacheRecord(record), again).empty()) std::abort();
  if (again.containerId != record.containerId || again.cniArgs != record.cniArgs ||
      again.config != record.config || again.result != record.result) {
    std::abort();
  }
  std::string argsError;
  if (cniArgs(record.cniArgs, argsError).empty() || !argsError.empty()) std::abort();
  (void)runtimeConfigFromJson(record.runtimeConfig).toJson();
}

void checkQuantity(std::string_view bytes) {
  std::string error;
  const auto bandwidth = bandwidthFromAnnotations(
      {{"kubernetes.io/ingress-bandwidth", std::string(bytes.substr(0, 256))}}, error);
  if (bandwidth.has_value() == !error.empty()) std::abort();
  if (bandwidth && (bandwidth->ingressRate < 1000 || bandwidth->ingressRate > 1000000000000000)) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  checkResult(bytes);
  checkPluginError(bytes);
  checkConfig(bytes, true);
  checkConfig(bytes, false);
  checkCacheRecord(bytes);
  checkQuantity(bytes);
  return 0;
}
