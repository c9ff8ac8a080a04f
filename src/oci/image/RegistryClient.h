// The OCI distribution (Docker Registry HTTP API v2) client: manifests and blobs, with the auth
// flows registries use (anonymous and credentialed bearer tokens, basic auth, identity tokens,
// registry tokens) and insecure registries (TLS without verification, then plain HTTP).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "loop/Loop.h"
#include "loop/Timer.h"
#include "oci/image/AuthChallenge.h"
#include "oci/image/Credentials.h"
#include "oci/image/HttpClient.h"
#include "oci/image/RegistriesConf.h"

namespace monocri::oci {

struct RegistryTimeouts {
  uint64_t connectMs = 30'000;
  uint64_t stallMs = 60'000;  // no byte for this long: the registry is considered gone
};

class RegistryClient {
 public:
  RegistryClient(loop::Loop& loop, HttpClient& http, RegistryTimeouts timeouts);
  ~RegistryClient();

  struct ManifestResponse {
    std::string body;
    std::string contentType;
  };
  // GET /v2/<path>/manifests/<reference> (at most kMaxManifestBytes).
  void getManifest(const PullSource& source, const Credentials& credentials,
                   const std::string& reference,
                   std::function<void(grpc::Status, ManifestResponse)> done);

  // GET /v2/<path>/blobs/<digest> into memory, refused past `maxBytes`.
  void getSmallBlob(const PullSource& source, const Credentials& credentials, const Digest& digest,
                    size_t maxBytes, std::function<void(grpc::Status, std::string)> done);

  // GET /v2/<path>/blobs/<digest> streamed, from byte `offset` on. `onStart` learns whether the
  // registry honoured the offset (206) or sends the whole blob again (200).
  struct BlobStream {
    std::function<void(bool resumed)> onStart;
    std::function<bool(std::string_view)> onData;
    std::function<void(grpc::Status)> onDone;
  };
  void streamBlob(const PullSource& source, const Credentials& credentials, const Digest& digest,
                  uint64_t offset, BlobStream stream);

 private:
  struct Request;
  struct TokenWaiters;
  void send(std::shared_ptr<Request> request);
  void onFinished(std::shared_ptr<Request> request, HttpResponse response, std::string errorBody);
  void authenticate(std::shared_ptr<Request> request, const std::vector<AuthChallenge>& challenges);
  void fetchToken(const AuthChallenge& challenge, const std::string& scope,
                  const Credentials& credentials, bool insecure,
                  std::function<void(grpc::Status, std::string token)> done);
  std::string baseUrl(const PullSource& source) const;
  grpc::Status statusFor(const Request& request, const HttpResponse& response,
                         const std::string& errorBody) const;

  loop::Loop& loop_;
  HttpClient& http_;
  RegistryTimeouts timeouts_;
  // Insecure registries found to speak plain HTTP.
  std::set<std::string> plainHttpHosts_;
  struct CachedToken {
    std::string token;
    std::chrono::steady_clock::time_point expires;
  };
  std::map<std::string, CachedToken> tokens_;  // by realm|service|scope|user
  std::map<std::string, std::shared_ptr<TokenWaiters>> tokenRequests_;  // under way
  // Hosts that asked for basic auth, with the header that worked.
  std::map<std::string, std::string> basicAuth_;
  loop::LifetimeGuard lifetime_;
};

}  // namespace monocri::oci
