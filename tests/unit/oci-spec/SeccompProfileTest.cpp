// Seccomp profiles: which one a security context picks, monocri's RuntimeDefault (loaded into
// the kernel in a child process, where the calls it must deny are made), and Localhost profiles
// in the Docker and OCI formats converted or refused.
#include "oci/spec/SeccompProfile.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "SpecTestSupport.h"

namespace monocri::oci {
namespace {

using grpc::StatusCode;
using Json = nlohmann::json;
using testing::contains;
using testing::readFile;
using testing::TempDir;
using testing::writeFile;

const std::string kData = MONOCRI_OCI_SPEC_TEST_DATA;

// Every syscall name an allow rule lists without conditions.
std::vector<std::string> unconditionallyAllowed(const Json& profile) {
  std::vector<std::string> names;
  for (const auto& rule : profile["syscalls"]) {
    if (rule["action"] != "SCMP_ACT_ALLOW" || rule.contains("args")) continue;
    for (const auto& name : rule["names"])
      names.push_back(name.get<std::string>());
  }
  return names;
}

std::vector<Json> rulesFor(const Json& profile, const std::string& name) {
  std::vector<Json> rules;
  for (const auto& rule : profile["syscalls"]) {
    for (const auto& listed : rule["names"]) {
      if (listed == name) rules.push_back(rule);
    }
  }
  return rules;
}

// ---- loading an OCI seccomp object into the kernel, as runc does -----------------------------

uint32_t actionOf(const std::string& name, uint32_t errnoRet) {
  if (name == "SCMP_ACT_ALLOW") return SCMP_ACT_ALLOW;
  if (name == "SCMP_ACT_ERRNO") return SCMP_ACT_ERRNO(errnoRet);
  if (name == "SCMP_ACT_KILL") return SCMP_ACT_KILL;
  if (name == "SCMP_ACT_KILL_PROCESS") return SCMP_ACT_KILL_PROCESS;
  if (name == "SCMP_ACT_LOG") return SCMP_ACT_LOG;
  return SCMP_ACT_TRAP;
}

scmp_compare compareOf(const std::string& op) {
  if (op == "SCMP_CMP_NE") return SCMP_CMP_NE;
  if (op == "SCMP_CMP_LT") return SCMP_CMP_LT;
  if (op == "SCMP_CMP_LE") return SCMP_CMP_LE;
  if (op == "SCMP_CMP_EQ") return SCMP_CMP_EQ;
  if (op == "SCMP_CMP_GE") return SCMP_CMP_GE;
  if (op == "SCMP_CMP_GT") return SCMP_CMP_GT;
  return SCMP_CMP_MASKED_EQ;
}

// Returns "" or what went wrong; on success the calling process is filtered.
std::string loadFilter(const Json& profile) {
  const uint32_t defaultAction = actionOf(profile["defaultAction"].get<std::string>(),
                                          profile.value("defaultErrnoRet", uint32_t{EPERM}));
  scmp_filter_ctx ctx = seccomp_init(defaultAction);
  if (ctx == nullptr) return "seccomp_init";
  for (const auto& arch : profile["architectures"]) {
    std::string name = arch.get<std::string>().substr(std::string("SCMP_ARCH_").size());
    for (char& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const uint32_t token = seccomp_arch_resolve_name(name.c_str());
    if (token == 0) return "unknown arch " + name;
    const int rc = seccomp_arch_add(ctx, token);
    if (rc != 0 && rc != -EEXIST) return "seccomp_arch_add " + name;
  }
  for (const auto& rule : profile["syscalls"]) {
    const uint32_t action =
        actionOf(rule["action"].get<std::string>(), rule.value("errnoRet", uint32_t{EPERM}));
    std::vector<scmp_arg_cmp> args;
    for (const auto& arg : rule.value("args", Json::array())) {
      args.push_back(scmp_arg_cmp{arg["index"].get<unsigned>(), compareOf(arg["op"]),
                                  arg["value"].get<uint64_t>(),
                                  arg.value("valueTwo", uint64_t{0})});
    }
    for (const auto& name : rule["names"]) {
      const int nr = seccomp_syscall_resolve_name(name.get<std::string>().c_str());
      if (nr == __NR_SCMP_ERROR) return "unknown syscall " + name.get<std::string>();
      const int rc =
          seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()), args.data());
      if (rc != 0) return "seccomp_rule_add " + name.get<std::string>() + ": " + std::to_string(rc);
    }
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return "no_new_privs";
  const int rc = seccomp_load(ctx);
  seccomp_release(ctx);
  return rc == 0 ? "" : "seccomp_load " + std::to_string(rc);
}

// Runs `probe` in a child under `profile`; returns its report ("" when every expectation held).
std::string underFilter(const Json& profile, std::string (*probe)()) {
  int pipeFds[2];
  if (pipe(pipeFds) != 0) return "pipe";
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipeFds[0]);
    std::string report = loadFilter(profile);
    if (report.empty()) report = probe();
    (void)!write(pipeFds[1], report.data(), report.size());
    _exit(0);
  }
  close(pipeFds[1]);
  std::string report;
  char buffer[512];
  ssize_t n;
  while ((n = read(pipeFds[0], buffer, sizeof(buffer))) > 0)
    report.append(buffer, static_cast<size_t>(n));
  close(pipeFds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return "child killed by signal " + std::to_string(WTERMSIG(status));
  return report;
}

// What the default profile must deny (EPERM) and allow, for a container with the default caps.
std::string probeDefaultProfile() {
  std::string failures;
  auto expectErrno = [&](const char* what, long rc, int expected) {
    if (rc != -1 || errno != expected) {
      failures +=
          std::string(what) + " gave " + std::to_string(rc) + "/" + std::to_string(errno) + "; ";
    }
  };
  auto expectWorks = [&](const char* what, long rc) {
    if (rc < 0) failures += std::string(what) + " failed with " + std::to_string(errno) + "; ";
  };
  expectErrno("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0), EPERM);
  expectErrno("add_key", syscall(SYS_add_key, "user", "k", "v", 1, 0), EPERM);
  expectErrno("request_key", syscall(SYS_request_key, "user", "k", nullptr, 0), EPERM);
  expectErrno("bpf", syscall(SYS_bpf, 0, nullptr, 0), EPERM);
  expectErrno("perf_event_open", syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0), EPERM);
  expectErrno("mount", mount("none", "/", "tmpfs", 0, nullptr), EPERM);
  expectErrno("umount2", umount2("/nonexistent", 0), EPERM);
  expectErrno("unshare", unshare(CLONE_NEWUTS), EPERM);
  expectErrno("setns", setns(0, 0), EPERM);
  expectErrno("kexec_load", syscall(SYS_kexec_load, 0, 0, nullptr, 0), EPERM);
  expectErrno("init_module", syscall(SYS_init_module, nullptr, 0, ""), EPERM);
  expectErrno("reboot", syscall(SYS_reboot, 0, 0, 0, nullptr), EPERM);
  expectErrno("swapon", syscall(SYS_swapon, "/nonexistent", 0), EPERM);
  expectErrno("userfaultfd", syscall(SYS_userfaultfd, 0), EPERM);
  expectErrno("io_uring_setup", syscall(SYS_io_uring_setup, 1, nullptr), EPERM);
  expectErrno("clone with CLONE_NEWNET", syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0),
              EPERM);
  expectErrno("clone3", syscall(SYS_clone3, nullptr, 0), ENOSYS);
  expectErrno("socket(AF_VSOCK)", socket(AF_VSOCK, SOCK_STREAM, 0), EPERM);
  expectErrno("socket(AF_ALG)", socket(AF_ALG, SOCK_SEQPACKET, 0), EPERM);
  expectErrno("personality(READ_IMPLIES_EXEC)", personality(READ_IMPLIES_EXEC), EPERM);

  expectWorks("getpid", getpid());
  expectWorks("socket(AF_UNIX)", socket(AF_UNIX, SOCK_STREAM, 0));
  expectWorks("socket(AF_INET)", socket(AF_INET, SOCK_DGRAM, 0));
  expectWorks("socket(AF_NETLINK)", socket(AF_NETLINK, SOCK_RAW, 0));
  expectWorks("personality query", personality(0xffffffff));
  const pid_t child = fork();  // clone without namespace flags
  if (child == 0) _exit(0);
  expectWorks("fork", child);
  if (child > 0) waitpid(child, nullptr, 0);
  // glibc tries clone3 first and falls back to clone on ENOSYS.
  bool ran = false;
  try {
    std::thread thread([&] { ran = true; });
    thread.join();
  } catch (...) {
  }
  if (!ran) failures += "a thread could not start; ";
  return failures;
}

TEST(SeccompProfileTest, RuntimeDefaultDeniesWhatItDocuments) {
  const Json profile = runtimeDefaultSeccomp(defaultCapabilities());
  EXPECT_EQ(profile["defaultAction"], "SCMP_ACT_ERRNO");
  EXPECT_EQ(profile["defaultErrnoRet"], EPERM);
#if defined(__x86_64__)
  EXPECT_EQ(testing::strings(profile["architectures"]),
            (std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}));
#endif
  const auto allowed = unconditionallyAllowed(profile);
  for (const char* name : {"read", "write", "openat", "execve", "futex", "epoll_wait", "mmap",
                           "chroot", "capset", "setuid", "ioctl", "sendmsg", "ptrace"}) {
    EXPECT_TRUE(contains(allowed, name)) << name;
  }
  for (const char* name : {"keyctl",
                           "add_key",
                           "request_key",
                           "bpf",
                           "perf_event_open",
                           "mount",
                           "umount2",
                           "unshare",
                           "setns",
                           "kexec_load",
                           "kexec_file_load",
                           "init_module",
                           "finit_module",
                           "delete_module",
                           "reboot",
                           "swapon",
                           "swapoff",
                           "pivot_root",
                           "userfaultfd",
                           "io_uring_setup",
                           "io_uring_enter",
                           "open_by_handle_at",
                           "acct",
                           "settimeofday",
                           "clock_settime",
                           "iopl",
                           "ioperm",
                           "syslog",
                           "kcmp",
                           "fsopen",
                           "move_mount",
                           "clone",
                           "clone3",
                           "socket",
                           "personality",
                           "vhangup",
                           "mbind",
                           "move_pages",
                           "sethostname"}) {
    EXPECT_FALSE(contains(allowed, name)) << name;
  }
  // clone only without namespace flags, clone3 answered ENOSYS.
  const auto clone = rulesFor(profile, "clone");
  ASSERT_EQ(clone.size(), 1u);
  EXPECT_EQ(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
  EXPECT_EQ(clone[0]["args"][0]["value"], 0x7E020000u);
  const auto clone3 = rulesFor(profile, "clone3");
  ASSERT_EQ(clone3.size(), 1u);
  EXPECT_EQ(clone3[0]["action"], "SCMP_ACT_ERRNO");
  EXPECT_EQ(clone3[0]["errnoRet"], ENOSYS);
  // Every name is one libseccomp resolves: nothing for runc to skip or choke on.
  for (const auto& rule : profile["syscalls"]) {
    for (const auto& name : rule["names"]) {
      EXPECT_NE(seccomp_syscall_resolve_name(name.get<std::string>().c_str()), __NR_SCMP_ERROR)
          << name;
    }
  }
}

TEST(SeccompProfileTest, RuntimeDefaultHoldsInTheKernel) {
  const Json profile = runtimeDefaultSeccomp(defaultCapabilities());
  const std::string report = underFilter(profile, probeDefaultProfile);
  EXPECT_EQ(report, "") << report;
}

TEST(SeccompProfileTest, CapabilitiesOpenTheirSyscalls) {
  const CapabilityMask admin = defaultCapabilities() | (CapabilityMask{1} << CAP_SYS_ADMIN) |
                               (CapabilityMask{1} << CAP_SYS_PTRACE) |
                               (CapabilityMask{1} << CAP_SYS_TIME);
  const Json profile = runtimeDefaultSeccomp(admin);
  const auto allowed = unconditionallyAllowed(profile);
  for (const char* name : {"mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf",
                           "sethostname", "kcmp", "settimeofday", "clock_settime"}) {
    EXPECT_TRUE(contains(allowed, name)) << name;
  }
  for (const char* name : {"keyctl", "kexec_load", "init_module", "reboot"})
    EXPECT_FALSE(contains(allowed, name)) << name;
  // No conditional clone rule and no ENOSYS clone3 rule beside the unconditional ones.
  EXPECT_EQ(rulesFor(profile, "clone").size(), 1u);
  EXPECT_EQ(rulesFor(profile, "clone3").size(), 1u);
  EXPECT_EQ(rulesFor(profile, "clone3")[0]["action"], "SCMP_ACT_ALLOW");
}

runtime::v1::LinuxContainerSecurityContext withProfile(
    runtime::v1::SecurityProfile::ProfileType type, const std::string& ref = "") {
  runtime::v1::LinuxContainerSecurityContext context;
  context.mutable_seccomp()->set_profile_type(type);
  context.mutable_seccomp()->set_localhost_ref(ref);
  return context;
}

runtime::v1::LinuxContainerSecurityContext withProfilePath(const std::string& path) {
  runtime::v1::LinuxContainerSecurityContext context;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  context.set_seccomp_profile_path(path);
#pragma GCC diagnostic pop
  return context;
}

TEST(SeccompProfileTest, ChoiceFromTheSecurityContext) {
  using runtime::v1::SecurityProfile;
  struct Case {
    const char* name;
    runtime::v1::LinuxContainerSecurityContext context;
    SeccompKind kind;
    std::string path;
  };
  std::vector<Case> cases = {
      {"nothing", {}, SeccompKind::kUnconfined, ""},
      {"RuntimeDefault", withProfile(SecurityProfile::RuntimeDefault), SeccompKind::kRuntimeDefault,
       ""},
      {"Unconfined", withProfile(SecurityProfile::Unconfined), SeccompKind::kUnconfined, ""},
      {"Localhost absolute", withProfile(SecurityProfile::Localhost, "/var/lib/k/p.json"),
       SeccompKind::kLocalhost, "/var/lib/k/p.json"},
      {"Localhost relative", withProfile(SecurityProfile::Localhost, "profiles/p.json"),
       SeccompKind::kLocalhost, "/root/profiles/p.json"},
      {"Localhost with prefix", withProfile(SecurityProfile::Localhost, "localhost//a/p.json"),
       SeccompKind::kLocalhost, "/a/p.json"},
      {"runtime/default", withProfilePath("runtime/default"), SeccompKind::kRuntimeDefault, ""},
      {"docker/default", withProfilePath("docker/default"), SeccompKind::kRuntimeDefault, ""},
      {"unconfined", withProfilePath("unconfined"), SeccompKind::kUnconfined, ""},
      {"localhost/", withProfilePath("localhost//etc/p.json"), SeccompKind::kLocalhost,
       "/etc/p.json"},
  };
  auto privileged = withProfile(SecurityProfile::Localhost, "/x.json");
  privileged.set_privileged(true);
  cases.push_back({"privileged", privileged, SeccompKind::kUnconfined, ""});
  for (const auto& c : cases) {
    SeccompChoice choice;
    const auto status = chooseSeccompProfile(c.context, "/root", choice);
    ASSERT_TRUE(status.isOk()) << c.name << ": " << status.toString();
    EXPECT_EQ(choice.kind, c.kind) << c.name;
    EXPECT_EQ(choice.path, c.path) << c.name;
  }
  SeccompChoice choice;
  EXPECT_EQ(chooseSeccompProfile(withProfilePath("seccomp/whatever"), "/root", choice).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      chooseSeccompProfile(withProfile(SecurityProfile::Localhost, ""), "/root", choice).code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(
      chooseSeccompProfile(withProfile(SecurityProfile::RuntimeDefault, "/x"), "/root", choice)
          .code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(
      chooseSeccompProfile(withProfile(SecurityProfile::Localhost, "../../etc/x"), "/root", choice)
          .code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(
      chooseSeccompProfile(withProfile(SecurityProfile::Localhost, "p.json"), "", choice).code(),
      StatusCode::kInvalidArgument);
}

TEST(SeccompProfileTest, DockerFormatIsConvertedExactly) {
  std::vector<std::string> warnings;
  Json out;
  const auto status = loadSeccompProfile(kData + "/seccomp-docker-format.json",
                                         defaultCapabilities(), out, warnings);
  ASSERT_TRUE(status.isOk()) << status.toString();
#if defined(__x86_64__)
  const Json expected =
      Json::parse(readFile(kData + "/seccomp-docker-format.x86_64.expected.json"));
  EXPECT_EQ(out, expected) << out.dump(2);
#else
  // The exact expected file lists x86_64's architectures; elsewhere the rules must still be there.
  EXPECT_FALSE(rulesFor(out, "clone").empty()) << out.dump(2);
#endif
  EXPECT_TRUE(warnings.empty());

  // With CAP_SYS_ADMIN the clone rule goes and the mount rule comes.
  ASSERT_TRUE(loadSeccompProfile(kData + "/seccomp-docker-format.json",
                                 defaultCapabilities() | (CapabilityMask{1} << CAP_SYS_ADMIN), out,
                                 warnings)
                  .isOk());
  EXPECT_TRUE(rulesFor(out, "clone").empty());
  EXPECT_EQ(rulesFor(out, "mount").size(), 1u);

  // The converted profile is a valid OCI profile that converts to itself, and loads.
  Json again;
  ASSERT_TRUE(
      convertSeccompProfile(expected.dump(), defaultCapabilities(), again, warnings).isOk());
  EXPECT_EQ(again, expected);
}

TEST(SeccompProfileTest, OciFormatWithFlags) {
  std::vector<std::string> warnings;
  Json out;
  ASSERT_TRUE(
      loadSeccompProfile(kData + "/seccomp-oci-format.json", defaultCapabilities(), out, warnings)
          .isOk());
  EXPECT_FALSE(out.contains("flags"));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("flags"), std::string::npos);
  EXPECT_EQ(out["defaultAction"], "SCMP_ACT_ALLOW");
  EXPECT_EQ(rulesFor(out, "keyctl").at(0)["errnoRet"], 1);
  EXPECT_EQ(rulesFor(out, "socket").at(0)["args"][0]["value"], 40);
}

TEST(SeccompProfileTest, UnknownSyscallIsNamed) {
  std::vector<std::string> warnings;
  Json out;
  const auto status = loadSeccompProfile(kData + "/seccomp-unknown-syscall.json",
                                         defaultCapabilities(), out, warnings);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("\"frobnicate_the_kernel\""), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("seccomp-unknown-syscall.json"), std::string::npos);
}

TEST(SeccompProfileTest, MissingFileIsNotFound) {
  std::vector<std::string> warnings;
  Json out;
  const auto status =
      loadSeccompProfile("/nonexistent/profile.json", defaultCapabilities(), out, warnings);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("/nonexistent/profile.json"), std::string::npos);
}

TEST(SeccompProfileTest, OversizedFileIsRefused) {
  TempDir dir;
  writeFile(dir / "big.json", std::string(kMaxSeccompProfileBytes + 1, ' '));
  std::vector<std::string> warnings;
  Json out;
  const auto status = loadSeccompProfile(dir / "big.json", defaultCapabilities(), out, warnings);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("limit"), std::string::npos);
}

TEST(SeccompProfileTest, EveryFieldIsChecked) {
  struct Case {
    const char* name;
    const char* profile;
    StatusCode code;
    const char* mentions;
  };
  const std::vector<Case> cases = {
      {"not JSON", "{", StatusCode::kInvalidArgument, "JSON"},
      {"an array", "[]", StatusCode::kInvalidArgument, "JSON"},
      {"no default action", R"({"syscalls": []})", StatusCode::kInvalidArgument, "defaultAction"},
      {"unknown default action", R"({"defaultAction": "SCMP_ACT_MAYBE"})",
       StatusCode::kInvalidArgument, "SCMP_ACT_MAYBE"},
      {"notify", R"({"defaultAction": "SCMP_ACT_NOTIFY"})", StatusCode::kFailedPrecondition,
       "agent"},
      {"unknown arch", R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]})",
       StatusCode::kInvalidArgument, "SCMP_ARCH_Z80"},
      {"unknown op",
       R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]})",
       StatusCode::kInvalidArgument, "SCMP_CMP_ALMOST"},
      {"index 6",
       R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]})",
       StatusCode::kInvalidArgument, "syscalls[0].args[0].index"},
      {"negative value",
       R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]})",
       StatusCode::kInvalidArgument, "value"},
      {"errnoRet on allow",
       R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]})",
       StatusCode::kInvalidArgument, "errnoRet"},
      {"no names",
       R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]})",
       StatusCode::kInvalidArgument, "syscalls[0]"},
      {"names not strings",
       R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [1], "action": "SCMP_ACT_ALLOW"}]})",
       StatusCode::kInvalidArgument, "names"},
      {"unknown cap",
       R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_FLY"]}}]})",
       StatusCode::kInvalidArgument, "CAP_FLY"},
      {"name and names",
       R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]})",
       StatusCode::kInvalidArgument, "both name and names"},
      {"unknown flag",
       R"({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_FAST"]})",
       StatusCode::kInvalidArgument, "SECCOMP_FILTER_FLAG_FAST"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> warnings;
    Json out;
    const auto status = convertSeccompProfile(c.profile, defaultCapabilities(), out, warnings);
    EXPECT_EQ(status.code(), c.code) << c.name << ": " << status.toString();
    EXPECT_NE(status.message().find(c.mentions), std::string::npos)
        << c.name << ": " << status.message();
  }
}

}  // namespace
}  // namespace monocri::oci
