#include "oci/spec/SpecMounts.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>

#include "oci/spec/HostFile.h"
#include "oci/spec/MountInfo.h"
#include "oci/spec/Quoted.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;

namespace {

constexpr size_t kMountInfoLimit = 64 * 1024 * 1024;

// Per-mount flags a bind mount may carry besides ro/rw and propagation.
constexpr std::array<std::string_view, 7> kExtraBindOptions = {
    "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "strictatime"};

Json mountJson(const std::string& destination, const std::string& type, const std::string& source,
               std::vector<std::string> options) {
  return Json{{"destination", destination},
              {"type", type},
              {"source", source},
              {"options", std::move(options)}};
}

size_t depthOf(const std::string& cleaned) {
  return static_cast<size_t>(std::count(cleaned.begin(), cleaned.end(), '/'));
}

// A bind mount waiting for the depth sort.
struct BindMount {
  std::string destination;
  Json json;
};

Status checkedPath(const std::string& path, const char* field, size_t index, std::string& out) {
  if (path.empty() || !path.starts_with('/') || path.find('\0') != std::string::npos ||
      path.size() > PATH_MAX) {
    return Status(
        StatusCode::kInvalidArgument,
        fmt::format("mounts[{}].{} {} is not an absolute path", index, field, quotedValue(path)));
  }
  out = cleanPath(path);
  return Status::ok();
}

// Creates a missing source directory (kubelet expects it) and resolves its symlinks.
Status prepareSource(const std::string& hostPath, size_t index, std::string& resolved) {
  struct stat st {};
  if (::stat(hostPath.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("mounts[{}].host_path {}: {}", index, quotedValue(hostPath),
                                std::strerror(errno)));
    }
    std::error_code error;
    std::filesystem::create_directories(hostPath, error);
    if (error) {
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("mounts[{}].host_path {} is missing and cannot be created: {}",
                                index, quotedValue(hostPath), error.message()));
    }
  }
  char buffer[PATH_MAX];
  if (::realpath(hostPath.c_str(), buffer) == nullptr) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("mounts[{}].host_path {}: {}", index, quotedValue(hostPath),
                              std::strerror(errno)));
  }
  resolved = buffer;
  return Status::ok();
}

bool hasOptionalField(const std::string& fields, std::string_view prefix) {
  size_t start = 0;
  while (start < fields.size()) {
    size_t end = fields.find(' ', start);
    if (end == std::string::npos) end = fields.size();
    if (std::string_view(fields).substr(start, end - start).starts_with(prefix)) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

std::string cleanPath(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(start, end - start);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = end + 1;
  }
  std::string cleaned;
  for (const auto& part : parts) {
    cleaned += '/';
    cleaned += part;
  }
  return cleaned.empty() ? "/" : cleaned;
}

std::string readOwnMountInfo() {
  std::string text;
  readHostFile("/proc/self/mountinfo", kMountInfoLimit, text);
  return text;
}

Status buildMounts(const MountsRequest& request, const MountInfoSource& mountInfo,
                   MountsResult& out) {
  out = MountsResult{};
  static const google::protobuf::RepeatedPtrField<runtime::v1::Mount> kNone;
  const auto& criMounts = request.criMounts != nullptr ? *request.criMounts : kNone;

  // Destinations kubelet mounts itself, cleaned: they replace ours.
  std::set<std::string> covered;
  std::vector<std::string> destinations;
  for (int i = 0; i < criMounts.size(); ++i) {
    std::string destination;
    if (auto status = checkedPath(criMounts[i].container_path(), "container_path",
                                  static_cast<size_t>(i), destination);
        !status.isOk()) {
      return status;
    }
    covered.insert(destination);
    destinations.push_back(std::move(destination));
  }
  const bool devCovered = covered.count("/dev") != 0;
  auto keep = [&](const std::string& destination) {
    if (covered.count(destination) != 0) return false;
    return !(devCovered && destination.starts_with("/dev/"));
  };

  const std::string sysMode = request.privileged ? "rw" : "ro";
  std::vector<Json> defaults = {
      mountJson("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      mountJson("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mountJson("/dev/pts", "devpts", "devpts",
                {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mountJson("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mountJson("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", sysMode}),
      mountJson("/sys/fs/cgroup", "cgroup", "cgroup",
                {"nosuid", "noexec", "nodev", "relatime", sysMode}),
  };
  if (!request.shmPath.empty()) {
    defaults.push_back(mountJson("/dev/shm", "bind", request.shmPath, {"rbind", "rprivate", "rw"}));
  } else if (request.hostIpc) {
    defaults.push_back(mountJson("/dev/shm", "bind", "/dev/shm", {"rbind", "rprivate", "rw"}));
  } else {
    defaults.push_back(mountJson("/dev/shm", "tmpfs", "shm",
                                 {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}));
  }
  for (auto& mount : defaults) {
    if (keep(mount["destination"].get<std::string>())) out.mounts.push_back(std::move(mount));
  }

  std::vector<BindMount> binds;
  const std::string podFileMode = request.readonlyRootfs ? "ro" : "rw";
  for (const auto& [destination, source] :
       {std::pair<std::string, std::string>{"/etc/hostname", request.hostnamePath},
        {"/etc/hosts", request.hostsPath},
        {"/etc/resolv.conf", request.resolvConfPath}}) {
    if (source.empty() || covered.count(destination) != 0) continue;
    binds.push_back(
        {destination, mountJson(destination, "bind", source, {"rbind", "rprivate", podFileMode})});
  }

  std::optional<std::vector<MountInfoEntry>> table;  // read once, when first needed
  for (int i = 0; i < criMounts.size(); ++i) {
    const auto& mount = criMounts[i];
    const auto index = static_cast<size_t>(i);
    if (!mount.image().image().empty()) {
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("mounts[{}]: image volume {} is not supported by monocri", index,
                                quotedValue(mount.image().image())));
    }
    if (mount.uidmappings_size() > 0 || mount.gidmappings_size() > 0) {
      return Status(
          StatusCode::kFailedPrecondition,
          fmt::format("mounts[{}]: id-mapped mounts are not supported by runc 1.1.5", index));
    }
    if (mount.recursive_read_only()) {
      if (!mount.readonly()) {
        return Status(StatusCode::kInvalidArgument,
                      fmt::format("mounts[{}]: recursive_read_only needs readonly", index));
      }
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("mounts[{}]: recursive read-only mounts are not supported by "
                                "runc 1.1.5",
                                index));
    }
    if (mount.selinux_relabel() && request.selinuxEnabled) {
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("mounts[{}]: selinux_relabel is not supported by monocri", index));
    }
    std::string hostPath;
    if (auto status = checkedPath(mount.host_path(), "host_path", index, hostPath);
        !status.isOk()) {
      return status;
    }
    std::string source;
    if (auto status = prepareSource(hostPath, index, source); !status.isOk()) return status;

    std::vector<std::string> options = {"rbind"};
    switch (mount.propagation()) {
      case runtime::v1::PROPAGATION_PRIVATE:
        options.push_back("rprivate");
        break;
      case runtime::v1::PROPAGATION_HOST_TO_CONTAINER:
      case runtime::v1::PROPAGATION_BIDIRECTIONAL: {
        const bool bidirectional = mount.propagation() == runtime::v1::PROPAGATION_BIDIRECTIONAL;
        if (!table) table = parseMountInfo(mountInfo ? mountInfo() : readOwnMountInfo());
        const MountInfoEntry* on = mountContaining(*table, source);
        const bool shared = on != nullptr && hasOptionalField(on->optionalFields, "shared:");
        const bool slave = on != nullptr && hasOptionalField(on->optionalFields, "master:");
        if (bidirectional ? !shared : !(shared || slave)) {
          return Status(
              StatusCode::kFailedPrecondition,
              fmt::format("mounts[{}]: {} propagation needs {} on a {} mount, but it is "
                          "on {}, a private one",
                          index, bidirectional ? "bidirectional" : "host-to-container",
                          quotedValue(source), bidirectional ? "shared" : "shared or slave",
                          on != nullptr ? quotedValue(on->mountPoint) : std::string("no mount")));
        }
        options.push_back(bidirectional ? "rshared" : "rslave");
        if (bidirectional) {
          out.rootfsPropagation = "rshared";
        } else if (out.rootfsPropagation != "rshared") {
          out.rootfsPropagation = "rslave";
        }
        break;
      }
      default:
        return Status(StatusCode::kInvalidArgument,
                      fmt::format("mounts[{}]: unknown propagation {}", index,
                                  static_cast<int>(mount.propagation())));
    }
    options.push_back(mount.readonly() ? "ro" : "rw");
    for (const auto& option : mount.mount_options()) {
      if (std::find(kExtraBindOptions.begin(), kExtraBindOptions.end(), option) ==
          kExtraBindOptions.end()) {
        return Status(StatusCode::kInvalidArgument,
                      fmt::format("mounts[{}]: mount option {} is not one of nosuid, nodev, "
                                  "noexec, noatime, nodiratime, relatime, strictatime",
                                  index, quotedValue(option)));
      }
      options.push_back(option);
    }
    binds.push_back(
        {destinations[index], mountJson(destinations[index], "bind", source, std::move(options))});
  }

  std::stable_sort(binds.begin(), binds.end(), [](const BindMount& a, const BindMount& b) {
    return depthOf(a.destination) < depthOf(b.destination);
  });
  for (auto& bind : binds)
    out.mounts.push_back(std::move(bind.json));
  return Status::ok();
}

}  // namespace monocri::oci
