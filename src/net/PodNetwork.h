// Pod networking state the CRI reports: the node's pod CIDR and whether pods can get a network.
// CNI plugins (ADD/DEL, config watching) will live here; until then no pod network is set up and
// Status says so (NetworkReady=false), rather than pretending.
#pragma once

#include <string>

namespace monocri::net {

struct NetworkReadiness {
  bool ready = false;
  std::string reason;   // CamelCase, for kubelet's node condition
  std::string message;  // for the operator
};

class PodNetwork {
 public:
  // From UpdateRuntimeConfig. "" clears it. Returns "" or why the CIDR is invalid.
  std::string setPodCidr(const std::string& cidr);
  const std::string& podCidr() const { return podCidr_; }

  NetworkReadiness readiness() const;

 private:
  std::string podCidr_;
};

// "10.244.0.0/24" or "fd00::/64": an address and a prefix length that fits it.
bool isValidCidr(const std::string& cidr);

}  // namespace monocri::net
