#include "oci/runtime/ProcessSecurity.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>

#include "oci/runtime/RuntimeError.h"

namespace monocri::runtime {
namespace {

using nlohmann::json;

struct RlimitName {
  const char* name;
  int resource;
};

// Every RLIMIT_* the spec allows (runc's list, which is the kernel's).
constexpr RlimitName kRlimitNames[] = {
    {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},
    {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

// A name from the spec, quoted in an error: at most 64 printable ASCII characters, so that a
// hostile value cannot flood or corrupt the log.
constexpr size_t kMaxQuotedName = 64;

std::string printable(const std::string& text) {
  std::string out;
  for (char c : text.substr(0, kMaxQuotedName)) {
    auto byte = static_cast<unsigned char>(c);
    out += byte >= 0x20 && byte < 0x7f ? c : '?';
  }
  if (text.size() > kMaxQuotedName) out += "...";
  return out;
}

// The member `key` of `object`, or nullptr when it is absent or null (both mean "not set").
const json* member(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

uint64_t asUint64(const json& value, const std::string& field) {
  // Parsed JSON holds a non-negative integer as unsigned, a built one may hold it as signed.
  bool valid =
      value.is_number_unsigned() || (value.is_number_integer() && value.get<int64_t>() >= 0);
  if (!valid) fail("{}: expected an unsigned integer", field);
  return value.get<uint64_t>();
}

// uid/gid values: (uid_t)-1 means "unchanged" to the set*id calls, so it is refused.
uint32_t asId(const json& value, const std::string& field) {
  uint64_t id = asUint64(value, field);
  if (id >= std::numeric_limits<uint32_t>::max()) fail("{}: {} is not a valid id", field, id);
  return static_cast<uint32_t>(id);
}

// libcap's number for "CAP_XXX", or -1. cap_from_name alone is too lenient (it accepts lower
// case, numbers and "CAP_CHOWN2" as CAP_CHOWN), so the name must be upper case and round-trip.
int capabilityFromName(const std::string& name) {
  if (name.size() <= 4 || name.compare(0, 4, "CAP_") != 0) return -1;
  std::string lower;
  for (char c : name) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return -1;
    lower += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  cap_value_t value = 0;
  if (cap_from_name(lower.c_str(), &value) != 0) return -1;
  char* canonical = cap_to_name(value);
  if (canonical == nullptr) return -1;
  bool same = lower == canonical;
  cap_free(canonical);
  return same ? value : -1;
}

std::string capabilityName(int value) {
  char* name = cap_to_name(value);
  if (name == nullptr) return std::to_string(value);
  std::string upper = name;
  cap_free(name);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; });
  return upper;
}

// One of the five capability lists. Names libcap does not know are an error; capabilities
// libcap knows but the running kernel lacks (>= cap_max_bits) are left out, as runc does.
std::vector<int> capabilityList(const json& capabilities, const char* set, int maxBits) {
  std::vector<int> out;
  const json* list = member(capabilities, set);
  if (list == nullptr) return out;
  if (!list->is_array()) fail("process.capabilities.{}: expected an array of names", set);
  for (size_t i = 0; i < list->size(); ++i) {
    const json& entry = (*list)[i];
    if (!entry.is_string()) fail("process.capabilities.{}[{}]: expected a string", set, i);
    const auto& name = entry.get_ref<const std::string&>();
    int value = capabilityFromName(name);
    if (value < 0) fail("process.capabilities.{}: unknown capability {}", set, printable(name));
    if (value >= maxBits) continue;
    if (std::find(out.begin(), out.end(), value) == out.end()) out.push_back(value);
  }
  return out;
}

std::string limitText(rlim_t value) {
  return value == RLIM_INFINITY ? std::string("unlimited") : std::to_string(value);
}

// runc's rule: supplementary groups cannot be set in a user namespace whose setgroups file says
// "deny"; the call is then skipped (there is nothing else to do about it).
bool setgroupsAllowed() {
  int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return true;
    throwErrno("open /proc/self/setgroups");
  }
  char buffer[16] = {};
  ssize_t n;
  do {
    n = read(fd, buffer, sizeof(buffer) - 1);
  } while (n < 0 && errno == EINTR);
  int error = errno;
  close(fd);
  if (n < 0) throwErrno("read /proc/self/setgroups", error);
  return std::strncmp(buffer, "deny", 4) != 0;
}

struct CapFree {
  void operator()(cap_t caps) const { cap_free(caps); }
};

}  // namespace

ProcessSecurity ProcessSecurity::fromSpec(const json& process) {
  ProcessSecurity security;
  try {
    if (!process.is_object()) fail("process: expected an object");

    if (const json* rlimits = member(process, "rlimits")) {
      if (!rlimits->is_array()) fail("process.rlimits: expected an array");
      for (size_t i = 0; i < rlimits->size(); ++i) {
        const json& entry = (*rlimits)[i];
        std::string field = fmt::format("process.rlimits[{}]", i);
        if (!entry.is_object()) fail("{}: expected an object", field);
        const json* type = member(entry, "type");
        if (type == nullptr || !type->is_string()) fail("{}.type: expected a string", field);
        const auto& name = type->get_ref<const std::string&>();
        auto known = std::find_if(std::begin(kRlimitNames), std::end(kRlimitNames),
                                  [&](const RlimitName& r) { return name == r.name; });
        if (known == std::end(kRlimitNames)) {
          fail("{}.type: unknown rlimit {}", field, printable(name));
        }
        for (const auto& previous : security.rlimits_) {
          if (previous.resource == known->resource) fail("{}: {} set twice", field, name);
        }
        const json* hard = member(entry, "hard");
        const json* soft = member(entry, "soft");
        if (hard == nullptr) fail("{}.hard: missing", field);
        if (soft == nullptr) fail("{}.soft: missing", field);
        rlimit limit{};
        limit.rlim_max = asUint64(*hard, field + ".hard");
        limit.rlim_cur = asUint64(*soft, field + ".soft");
        if (limit.rlim_cur > limit.rlim_max) {
          fail("{}: {} soft limit {} is above the hard limit {}", field, name,
               limitText(limit.rlim_cur), limitText(limit.rlim_max));
        }
        security.rlimits_.push_back({known->resource, limit, name});
      }
    }

    if (const json* user = member(process, "user")) {
      if (!user->is_object()) fail("process.user: expected an object");
      if (const json* uid = member(*user, "uid")) security.uid_ = asId(*uid, "process.user.uid");
      if (const json* gid = member(*user, "gid")) security.gid_ = asId(*gid, "process.user.gid");
      if (const json* umask = member(*user, "umask")) {
        uint64_t mode = asUint64(*umask, "process.user.umask");
        if (mode > 0777) fail("process.user.umask: {:o} is not a file mode mask", mode);
        security.umask_ = static_cast<mode_t>(mode);
      }
      if (const json* gids = member(*user, "additionalGids")) {
        if (!gids->is_array()) fail("process.user.additionalGids: expected an array");
        if (gids->size() > static_cast<size_t>(sysconf(_SC_NGROUPS_MAX))) {
          fail("process.user.additionalGids: {} groups, more than the kernel's {}", gids->size(),
               sysconf(_SC_NGROUPS_MAX));
        }
        for (size_t i = 0; i < gids->size(); ++i) {
          security.additionalGids_.push_back(
              asId((*gids)[i], fmt::format("process.user.additionalGids[{}]", i)));
        }
      }
    }

    if (const json* capabilities = member(process, "capabilities")) {
      if (!capabilities->is_object()) fail("process.capabilities: expected an object");
      int maxBits = cap_max_bits();
      security.hasCapabilities_ = true;
      security.bounding_ = capabilityList(*capabilities, "bounding", maxBits);
      security.effective_ = capabilityList(*capabilities, "effective", maxBits);
      security.permitted_ = capabilityList(*capabilities, "permitted", maxBits);
      security.inheritable_ = capabilityList(*capabilities, "inheritable", maxBits);
      security.ambient_ = capabilityList(*capabilities, "ambient", maxBits);
    }

    if (const json* noNewPrivileges = member(process, "noNewPrivileges")) {
      if (!noNewPrivileges->is_boolean()) fail("process.noNewPrivileges: expected a boolean");
      security.noNewPrivileges_ = noNewPrivileges->get<bool>();
    }
  } catch (const json::exception& e) {
    // Every access above is checked first; this is the net under it.
    fail("process: {}", e.what());
  }
  return security;
}

void ProcessSecurity::applyRlimits() const {
  for (const auto& r : rlimits_) {
    if (setrlimit(static_cast<__rlimit_resource_t>(r.resource), &r.limit) == 0) continue;
    int error = errno;
    rlimit current{};
    getrlimit(static_cast<__rlimit_resource_t>(r.resource), &current);
    const char* hint = "";
    if (error == EPERM && r.limit.rlim_max > current.rlim_max) {
      hint = "; raising a hard limit needs CAP_SYS_RESOURCE";
    }
    fail("setrlimit {} soft {} hard {}: {} (current soft {} hard {}{})", r.name,
         limitText(r.limit.rlim_cur), limitText(r.limit.rlim_max), std::strerror(error),
         limitText(current.rlim_cur), limitText(current.rlim_max), hint);
  }
}

void ProcessSecurity::applyBoundingSet() const {
  if (!hasCapabilities_) return;
  int maxBits = cap_max_bits();
  for (int value = 0; value < maxBits; ++value) {
    if (std::find(bounding_.begin(), bounding_.end(), value) != bounding_.end()) continue;
    if (cap_get_bound(value) != 1) continue;  // already dropped
    if (cap_drop_bound(value) != 0) {
      throwErrno(fmt::format("drop {} from the capability bounding set", capabilityName(value)));
    }
  }
}

void ProcessSecurity::switchUser() const {
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) throwErrno("prctl(PR_SET_KEEPCAPS, 1)");
  if (setgroupsAllowed() && setgroups(additionalGids_.size(), additionalGids_.data()) != 0) {
    throwErrno(fmt::format("setgroups ({} additional gids)", additionalGids_.size()));
  }
  if (setresgid(gid_, gid_, gid_) != 0) {
    if (errno == EINVAL) fail("cannot setgid to unmapped gid {} in the user namespace", gid_);
    throwErrno(fmt::format("setresgid {}", gid_));
  }
  if (setresuid(uid_, uid_, uid_) != 0) {
    if (errno == EINVAL) fail("cannot setuid to unmapped uid {} in the user namespace", uid_);
    throwErrno(fmt::format("setresuid {}", uid_));
  }
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) throwErrno("prctl(PR_SET_KEEPCAPS, 0)");
  if (umask_) umask(*umask_);
}

void ProcessSecurity::applyCapabilities() const {
  if (!hasCapabilities_) return;
  std::unique_ptr<_cap_struct, CapFree> caps(cap_init());
  if (!caps) throwErrno("cap_init");
  auto set = [&](cap_flag_t flag, const std::vector<int>& values) {
    if (values.empty()) return;
    if (cap_set_flag(caps.get(), flag, static_cast<int>(values.size()), values.data(), CAP_SET)) {
      throwErrno("cap_set_flag");
    }
  };
  set(CAP_EFFECTIVE, effective_);
  set(CAP_PERMITTED, permitted_);
  set(CAP_INHERITABLE, inheritable_);
  if (cap_set_proc(caps.get()) != 0) throwErrno("apply the process capabilities");

  // As runc: EINVAL means a kernel without ambient capabilities; a capability that cannot be
  // raised (not both permitted and inheritable) is skipped, not an error.
  if (cap_reset_ambient() != 0 && errno != EINVAL) throwErrno("clear the ambient capabilities");
  for (int value : ambient_)
    (void)cap_set_ambient(value, CAP_SET);
}

void ProcessSecurity::applyNoNewPrivileges() const {
  if (!noNewPrivileges_) return;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throwErrno("prctl(PR_SET_NO_NEW_PRIVS)");
}

std::vector<std::string> knownCapabilityNames() {
  // The capabilities libcap has names for (runc lists its library's, not the kernel's).
  std::vector<std::string> names;
  for (int value = 0; value < 64; ++value) {
    char* name = cap_to_name(value);
    if (name == nullptr) continue;
    bool known = std::strncmp(name, "cap_", 4) == 0;
    cap_free(name);
    if (known) names.push_back(capabilityName(value));
  }
  return names;
}

}  // namespace monocri::runtime
