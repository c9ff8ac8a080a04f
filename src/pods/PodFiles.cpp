#include "pods/PodFiles.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mount.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace monocri::pods {

using grpc::Status;
using grpc::StatusCode;

namespace {

// glibc reads at most this many name servers (MAXNS) and this many search characters.
constexpr size_t kMaxNameServers = 3;
constexpr size_t kMaxSearchChars = 256;
constexpr size_t kMaxHostnameLength = 63;  // HOST_NAME_MAX, and one DNS label

bool isPlainToken(const std::string& value) {
  if (value.empty() || value.size() > 253) return false;
  for (unsigned char c : value)
    if (c <= 0x20 || c >= 0x7f || c == '#' || c == ';') return false;
  return true;
}

}  // namespace

Status resolvConfFor(const DnsSettings& dns, std::string& out) {
  out.clear();
  auto bad = [](std::string_view what, const std::string& value) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("dns_config: {} '{}' is not a single word of printable characters",
                              what, value.substr(0, 100)));
  };
  size_t searchChars = 0;
  for (const auto& search : dns.searches) {
    if (!isPlainToken(search)) return bad("search domain", search);
    searchChars += search.size() + 1;
  }
  if (searchChars > kMaxSearchChars) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("dns_config: the search domains take {} characters; the resolver "
                              "reads at most {}",
                              searchChars, kMaxSearchChars));
  }
  for (const auto& server : dns.servers)
    if (!isPlainToken(server)) return bad("server", server);
  for (const auto& option : dns.options)
    if (!isPlainToken(option)) return bad("option", option);
  if (dns.servers.size() > kMaxNameServers) {
    // kubelet already trims to 3; anything beyond would be ignored by every resolver.
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("dns_config: {} servers; the resolver uses at most {}",
                              dns.servers.size(), kMaxNameServers));
  }
  if (!dns.searches.empty()) out += fmt::format("search {}\n", fmt::join(dns.searches, " "));
  for (const auto& server : dns.servers)
    out += fmt::format("nameserver {}\n", server);
  if (!dns.options.empty()) out += fmt::format("options {}\n", fmt::join(dns.options, " "));
  return Status::ok();
}

Status checkHostname(const std::string& hostname) {
  if (hostname.empty()) return Status::ok();
  bool ok = hostname.size() <= kMaxHostnameLength && hostname.front() != '-' &&
            hostname.back() != '-' && hostname.front() != '.' && hostname.back() != '.';
  for (char c : hostname) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) ok = false;
  }
  if (!ok) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("hostname '{}' is not a valid host name (letters, digits, '-' and "
                              "'.', at most {} characters)",
                              hostname.substr(0, 100), kMaxHostnameLength));
  }
  return Status::ok();
}

std::string podHostsFile(const std::string& hostname) {
  std::string hosts =
      "127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\n"
      "fe00::0\tip6-localnet\n"
      "fe00::0\tip6-mcastprefix\n"
      "fe00::1\tip6-allnodes\n"
      "fe00::2\tip6-allrouters\n";
  if (!hostname.empty()) hosts += fmt::format("127.0.1.1\t{}\n", hostname);
  return hosts;
}

Status mountPodShm(const std::string& path, uint64_t sizeBytes) {
  const std::string options = fmt::format("mode=1777,size={}", sizeBytes);
  if (mount("shm", path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options.c_str()) != 0) {
    return Status(StatusCode::kInternal,
                  fmt::format("mount the pod's /dev/shm on {}: {}", path, std::strerror(errno)));
  }
  return Status::ok();
}

}  // namespace monocri::pods
