#include "oci/spec/Capabilities.h"

#include <fmt/format.h>
#include <sys/capability.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "oci/spec/Quoted.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;

namespace {

constexpr int kMaskBits = 64;

bool isAll(std::string_view name) {
  return name.size() == 3 && std::toupper(static_cast<unsigned char>(name[0])) == 'A' &&
         std::toupper(static_cast<unsigned char>(name[1])) == 'L' &&
         std::toupper(static_cast<unsigned char>(name[2])) == 'L';
}

// Parses a list of names (without "ALL") into a mask, naming the first unknown one.
Status parseNames(const google::protobuf::RepeatedPtrField<std::string>& names, const char* field,
                  CapabilityMask& mask) {
  mask = 0;
  for (const auto& name : names) {
    if (isAll(name)) continue;
    const int cap = capabilityFromName(name);
    if (cap < 0) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("{}: unknown capability {}", field, quotedValue(name)));
    }
    mask |= CapabilityMask{1} << cap;
  }
  return Status::ok();
}

bool containsAll(const google::protobuf::RepeatedPtrField<std::string>& names) {
  return std::any_of(names.begin(), names.end(), [](const std::string& n) { return isAll(n); });
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) {
    if (!text.empty()) text += ", ";
    text += name;
  }
  return text;
}

}  // namespace

CapabilityMask defaultCapabilities() {
  CapabilityMask mask = 0;
  for (int cap : {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FSETID, CAP_FOWNER, CAP_MKNOD, CAP_NET_RAW,
                  CAP_SETGID, CAP_SETUID, CAP_SETFCAP, CAP_SETPCAP, CAP_NET_BIND_SERVICE,
                  CAP_SYS_CHROOT, CAP_KILL, CAP_AUDIT_WRITE}) {
    mask |= CapabilityMask{1} << cap;
  }
  return mask;
}

CapabilityMask allKernelCapabilities() {
  const unsigned bits = std::min<unsigned>(cap_max_bits(), kMaskBits);
  return bits == kMaskBits ? ~CapabilityMask{0} : (CapabilityMask{1} << bits) - 1;
}

int capabilityFromName(std::string_view name) {
  std::string lower;
  for (char c : name)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  std::string_view bare = lower;
  if (bare.starts_with("cap_")) bare.remove_prefix(4);
  // cap_from_name also takes numbers and comma lists: only plain names are names here.
  if (bare.empty() || bare.size() > 64 || !std::isalpha(static_cast<unsigned char>(bare[0])) ||
      !std::all_of(bare.begin(), bare.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
      })) {
    return -1;
  }
  const std::string full = "cap_" + std::string(bare);
  cap_value_t value = -1;
  if (cap_from_name(full.c_str(), &value) != 0 || value < 0 || value >= kMaskBits) return -1;
  return value;
}

namespace {

std::string nameFromLibcap(int capability) {
  char* name = cap_to_name(static_cast<cap_value_t>(capability));
  if (name == nullptr) return "";
  std::string upper;
  for (const char* p = name; *p != '\0'; ++p)
    upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(*p))));
  cap_free(name);
  // libcap prints a number for a capability it cannot name.
  return upper.starts_with("CAP_") ? upper : "";
}

}  // namespace

std::string capabilityName(int capability) {
  if (capability < 0 || capability >= kMaskBits) return "";
  // Asked for every capability of every container spec: libcap's answers, kept.
  static const auto names = [] {
    std::array<std::string, kMaskBits> table;
    for (int cap = 0; cap < kMaskBits; ++cap)
      table[static_cast<size_t>(cap)] = nameFromLibcap(cap);
    return table;
  }();
  return names[static_cast<size_t>(capability)];
}

std::vector<std::string> capabilityNames(CapabilityMask mask) {
  std::vector<std::string> names;
  for (int cap = 0; cap < kMaskBits; ++cap) {
    if (!hasCapability(mask, cap)) continue;
    if (std::string name = capabilityName(cap); !name.empty()) names.push_back(std::move(name));
  }
  return names;
}

bool hasCapability(CapabilityMask mask, int capability) {
  return capability >= 0 && capability < kMaskBits && ((mask >> capability) & 1) != 0;
}

Status resolveCapabilities(const runtime::v1::LinuxContainerSecurityContext& context,
                           CapabilityMask hostCapabilities, CapabilitySets& out,
                           std::vector<std::string>& warnings) {
  out = CapabilitySets{};
  const auto& request = context.capabilities();
  CapabilityMask added = 0, dropped = 0, ambient = 0;
  if (auto status = parseNames(request.add_capabilities(), "add_capabilities", added);
      !status.isOk()) {
    return status;
  }
  if (auto status = parseNames(request.drop_capabilities(), "drop_capabilities", dropped);
      !status.isOk()) {
    return status;
  }
  if (containsAll(request.add_ambient_capabilities())) {
    return Status(StatusCode::kInvalidArgument,
                  "add_ambient_capabilities: ALL is not accepted, name each capability");
  }
  if (auto status =
          parseNames(request.add_ambient_capabilities(), "add_ambient_capabilities", ambient);
      !status.isOk()) {
    return status;
  }

  const CapabilityMask all = allKernelCapabilities();
  CapabilityMask wanted = 0;
  bool everything = false;  // privileged or ALL: the host's set stands for all
  if (context.privileged()) {
    wanted = all;
    everything = true;
  } else {
    wanted = defaultCapabilities();
    if (containsAll(request.add_capabilities())) {
      wanted = all;
      everything = true;
    }
    if (containsAll(request.drop_capabilities())) {
      wanted = 0;
      everything = false;
    }
    wanted |= added;
    wanted &= ~dropped;
    if (dropped != 0) everything = false;
  }

  const CapabilityMask missing = wanted & ~hostCapabilities;
  const CapabilityMask granted = wanted & hostCapabilities;
  if (missing != 0) {
    const auto names = capabilityNames(missing);
    if (everything) {
      warnings.push_back(fmt::format(
          "all capabilities were asked for, but monocri itself lacks {}: the container gets the "
          "{} capabilities monocri holds",
          joined(names), capabilityNames(granted).size()));
    } else {
      warnings.push_back(
          fmt::format("monocri itself lacks {}, so the container cannot have {}; left out",
                      joined(names), names.size() == 1 ? "it" : "them"));
    }
  }

  const CapabilityMask outsideSet = ambient & ~wanted;
  if (outsideSet != 0) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("add_ambient_capabilities: {} not in the container's capabilities "
                              "(add them with add_capabilities too)",
                              joined(capabilityNames(outsideSet))));
  }
  out.bounding = out.effective = out.permitted = granted;
  out.ambient = out.inheritable = ambient & granted;
  return Status::ok();
}

nlohmann::json capabilitiesJson(const CapabilitySets& sets) {
  return nlohmann::json{{"bounding", capabilityNames(sets.bounding)},
                        {"effective", capabilityNames(sets.effective)},
                        {"permitted", capabilityNames(sets.permitted)},
                        {"inheritable", capabilityNames(sets.inheritable)},
                        {"ambient", capabilityNames(sets.ambient)}};
}

}  // namespace monocri::oci
