// The container's LSM settings (AppArmor profile, SELinux options) and its masked and read-only
// /proc and /sys paths.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcStatus.h"

namespace monocri::oci {

// containerd's defaults, used when kubelet sends no list.
const std::vector<std::string>& defaultMaskedPaths();
const std::vector<std::string>& defaultReadonlyPaths();

// process.apparmorProfile ("" for none) from apparmor, or the older apparmor_profile string
// ("", "runtime/default", "unconfined", "localhost/<name>"). Without AppArmor on the host, a
// named (Localhost) profile is FAILED_PRECONDITION and the others mean none. With AppArmor, a
// Localhost profile must be loaded (NOT_FOUND otherwise); monocri ships no default profile, so
// RuntimeDefault runs without one and says so in a warning.
// `profilesFile` lists the loaded profiles (/sys/kernel/security/apparmor/profiles).
grpc::Status resolveApparmor(const runtime::v1::LinuxContainerSecurityContext& context,
                             bool apparmorEnabled, const std::string& profilesFile,
                             std::string& profile, std::vector<std::string>& warnings);

// SELinux options are ignored where SELinux is disabled (as CRI-O does); where it is enabled,
// monocri cannot label containers yet, so options are FAILED_PRECONDITION.
grpc::Status checkSelinux(const runtime::v1::LinuxContainerSecurityContext& context,
                          bool selinuxEnabled);

// linux.maskedPaths and linux.readonlyPaths: kubelet's lists when non-empty, else containerd's
// defaults; none for privileged containers. Each must be an absolute path.
grpc::Status buildMaskedPaths(const runtime::v1::LinuxContainerSecurityContext& context,
                              nlohmann::json& masked, nlohmann::json& readonly);

}  // namespace monocri::oci
