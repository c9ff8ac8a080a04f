// The gRPC paths of the CRI methods, as the services register them.
#pragma once

#include <string>
#include <string_view>

namespace monocri::cri {

inline constexpr std::string_view kRuntimeServicePath = "/runtime.v1.RuntimeService/";

// "/runtime.v1.RuntimeService/<method>"
inline std::string runtimeMethod(std::string_view method) {
  return std::string(kRuntimeServicePath) + std::string(method);
}

}  // namespace monocri::cri
