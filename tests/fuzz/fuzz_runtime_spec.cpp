// What monocri-runtime reads from a bundle and its own state, as anyone could write it: the
// spec's process object (user, capabilities, rlimits) and linux.seccomp, and the cgroup record of
// state.json. Each is either accepted or refused with a RuntimeError that says why; no other
// exception, no crash, no empty message.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include <nlohmann/json.hpp>

#include "oci/runtime/ContainerCgroup.h"
#include "oci/runtime/ProcessSecurity.h"
#include "oci/runtime/RuntimeError.h"
#include "oci/runtime/SeccompFilter.h"

using namespace monocri::runtime;

namespace {

template <typename Parse>
void acceptedOrRefused(Parse parse) {
  try {
    parse();
  } catch (const RuntimeError& e) {
    if (e.what()[0] == '\0') std::abort();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "not a RuntimeError: %s\n", e.what());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json document = nlohmann::json::parse(data, data + size, nullptr, false);
  if (document.is_discarded()) return 0;
  acceptedOrRefused([&] { ProcessSecurity::fromSpec(document); });
  acceptedOrRefused([&] { SeccompFilter::compile(document); });
  acceptedOrRefused([&] { ContainerCgroup::fromJson(document); });
  if (document.is_object()) {
    for (const auto& [key, value] : document.items()) {
      acceptedOrRefused([&] { ProcessSecurity::fromSpec(value); });
      acceptedOrRefused([&] { SeccompFilter::compile(value); });
    }
  }
  return 0;
}
