// The daemon and its image worker speak gRPC over a socketpair; the messages are in
// imageworker.proto (lite). One place names the methods for both sides.
#pragma once

#include <string>
#include <string_view>

namespace monocri::oci {

inline constexpr std::string_view kImageWorkerService = "/monocri.imageworker.v1.ImageWorker/";

// "/monocri.imageworker.v1.ImageWorker/<name>"
inline std::string imageWorkerMethod(std::string_view name) {
  return std::string(kImageWorkerService) + std::string(name);
}

}  // namespace monocri::oci
