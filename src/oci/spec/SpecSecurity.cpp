#include "oci/spec/SpecSecurity.h"

#include <fmt/format.h>

#include <algorithm>

#include "oci/spec/HostFile.h"
#include "oci/spec/Quoted.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;
using runtime::v1::SecurityProfile;

namespace {

constexpr size_t kProfilesFileLimit = 16 * 1024 * 1024;

// Whether `name` is listed as loaded ("name (enforce)" lines).
bool apparmorProfileLoaded(const std::string& profilesFile, const std::string& name) {
  std::string text;
  if (readHostFile(profilesFile, kProfilesFileLimit, text) != 0) return false;
  const std::string prefix = name + " (";
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (std::string_view(text).substr(start, end - start).starts_with(prefix)) return true;
    start = end + 1;
  }
  return false;
}

Status pathList(const google::protobuf::RepeatedPtrField<std::string>& paths, const char* field,
                const std::vector<std::string>& defaults, Json& out) {
  out = Json::array();
  if (paths.empty()) {
    for (const auto& path : defaults)
      out.push_back(path);
    return Status::ok();
  }
  for (const auto& path : paths) {
    if (!path.starts_with('/') || path.find('\0') != std::string::npos) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("{} entry {} is not an absolute path", field, quotedValue(path)));
    }
    out.push_back(path);
  }
  return Status::ok();
}

}  // namespace

const std::vector<std::string>& defaultMaskedPaths() {
  static const std::vector<std::string> paths = {
      "/proc/acpi",          "/proc/asound",
      "/proc/kcore",         "/proc/keys",
      "/proc/latency_stats", "/proc/timer_list",
      "/proc/timer_stats",   "/proc/sched_debug",
      "/sys/firmware",       "/sys/devices/virtual/powercap",
      "/proc/scsi"};
  return paths;
}

const std::vector<std::string>& defaultReadonlyPaths() {
  static const std::vector<std::string> paths = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                                 "/proc/sysrq-trigger"};
  return paths;
}

Status resolveApparmor(const runtime::v1::LinuxContainerSecurityContext& context,
                       bool apparmorEnabled, const std::string& profilesFile, std::string& profile,
                       std::vector<std::string>& warnings) {
  profile.clear();
  bool given = true;
  SecurityProfile::ProfileType type = SecurityProfile::Unconfined;
  std::string name;
  if (context.has_apparmor()) {
    type = context.apparmor().profile_type();
    name = context.apparmor().localhost_ref();
    if (type != SecurityProfile::Localhost && !name.empty()) {
      return Status(StatusCode::kInvalidArgument,
                    "apparmor: localhost_ref is only valid with profile_type Localhost");
    }
    if (name.starts_with("localhost/")) name.erase(0, 10);
  } else {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // the older form kubelet may send
    const std::string& old = context.apparmor_profile();
#pragma GCC diagnostic pop
    if (old.empty()) {
      given = false;
    } else if (old == "runtime/default") {
      type = SecurityProfile::RuntimeDefault;
    } else if (old == "unconfined") {
      type = SecurityProfile::Unconfined;
    } else if (old.starts_with("localhost/")) {
      type = SecurityProfile::Localhost;
      name = old.substr(10);
    } else {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("apparmor_profile {} is none of runtime/default, unconfined, "
                                "localhost/<name>",
                                quotedValue(old)));
    }
  }
  if (type != SecurityProfile::Unconfined && type != SecurityProfile::RuntimeDefault &&
      type != SecurityProfile::Localhost) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("apparmor: unknown profile_type {}", static_cast<int>(type)));
  }
  if (type == SecurityProfile::Localhost) {
    if (name.empty() || name.find_first_of(std::string_view("\0\n", 2)) != std::string::npos) {
      return Status(
          StatusCode::kInvalidArgument,
          fmt::format("apparmor: Localhost profile name {} is not valid", quotedValue(name)));
    }
    if (!apparmorEnabled) {
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("AppArmor profile {} was asked for, but AppArmor is not enabled "
                                "on this host",
                                quotedValue(name)));
    }
    if (!apparmorProfileLoaded(profilesFile, name)) {
      return Status(StatusCode::kNotFound,
                    fmt::format("AppArmor profile {} is not loaded", quotedValue(name)));
    }
    profile = name;
    return Status::ok();
  }
  if (apparmorEnabled && given && type == SecurityProfile::RuntimeDefault &&
      !context.privileged()) {
    warnings.push_back(
        "AppArmor's runtime default profile was asked for, but monocri ships none: the container "
        "runs without an AppArmor profile");
  }
  return Status::ok();
}

Status checkSelinux(const runtime::v1::LinuxContainerSecurityContext& context,
                    bool selinuxEnabled) {
  if (!selinuxEnabled || !context.has_selinux_options()) return Status::ok();
  const auto& options = context.selinux_options();
  if (options.user().empty() && options.role().empty() && options.type().empty() &&
      options.level().empty()) {
    return Status::ok();
  }
  return Status(StatusCode::kFailedPrecondition,
                "SELinux options were given, but monocri cannot label containers on this "
                "SELinux-enabled host");
}

Status buildMaskedPaths(const runtime::v1::LinuxContainerSecurityContext& context, Json& masked,
                        Json& readonly) {
  if (context.privileged()) {
    masked = Json::array();
    readonly = Json::array();
    return Status::ok();
  }
  if (auto status = pathList(context.masked_paths(), "masked_paths", defaultMaskedPaths(), masked);
      !status.isOk()) {
    return status;
  }
  return pathList(context.readonly_paths(), "readonly_paths", defaultReadonlyPaths(), readonly);
}

}  // namespace monocri::oci
