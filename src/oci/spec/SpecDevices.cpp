#include "oci/spec/SpecDevices.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "oci/spec/Quoted.h"
#include "oci/spec/SpecMounts.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;

namespace {

constexpr int kMaxWalkDepth = 8;
constexpr size_t kMaxWalkedDevices = 16384;

struct DeviceNode {
  std::string path;  // in the container
  char type = 'c';
  uint32_t major = 0, minor = 0;
  uint32_t mode = 0, uid = 0, gid = 0;
};

std::optional<DeviceNode> deviceFromStat(const struct stat& st, const std::string& path) {
  DeviceNode node;
  if (S_ISCHR(st.st_mode)) {
    node.type = 'c';
  } else if (S_ISBLK(st.st_mode)) {
    node.type = 'b';
  } else if (S_ISFIFO(st.st_mode)) {
    node.type = 'p';
  } else {
    return std::nullopt;
  }
  node.path = path;
  node.major = major(st.st_rdev);
  node.minor = minor(st.st_rdev);
  node.mode = st.st_mode & 07777;
  node.uid = st.st_uid;
  node.gid = st.st_gid;
  return node;
}

// Devices under `dir`, mapped under `containerDir`. Entries that vanish meanwhile are skipped.
void walkDevices(const std::string& dir, const std::string& containerDir, int depth,
                 bool hostDevTree, std::vector<DeviceNode>& out) {
  if (depth > kMaxWalkDepth) return;
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) return;
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(handle)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(handle);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    if (out.size() >= kMaxWalkedDevices) return;
    const std::string path = dir + "/" + name;
    const std::string containerPath = containerDir + "/" + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      // Filesystems of their own in a container, or runtime bookkeeping of LXC and udev.
      static const std::set<std::string_view> kSkippedDirs = {
          "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"};
      if (hostDevTree && kSkippedDirs.count(name) != 0) continue;
      walkDevices(path, containerPath, depth + 1, hostDevTree, out);
      continue;
    }
    if (hostDevTree && name == "console") continue;
    auto node = deviceFromStat(st, containerPath);
    if (!node || (hostDevTree && node->type == 'p')) continue;
    out.push_back(std::move(*node));
  }
}

Json deviceJson(const DeviceNode& node) {
  return Json{{"path", node.path},     {"type", std::string(1, node.type)},
              {"major", node.major},   {"minor", node.minor},
              {"fileMode", node.mode}, {"uid", node.uid},
              {"gid", node.gid}};
}

Json allowRule(char type, int64_t major, std::optional<int64_t> minor, const std::string& access) {
  Json rule{{"allow", true}, {"type", std::string(1, type)}, {"major", major}, {"access", access}};
  if (minor) rule["minor"] = *minor;
  return rule;
}

Status checkPermissions(const std::string& permissions, size_t index, std::string& out) {
  out = permissions.empty() ? "rwm" : permissions;
  std::set<char> seen;
  for (char c : out) {
    if ((c != 'r' && c != 'w' && c != 'm') || !seen.insert(c).second) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("devices[{}].permissions {} may only hold r, w and m, once each",
                                index, quotedValue(permissions)));
    }
  }
  return Status::ok();
}

}  // namespace

Status buildDevices(const google::protobuf::RepeatedPtrField<runtime::v1::Device>& devices,
                    bool privileged, const std::string& hostDevRoot, DevicesResult& out) {
  out = DevicesResult{};
  std::vector<DeviceNode> nodes;
  std::vector<std::string> access;  // per node, for the cgroup rule
  for (int i = 0; i < devices.size(); ++i) {
    const auto& device = devices[i];
    const auto index = static_cast<size_t>(i);
    const std::string& hostPath = device.host_path();
    if (hostPath.empty() || !hostPath.starts_with('/') ||
        hostPath.find('\0') != std::string::npos || hostPath.size() > PATH_MAX) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("devices[{}].host_path {} is not an absolute path", index,
                                quotedValue(hostPath)));
    }
    std::string containerPath =
        device.container_path().empty() ? hostPath : device.container_path();
    if (!containerPath.starts_with('/') || containerPath.find('\0') != std::string::npos) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("devices[{}].container_path {} is not an absolute path", index,
                                quotedValue(containerPath)));
    }
    containerPath = cleanPath(containerPath);
    std::string permissions;
    if (auto status = checkPermissions(device.permissions(), index, permissions); !status.isOk()) {
      return status;
    }
    char resolved[PATH_MAX];
    if (::realpath(hostPath.c_str(), resolved) == nullptr) {
      const int error = errno;
      return Status(error == ENOENT || error == ENOTDIR ? StatusCode::kNotFound
                                                        : StatusCode::kFailedPrecondition,
                    fmt::format("devices[{}].host_path {}: {}", index, quotedValue(hostPath),
                                std::strerror(error)));
    }
    struct stat st {};
    if (::lstat(resolved, &st) != 0) {
      return Status(StatusCode::kNotFound,
                    fmt::format("devices[{}].host_path {}: {}", index, quotedValue(hostPath),
                                std::strerror(errno)));
    }
    if (S_ISDIR(st.st_mode)) {
      walkDevices(resolved, containerPath == "/" ? "" : containerPath, 0, false, nodes);
    } else if (auto node = deviceFromStat(st, containerPath)) {
      nodes.push_back(std::move(*node));
    } else {
      return Status(
          StatusCode::kInvalidArgument,
          fmt::format("devices[{}].host_path {} is not a device", index, quotedValue(hostPath)));
    }
    access.resize(nodes.size(), permissions);
  }

  if (privileged) {
    std::set<std::string> taken;
    for (const auto& node : nodes)
      taken.insert(node.path);
    std::vector<DeviceNode> host;
    walkDevices(hostDevRoot, "/dev", 0, true, host);
    for (auto& node : host) {
      if (taken.insert(node.path).second) nodes.push_back(std::move(node));
    }
  }

  for (const auto& node : nodes)
    out.devices.push_back(deviceJson(node));

  if (privileged) {
    out.cgroupRules.push_back(Json{{"allow", true}, {"access", "rwm"}});
    return Status::ok();
  }
  out.cgroupRules.push_back(Json{{"allow", false}, {"access", "rwm"}});
  // What the OCI runtime spec makes every container have, and the pseudo-terminals.
  for (const auto& [major, minor] : std::vector<std::pair<int64_t, std::optional<int64_t>>>{
           {1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}, {136, std::nullopt}}) {
    out.cgroupRules.push_back(allowRule('c', major, minor, "rwm"));
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].type == 'p') continue;  // fifos are not policed by the device cgroup
    out.cgroupRules.push_back(allowRule(nodes[i].type, nodes[i].major, nodes[i].minor, access[i]));
  }
  return Status::ok();
}

}  // namespace monocri::oci
