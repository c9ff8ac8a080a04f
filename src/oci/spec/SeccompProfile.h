// Seccomp: which profile a container gets (kubelet's SecurityProfile, or the older
// seccomp_profile_path strings) and the OCI linux.seccomp object it becomes.
//
// RuntimeDefault is monocri's own allowlist in the spirit of the Docker and containerd default
// profiles: every syscall not listed fails with EPERM. Allowed are the syscalls ordinary programs
// use (files, memory, processes and threads, signals, time, polling, System V and POSIX IPC,
// sockets except the AF_ALG and AF_VSOCK families, ioctl, async I/O), personality() only with
// the harmless personas, clone() only without namespace flags. Denied, unless the container holds
// the capability that makes the call legitimate:
//   CAP_SYS_ADMIN      mount, umount, umount2, the new mount API (fsopen, fsconfig, fsmount,
//                      fspick, move_mount, open_tree, mount_setattr), unshare, setns, clone with
//                      namespace flags, clone3 (ENOSYS without it, so that libc falls back to
//                      clone), sethostname, setdomainname, quotactl, fanotify_init, lookup_dcookie,
//                      bpf, perf_event_open, syslog
//   CAP_SYS_MODULE     init_module, finit_module, delete_module
//   CAP_SYS_BOOT       reboot            CAP_SYS_PACCT acct        CAP_SYS_RAWIO iopl, ioperm
//   CAP_SYS_TIME       settimeofday, stime, clock_settime
//   CAP_SYS_PTRACE     kcmp, pidfd_getfd, process_madvise (ptrace and process_vm_* are allowed
//                      on kernels from 4.8, where ptrace can no longer bypass seccomp)
//   CAP_SYS_NICE       mbind, set_mempolicy, get_mempolicy, set_mempolicy_home_node
//   CAP_SYS_CHROOT     chroot            CAP_SYS_TTY_CONFIG vhangup   CAP_SYSLOG syslog
//   CAP_BPF            bpf               CAP_PERFMON perf_event_open
//   CAP_DAC_READ_SEARCH open_by_handle_at
// and always: the kernel keyring (keyctl, add_key, request_key), kexec_load, kexec_file_load,
// swapon, swapoff, pivot_root, userfaultfd, io_uring (io_uring_setup/enter/register), move_pages,
// nfsservctl, uselib, ustat, sysfs, _sysctl, vm86, create_module, get_kernel_syms, query_module.
// Architectures: the native one and its compat ABIs (x86_64 + x86 + x32, aarch64 + arm, s390x +
// s390...). Names this libseccomp does not know are left out.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcStatus.h"
#include "oci/spec/Capabilities.h"

namespace monocri::oci {

// Largest Localhost profile read; larger files are refused.
inline constexpr size_t kMaxSeccompProfileBytes = 1024 * 1024;

enum class SeccompKind { kUnconfined, kRuntimeDefault, kLocalhost };

struct SeccompChoice {
  SeccompKind kind = SeccompKind::kUnconfined;
  std::string path;  // kLocalhost: the profile file, absolute
};

// seccomp if set, else seccomp_profile_path ("" and "unconfined": none, "runtime/default" and
// "docker/default": RuntimeDefault, "localhost/<path>"). Privileged containers are unconfined.
// A relative Localhost path is resolved under `profileRoot`.
grpc::Status chooseSeccompProfile(const runtime::v1::LinuxContainerSecurityContext& context,
                                  const std::string& profileRoot, SeccompChoice& out);

// The RuntimeDefault linux.seccomp for a container holding `capabilities` (its bounding set).
nlohmann::json runtimeDefaultSeccomp(CapabilityMask capabilities);

// A Docker-format (architectures or archMap, syscalls with name or names, includes/excludes by
// caps, arches and minKernel) or OCI-format profile as linux.seccomp. Every field is checked:
// unknown actions, operators, architectures and syscall names (libseccomp's
// seccomp_syscall_resolve_name) are INVALID_ARGUMENT naming them. Rules that do not apply to this
// architecture, kernel or capability set are left out. "flags" are dropped with a warning (runc
// 1.1.5 refuses any), SCMP_ACT_NOTIFY is FAILED_PRECONDITION (no seccomp agent here).
grpc::Status convertSeccompProfile(std::string_view bytes, CapabilityMask capabilities,
                                   nlohmann::json& out, std::vector<std::string>& warnings);

// Reads the file (NOT_FOUND naming it when missing, bounded by kMaxSeccompProfileBytes) and
// converts it; error messages name the file.
grpc::Status loadSeccompProfile(const std::string& path, CapabilityMask capabilities,
                                nlohmann::json& out, std::vector<std::string>& warnings);

// The seccomp architecture names of this build's native ABI and its compat ABIs.
std::vector<std::string> nativeSeccompArchitectures();

}  // namespace monocri::oci
