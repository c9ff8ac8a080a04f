// Localhost seccomp profiles as any file on the node may hold them (Docker or OCI format). The
// first byte picks the container's capabilities; the rest is the profile. Nothing may throw; an
// accepted profile must be one runc can load (known actions, operators, architectures, syscall
// names, at most six conditions an argument index 0-5), and converting the output again must
// give the output back.
#include <seccomp.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "oci/spec/SeccompProfile.h"

using namespace monocri::oci;
using Json = nlohmann::json;

namespace {

void check(std::string_view bytes, CapabilityMask capabilities) {
  Json out;
  std::vector<std::string> warnings;
  const auto status = convertSeccompProfile(bytes, capabilities, out, warnings);
  if (!status.isOk()) {
    if (status.message().empty()) std::abort();
    return;
  }
  if (!out.is_object() || !out["defaultAction"].is_string()) std::abort();
  if (out.contains("flags")) std::abort();
  for (const auto& arch : out["architectures"]) {
    if (!arch.is_string() || arch.get<std::string>().rfind("SCMP_ARCH_", 0) != 0) std::abort();
  }
  for (const auto& rule : out["syscalls"]) {
    if (!rule["action"].is_string() || rule["action"] == "SCMP_ACT_NOTIFY") std::abort();
    if (!rule["names"].is_array() || rule["names"].empty()) std::abort();
    for (const auto& name : rule["names"]) {
      if (seccomp_syscall_resolve_name(name.get<std::string>().c_str()) == __NR_SCMP_ERROR) {
        std::abort();
      }
    }
    if (rule.contains("args")) {
      if (rule["args"].size() > 6) std::abort();
      for (const auto& arg : rule["args"]) {
        if (arg["index"].get<uint64_t>() > 5) std::abort();
      }
    }
  }
  Json again;
  std::vector<std::string> moreWarnings;
  if (!convertSeccompProfile(out.dump(), capabilities, again, moreWarnings).isOk()) std::abort();
  if (again != out) std::abort();
  // A filter that runc can take must also be dumpable as the config.json it goes into.
  (void)out.dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const CapabilityMask capabilities =
      data[0] % 3 == 0 ? defaultCapabilities()
                       : (data[0] % 3 == 1 ? allKernelCapabilities() : CapabilityMask{0});
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    check(bytes, capabilities);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exception: %s\n", e.what());
    std::abort();
  }
  return 0;
}
