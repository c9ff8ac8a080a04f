// WWW-Authenticate headers as a registry (or anything posing as one) may send them: the parser
// ends, and what it returns is made of the input's tokens.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "oci/image/AuthChallenge.h"

namespace {

bool isLowerToken(const std::string& text) {
  if (text.empty()) return false;
  for (unsigned char c : text) {
    if (c >= 'A' && c <= 'Z') return false;
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == ',' || c == '=' || c == '\\') return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string header(reinterpret_cast<const char*>(data), size);
  const auto challenges = monocri::oci::parseWwwAuthenticate(header);
  if (challenges.size() > size) std::abort();
  size_t total = 0;
  for (const auto& challenge : challenges) {
    if (!isLowerToken(challenge.scheme)) std::abort();
    total += challenge.scheme.size();
    for (const auto& [name, value] : challenge.params) {
      if (!isLowerToken(name)) std::abort();
      if (challenge.param(name) != value) std::abort();
      total += name.size() + value.size();
    }
  }
  if (total > size) std::abort();  // nothing invented
  return 0;
}
