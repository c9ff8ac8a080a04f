// What the runtime hands a CNI plugin: its stdin (the plugin's config with the list's name and
// version, prevResult, and the runtimeConfig the plugin asked for in "capabilities"), and the
// CNI_ARGS environment value. And the record of an ADD cached under the state dir.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "net/cni/NetworkConfigList.h"

namespace monocri::net::cni {

struct PortMapping {
  int hostPort = 0;
  int containerPort = 0;
  std::string protocol;  // "tcp", "udp", "sctp"
  std::string hostIP;    // "" for every address
};

struct Bandwidth {  // the bandwidth plugin's units: bits per second, bits
  uint64_t ingressRate = 0, ingressBurst = 0, egressRate = 0, egressBurst = 0;
};

// Capability arguments (CNI conventions): each goes to a plugin only if its "capabilities"
// object has the key set to true, under "runtimeConfig".
struct RuntimeConfig {
  std::vector<PortMapping> portMappings;  // "portMappings"
  std::optional<Bandwidth> bandwidth;     // "bandwidth"
  std::vector<std::string> ips;           // "ips": addresses or CIDRs
  std::string mac;                        // "mac"
  std::vector<std::string> podCidrs;      // "ipRanges": [[{"subnet": cidr}], ...]
  nlohmann::json toJson() const;          // every key that is set, for the cache
};

// The stdin of plugin `index` of `list`: its config, plus "name" and "cniVersion" of the list,
// "prevResult" when `prevResult` is not null, and "runtimeConfig" (only the capabilities the
// plugin declares, omitted when none applies).
nlohmann::json pluginInput(const NetworkConfigList& list, size_t index,
                           const RuntimeConfig& runtimeConfig, const nlohmann::json* prevResult);

// "IgnoreUnknown=1;K=V;..." in the given order. Returns "" and sets `error` when a key or value
// holds ';' or '=' or a NUL (it would change the meaning of the others).
std::string cniArgs(const std::vector<std::pair<std::string, std::string>>& args,
                    std::string& error);

// kubelet's bandwidth annotations, kubernetes.io/ingress-bandwidth and
// kubernetes.io/egress-bandwidth (Kubernetes quantities: "10M", "1Gi", "500k"), as the
// bandwidth plugin wants them (rates in bits per second, burst as containerd sets it). nullopt
// when neither is present; an error for a value that is not a quantity or out of range
// (1k .. 1P, as Kubernetes checks).
std::optional<Bandwidth> bandwidthFromAnnotations(
    const std::map<std::string, std::string>& annotations, std::string& error);

// An ADD as cached under <state>/cni/results/<network>-<containerId>-<ifName>: enough to run
// DEL (and CHECK) later with the same config, arguments and result, whatever the config dir
// holds then.
struct CacheRecord {
  std::string containerId, ifName, networkName;
  nlohmann::json config;  // NetworkConfigList::raw
  bool configIsList = true;
  std::vector<std::pair<std::string, std::string>> cniArgs;
  nlohmann::json runtimeConfig;  // RuntimeConfig::toJson()
  nlohmann::json result;         // the last plugin's result
};
std::string encodeCacheRecord(const CacheRecord& record);
// "" or what is wrong with the file's bytes.
std::string decodeCacheRecord(std::string_view bytes, CacheRecord& out);
RuntimeConfig runtimeConfigFromJson(const nlohmann::json& json);

}  // namespace monocri::net::cni
