// An image's /etc/passwd and /etc/group as a hostile image may write them. The first byte picks
// which file the rest is; nothing may throw or crash, every entry kept must be well formed, and
// writing the entries back out and parsing again must give the same entries.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "oci/spec/ImageUser.h"

using namespace monocri::oci;

namespace {

bool wellFormedName(const std::string& name) {
  if (name.empty() || name.size() > 256) return false;
  for (char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f || c == ':' || c == ',') return false;
  }
  return true;
}

void checkPasswd(std::string_view text) {
  const auto entries = parsePasswd(text);
  std::string rewritten;
  for (const auto& entry : entries) {
    if (!wellFormedName(entry.name)) std::abort();
    if (entry.uid > kMaxContainerId || entry.gid > kMaxContainerId) std::abort();
    rewritten += entry.name + ":x:" + std::to_string(entry.uid) + ":" + std::to_string(entry.gid) +
                 "::/:/bin/sh\n";
  }
  const auto again = parsePasswd(rewritten);
  if (again.size() != entries.size()) std::abort();
  for (size_t i = 0; i < entries.size(); ++i) {
    if (again[i].name != entries[i].name || again[i].uid != entries[i].uid ||
        again[i].gid != entries[i].gid) {
      std::abort();
    }
  }
}

void checkGroup(std::string_view text) {
  const auto entries = parseGroup(text);
  std::string rewritten;
  for (const auto& entry : entries) {
    if (!wellFormedName(entry.name) || entry.gid > kMaxContainerId) std::abort();
    rewritten += entry.name + ":x:" + std::to_string(entry.gid) + ":";
    for (size_t i = 0; i < entry.members.size(); ++i) {
      if (!wellFormedName(entry.members[i])) std::abort();
      rewritten += (i == 0 ? "" : ",") + entry.members[i];
    }
    rewritten += "\n";
  }
  const auto again = parseGroup(rewritten);
  if (again.size() != entries.size()) std::abort();
  for (size_t i = 0; i < entries.size(); ++i) {
    if (again[i].name != entries[i].name || again[i].gid != entries[i].gid ||
        again[i].members != entries[i].members) {
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    if (data[0] % 2 == 0) {
      checkPasswd(text);
    } else {
      checkGroup(text);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exception: %s\n", e.what());
    std::abort();
  }
  return 0;
}
