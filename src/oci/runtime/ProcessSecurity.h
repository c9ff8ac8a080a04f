// The spec's process identity and limits, applied by the container's init (and by `exec`) in
// runc's order: rlimits; the capability bounding set; user (setgroups, setresgid, setresuid,
// keeping capabilities across the switch); then effective, permitted, inheritable and ambient
// capabilities (libcap); then no_new_privileges. Everything is checked when it is built, so that
// a wrong name fails `create` with a message, not the container later.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace monocri::runtime {

class ProcessSecurity {
 public:
  // `process`: the spec's process object. Capability names are checked against libcap's list,
  // rlimit names against RLIMIT_*. Throws RuntimeError naming the setting.
  static ProcessSecurity fromSpec(const nlohmann::json& process);

  void applyRlimits() const;
  // Drops from the bounding set every capability the spec's bounding list lacks.
  void applyBoundingSet() const;
  // setgroups (additionalGids), setresgid, setresuid, keeping capabilities across; umask.
  void switchUser() const;
  // The spec's effective/permitted/inheritable sets, then ambient ones raised.
  void applyCapabilities() const;
  void applyNoNewPrivileges() const;
  bool noNewPrivileges() const { return noNewPrivileges_; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }

 private:
  struct Rlimit {
    int resource;
    rlimit limit;
    std::string name;
  };
  std::vector<Rlimit> rlimits_;
  std::vector<int> bounding_, effective_, permitted_, inheritable_, ambient_;
  bool hasCapabilities_ = false;  // no "capabilities" object: leave the sets alone
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::vector<gid_t> additionalGids_;
  std::optional<mode_t> umask_;
  bool noNewPrivileges_ = false;
};

// Capability names libcap knows on this host ("CAP_CHOWN", ...), for `features`.
std::vector<std::string> knownCapabilityNames();

}  // namespace monocri::runtime
