// Image references as kubelet and users write them: "busybox", "quay.io/x/y:1.2",
// "registry:5000/app@sha256:...", normalized as Docker and containerd do.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "oci/image/Digest.h"

namespace monocri::oci {

inline constexpr std::string_view kDockerHub = "docker.io";

struct ImageReference {
  std::string domain;  // "docker.io", "127.0.0.1:5000"; empty while a short name is unresolved
  std::string path;    // "library/busybox"
  std::string tag;     // "latest" when neither tag nor digest was written
  std::optional<Digest> digest;
  bool shortName = false;  // written without a registry: registries.conf may decide where
  std::string shortPath;   // for a short name, the path as written ("busybox")

  std::string name() const;    // "docker.io/library/busybox"
  std::string string() const;  // name, ":tag" if any, "@digest" if any
  // What to ask the registry for: the digest if there is one, else the tag.
  std::string manifestReference() const;
  // The same image at another registry (a short name resolved, a mirror).
  ImageReference at(std::string domain, std::string path) const;
};

// Parses and normalizes `text`. A short name gets domain docker.io (with "library/" for one
// path component) and shortName = true; the caller may resolve it elsewhere. Returns nullopt
// with `why` for anything the reference grammar does not allow.
std::optional<ImageReference> parseImageReference(std::string_view text,
                                                  std::string* why = nullptr);

}  // namespace monocri::oci
