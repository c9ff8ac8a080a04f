// Image references on arbitrary text: refused with a reason, or normalized to a reference whose
// string() parses back to the same fields.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "oci/image/ImageReference.h"

using monocri::oci::ImageReference;
using monocri::oci::parseImageReference;

namespace {

bool sameFields(const ImageReference& a, const ImageReference& b) {
  return a.domain == b.domain && a.path == b.path && a.tag == b.tag && a.digest == b.digest;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::string why;
  auto ref = parseImageReference(text, &why);
  if (!ref) {
    if (why.empty() || why.size() > 1024) std::abort();  // a reason, of bounded size
    return 0;
  }
  if (ref->domain.empty() || ref->path.empty()) std::abort();
  if (ref->tag.empty() && !ref->digest) std::abort();
  if (ref->shortName != !ref->shortPath.empty()) std::abort();
  if (ref->domain == "docker.io" && ref->path.find('/') == std::string::npos) std::abort();
  if (ref->manifestReference() != (ref->digest ? ref->digest->str() : ref->tag)) std::abort();

  // What it prints parses back to the same reference, now qualified.
  std::string againWhy;
  auto again = parseImageReference(ref->string(), &againWhy);
  if (!again || !sameFields(*again, *ref) || again->shortName) std::abort();
  if (again->string() != ref->string()) std::abort();

  // Moved to another registry, it keeps its path, tag and digest (unless the longer registry
  // name takes it past the 255-character limit on names, which then refuses it).
  const ImageReference moved = ref->at("mirror.example:5000", ref->path);
  auto movedAgain = parseImageReference(moved.string());
  if (moved.domain.size() + 1 + moved.path.size() <= 255) {
    if (!movedAgain || !sameFields(*movedAgain, moved)) std::abort();
  } else if (movedAgain) {
    std::abort();
  }
  return 0;
}
