#include "oci/spec/ContainerSpec.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "oci/spec/Capabilities.h"
#include "oci/spec/ImageUser.h"
#include "oci/spec/ProcessArgs.h"
#include "oci/spec/Quoted.h"
#include "oci/spec/SeccompProfile.h"
#include "oci/spec/SpecDevices.h"
#include "oci/spec/SpecMounts.h"
#include "oci/spec/SpecNamespaces.h"
#include "oci/spec/SpecResources.h"
#include "oci/spec/SpecSecurity.h"
#include "oci/spec/StopSignal.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;

namespace {

constexpr uint32_t kUmask = 0022;
constexpr size_t kMaxHostnameBytes = 64;  // HOST_NAME_MAX: sethostname refuses more
constexpr const char* kApparmorProfiles = "/sys/kernel/security/apparmor/profiles";

Status invalid(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}

bool isContainerId(const std::string& id) {
  return id.size() == 64 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string nodeHostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

Status checkCgroupParent(const std::string& parent) {
  if (parent.empty()) return Status::ok();
  if (parent.find('\0') != std::string::npos || parent.size() > PATH_MAX) {
    return invalid(fmt::format("cgroup_parent {} is not a path", quotedValue(parent)));
  }
  for (size_t start = 0; start <= parent.size();) {
    size_t end = parent.find('/', start);
    if (end == std::string::npos) end = parent.size();
    if (std::string_view(parent).substr(start, end - start) == "..") {
      return invalid(fmt::format("cgroup_parent {} climbs with ..", quotedValue(parent)));
    }
    start = end + 1;
  }
  std::string_view trimmed = parent;
  while (trimmed.size() > 1 && trimmed.ends_with('/'))
    trimmed.remove_suffix(1);
  const std::string_view base = trimmed.substr(trimmed.rfind('/') + 1);
  if (base.ends_with(".slice")) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("cgroup_parent {} is a systemd slice, but monocri drives the "
                              "cgroupfs manager: set kubelet's cgroupDriver to cgroupfs",
                              quotedValue(parent)));
  }
  return Status::ok();
}

UserRequest userRequestOf(const runtime::v1::LinuxContainerSecurityContext& context,
                          std::string imageUser) {
  UserRequest request;
  if (context.has_run_as_user()) request.runAsUser = context.run_as_user().value();
  request.runAsUsername = context.run_as_username();
  if (context.has_run_as_group()) request.runAsGroup = context.run_as_group().value();
  request.supplementalGroups.assign(context.supplemental_groups().begin(),
                                    context.supplemental_groups().end());
  request.strictSupplementalGroups =
      context.supplemental_groups_policy() == runtime::v1::SupplementalGroupsPolicy::Strict;
  request.imageUser = std::move(imageUser);
  return request;
}

Json annotationsOf(const ContainerSpecInputs& in) {
  Json annotations = Json::object();
  for (const auto& [key, value] : in.config->annotations())
    annotations[key] = value;
  // containerd's names, so that tools reading them (NRI plugins, monitoring agents) work.
  const auto& metadata = in.podConfig->metadata();
  annotations["io.kubernetes.cri.container-type"] = "container";
  annotations["io.kubernetes.cri.sandbox-id"] = in.pod.podId;
  annotations["io.kubernetes.cri.sandbox-name"] = metadata.name();
  annotations["io.kubernetes.cri.sandbox-namespace"] = metadata.namespace_();
  annotations["io.kubernetes.cri.sandbox-uid"] = metadata.uid();
  annotations["io.kubernetes.cri.container-name"] = in.config->metadata().name();
  annotations["io.kubernetes.cri.image-name"] = in.imageName;
  if (!in.imageRef.empty()) annotations["io.monocri.image-ref"] = in.imageRef;
  return annotations;
}

}  // namespace

std::string containerCgroupsPath(const std::string& cgroupParent, const std::string& containerId) {
  if (cgroupParent.empty()) return "/monocri/monocri-" + containerId;
  std::string parent = cgroupParent;
  while (!parent.empty() && parent.back() == '/')
    parent.pop_back();
  return parent + "/monocri-" + containerId;
}

Status buildContainerSpec(const ContainerSpecInputs& in, ContainerSpec& out) {
  out = ContainerSpec{};
  if (in.config == nullptr || in.podConfig == nullptr) {
    return invalid("the container config and the pod config are both needed");
  }
  if (!isContainerId(in.containerId)) {
    return invalid(
        fmt::format("container id {} is not 64 lowercase hex digits", quotedValue(in.containerId)));
  }
  if (!in.rootfsPath.starts_with('/')) {
    return invalid(fmt::format("rootfs path {} is not absolute", quotedValue(in.rootfsPath)));
  }
  const auto& config = *in.config;
  const auto& podConfig = *in.podConfig;
  if (config.metadata().name().empty()) return invalid("the container config has no name");
  const auto& context = config.linux().security_context();
  if (context.privileged() && !podConfig.linux().security_context().privileged()) {
    return invalid(fmt::format("container {} is privileged, but its pod is not",
                               quotedValue(config.metadata().name())));
  }
  if (auto status = checkCgroupParent(in.pod.cgroupParent); !status.isOk()) return status;
  std::vector<std::string>& warnings = out.warnings;

  CapabilitySets capabilities;
  if (auto status = resolveCapabilities(context, in.host.capabilities, capabilities, warnings);
      !status.isOk()) {
    return status;
  }

  std::string imageUser;
  if (auto status = imageString(in.imageConfig, "User", imageUser); !status.isOk()) return status;
  ResolvedUser user;
  if (auto status = resolveUser(userRequestOf(context, std::move(imageUser)), in.rootfsPath, user);
      !status.isOk()) {
    return status;
  }

  NamespacesRequest namespaceRequest;
  namespaceRequest.options =
      context.has_namespace_options() ? &context.namespace_options() : nullptr;
  namespaceRequest.netnsPath = in.pod.netnsPath;
  namespaceRequest.ipcnsPath = in.pod.ipcnsPath;
  namespaceRequest.utsnsPath = in.pod.utsnsPath;
  namespaceRequest.pidnsPath = in.pod.pidnsPath;
  namespaceRequest.podHostNetwork = in.pod.hostNetwork;
  namespaceRequest.podHostIpc = in.pod.hostIpc;
  namespaceRequest.podHostPid = in.pod.hostPid;
  namespaceRequest.targetPidnsPath = in.targetPidnsPath;
  namespaceRequest.cgroupV2Only = in.host.cgroupV2Only;
  namespaceRequest.privileged = context.privileged();
  NamespacesResult namespaces;
  if (auto status = buildNamespaces(namespaceRequest, namespaces); !status.isOk()) return status;

  std::string hostname = !in.pod.hostname.empty() ? in.pod.hostname : podConfig.hostname();
  if (hostname.empty()) hostname = nodeHostname();
  if (hostname.size() > kMaxHostnameBytes ||
      hostname.find_first_of(std::string_view("\0\n/ ", 4)) != std::string::npos) {
    return invalid(fmt::format("hostname {} is not a host name of at most {} bytes",
                               quotedValue(hostname), kMaxHostnameBytes));
  }

  Json process = Json::object();
  std::vector<std::string> args, env;
  std::string cwd;
  if (auto status = buildProcessArgs(config, in.imageConfig, args); !status.isOk()) return status;
  if (auto status = buildEnv(config, in.imageConfig, hostname, env); !status.isOk()) return status;
  if (auto status = resolveWorkingDir(config, in.imageConfig, cwd); !status.isOk()) return status;
  process["terminal"] = config.tty();
  process["args"] = args;
  process["env"] = env;
  process["cwd"] = cwd;
  process["user"] = Json{{"uid", user.uid},
                         {"gid", user.gid},
                         {"umask", kUmask},
                         {"additionalGids", user.additionalGids}};
  process["capabilities"] = capabilitiesJson(capabilities);
  process["noNewPrivileges"] = context.no_new_privs();
  Json rlimits;
  if (auto status = buildRlimits(in.defaultRlimits, in.host, rlimits, warnings); !status.isOk()) {
    return status;
  }
  if (!rlimits.empty()) process["rlimits"] = std::move(rlimits);
  if (config.linux().has_resources()) {
    int oomScoreAdj = 0;
    if (auto status = resolveOomScoreAdj(config.linux().resources().oom_score_adj(),
                                         in.host.oomScoreAdjFloor, oomScoreAdj, warnings);
        !status.isOk()) {
      return status;
    }
    process["oomScoreAdj"] = oomScoreAdj;
  }
  std::string apparmorProfile;
  if (auto status = resolveApparmor(context, in.host.apparmorEnabled, kApparmorProfiles,
                                    apparmorProfile, warnings);
      !status.isOk()) {
    return status;
  }
  if (!apparmorProfile.empty()) process["apparmorProfile"] = apparmorProfile;
  if (auto status = checkSelinux(context, in.host.selinuxEnabled); !status.isOk()) return status;

  SeccompChoice seccompChoice;
  if (auto status = chooseSeccompProfile(context, in.seccompProfileRoot, seccompChoice);
      !status.isOk()) {
    return status;
  }
  Json seccomp;
  if (seccompChoice.kind == SeccompKind::kRuntimeDefault) {
    seccomp = runtimeDefaultSeccomp(capabilities.bounding);
  } else if (seccompChoice.kind == SeccompKind::kLocalhost) {
    if (auto status =
            loadSeccompProfile(seccompChoice.path, capabilities.bounding, seccomp, warnings);
        !status.isOk()) {
      return status;
    }
  }

  MountsRequest mountsRequest;
  mountsRequest.criMounts = &config.mounts();
  mountsRequest.hostnamePath = in.pod.hostnamePath;
  mountsRequest.hostsPath = in.pod.hostsPath;
  mountsRequest.resolvConfPath = in.pod.resolvConfPath;
  mountsRequest.shmPath = namespaces.hostIpc ? "" : in.pod.shmPath;
  mountsRequest.hostIpc = namespaces.hostIpc;
  mountsRequest.privileged = context.privileged();
  mountsRequest.readonlyRootfs = context.readonly_rootfs();
  mountsRequest.selinuxEnabled = in.host.selinuxEnabled;
  MountsResult mounts;
  if (auto status = buildMounts(mountsRequest, readOwnMountInfo, mounts); !status.isOk()) {
    return status;
  }

  if (!config.cdi_devices().empty()) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("CDI device {} was asked for, but monocri has no CDI support",
                              quotedValue(config.cdi_devices(0).name())));
  }
  DevicesResult devices;
  if (auto status = buildDevices(config.devices(), context.privileged(), "/dev", devices);
      !status.isOk()) {
    return status;
  }

  Json resources = Json::object();
  if (config.linux().has_resources()) {
    if (auto status = buildResources(config.linux().resources(), in.host, resources, warnings);
        !status.isOk()) {
      return status;
    }
  }
  resources["devices"] = std::move(devices.cgroupRules);

  Json sysctls;
  if (auto status = buildSysctls(podConfig.linux().sysctls(), namespaces, sysctls);
      !status.isOk()) {
    return status;
  }
  Json masked, readonly;
  if (auto status = buildMaskedPaths(context, masked, readonly); !status.isOk()) return status;

  Json linux = Json::object();
  linux["namespaces"] = std::move(namespaces.namespaces);
  linux["devices"] = std::move(devices.devices);
  linux["resources"] = std::move(resources);
  linux["cgroupsPath"] = containerCgroupsPath(in.pod.cgroupParent, in.containerId);
  if (!sysctls.empty()) linux["sysctl"] = std::move(sysctls);
  linux["maskedPaths"] = std::move(masked);
  linux["readonlyPaths"] = std::move(readonly);
  if (!seccomp.is_null()) linux["seccomp"] = std::move(seccomp);
  if (!mounts.rootfsPropagation.empty()) linux["rootfsPropagation"] = mounts.rootfsPropagation;

  Json spec = Json::object();
  spec["ociVersion"] = kOciSpecVersion;
  spec["process"] = std::move(process);
  spec["root"] = Json{{"path", in.rootfsPath}, {"readonly", context.readonly_rootfs()}};
  // runc sets a hostname only in a UTS namespace of the container's (the pod's, shared: every
  // container sets the same name). containerd sets it in the sandbox's spec alone.
  if (namespaces.privateUts) spec["hostname"] = hostname;
  spec["mounts"] = std::move(mounts.mounts);
  spec["annotations"] = annotationsOf(in);
  spec["linux"] = std::move(linux);

  // Host paths (symlink targets, device names) may not be UTF-8: dump() would throw later.
  try {
    (void)spec.dump();
  } catch (const Json::exception&) {
    return invalid(
        "the spec would hold a string that is not UTF-8 (a mount source, device or "
        "annotation)");
  }

  out.config = std::move(spec);
  out.uid = user.uid;
  out.gid = user.gid;
  out.additionalGids = user.additionalGids;
  out.username = user.username;
  out.stopSignal = resolveStopSignal(config.stop_signal(), in.imageConfig, warnings);
  return Status::ok();
}

}  // namespace monocri::oci
