// What a CNI plugin prints: a result (ADD, in the 0.3.0 .. 1.0.0 format) or an error object.
// Both come from a separate binary and are parsed as hostile input.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace monocri::net::cni {

struct ResultInterface {
  std::string name, mac, sandbox;  // sandbox: the netns path for interfaces in the pod
};

struct ResultIp {
  std::string address;  // CIDR, "10.88.0.2/16" or "fd00::2/64"
  std::string gateway;  // "" if none
  int interface = -1;   // index into interfaces, -1 if absent
};

struct Result {
  std::string cniVersion;
  std::vector<ResultInterface> interfaces;
  std::vector<ResultIp> ips;
  nlohmann::json raw;  // the result as printed: the next plugin's prevResult, the cache

  // The pod's addresses (no prefix length): those on the interface named `ifName` in a sandbox,
  // or on no interface at all; IPv4 ones first, each family in result order, no duplicates.
  std::vector<std::string> podIps(const std::string& ifName) const;
};

// Parses a result. Returns "" or what is wrong ("ips[1].address '10.0.0.300/8' is not a CIDR").
// Sizes are bounded (at most 1024 interfaces, 1024 ips); unknown keys are kept in raw.
std::string parseResult(std::string_view bytes, Result& out);
std::string resultFromJson(const nlohmann::json& raw, Result& out);

struct PluginError {
  std::string cniVersion;
  unsigned code = 0;  // 1..99 the spec's (e.g. 7 invalid network config), 100+ the plugin's
  std::string msg, details;
  // "code 7 (invalid network config): msg; details"
  std::string describe() const;
};

// Whether `bytes` is an error object (a JSON object with a numeric "code" and a string "msg").
bool parsePluginError(std::string_view bytes, PluginError& out);

}  // namespace monocri::net::cni
