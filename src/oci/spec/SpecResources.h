// Resource settings of a container: linux.resources (CPU, memory, swap, huge pages, unified
// cgroup v2 files), process.oomScoreAdj and process.rlimits, checked against what the host's
// cgroup setup and the daemon's own limits allow.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcStatus.h"
#include "oci/spec/HostLimits.h"

namespace monocri::oci {

// linux.resources without devices: cpu (shares 2-262144, quota -1 or >= 1000 us, period
// 1000-1000000 us, cpuset lists), memory (limit; swap = memory_swap_limit_in_bytes, or the limit
// itself so that a limited container does not swap, where the host accounts swap; dropped with a
// warning where it does not), hugepageLimits only when host.hugetlbLimitsUsable (else left out
// with exactly one warning saying why: kubelet sends them for every container), unified only on a
// v2-only host (FAILED_PRECONDITION elsewhere). Zero means unset, as in the CRI.
grpc::Status buildResources(const runtime::v1::LinuxContainerResources& resources,
                            const HostLimits& host, nlohmann::json& out,
                            std::vector<std::string>& warnings);

// oom_score_adj within -1000..1000, raised to `floor` with a warning (lowering it below the
// daemon's own needs CAP_SYS_RESOURCE).
grpc::Status resolveOomScoreAdj(int64_t asked, int floor, int& out,
                                std::vector<std::string>& warnings);

// process.rlimits from monocri's defaults; a hard limit above the host's ceiling is lowered to it
// (and the soft limit with it), with a warning.
grpc::Status buildRlimits(
    const std::vector<std::pair<int, std::pair<uint64_t, uint64_t>>>& defaults,
    const HostLimits& host, nlohmann::json& out, std::vector<std::string>& warnings);

// "RLIMIT_NOFILE"; "" for a number that names no limit.
std::string rlimitName(int resource);

}  // namespace monocri::oci
