// Registry credentials: the fields of the CRI AuthConfig kubelet sends with PullImage.
#pragma once

#include <string>

#include "cri-bridge/grpc/GrpcStatus.h"

namespace monocri::oci {

struct Credentials {
  std::string username;
  std::string password;
  std::string identityToken;  // OAuth2 refresh token, exchanged at the token endpoint
  std::string registryToken;  // a bearer token used as is
  std::string serverAddress;  // the registry these belong to; "" for any

  // From AuthConfig: "auth" (base64 "user:password") fills username and password when set.
  static grpc::Status fromAuthConfig(const std::string& username, const std::string& password,
                                     const std::string& auth, const std::string& identityToken,
                                     const std::string& registryToken,
                                     const std::string& serverAddress, Credentials& out);
  bool empty() const {
    return username.empty() && password.empty() && identityToken.empty() && registryToken.empty();
  }
  std::string fingerprint() const;  // a hash, to keep tokens of different users apart
  // Whether these credentials may be sent to `domain`: never to another registry (a mirror,
  // a search registry) than the one they were given for.
  bool appliesTo(const std::string& domain) const;
};

std::string base64Encode(std::string_view in);
// Standard base64 with padding; nullopt-like empty result with `ok` false on garbage.
std::string base64Decode(std::string_view in, bool& ok);

}  // namespace monocri::oci
