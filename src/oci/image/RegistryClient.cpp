#include "oci/image/RegistryClient.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "oci/image/ImageManifest.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;

namespace {

// Registry error bodies and token answers are small; more is not read.
constexpr size_t kMaxErrorBodyBytes = 64 * 1024;
constexpr size_t kMaxTokenBodyBytes = 1024 * 1024;
// Tokens are refreshed this long before they expire.
constexpr std::chrono::seconds kTokenMargin{10};
// A token without expires_in lasts 60 s (the distribution token spec's default).
constexpr std::chrono::seconds kDefaultTokenLifetime{60};

std::string urlEncode(std::string_view in) {
  std::string out;
  for (unsigned char c : in) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// The registry's own words from an error body: {"errors":[{"code":..,"message":..}]}.
std::string registryMessage(const std::string& body) {
  Json json = Json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return {};
  auto errors = json.find("errors");
  if (errors == json.end() || !errors->is_array() || errors->empty()) return {};
  const Json& first = (*errors)[0];
  if (!first.is_object()) return {};
  std::string code =
      first.contains("code") && first["code"].is_string() ? first["code"].get<std::string>() : "";
  std::string message = first.contains("message") && first["message"].is_string()
                            ? first["message"].get<std::string>()
                            : "";
  std::string text = code.empty() ? message : message.empty() ? code : code + ": " + message;
  if (text.size() > 300) text = text.substr(0, 300) + "...";
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return text;
}

}  // namespace

// One registry request and what to do with its answer; sent again after authenticating.
struct RegistryClient::Request {
  PullSource source;
  Credentials credentials;
  std::string path;    // "/v2/<repo>/manifests/<ref>"
  std::string accept;  // manifests only
  std::string scope;   // "repository:<repo>:pull"
  uint64_t offset = 0;
  size_t maxBytes = 0;     // buffered requests
  bool streaming = false;  // blobs: body goes to `stream`
  BlobStream stream;
  std::function<void(Status, std::string body, std::string contentType)> buffered;
  std::string authorization;  // the header value to send, once known
  int authAttempts = 0;
  bool triedPlainHttp = false;
  bool tooLarge = false;
  std::string body;
};

struct RegistryClient::TokenWaiters {
  std::vector<std::function<void(Status, std::string)>> waiters;
};

RegistryClient::RegistryClient(loop::Loop& loop, HttpClient& http, RegistryTimeouts timeouts)
    : loop_(loop), http_(http), timeouts_(timeouts) {}

RegistryClient::~RegistryClient() = default;

std::string RegistryClient::baseUrl(const PullSource& source) const {
  const std::string& host = source.ref.domain;
  // Docker Hub's API is served by registry-1.docker.io.
  const std::string apiHost = host == kDockerHub ? "registry-1.docker.io" : host;
  const bool plain = source.insecure && plainHttpHosts_.contains(host);
  return (plain ? "http://" : "https://") + apiHost;
}

void RegistryClient::getManifest(const PullSource& source, const Credentials& credentials,
                                 const std::string& reference,
                                 std::function<void(Status, ManifestResponse)> done) {
  auto request = std::make_shared<Request>();
  request->source = source;
  request->credentials = credentials;
  request->path = fmt::format("/v2/{}/manifests/{}", source.ref.path, reference);
  request->accept = std::string(mediatype::kManifestAccept);
  request->scope = fmt::format("repository:{}:pull", source.ref.path);
  request->maxBytes = kMaxManifestBytes;
  request->buffered = [done = std::move(done)](Status status, std::string body,
                                               std::string contentType) {
    done(std::move(status), ManifestResponse{std::move(body), std::move(contentType)});
  };
  send(request);
}

void RegistryClient::getSmallBlob(const PullSource& source, const Credentials& credentials,
                                  const Digest& digest, size_t maxBytes,
                                  std::function<void(Status, std::string)> done) {
  auto request = std::make_shared<Request>();
  request->source = source;
  request->credentials = credentials;
  request->path = fmt::format("/v2/{}/blobs/{}", source.ref.path, digest.str());
  request->scope = fmt::format("repository:{}:pull", source.ref.path);
  request->maxBytes = maxBytes;
  request->buffered = [done = std::move(done)](Status status, std::string body, std::string) {
    done(std::move(status), std::move(body));
  };
  send(request);
}

void RegistryClient::streamBlob(const PullSource& source, const Credentials& credentials,
                                const Digest& digest, uint64_t offset, BlobStream stream) {
  auto request = std::make_shared<Request>();
  request->source = source;
  request->credentials = credentials;
  request->path = fmt::format("/v2/{}/blobs/{}", source.ref.path, digest.str());
  request->scope = fmt::format("repository:{}:pull", source.ref.path);
  request->offset = offset;
  request->streaming = true;
  request->stream = std::move(stream);
  send(request);
}

void RegistryClient::send(std::shared_ptr<Request> request) {
  HttpRequest http;
  http.url = baseUrl(request->source) + request->path;
  http.verifyTls = !request->source.insecure;
  http.connectTimeoutMs = timeouts_.connectMs;
  http.stallTimeoutMs = timeouts_.stallMs;
  http.resumeFrom = request->offset;
  if (!request->accept.empty()) http.headers.push_back("Accept: " + request->accept);
  if (request->authorization.empty() && !request->credentials.registryToken.empty()) {
    request->authorization = "Bearer " + request->credentials.registryToken;
  }
  if (request->authorization.empty()) {
    if (auto basic =
            basicAuth_.find(request->source.ref.domain + "|" + request->credentials.fingerprint());
        basic != basicAuth_.end()) {
      request->authorization = basic->second;
    }
  }
  if (!request->authorization.empty()) {
    http.headers.push_back("Authorization: " + request->authorization);
  }
  request->body.clear();
  request->tooLarge = false;

  auto status = std::make_shared<long>(0);
  http_.start(
      std::move(http),
      [request, status](const HttpResponse& response) {
        *status = response.status;
        if (request->streaming && response.ok()) {
          request->stream.onStart(response.status == 206);
        }
        return true;
      },
      [request, status](std::string_view data) {
        const bool success = *status >= 200 && *status < 300;
        if (request->streaming && success) return request->stream.onData(data);
        const size_t limit = success ? request->maxBytes : kMaxErrorBodyBytes;
        if (request->body.size() + data.size() > limit) {
          request->tooLarge = success;
          return !success;  // an error body is cut short; a content body over the limit fails
        }
        request->body.append(data);
        return true;
      },
      [this, request, alive = lifetime_.watch()](HttpResponse response) {
        if (alive.expired()) return;
        std::string body = std::move(request->body);
        onFinished(request, std::move(response), std::move(body));
      });
}

void RegistryClient::onFinished(std::shared_ptr<Request> request, HttpResponse response,
                                std::string body) {
  // An insecure registry that does not speak TLS: plain HTTP from now on.
  if (response.status == 0 && response.tlsFailed && request->source.insecure &&
      !request->triedPlainHttp && !plainHttpHosts_.contains(request->source.ref.domain)) {
    request->triedPlainHttp = true;
    plainHttpHosts_.insert(request->source.ref.domain);
    send(request);
    return;
  }
  if (response.status == 401 && request->authAttempts == 0) {
    const auto challenges = parseWwwAuthenticate(response.header("www-authenticate"));
    if (!challenges.empty()) {
      ++request->authAttempts;
      authenticate(request, challenges);
      return;
    }
  }
  const Status status = statusFor(*request, response, body);
  if (request->streaming) {
    request->stream.onDone(status);
  } else {
    request->buffered(status, status.isOk() ? std::move(body) : std::string(),
                      response.header("content-type"));
  }
}

void RegistryClient::authenticate(std::shared_ptr<Request> request,
                                  const std::vector<AuthChallenge>& challenges) {
  const Credentials& credentials = request->credentials;
  for (const auto& challenge : challenges) {
    if (challenge.scheme == "bearer" && !challenge.param("realm").empty()) {
      const std::string scope =
          challenge.param("scope").empty() ? request->scope : challenge.param("scope");
      fetchToken(challenge, scope, credentials, request->source.insecure,
                 [this, request](Status status, std::string token) {
                   if (!status.isOk()) {
                     if (request->streaming) {
                       request->stream.onDone(status);
                     } else {
                       request->buffered(status, {}, {});
                     }
                     return;
                   }
                   request->authorization = "Bearer " + token;
                   send(request);
                 });
      return;
    }
  }
  for (const auto& challenge : challenges) {
    if (challenge.scheme == "basic" && !credentials.username.empty()) {
      request->authorization =
          "Basic " + base64Encode(credentials.username + ":" + credentials.password);
      basicAuth_[request->source.ref.domain + "|" + credentials.fingerprint()] =
          request->authorization;
      send(request);
      return;
    }
  }
  // No usable challenge: report the 401 as it is.
  HttpResponse unauthorized;
  unauthorized.status = 401;
  const Status status = statusFor(*request, unauthorized, {});
  if (request->streaming) {
    request->stream.onDone(status);
  } else {
    request->buffered(status, {}, {});
  }
}

void RegistryClient::fetchToken(const AuthChallenge& challenge, const std::string& scope,
                                const Credentials& credentials, bool insecure,
                                std::function<void(Status, std::string)> done) {
  const std::string realm = challenge.param("realm");
  const std::string service = challenge.param("service");
  const std::string key = realm + "|" + service + "|" + scope + "|" + credentials.fingerprint();
  if (auto cached = tokens_.find(key);
      cached != tokens_.end() && std::chrono::steady_clock::now() < cached->second.expires) {
    done(Status::ok(), cached->second.token);
    return;
  }
  if (auto pending = tokenRequests_.find(key); pending != tokenRequests_.end()) {
    pending->second->waiters.push_back(std::move(done));
    return;
  }
  if (!realm.starts_with("https://") && !(insecure && realm.starts_with("http://"))) {
    done(Status(StatusCode::kUnauthenticated,
                fmt::format("the registry's token realm '{}' is not https", realm.substr(0, 200))),
         {});
    return;
  }
  auto waiters = std::make_shared<TokenWaiters>();
  waiters->waiters.push_back(std::move(done));
  tokenRequests_[key] = waiters;

  HttpRequest http;
  http.verifyTls = !insecure;
  http.connectTimeoutMs = timeouts_.connectMs;
  http.stallTimeoutMs = timeouts_.stallMs;
  if (!credentials.identityToken.empty()) {
    // OAuth2 refresh-token grant (docker login's identity token).
    http.method = "POST";
    http.url = realm;
    http.headers.push_back("Content-Type: application/x-www-form-urlencoded");
    http.body = fmt::format(
        "grant_type=refresh_token&refresh_token={}&service={}&scope={}"
        "&client_id=monocri",
        urlEncode(credentials.identityToken), urlEncode(service), urlEncode(scope));
  } else {
    const char separator = realm.find('?') == std::string::npos ? '?' : '&';
    http.url = fmt::format("{}{}service={}&scope={}", realm, separator, urlEncode(service),
                           urlEncode(scope));
    if (!credentials.username.empty()) {
      http.headers.push_back("Authorization: Basic " +
                             base64Encode(credentials.username + ":" + credentials.password));
    }
  }
  http_.fetch(
      std::move(http), kMaxTokenBodyBytes,
      [this, key, realm, alive = lifetime_.watch()](HttpResponse response, std::string body,
                                                    bool tooLarge) {
        if (alive.expired()) return;
        auto node = tokenRequests_.extract(key);
        Status status;
        std::string token;
        if (!response.ok() || tooLarge) {
          status = Status(
              response.status == 401 || response.status == 403 ? StatusCode::kUnauthenticated
                                                               : StatusCode::kUnavailable,
              response.status == 0
                  ? fmt::format("token endpoint {}: {}", realm.substr(0, 200),
                                response.transportError)
                  : fmt::format("token endpoint {} answered HTTP {}{}", realm.substr(0, 200),
                                response.status,
                                response.status == 401 ? " (the credentials were refused)" : ""));
        } else {
          Json json = Json::parse(body, nullptr, false);
          if (json.is_object()) {
            for (const char* field : {"token", "access_token"}) {
              if (json.contains(field) && json[field].is_string() &&
                  !json[field].get<std::string>().empty()) {
                token = json[field].get<std::string>();
                break;
              }
            }
          }
          if (token.empty()) {
            status = Status(StatusCode::kUnauthenticated,
                            fmt::format("token endpoint {} gave no token", realm.substr(0, 200)));
          } else {
            auto lifetime = kDefaultTokenLifetime;
            if (json.contains("expires_in") && json["expires_in"].is_number_integer()) {
              lifetime =
                  std::chrono::seconds(std::max<int64_t>(0, json["expires_in"].get<int64_t>()));
            }
            tokens_[key] =
                CachedToken{token, std::chrono::steady_clock::now() + lifetime - kTokenMargin};
          }
        }
        if (node.empty()) return;
        for (auto& waiter : node.mapped()->waiters)
          waiter(status, token);
      });
}

Status RegistryClient::statusFor(const Request& request, const HttpResponse& response,
                                 const std::string& errorBody) const {
  const std::string& host = request.source.ref.domain;
  const std::string what = fmt::format("{}{}", host, request.path);
  if (request.tooLarge) {
    return Status(StatusCode::kResourceExhausted,
                  fmt::format("{}: the answer exceeds the {} byte limit", what, request.maxBytes));
  }
  if (response.aborted) return Status(StatusCode::kAborted, fmt::format("{}: aborted", what));
  // A transfer that broke off (even after a 200: the body cut short) is a transient failure.
  if (!response.transportError.empty()) {
    if (response.timedOut) {
      return Status(
          StatusCode::kUnavailable,
          fmt::format("registry {} stopped sending ({} ms without data)", host, timeouts_.stallMs));
    }
    return Status(StatusCode::kUnavailable,
                  fmt::format("registry {}: {}", host, response.transportError));
  }
  if (response.ok()) return Status::ok();
  std::string detail = registryMessage(errorBody);
  if (!detail.empty()) detail = " (" + detail + ")";
  switch (response.status) {
    case 401:
      return Status(StatusCode::kUnauthenticated,
                    request.credentials.empty()
                        ? fmt::format("registry {} requires authentication for {}{}", host,
                                      request.source.ref.path, detail)
                        : fmt::format("registry {} refused the credentials for {}{}", host,
                                      request.source.ref.path, detail));
    case 403:
      return Status(
          StatusCode::kPermissionDenied,
          fmt::format("registry {} denied access to {}{}", host, request.source.ref.path, detail));
    case 404:
      return Status(StatusCode::kNotFound, fmt::format("{} not found{}", what, detail));
    case 429:
      return Status(StatusCode::kUnavailable,
                    fmt::format("registry {} is rate limiting (HTTP 429){}", host, detail));
    default:
      break;
  }
  return Status(response.status >= 500 ? StatusCode::kUnavailable : StatusCode::kUnknown,
                fmt::format("{} answered HTTP {}{}", what, response.status, detail));
}

}  // namespace monocri::oci
