// SHA256_Init and friends are deprecated in OpenSSL 3 in favour of EVP, which is what is
// avoided here on purpose (see Digest.h).
#define OPENSSL_SUPPRESS_DEPRECATED
#include "oci/image/Digest.h"

#include <fmt/format.h>

#include <cstdlib>

namespace monocri::oci {

std::optional<Digest> Digest::parse(std::string_view text, std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<Digest> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return fail("a digest is algorithm:hex");
  const std::string_view algorithm = text.substr(0, colon);
  const std::string_view hex = text.substr(colon + 1);
  if (algorithm != "sha256") {
    return fail(fmt::format("digest algorithm '{}' is not supported (only sha256)",
                            algorithm.substr(0, 32)));
  }
  if (hex.size() != 64) return fail("a sha256 digest has 64 hex digits");
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return fail("a sha256 digest has lowercase hex digits only");
    }
  }
  return Digest(std::string(text));
}

Digest Digest::ofBytes(std::string_view bytes) {
  Sha256 hasher;
  hasher.update(bytes);
  return hasher.finish();
}

Sha256::Sha256() {
  SHA256_Init(&ctx_);
}

void Sha256::update(std::string_view bytes) {
  SHA256_Update(&ctx_, bytes.data(), bytes.size());
}

Digest Sha256::finish() {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256_Final(out, &ctx_);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text = "sha256:";
  for (unsigned int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    text.push_back(kHex[out[i] >> 4]);
    text.push_back(kHex[out[i] & 0xf]);
  }
  return Digest(std::move(text));
}

}  // namespace monocri::oci
