// A container as the OCI runtime reports it (`runc state ID`): the state document of the OCI
// runtime spec. The bytes come from another program: parsed as hostile input.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cri-bridge/grpc/GrpcStatus.h"

namespace monocri::oci {

// Largest state document read; a runtime that prints more is broken, not truncated.
inline constexpr size_t kMaxOciStateBytes = 1024 * 1024;
// Linux's PID_MAX_LIMIT: no pid is larger.
inline constexpr pid_t kMaxPid = 4 * 1024 * 1024;

struct OciState {
  std::string id;
  // "creating", "created", "running", "stopped" (the spec's), or "paused" (runc's, crun's).
  std::string status;
  pid_t pid = 0;  // > 0 when created or running; 0 once stopped
  std::string bundle;
  nlohmann::json annotations = nlohmann::json::object();  // string to string
};

// Fills `out` from a state document. An error (INTERNAL: the runtime broke its contract) names
// the field at fault.
grpc::Status parseOciState(std::string_view bytes, OciState& out);

}  // namespace monocri::oci
