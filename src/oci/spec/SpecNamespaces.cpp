#include "oci/spec/SpecNamespaces.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "oci/spec/Quoted.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;
using runtime::v1::NamespaceMode;

namespace {

Json joined(const char* type, const std::string& path) {
  return Json{{"type", type}, {"path", path}};
}

Json fresh(const char* type) {
  return Json{{"type", type}};
}

Status needPinned(const char* what, const std::string& path, Json& out, const char* type) {
  if (path.empty()) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("{} namespace mode POD, but the pod has no {} namespace of its own",
                              what, what));
  }
  if (!path.starts_with('/')) {
    return Status(
        StatusCode::kInvalidArgument,
        fmt::format("the pod's {} namespace path {} is not absolute", what, quotedValue(path)));
  }
  out = joined(type, path);
  return Status::ok();
}

// runc's dotted form of a sysctl written with slashes ("net/ipv4/ip_forward").
std::string dotted(const std::string& name) {
  const size_t first = name.find_first_of("./");
  if (first == std::string::npos || name[first] == '.') return name;
  std::string out = name;
  for (char& c : out) {
    if (c == '/') {
      c = '.';
    } else if (c == '.') {
      c = '/';
    }
  }
  return out;
}

constexpr std::array<std::string_view, 8> kIpcSysctls = {
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
    "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"};

}  // namespace

Status buildNamespaces(const NamespacesRequest& request, NamespacesResult& out) {
  out = NamespacesResult{};
  runtime::v1::NamespaceOption fromPod;
  if (request.options == nullptr) {
    fromPod.set_network(request.podHostNetwork ? runtime::v1::NODE : runtime::v1::POD);
    fromPod.set_ipc(request.podHostIpc ? runtime::v1::NODE : runtime::v1::POD);
    fromPod.set_pid(request.podHostPid          ? runtime::v1::NODE
                    : request.pidnsPath.empty() ? runtime::v1::CONTAINER
                                                : runtime::v1::POD);
  }
  const auto& options = request.options != nullptr ? *request.options : fromPod;

  if (options.has_userns_options() && options.userns_options().mode() != runtime::v1::NODE) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("user namespaces (mode {}) are not supported by monocri",
                              runtime::v1::NamespaceMode_Name(options.userns_options().mode())));
  }

  Json pid, network, ipc, uts;
  switch (options.pid()) {
    case runtime::v1::NODE:
      out.hostPid = true;
      break;
    case runtime::v1::POD:
      if (auto status = needPinned("pid", request.pidnsPath, pid, "pid"); !status.isOk()) {
        return status;
      }
      break;
    case runtime::v1::CONTAINER:
      pid = fresh("pid");
      break;
    case runtime::v1::TARGET:
      if (request.targetPidnsPath.empty()) {
        return Status(StatusCode::kUnimplemented,
                      fmt::format("pid namespace mode TARGET (target_id {}): sharing another "
                                  "container's pid namespace is not implemented",
                                  quotedValue(options.target_id())));
      }
      if (!request.targetPidnsPath.starts_with('/')) {
        return Status(StatusCode::kInvalidArgument,
                      fmt::format("target pid namespace path {} is not absolute",
                                  quotedValue(request.targetPidnsPath)));
      }
      pid = joined("pid", request.targetPidnsPath);
      break;
    default:
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("unknown pid namespace mode {}", static_cast<int>(options.pid())));
  }

  switch (options.network()) {
    case runtime::v1::NODE:
      out.hostNetwork = true;
      break;
    case runtime::v1::POD:
      if (auto status = needPinned("network", request.netnsPath, network, "network");
          !status.isOk()) {
        return status;
      }
      break;
    default:
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("network namespace mode {} is not supported: a container uses "
                                "its pod's network (POD) or the host's (NODE)",
                                runtime::v1::NamespaceMode_IsValid(options.network())
                                    ? runtime::v1::NamespaceMode_Name(options.network())
                                    : std::to_string(static_cast<int>(options.network()))));
  }

  switch (options.ipc()) {
    case runtime::v1::NODE:
      out.hostIpc = true;
      break;
    case runtime::v1::POD:
      if (auto status = needPinned("ipc", request.ipcnsPath, ipc, "ipc"); !status.isOk()) {
        return status;
      }
      break;
    case runtime::v1::CONTAINER:
      ipc = fresh("ipc");
      break;
    default:
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("ipc namespace mode {} is not supported",
                                runtime::v1::NamespaceMode_IsValid(options.ipc())
                                    ? runtime::v1::NamespaceMode_Name(options.ipc())
                                    : std::to_string(static_cast<int>(options.ipc()))));
  }

  // The hostname goes with the network: a host-network pod sees the node's.
  if (!out.hostNetwork) {
    if (!request.utsnsPath.empty()) {
      if (!request.utsnsPath.starts_with('/')) {
        return Status(StatusCode::kInvalidArgument,
                      fmt::format("the pod's uts namespace path {} is not absolute",
                                  quotedValue(request.utsnsPath)));
      }
      uts = joined("uts", request.utsnsPath);
    } else {
      uts = fresh("uts");
    }
    out.privateUts = true;
  }

  for (Json* ns : {&pid, &network, &ipc, &uts}) {
    if (!ns->is_null()) out.namespaces.push_back(std::move(*ns));
  }
  out.namespaces.push_back(fresh("mount"));
  if (request.cgroupV2Only && !request.privileged) out.namespaces.push_back(fresh("cgroup"));
  return Status::ok();
}

Status buildSysctls(const google::protobuf::Map<std::string, std::string>& sysctls,
                    const NamespacesResult& namespaces, Json& out) {
  out = Json::object();
  // Sorted, so that the first error named is the same from one call to the next.
  std::vector<std::pair<std::string, std::string>> sorted(sysctls.begin(), sysctls.end());
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [name, value] : sorted) {
    const bool wellFormed =
        !name.empty() && name.size() <= 256 && std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '/' || c == '_' ||
                 c == '-';
        });
    if (!wellFormed) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("sysctl {} is not a sysctl name", quotedValue(name)));
    }
    if (value.find_first_of(std::string_view("\0\n", 2)) != std::string::npos) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("sysctl {} value holds a newline or NUL", name));
    }
    const std::string key = dotted(name);
    const bool ipcSysctl =
        std::find(kIpcSysctls.begin(), kIpcSysctls.end(), key) != kIpcSysctls.end() ||
        key.starts_with("fs.mqueue.");
    if (ipcSysctl) {
      if (namespaces.hostIpc) {
        return Status(StatusCode::kInvalidArgument,
                      fmt::format("sysctl {} would change the host: the pod uses the host's IPC "
                                  "namespace",
                                  name));
      }
    } else if (key.starts_with("net.")) {
      if (namespaces.hostNetwork) {
        return Status(StatusCode::kInvalidArgument,
                      fmt::format("sysctl {} would change the host: the pod uses the host's "
                                  "network",
                                  name));
      }
    } else if (key == "kernel.domainname" && namespaces.privateUts) {
      // namespaced by UTS, with no field of its own in the OCI spec
    } else {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("sysctl {} is not namespaced: setting it in a container would "
                                "change the host",
                                name));
    }
    out[name] = value;
  }
  return Status::ok();
}

}  // namespace monocri::oci
