#include "net/PodNetwork.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <charconv>

namespace monocri::net {

bool isValidCidr(const std::string& cidr) {
  const size_t slash = cidr.find('/');
  if (slash == std::string::npos || slash + 1 == cidr.size()) return false;
  const std::string address = cidr.substr(0, slash);
  unsigned char buf[sizeof(in6_addr)];
  int maxPrefix = 0;
  if (inet_pton(AF_INET, address.c_str(), buf) == 1) {
    maxPrefix = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), buf) == 1) {
    maxPrefix = 128;
  } else {
    return false;
  }
  int prefix = -1;
  const char* first = cidr.data() + slash + 1;
  const char* last = cidr.data() + cidr.size();
  auto [end, ec] = std::from_chars(first, last, prefix);
  return ec == std::errc() && end == last && prefix >= 0 && prefix <= maxPrefix;
}

std::string PodNetwork::setPodCidr(const std::string& cidr) {
  // kubelet may send several CIDRs (dual stack) separated by commas.
  size_t start = 0;
  while (!cidr.empty() && start <= cidr.size()) {
    size_t comma = cidr.find(',', start);
    std::string one =
        cidr.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!isValidCidr(one)) return fmt::format("'{}' is not a valid CIDR", one);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  podCidr_ = cidr;
  return {};
}

NetworkReadiness PodNetwork::readiness() const {
  return NetworkReadiness{
      false, "NetworkPluginNotReady",
      "monocri does not set up pod networks yet: no CNI network plugin is in use"};
}

}  // namespace monocri::net
