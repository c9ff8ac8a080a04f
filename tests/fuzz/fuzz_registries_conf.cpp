// registries.conf on arbitrary text: an error naming the file, or a configuration under which
// qualifying and locating a few fixed references neither crashes nor loses the tag or digest.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "oci/image/RegistriesConf.h"

using namespace monocri::oci;

namespace {

const char* const kReferences[] = {
    "busybox",
    "team/app:1",
    "docker.io/library/busybox:1.36",
    "quay.io/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "localhost:5000/a/b:c",
    "a.example.com/x/y",
    "example.com/foo/bar:latest",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  RegistriesConf conf;
  std::vector<std::string> warnings;
  const std::string error = RegistriesConf::parse(text, "fuzz.conf", conf, warnings);
  if (!error.empty()) {
    if (error.find("fuzz.conf") == std::string::npos) std::abort();  // says where
    return 0;
  }
  for (const char* text : kReferences) {
    auto ref = parseImageReference(text);
    if (!ref) std::abort();
    const std::vector<ImageReference> candidates = conf.qualify(*ref);
    if (candidates.empty()) std::abort();
    for (const auto& candidate : candidates) {
      if (candidate.shortName || candidate.domain.empty()) std::abort();
      if (candidate.tag != ref->tag || candidate.digest != ref->digest) std::abort();
      std::vector<PullSource> sources;
      const std::string blocked = conf.sources(candidate, sources);
      if (!blocked.empty()) {
        if (!sources.empty()) std::abort();
        continue;
      }
      if (sources.empty() || sources.back().mirror) std::abort();  // the primary comes last
      for (const auto& source : sources) {
        if (source.ref.tag != candidate.tag || source.ref.digest != candidate.digest) std::abort();
        if (!parseImageReference(source.ref.string())) std::abort();
      }
    }
  }
  return 0;
}
