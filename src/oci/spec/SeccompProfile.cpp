#include "oci/spec/SeccompProfile.h"

#include <fmt/format.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/capability.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>

#include "oci/spec/HostFile.h"
#include "oci/spec/Quoted.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;

namespace {

constexpr const char* kActAllow = "SCMP_ACT_ALLOW";
constexpr const char* kActErrno = "SCMP_ACT_ERRNO";
constexpr uint64_t kNamespaceCloneFlags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
                                          CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
                                          CLONE_NEWCGROUP;
constexpr size_t kMaxSeccompArgs = 6;  // a syscall has at most six arguments
constexpr uint64_t kMaxErrno = 4095;

// ---- this build's architecture -------------------------------------------------------------

struct NativeArch {
  const char* goName;                      // how Docker profiles name it in includes/excludes
  std::vector<std::string> seccompArches;  // native first, then compat ABIs
};

const NativeArch& nativeArch() {
  static const NativeArch arch = [] {
#if defined(__x86_64__)
    return NativeArch{"amd64", {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}};
#elif defined(__aarch64__)
    return NativeArch{"arm64", {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"}};
#elif defined(__i386__)
    return NativeArch{"386", {"SCMP_ARCH_X86"}};
#elif defined(__arm__)
    return NativeArch{"arm", {"SCMP_ARCH_ARM"}};
#elif defined(__s390x__)
    return NativeArch{"s390x", {"SCMP_ARCH_S390X", "SCMP_ARCH_S390"}};
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return NativeArch{"ppc64le", {"SCMP_ARCH_PPC64LE"}};
#elif defined(__riscv) && __riscv_xlen == 64
    return NativeArch{"riscv64", {"SCMP_ARCH_RISCV64"}};
#else
    return NativeArch{"", {}};
#endif
  }();
  return arch;
}

bool isS390() {
#if defined(__s390x__) || defined(__s390__)
  return true;
#else
  return false;
#endif
}

// Architecture names runc 1.1.5 maps; libseccomp knows a few more.
constexpr std::array<std::string_view, 16> kRuncArches = {
    "SCMP_ARCH_X86",     "SCMP_ARCH_X86_64",   "SCMP_ARCH_X32",         "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS",     "SCMP_ARCH_MIPS64",      "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",  "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",   "SCMP_ARCH_PPC64LE",  "SCMP_ARCH_S390",        "SCMP_ARCH_S390X"};
constexpr std::array<std::string_view, 4> kOtherKnownArches = {
    "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64"};

constexpr std::array<std::string_view, 9> kActions = {
    "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",  "SCMP_ACT_ERRNO",        "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",          "SCMP_ACT_NOTIFY"};
constexpr std::array<std::string_view, 7> kOperators = {
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",       "SCMP_CMP_EQ",
    "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"};
constexpr std::array<std::string_view, 6> kFlags = {
    "SECCOMP_FILTER_FLAG_TSYNC",       "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",  "SECCOMP_FILTER_FLAG_NEW_LISTENER",
    "SECCOMP_FILTER_FLAG_TSYNC_ESRCH", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"};

template <size_t N>
bool listed(const std::array<std::string_view, N>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool knownSyscall(const std::string& name) {
  return !name.empty() && seccomp_syscall_resolve_name(name.c_str()) != __NR_SCMP_ERROR;
}

// "6.1.0-13-amd64" -> {6, 1}.
std::pair<int, int> kernelVersion() {
  utsname name{};
  if (uname(&name) != 0) return {0, 0};
  int major = 0, minor = 0;
  if (std::sscanf(name.release, "%d.%d", &major, &minor) < 1) return {0, 0};
  return {major, minor};
}

std::optional<std::pair<int, int>> parseKernelVersion(std::string_view text) {
  int major = 0, minor = 0;
  const std::string copy(text.substr(0, 32));
  if (std::sscanf(copy.c_str(), "%d.%d", &major, &minor) < 1 || major < 0 || minor < 0) {
    return std::nullopt;
  }
  return std::pair{major, minor};
}

// ---- RuntimeDefault ------------------------------------------------------------------------

using Names = std::vector<const char*>;

// What ordinary programs need, allowed whatever the capabilities.
// clang-format off
const Names kAlwaysAllowed = {
    // files, directories, extended attributes
    "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range",
    "creat", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
    "fallocate", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
    "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futimesat", "getcwd", "getdents", "getdents64", "getxattr", "getxattrat",
    "lchown", "lchown32", "lgetxattr", "link", "linkat", "listxattr", "listxattrat", "llistxattr",
    "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "mkdir", "mkdirat",
    "mknod", "mknodat", "name_to_handle_at", "newfstatat", "open", "openat", "openat2", "pread64",
    "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "removexattr", "removexattrat", "rename", "renameat", "renameat2",
    "rmdir", "sendfile", "sendfile64", "setxattr", "setxattrat", "splice", "stat", "stat64",
    "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
    "tee", "truncate", "truncate64", "umask", "unlink", "unlinkat", "utime", "utimensat",
    "utimensat_time64", "utimes", "vmsplice", "write", "writev", "cachestat",
    // memory
    "brk", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore",
    "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "mseal", "msync",
    "munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect",
    "remap_file_pages",
    // processes, threads, scheduling, limits
    "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "vfork", "getcpu",
    "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrlimit", "get_robust_list",
    "getrusage", "getsid", "get_thread_area", "gettid", "ioprio_get", "ioprio_set", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lsm_get_self_attr",
    "lsm_list_modules", "lsm_set_self_attr", "pidfd_open", "pidfd_send_signal", "prctl",
    "prlimit64", "process_mrelease", "restart_syscall", "rseq", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
    "seccomp", "setpgid", "setpriority", "setrlimit", "set_robust_list", "setsid",
    "set_thread_area", "set_tid_address", "sysinfo", "tgkill", "times", "tkill", "ugetrlimit",
    "uname", "wait4", "waitid", "waitpid", "uretprobe",
    // credentials
    "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
    "getgroups32", "getresgid", "getresgid32", "getresuid", "getresuid32", "getuid", "getuid32",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
    "setgroups32", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32",
    "setreuid", "setreuid32", "setuid", "setuid32",
    // signals
    "alarm", "pause", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn",
    // time (adjtimex and clock_adjtime only read the clock without CAP_SYS_TIME)
    "adjtimex", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
    "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "getitimer",
    "gettimeofday", "nanosleep", "setitimer", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64",
    // waiting for events
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
    "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "fanotify_mark", "futex",
    "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "_newselect", "poll", "ppoll",
    "ppoll_time64", "pselect6", "pselect6_time64", "select",
    // asynchronous I/O (not io_uring)
    "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup",
    "io_submit",
    // System V and POSIX IPC, pipes
    "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
    "pipe", "pipe2", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "shmat",
    "shmctl", "shmdt", "shmget",
    // sockets (socket itself below, by address family)
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen",
    "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg", "sendmsg",
    "sendto", "setsockopt", "shutdown", "socketcall", "socketpair",
    // devices and the rest
    "getrandom", "ioctl",
};
// clang-format on

// Machine-specific calls of the native ABI.
Names archSpecificAllowed() {
#if defined(__x86_64__)
  return {"arch_prctl", "modify_ldt"};
#elif defined(__i386__)
  return {"modify_ldt"};
#elif defined(__aarch64__) || defined(__arm__)
  return {"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
          "breakpoint",       "cacheflush",          "set_tls"};
#elif defined(__powerpc64__)
  return {"sync_file_range2", "swapcontext"};
#elif defined(__s390x__) || defined(__s390__)
  return {"s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"};
#elif defined(__riscv)
  return {"riscv_flush_icache", "riscv_hwprobe"};
#else
  return {};
#endif
}

struct CapabilityGate {
  int capability;
  Names names;
};

// Calls that only a holder of the capability may make.
const std::array<CapabilityGate, 13> kCapabilityGated = {{
    {CAP_SYS_ADMIN, {"bpf",           "clone",         "clone3",      "fanotify_init",   "fsconfig",
                     "fsmount",       "fsopen",        "fspick",      "lookup_dcookie",  "mount",
                     "mount_setattr", "move_mount",    "open_tree",   "perf_event_open", "quotactl",
                     "quotactl_fd",   "setdomainname", "sethostname", "setns",           "syslog",
                     "umount",        "umount2",       "unshare"}},
    {CAP_SYS_MODULE, {"delete_module", "init_module", "finit_module"}},
    {CAP_SYS_BOOT, {"reboot"}},
    {CAP_SYS_CHROOT, {"chroot"}},
    {CAP_SYS_PACCT, {"acct"}},
    {CAP_SYS_PTRACE,
     {"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"}},
    {CAP_SYS_RAWIO, {"iopl", "ioperm"}},
    {CAP_SYS_TIME, {"settimeofday", "stime", "clock_settime", "clock_settime64"}},
    {CAP_SYS_TTY_CONFIG, {"vhangup"}},
    {CAP_SYS_NICE, {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}},
    {CAP_SYSLOG, {"syslog"}},
    {CAP_BPF, {"bpf"}},
    {CAP_PERFMON, {"perf_event_open"}},
}};

// Since 4.8 a tracer can no longer step around the tracee's seccomp filter.
const Names kPtraceAllowedFrom48 = {"ptrace", "process_vm_readv", "process_vm_writev"};

Json names(const Names& list) {
  Json known = Json::array();
  for (const char* name : list) {
    if (knownSyscall(name)) known.push_back(name);
  }
  return known;
}

Json allowRule(Json syscallNames) {
  return Json{{"names", std::move(syscallNames)}, {"action", kActAllow}};
}

Json allowWithArg(const char* name, uint32_t index, uint64_t value, const char* op,
                  std::optional<uint64_t> valueTwo = std::nullopt) {
  Json arg{{"index", index}, {"value", value}, {"op", op}};
  if (valueTwo) arg["valueTwo"] = *valueTwo;
  return Json{{"names", Json::array({name})}, {"action", kActAllow}, {"args", Json::array({arg})}};
}

// ---- Docker / OCI profile conversion -------------------------------------------------------

Status invalidAt(const std::string& where, const std::string& why) {
  return Status(StatusCode::kInvalidArgument, fmt::format("{}: {}", where, why));
}

std::optional<uint64_t> unsignedNumber(const Json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(value.get<int64_t>());
  }
  return std::nullopt;
}

Status stringList(const Json& value, const std::string& where, std::vector<std::string>& out) {
  out.clear();
  if (value.is_null()) return Status::ok();
  if (!value.is_array()) return invalidAt(where, "not an array of strings");
  for (const auto& item : value) {
    if (!item.is_string()) return invalidAt(where, "not an array of strings");
    out.push_back(item.get<std::string>());
  }
  return Status::ok();
}

Status checkArchitecture(const std::string& arch, const std::string& where) {
  if (listed(kRuncArches, arch) || listed(kOtherKnownArches, arch)) return Status::ok();
  return invalidAt(where, fmt::format("unknown architecture {}", quotedValue(arch)));
}

// Docker's includes/excludes: does the rule apply to this container on this host?
Status ruleApplies(const Json& rule, const std::string& where, CapabilityMask capabilities,
                   bool& applies) {
  applies = true;
  const std::string goArch = nativeArch().goName;
  for (const char* key : {"includes", "excludes"}) {
    const auto it = rule.find(key);
    if (it == rule.end() || it->is_null()) continue;
    const std::string at = fmt::format("{}.{}", where, key);
    if (!it->is_object()) return invalidAt(at, "not an object");
    const bool include = std::string_view(key) == "includes";
    std::vector<std::string> caps, arches;
    if (auto status = stringList(it->value("caps", Json()), at + ".caps", caps); !status.isOk()) {
      return status;
    }
    if (auto status = stringList(it->value("arches", Json()), at + ".arches", arches);
        !status.isOk()) {
      return status;
    }
    bool anyCapHeld = false, allCapsHeld = true;
    for (const auto& name : caps) {
      const int cap = capabilityFromName(name);
      if (cap < 0)
        return invalidAt(at + ".caps", fmt::format("unknown capability {}", quotedValue(name)));
      const bool held = hasCapability(capabilities, cap);
      anyCapHeld = anyCapHeld || held;
      allCapsHeld = allCapsHeld && held;
    }
    // Older profiles name architectures as Go does ("amd64"), newer ones as libseccomp does.
    const auto& native = nativeArch().seccompArches;
    const bool onThisArch = std::any_of(arches.begin(), arches.end(), [&](const std::string& a) {
      return a == goArch || (!native.empty() && a == native.front());
    });
    if (include) {
      if (!caps.empty() && !allCapsHeld) applies = false;
      if (!arches.empty() && !onThisArch) applies = false;
    } else {
      if (!caps.empty() && anyCapHeld) applies = false;
      if (!arches.empty() && onThisArch) applies = false;
    }
    if (const auto kernel = it->find("minKernel"); kernel != it->end() && !kernel->is_null()) {
      if (!kernel->is_string()) return invalidAt(at + ".minKernel", "not a string");
      const auto wanted = parseKernelVersion(kernel->get<std::string>());
      if (!wanted) {
        return invalidAt(at + ".minKernel", fmt::format("{} is not a kernel version",
                                                        quotedValue(kernel->get<std::string>())));
      }
      const bool newEnough = kernelVersion() >= *wanted;
      if (include && !newEnough) applies = false;
      if (!include && newEnough) applies = false;
    }
  }
  return Status::ok();
}

Status convertArgs(const Json& args, const std::string& where, Json& out) {
  out = Json::array();
  if (args.is_null()) return Status::ok();
  if (!args.is_array()) return invalidAt(where, "not an array");
  if (args.size() > kMaxSeccompArgs) {
    return invalidAt(where, fmt::format("{} conditions, at most {}", args.size(), kMaxSeccompArgs));
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const Json& arg = args[i];
    const std::string at = fmt::format("{}[{}]", where, i);
    if (!arg.is_object()) return invalidAt(at, "not an object");
    const auto index = arg.find("index");
    const auto value = arg.find("value");
    const auto op = arg.find("op");
    if (index == arg.end() || !unsignedNumber(*index) ||
        *unsignedNumber(*index) >= kMaxSeccompArgs) {
      return invalidAt(at + ".index", "missing, or not an argument index 0-5");
    }
    if (value == arg.end() || !unsignedNumber(*value)) {
      return invalidAt(at + ".value", "missing, or not an unsigned 64-bit number");
    }
    uint64_t valueTwo = 0;
    if (const auto two = arg.find("valueTwo"); two != arg.end() && !two->is_null()) {
      if (!unsignedNumber(*two))
        return invalidAt(at + ".valueTwo", "not an unsigned 64-bit number");
      valueTwo = *unsignedNumber(*two);
    }
    if (op == arg.end() || !op->is_string())
      return invalidAt(at + ".op", "missing, or not a string");
    const std::string opName = op->get<std::string>();
    if (!listed(kOperators, opName)) {
      return invalidAt(at + ".op", fmt::format("unknown operator {}", quotedValue(opName)));
    }
    Json converted{
        {"index", *unsignedNumber(*index)}, {"value", *unsignedNumber(*value)}, {"op", opName}};
    if (valueTwo != 0 || opName == "SCMP_CMP_MASKED_EQ") converted["valueTwo"] = valueTwo;
    out.push_back(std::move(converted));
  }
  return Status::ok();
}

Status checkAction(const Json& action, const std::string& where, std::string& out) {
  if (!action.is_string()) return invalidAt(where, "missing, or not a string");
  out = action.get<std::string>();
  if (!listed(kActions, out))
    return invalidAt(where, fmt::format("unknown action {}", quotedValue(out)));
  if (out == "SCMP_ACT_NOTIFY") {
    return Status(
        StatusCode::kFailedPrecondition,
        fmt::format("{}: SCMP_ACT_NOTIFY needs a seccomp agent, and monocri runs none", where));
  }
  return Status::ok();
}

Status checkErrno(const Json& rule, const char* key, const std::string& where,
                  const std::string& action, std::optional<uint64_t>& out) {
  out.reset();
  const auto it = rule.find(key);
  if (it == rule.end() || it->is_null()) return Status::ok();
  const auto value = unsignedNumber(*it);
  if (!value || *value > kMaxErrno) {
    return invalidAt(where + "." + key, fmt::format("not an errno number 0-{}", kMaxErrno));
  }
  if (action != "SCMP_ACT_ERRNO" && action != "SCMP_ACT_TRACE") {
    return invalidAt(where + "." + key, "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take one");
  }
  out = value;
  return Status::ok();
}

Status convertArchitectures(const Json& profile, std::vector<std::string>& warnings, Json& out) {
  out = Json::array();
  std::vector<std::string> arches;
  const auto archMap = profile.find("archMap");
  if (archMap != profile.end() && !archMap->is_null()) {
    // Docker's form: the entry of the native architecture brings its compat ABIs along.
    if (!archMap->is_array()) return invalidAt("archMap", "not an array");
    const auto& native = nativeArch().seccompArches;
    for (size_t i = 0; i < archMap->size(); ++i) {
      const Json& entry = (*archMap)[i];
      const std::string at = fmt::format("archMap[{}]", i);
      if (!entry.is_object()) return invalidAt(at, "not an object");
      const auto arch = entry.find("architecture");
      if (arch == entry.end() || !arch->is_string()) {
        return invalidAt(at + ".architecture", "missing, or not a string");
      }
      std::vector<std::string> sub;
      if (auto status =
              stringList(entry.value("subArchitectures", Json()), at + ".subArchitectures", sub);
          !status.isOk()) {
        return status;
      }
      if (auto status = checkArchitecture(arch->get<std::string>(), at + ".architecture");
          !status.isOk()) {
        return status;
      }
      for (const auto& name : sub) {
        if (auto status = checkArchitecture(name, at + ".subArchitectures"); !status.isOk()) {
          return status;
        }
      }
      if (!native.empty() && arch->get<std::string>() == native.front()) {
        arches.push_back(arch->get<std::string>());
        arches.insert(arches.end(), sub.begin(), sub.end());
      }
    }
  }
  std::vector<std::string> listedArches;
  if (auto status =
          stringList(profile.value("architectures", Json()), "architectures", listedArches);
      !status.isOk()) {
    return status;
  }
  for (const auto& arch : listedArches) {
    if (auto status = checkArchitecture(arch, "architectures"); !status.isOk()) return status;
    arches.push_back(arch);
  }
  for (const auto& arch : arches) {
    if (std::find(out.begin(), out.end(), arch) != out.end()) continue;
    if (!listed(kRuncArches, arch)) {
      warnings.push_back(
          fmt::format("seccomp architecture {} is not one runc 1.1.5 knows and is left out", arch));
      continue;
    }
    out.push_back(arch);
  }
  return Status::ok();
}

}  // namespace

std::vector<std::string> nativeSeccompArchitectures() {
  return nativeArch().seccompArches;
}

Status chooseSeccompProfile(const runtime::v1::LinuxContainerSecurityContext& context,
                            const std::string& profileRoot, SeccompChoice& out) {
  out = SeccompChoice{};
  std::string localhost;
  if (context.has_seccomp()) {
    const auto& profile = context.seccomp();
    if (profile.profile_type() != runtime::v1::SecurityProfile::Localhost &&
        !profile.localhost_ref().empty()) {
      return Status(StatusCode::kInvalidArgument,
                    "seccomp: localhost_ref is only valid with profile_type Localhost");
    }
    switch (profile.profile_type()) {
      case runtime::v1::SecurityProfile::Unconfined:
        break;
      case runtime::v1::SecurityProfile::RuntimeDefault:
        out.kind = SeccompKind::kRuntimeDefault;
        break;
      case runtime::v1::SecurityProfile::Localhost:
        localhost = profile.localhost_ref();
        if (localhost.starts_with("localhost/")) localhost.erase(0, 10);
        if (localhost.empty()) {
          return Status(StatusCode::kInvalidArgument,
                        "seccomp: profile_type Localhost needs a localhost_ref");
        }
        out.kind = SeccompKind::kLocalhost;
        break;
      default:
        return Status(StatusCode::kInvalidArgument,
                      fmt::format("seccomp: unknown profile_type {}",
                                  static_cast<int>(profile.profile_type())));
    }
  } else {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // the older form kubelet may send
    const std::string& path = context.seccomp_profile_path();
#pragma GCC diagnostic pop
    if (path.empty() || path == "unconfined") {
      // kubelet sends the default it wants; nothing means none.
    } else if (path == "runtime/default" || path == "docker/default") {
      out.kind = SeccompKind::kRuntimeDefault;
    } else if (path.starts_with("localhost/") && path.size() > 10) {
      localhost = path.substr(10);
      out.kind = SeccompKind::kLocalhost;
    } else {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("seccomp_profile_path {} is none of runtime/default, "
                                "docker/default, unconfined, localhost/<path>",
                                quotedValue(path)));
    }
  }
  // Privileged containers run without a filter, whatever was asked (containerd, CRI-O).
  if (context.privileged()) {
    out = SeccompChoice{};
    return Status::ok();
  }
  if (out.kind != SeccompKind::kLocalhost) return Status::ok();
  if (localhost.find('\0') != std::string::npos) {
    return Status(StatusCode::kInvalidArgument, "seccomp: the Localhost profile path holds a NUL");
  }
  if (localhost.starts_with('/')) {
    out.path = localhost;
    return Status::ok();
  }
  if (profileRoot.empty()) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("seccomp: Localhost profile {} is relative and no seccomp profile "
                              "root is configured",
                              quotedValue(localhost)));
  }
  for (size_t start = 0; start <= localhost.size();) {
    size_t end = localhost.find('/', start);
    if (end == std::string::npos) end = localhost.size();
    if (std::string_view(localhost).substr(start, end - start) == "..") {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("seccomp: Localhost profile {} leaves the profile root",
                                quotedValue(localhost)));
    }
    start = end + 1;
  }
  out.path = profileRoot + "/" + localhost;
  return Status::ok();
}

Json runtimeDefaultSeccomp(CapabilityMask capabilities) {
  Json rules = Json::array();
  Json always = names(kAlwaysAllowed);
  for (const auto& name : names(archSpecificAllowed()))
    always.push_back(name);
  if (kernelVersion() >= std::pair{4, 8}) {
    for (const auto& name : names(kPtraceAllowedFrom48))
      always.push_back(name);
  }
  rules.push_back(allowRule(std::move(always)));

  // socket(2) for every family but AF_ALG (38) and AF_VSOCK (40). Three one-condition rules:
  // runc turns several conditions on one argument into alternatives, not a conjunction.
  static_assert(AF_ALG + 2 == AF_VSOCK);
  rules.push_back(allowWithArg("socket", 0, AF_ALG, "SCMP_CMP_LT"));
  rules.push_back(allowWithArg("socket", 0, AF_ALG + 1, "SCMP_CMP_EQ"));
  rules.push_back(allowWithArg("socket", 0, AF_VSOCK, "SCMP_CMP_GT"));

  // personality(2) for Linux, UNAME26, their 32-bit forms, and the query.
  for (uint64_t persona : {0x0ull, 0x8ull, 0x20000ull, 0x20008ull, 0xffffffffull})
    rules.push_back(allowWithArg("personality", 0, persona, "SCMP_CMP_EQ"));

  for (const auto& gate : kCapabilityGated) {
    if (!hasCapability(capabilities, gate.capability)) continue;
    Json allowed = names(gate.names);
    if (!allowed.empty()) rules.push_back(allowRule(std::move(allowed)));
  }

  if (!hasCapability(capabilities, CAP_SYS_ADMIN)) {
    // clone(2) without namespace flags; the flags are argument 1 on s390.
    rules.push_back(
        allowWithArg("clone", isS390() ? 1 : 0, kNamespaceCloneFlags, "SCMP_CMP_MASKED_EQ", 0));
    // clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc use clone.
    if (knownSyscall("clone3")) {
      rules.push_back(
          Json{{"names", Json::array({"clone3"})}, {"action", kActErrno}, {"errnoRet", ENOSYS}});
    }
  }

  return Json{{"defaultAction", kActErrno},
              {"defaultErrnoRet", EPERM},
              {"architectures", nativeArch().seccompArches},
              {"syscalls", std::move(rules)}};
}

Status convertSeccompProfile(std::string_view bytes, CapabilityMask capabilities, Json& out,
                             std::vector<std::string>& warnings) {
  out = Json();
  if (bytes.size() > kMaxSeccompProfileBytes) {
    return invalidAt("profile", fmt::format("{} bytes, over the {} byte limit", bytes.size(),
                                            kMaxSeccompProfileBytes));
  }
  const Json profile = Json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (profile.is_discarded() || !profile.is_object()) {
    return invalidAt("profile", "not a JSON object");
  }

  std::string defaultAction;
  if (auto status =
          checkAction(profile.value("defaultAction", Json()), "defaultAction", defaultAction);
      !status.isOk()) {
    return status;
  }
  std::optional<uint64_t> defaultErrno;
  if (auto status = checkErrno(profile, "defaultErrnoRet", "profile", defaultAction, defaultErrno);
      !status.isOk()) {
    return status;
  }

  Json architectures;
  if (auto status = convertArchitectures(profile, warnings, architectures); !status.isOk()) {
    return status;
  }

  if (const auto flags = profile.find("flags"); flags != profile.end() && !flags->is_null()) {
    std::vector<std::string> names;
    if (auto status = stringList(*flags, "flags", names); !status.isOk()) return status;
    for (const auto& flag : names) {
      if (!listed(kFlags, flag)) {
        return invalidAt("flags", fmt::format("unknown flag {}", quotedValue(flag)));
      }
    }
    if (!names.empty()) {
      warnings.push_back(
          "the seccomp profile's flags are dropped: runc 1.1.5 refuses any, and without them "
          "the filter is applied as strictly or more");
    }
  }

  Json syscalls = Json::array();
  const auto rules = profile.find("syscalls");
  if (rules != profile.end() && !rules->is_null()) {
    if (!rules->is_array()) return invalidAt("syscalls", "not an array");
    for (size_t i = 0; i < rules->size(); ++i) {
      const Json& rule = (*rules)[i];
      const std::string at = fmt::format("syscalls[{}]", i);
      if (!rule.is_object()) return invalidAt(at, "not an object");
      bool applies = true;
      if (auto status = ruleApplies(rule, at, capabilities, applies); !status.isOk()) {
        return status;
      }
      std::vector<std::string> names;
      if (auto status = stringList(rule.value("names", Json()), at + ".names", names);
          !status.isOk()) {
        return status;
      }
      if (const auto name = rule.find("name"); name != rule.end() && !name->is_null()) {
        if (!name->is_string()) return invalidAt(at + ".name", "not a string");
        if (!names.empty())
          return invalidAt(at, "both name and names are given (Docker refuses it)");
        names.push_back(name->get<std::string>());
      }
      if (names.empty()) return invalidAt(at, "names no syscall");
      std::string action;
      if (auto status = checkAction(rule.value("action", Json()), at + ".action", action);
          !status.isOk()) {
        return status;
      }
      std::optional<uint64_t> errnoRet;
      if (auto status = checkErrno(rule, "errnoRet", at, action, errnoRet); !status.isOk()) {
        return status;
      }
      Json args;
      if (auto status = convertArgs(rule.value("args", Json()), at + ".args", args);
          !status.isOk()) {
        return status;
      }
      if (!applies) continue;
      for (const auto& name : names) {
        if (!knownSyscall(name)) {
          return invalidAt(at, fmt::format("unknown syscall {} (libseccomp {}.{}.{} does not "
                                           "know it)",
                                           quotedValue(name), seccomp_version()->major,
                                           seccomp_version()->minor, seccomp_version()->micro));
        }
      }
      Json converted{{"names", names}, {"action", action}};
      if (errnoRet) converted["errnoRet"] = *errnoRet;
      if (!args.empty()) converted["args"] = std::move(args);
      syscalls.push_back(std::move(converted));
    }
  }

  out = Json{{"defaultAction", defaultAction},
             {"architectures", std::move(architectures)},
             {"syscalls", std::move(syscalls)}};
  if (defaultErrno) out["defaultErrnoRet"] = *defaultErrno;
  return Status::ok();
}

Status loadSeccompProfile(const std::string& path, CapabilityMask capabilities, Json& out,
                          std::vector<std::string>& warnings) {
  std::string bytes;
  const int error = readHostFile(path, kMaxSeccompProfileBytes, bytes);
  if (error == ENOENT || error == ENOTDIR) {
    return Status(StatusCode::kNotFound,
                  fmt::format("seccomp profile {} not found", quotedValue(path)));
  }
  if (error == EFBIG) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("seccomp profile {} is over the {} byte limit", quotedValue(path),
                              kMaxSeccompProfileBytes));
  }
  if (error != 0) {
    return Status(
        StatusCode::kFailedPrecondition,
        fmt::format("cannot read seccomp profile {}: {}", quotedValue(path), std::strerror(error)));
  }
  auto status = convertSeccompProfile(bytes, capabilities, out, warnings);
  if (!status.isOk()) {
    return Status(status.code(),
                  fmt::format("seccomp profile {}: {}", quotedValue(path), status.message()));
  }
  return status;
}

}  // namespace monocri::oci
