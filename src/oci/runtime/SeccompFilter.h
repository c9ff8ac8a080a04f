// The spec's linux.seccomp compiled with libseccomp: default action, architectures, syscalls
// with argument conditions, errnoRet and flags. Compiled before the container's process drops
// its privileges (a bad profile fails `create`), installed as the last step before execve.
#pragma once

#include <nlohmann/json.hpp>

namespace monocri::runtime {

class SeccompFilter {
 public:
  // Throws RuntimeError naming the field at fault (wrong type, unknown action, operator, arch,
  // flag; SCMP_ACT_NOTIFY, which needs a listener this runtime does not offer). As runc, a
  // syscall name libseccomp does not know is skipped, and so is a rule whose action is the
  // default action; without "flags", SECCOMP_FILTER_FLAG_SPEC_ALLOW is set where supported.
  static SeccompFilter compile(const nlohmann::json& linuxSeccomp);
  SeccompFilter(SeccompFilter&& other) noexcept;
  SeccompFilter& operator=(SeccompFilter&& other) noexcept;
  SeccompFilter(const SeccompFilter&) = delete;
  SeccompFilter& operator=(const SeccompFilter&) = delete;
  ~SeccompFilter();

  // Installs the filter in the calling process (needs no_new_privs or CAP_SYS_ADMIN). Throws.
  void load();

 private:
  explicit SeccompFilter(void* context) : context_(context) {}
  void* context_ = nullptr;  // scmp_filter_ctx
};

// What `monocri-runtime features` reports under linux.seccomp.
nlohmann::json seccompFeatures();

}  // namespace monocri::runtime
