// Device nodes of a container (linux.devices) and its device cgroup rules
// (linux.resources.devices): kubelet's devices, and every host device for privileged containers.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcStatus.h"

namespace monocri::oci {

struct DevicesResult {
  nlohmann::json devices = nlohmann::json::array();      // linux.devices
  nlohmann::json cgroupRules = nlohmann::json::array();  // linux.resources.devices
};

// Each device's host_path is stat'ed (symlinks resolved: type, major, minor, mode, owner); a
// directory brings every device under it. container_path defaults to host_path; permissions
// (default "rwm") may only hold r, w and m. A missing host_path is NOT_FOUND, one that is no
// device INVALID_ARGUMENT. Rules: deny everything, then allow the devices every container has
// (null, zero, full, random, urandom, tty, console, ptmx, the pts) and kubelet's.
// Privileged: every device under `hostDevRoot` as well (pts, shm, mqueue, fd, console and fifos
// aside, as containerd walks /dev), and one rule allowing all.
grpc::Status buildDevices(const google::protobuf::RepeatedPtrField<runtime::v1::Device>& devices,
                          bool privileged, const std::string& hostDevRoot, DevicesResult& out);

}  // namespace monocri::oci
