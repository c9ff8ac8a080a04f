#include "oci/image/Credentials.h"

#include "oci/image/Digest.h"
#include "oci/image/ImageReference.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;

namespace {
constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (size_t i = 0; i < in.size(); i += 3) {
    const uint32_t a = static_cast<unsigned char>(in[i]);
    const uint32_t b = i + 1 < in.size() ? static_cast<unsigned char>(in[i + 1]) : 0;
    const uint32_t c = i + 2 < in.size() ? static_cast<unsigned char>(in[i + 2]) : 0;
    const uint32_t triple = a << 16 | b << 8 | c;
    out.push_back(kAlphabet[triple >> 18 & 63]);
    out.push_back(kAlphabet[triple >> 12 & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[triple >> 6 & 63] : '=');
    out.push_back(i + 2 < in.size() ? kAlphabet[triple & 63] : '=');
  }
  return out;
}

std::string base64Decode(std::string_view in, bool& ok) {
  ok = false;
  std::string out;
  uint32_t accumulator = 0;
  int bits = 0;
  size_t padding = 0;
  for (char c : in) {
    if (c == '\n' || c == '\r') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding != 0) return {};  // data after padding
    const size_t value = kAlphabet.find(c);
    if (value == std::string_view::npos) return {};
    accumulator = accumulator << 6 | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>(accumulator >> bits & 0xff));
    }
  }
  ok = padding <= 2;
  return out;
}

Status Credentials::fromAuthConfig(const std::string& username, const std::string& password,
                                   const std::string& auth, const std::string& identityToken,
                                   const std::string& registryToken,
                                   const std::string& serverAddress, Credentials& out) {
  out = Credentials{username, password, identityToken, registryToken, serverAddress};
  if (!auth.empty()) {
    bool ok = false;
    const std::string decoded = base64Decode(auth, ok);
    const size_t colon = decoded.find(':');
    if (!ok || colon == std::string::npos) {
      return Status(StatusCode::kInvalidArgument,
                    "AuthConfig.auth is not base64 of \"username:password\"");
    }
    out.username = decoded.substr(0, colon);
    out.password = decoded.substr(colon + 1);
  }
  return Status::ok();
}

std::string Credentials::fingerprint() const {
  if (empty()) return "anonymous";
  return std::string(
      Digest::ofBytes(username + '\0' + password + '\0' + identityToken + '\0' + registryToken)
          .hex()
          .substr(0, 16));
}

bool Credentials::appliesTo(const std::string& domain) const {
  if (serverAddress.empty()) return true;
  std::string_view server = serverAddress;
  for (std::string_view scheme : {"https://", "http://"}) {
    if (server.starts_with(scheme)) server.remove_prefix(scheme.size());
  }
  server = server.substr(0, server.find('/'));
  if (server == "index.docker.io" || server == "registry-1.docker.io") server = kDockerHub;
  return server == domain;
}

}  // namespace monocri::oci
