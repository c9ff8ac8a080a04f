// Content digests of the OCI image spec: "sha256:" and 64 lowercase hex digits.
#pragma once

#include <openssl/sha.h>

#include <optional>
#include <string>
#include <string_view>

namespace monocri::oci {

class Digest {
 public:
  // A valid sha256 digest, or nullopt with `why` saying what is wrong (other algorithms such as
  // sha512 are named as unsupported).
  static std::optional<Digest> parse(std::string_view text, std::string* why = nullptr);
  static Digest ofBytes(std::string_view bytes);

  const std::string& str() const { return text_; }  // "sha256:ab12..."
  std::string_view hex() const { return std::string_view(text_).substr(7); }
  bool operator==(const Digest&) const = default;
  auto operator<=>(const Digest&) const = default;

 private:
  explicit Digest(std::string text) : text_(std::move(text)) {}
  friend class Sha256;
  std::string text_;
};

// Incremental sha256, for content hashed while it streams. OpenSSL's plain SHA-256 functions,
// not EVP: no provider machinery to load, so the daemon can link just this statically.
class Sha256 {
 public:
  Sha256();
  void update(std::string_view bytes);
  Digest finish();  // the hasher is spent afterwards

 private:
  SHA256_CTX ctx_;
};

}  // namespace monocri::oci
