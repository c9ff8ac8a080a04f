// The files every container of a pod shares: /etc/hostname, /etc/hosts, /etc/resolv.conf, and
// the pod's /dev/shm. Contents are built here (pure functions, tested alone); the pod manager
// writes them under the pod's run dir.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"

namespace monocri::pods {

struct DnsSettings {
  std::vector<std::string> servers, searches, options;
  bool empty() const { return servers.empty() && searches.empty() && options.empty(); }
};

// resolv.conf from the pod's DNSConfig. Each value is checked (no whitespace or control
// characters, which would add lines or fields); limits as glibc's resolver: 3 name servers are
// used, search domains up to 256 characters together.
grpc::Status resolvConfFor(const DnsSettings& dns, std::string& out);

// Validates a hostname as Linux and RFC 1123 accept it (kubelet sends the pod name or its
// spec.hostname); an empty one is allowed (the node's then).
grpc::Status checkHostname(const std::string& hostname);

// /etc/hosts of a pod with its own network: loopback names and the pod's hostname. With the
// node's network the node's own /etc/hosts is copied instead (as containerd does).
std::string podHostsFile(const std::string& hostname);

// Mounts a tmpfs for the pod's /dev/shm at `path` (an existing directory).
grpc::Status mountPodShm(const std::string& path, uint64_t sizeBytes);

}  // namespace monocri::pods
