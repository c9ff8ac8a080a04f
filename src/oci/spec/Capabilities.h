// Linux capabilities of a container: containerd's default set, kubelet's add/drop (with "ALL"),
// ambient capabilities, and privileged containers, clamped to what the daemon itself holds.
// Names are libcap's, so any capability this libcap knows is accepted, with or without "CAP_".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcStatus.h"

namespace monocri::oci {

// A set of capabilities, bit N = capability N.
using CapabilityMask = uint64_t;

// containerd's 14 defaults: CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID,
// SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE.
CapabilityMask defaultCapabilities();
// Every capability the running kernel knows (libcap's cap_max_bits()).
CapabilityMask allKernelCapabilities();

// "CAP_SYS_ADMIN", "sys_admin", "SYS_ADMIN" -> the number; -1 for anything libcap does not know
// (numbers and lists, which cap_from_name would take, are refused too).
int capabilityFromName(std::string_view name);
// "CAP_SYS_ADMIN"; "" for a number libcap cannot name.
std::string capabilityName(int capability);
// The names of a set, in capability number order.
std::vector<std::string> capabilityNames(CapabilityMask mask);
bool hasCapability(CapabilityMask mask, int capability);

struct CapabilitySets {
  CapabilityMask bounding = 0, effective = 0, permitted = 0, inheritable = 0, ambient = 0;
};

// The container's sets: privileged -> the host's; else the defaults with kubelet's adds and drops
// (an add or drop of "ALL" applies first, so "ALL" + drop X is everything but X), the ambient
// capabilities added to the inheritable and ambient sets (the kernel raises an ambient capability
// only when it is permitted and inheritable). Unknown names are INVALID_ARGUMENT; asks the host
// cannot grant are dropped with one warning.
grpc::Status resolveCapabilities(const runtime::v1::LinuxContainerSecurityContext& context,
                                 CapabilityMask hostCapabilities, CapabilitySets& out,
                                 std::vector<std::string>& warnings);

// process.capabilities: all five sets as arrays of names.
nlohmann::json capabilitiesJson(const CapabilitySets& sets);

}  // namespace monocri::oci
