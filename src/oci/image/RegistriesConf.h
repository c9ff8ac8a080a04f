// The containers-registries.conf v2 file that CRI-O, Podman and Skopeo share: where images
// are pulled from (mirrors first), which registries are insecure or blocked, and where short
// names are looked up. Operators reuse the file they already have.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "oci/image/ImageReference.h"

namespace monocri::oci {

struct RegistryLocation {
  std::string location;   // "host[:port][/path]" replacing the matched prefix
  bool insecure = false;  // plain HTTP, or TLS without verifying the certificate
  enum class PullFrom { kAll, kDigestOnly, kTagOnly } pullFrom = PullFrom::kAll;
};

struct RegistryEntry {
  std::string prefix;  // "example.com/team", or "*.example.com"
  RegistryLocation primary;
  bool blocked = false;
  std::vector<RegistryLocation> mirrors;  // tried in order before the primary
};

// One place to try for an image, in order of preference.
struct PullSource {
  ImageReference ref;  // the image's name at this place
  bool insecure = false;
  bool mirror = false;
};

class RegistriesConf {
 public:
  // Reads the file at `path`; a missing file gives the defaults (no mirrors, short names on
  // docker.io). Keys this daemon does not use are reported in `warnings`, not refused: the file
  // is shared with other tools. Returns "" or an error naming the line.
  static std::string load(const std::string& path, RegistriesConf& out,
                          std::vector<std::string>& warnings);
  static std::string parse(const std::string& text, const std::string& source, RegistriesConf& out,
                           std::vector<std::string>& warnings);

  // The fully qualified names a short name may stand for, in order: its alias if it has one,
  // else one per unqualified-search-registries entry, else docker.io. A qualified reference
  // is returned as is.
  std::vector<ImageReference> qualify(const ImageReference& ref) const;

  // The places to pull a qualified `ref` from: its registry's mirrors that serve this kind of
  // reference (by digest or by tag), then the primary location. A blocked registry is an error.
  std::string sources(const ImageReference& ref, std::vector<PullSource>& out) const;

  const std::vector<std::string>& searchRegistries() const { return searchRegistries_; }
  const std::vector<RegistryEntry>& registries() const { return registries_; }

 private:
  const RegistryEntry* match(const ImageReference& ref) const;

  std::vector<std::string> searchRegistries_;
  std::vector<RegistryEntry> registries_;
  std::map<std::string, std::string> aliases_;
};

}  // namespace monocri::oci
