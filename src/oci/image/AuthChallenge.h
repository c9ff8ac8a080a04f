// WWW-Authenticate challenges (RFC 7235) as registries send them:
//   Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="..."
//   Basic realm="Registry Realm"
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace monocri::oci {

struct AuthChallenge {
  std::string scheme;                         // lowercase: "bearer", "basic"
  std::map<std::string, std::string> params;  // names lowercase, values unquoted

  std::string param(const std::string& name) const;
};

// Every challenge in one header value; garbage yields fewer or none, never a crash.
std::vector<AuthChallenge> parseWwwAuthenticate(std::string_view header);

}  // namespace monocri::oci
