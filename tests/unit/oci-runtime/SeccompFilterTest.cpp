// SeccompFilter: every error path of compile() names the field at fault, and compiled filters
// loaded in forked children do what the profile says (errno values, argument conditions, kills).
#include "oci/runtime/SeccompFilter.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "oci/runtime/RuntimeError.h"

namespace {

using monocri::runtime::RuntimeError;
using monocri::runtime::seccompFeatures;
using monocri::runtime::SeccompFilter;
using nlohmann::json;

// Exit codes of a child that could not get as far as the system call under test.
constexpr int kChildLoadFailed = 200;
constexpr int kChildCallSucceeded = 0;
// File descriptors no test process has open: an allowed fcntl/dup3 on them fails with EBADF,
// a denied one with the profile's errnoRet.
constexpr long kClosedFd = 1000;
constexpr int kDenied = 42;

// Forks a child that sets no_new_privs, loads the filter and runs `call`; returns the wait
// status. `call` returns the child's exit code.
int statusUnder(SeccompFilter& filter, const std::function<int()>& call) {
  pid_t pid = fork();
  if (pid == 0) {
    rlimit noCore{0, 0};
    setrlimit(RLIMIT_CORE, &noCore);  // SIGSYS dumps core by default.
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(kChildLoadFailed);
    try {
      filter.load();
    } catch (...) {
      _exit(kChildLoadFailed);
    }
    // exit_group itself: no exit handler of libc or of a sanitizer runtime may run under a
    // filter that denies everything else.
    syscall(SYS_exit_group, call());
    _exit(kChildLoadFailed);  // exit_group denied: _exit ends in a crash, never back here.
  }
  int status = 0;
  EXPECT_GT(pid, 0);
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  return status;
}

// The errno of a raw system call made under the filter (0 when it succeeded).
int errnoUnder(SeccompFilter& filter, const std::function<long()>& call) {
  int status = statusUnder(filter, [&] {
    errno = 0;
    long rc = call();
    return rc == -1 ? errno : kChildCallSucceeded;
  });
  EXPECT_TRUE(WIFEXITED(status)) << "child status " << status;
  if (!WIFEXITED(status)) return -1;
  EXPECT_NE(WEXITSTATUS(status), kChildLoadFailed) << "the child could not load the filter";
  return WEXITSTATUS(status);
}

long getppidCall() {
  return syscall(SYS_getppid);
}
long fcntlCall(long fd, long command) {
  return syscall(SYS_fcntl, fd, command);
}

json allowAllBut(json syscalls) {
  return {{"defaultAction", "SCMP_ACT_ALLOW"}, {"syscalls", std::move(syscalls)}};
}

json denyWith42(std::vector<std::string> names, json args = json::array()) {
  return {{"names", std::move(names)},
          {"action", "SCMP_ACT_ERRNO"},
          {"errnoRet", kDenied},
          {"args", std::move(args)}};
}

std::string compileError(const json& profile) {
  try {
    SeccompFilter::compile(profile);
  } catch (const RuntimeError& error) {
    return error.what();
  } catch (const std::exception& error) {
    return std::string("not a RuntimeError: ") + error.what();
  }
  return "no error";
}

TEST(SeccompFilter, ErrnoRetIsReturnedByTheDeniedSyscalls) {
  auto filter = SeccompFilter::compile(allowAllBut({denyWith42({"getcwd", "mkdir", "mkdirat"})}));
  char buffer[256];
  EXPECT_EQ(errnoUnder(filter, [&] { return syscall(SYS_getcwd, buffer, sizeof buffer); }),
            kDenied);
  EXPECT_EQ(errnoUnder(filter, [] { return long{mkdir("/nonexistent-monocri/dir", 0700)}; }),
            kDenied);
  // Not listed: allowed.
  EXPECT_EQ(errnoUnder(filter, getppidCall), 0);
  EXPECT_EQ(errnoUnder(filter, [] { return fcntlCall(kClosedFd, F_GETFD); }), EBADF);
}

TEST(SeccompFilter, ErrnoWithoutErrnoRetIsEperm) {
  auto filter =
      SeccompFilter::compile(allowAllBut({{{"names", {"getppid"}}, {"action", "SCMP_ACT_ERRNO"}}}));
  EXPECT_EQ(errnoUnder(filter, getppidCall), EPERM);
}

TEST(SeccompFilter, DefaultErrnoWithAnAllowList) {
  json allowList = {{{"names", {"exit", "exit_group", "getpid"}}, {"action", "SCMP_ACT_ALLOW"}}};
  auto filter = SeccompFilter::compile(
      {{"defaultAction", "SCMP_ACT_ERRNO"}, {"defaultErrnoRet", 77}, {"syscalls", allowList}});
  EXPECT_EQ(errnoUnder(filter, [] { return syscall(SYS_getpid); }), 0);
  EXPECT_EQ(errnoUnder(filter, getppidCall), 77);
  EXPECT_EQ(errnoUnder(filter, [] { return fcntlCall(kClosedFd, F_GETFD); }), 77);

  auto eperm =
      SeccompFilter::compile({{"defaultAction", "SCMP_ACT_ERRNO"}, {"syscalls", allowList}});
  EXPECT_EQ(errnoUnder(eperm, getppidCall), EPERM);
}

TEST(SeccompFilter, ArgumentConditionAllowsOnlyTheMatchingValue) {
  // personality(0xffffffff) only queries the persona: allowed; any other value is denied.
  auto filter = SeccompFilter::compile(allowAllBut({denyWith42(
      {"personality"}, {{{"index", 0}, {"value", 0xffffffffU}, {"op", "SCMP_CMP_NE"}}})}));
  EXPECT_EQ(errnoUnder(filter, [] { return syscall(SYS_personality, 0xffffffffUL); }), 0);
  EXPECT_EQ(errnoUnder(filter, [] { return syscall(SYS_personality, 0UL); }), kDenied);
  EXPECT_EQ(errnoUnder(filter, [] { return syscall(SYS_personality, 8UL); }), kDenied);
}

TEST(SeccompFilter, ConditionsOnDifferentArgumentsAreAnded) {
  auto filter = SeccompFilter::compile(allowAllBut(
      {denyWith42({"fcntl"}, {{{"index", 0}, {"value", kClosedFd}, {"op", "SCMP_CMP_EQ"}},
                              {{"index", 1}, {"value", F_GETFL}, {"op", "SCMP_CMP_EQ"}}})}));
  EXPECT_EQ(errnoUnder(filter, [] { return fcntlCall(kClosedFd, F_GETFL); }), kDenied);
  EXPECT_EQ(errnoUnder(filter, [] { return fcntlCall(kClosedFd + 1, F_GETFL); }), EBADF);
  EXPECT_EQ(errnoUnder(filter, [] { return fcntlCall(kClosedFd, F_GETFD); }), EBADF);
}

TEST(SeccompFilter, ConditionsOnOneArgumentBecomeOneRuleEach) {
  // As runc: libseccomp cannot AND two conditions on one argument, so either one matches.
  auto filter = SeccompFilter::compile(allowAllBut(
      {denyWith42({"fcntl"}, {{{"index", 1}, {"value", F_GETFD}, {"op", "SCMP_CMP_EQ"}},
                              {{"index", 1}, {"value", F_GETFL}, {"op", "SCMP_CMP_EQ"}}})}));
  EXPECT_EQ(errnoUnder(filter, [] { return fcntlCall(kClosedFd, F_GETFD); }), kDenied);
  EXPECT_EQ(errnoUnder(filter, [] { return fcntlCall(kClosedFd, F_GETFL); }), kDenied);
  EXPECT_EQ(errnoUnder(filter, [] { return fcntlCall(kClosedFd, F_GETOWN); }), EBADF);
}

TEST(SeccompFilter, MaskedEqualUsesValueAsTheMaskAndValueTwoAsTheResult) {
  auto filter =
      SeccompFilter::compile(allowAllBut({denyWith42({"dup3"}, {{{"index", 2},
                                                                 {"value", O_CLOEXEC},
                                                                 {"valueTwo", O_CLOEXEC},
                                                                 {"op", "SCMP_CMP_MASKED_EQ"}}})}));
  auto dup3Call = [](long flags) {
    return [flags] { return syscall(SYS_dup3, kClosedFd, kClosedFd + 1, flags); };
  };
  EXPECT_EQ(errnoUnder(filter, dup3Call(O_CLOEXEC)), kDenied);
  EXPECT_EQ(errnoUnder(filter, dup3Call(0)), EBADF);
}

TEST(SeccompFilter, EveryComparisonOperator) {
  struct Case {
    const char* op;
    bool deniedBelow, deniedAt, deniedAbove;
  };
  const Case cases[] = {
      {"SCMP_CMP_NE", true, false, true}, {"SCMP_CMP_LT", true, false, false},
      {"SCMP_CMP_LE", true, true, false}, {"SCMP_CMP_EQ", false, true, false},
      {"SCMP_CMP_GE", false, true, true}, {"SCMP_CMP_GT", false, false, true},
  };
  const long at = kClosedFd + 10;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    auto filter = SeccompFilter::compile(
        allowAllBut({denyWith42({"fcntl"}, {{{"index", 0}, {"value", at}, {"op", c.op}}})}));
    auto expected = [](bool denied) { return denied ? kDenied : EBADF; };
    EXPECT_EQ(errnoUnder(filter, [&] { return fcntlCall(at - 1, F_GETFD); }),
              expected(c.deniedBelow));
    EXPECT_EQ(errnoUnder(filter, [&] { return fcntlCall(at, F_GETFD); }), expected(c.deniedAt));
    EXPECT_EQ(errnoUnder(filter, [&] { return fcntlCall(at + 1, F_GETFD); }),
              expected(c.deniedAbove));
  }
}

TEST(SeccompFilter, KillProcessKillsTheChildWithSigsys) {
  for (const char* action :
       {"SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"}) {
    SCOPED_TRACE(action);
    auto filter =
        SeccompFilter::compile(allowAllBut({{{"names", {"getppid"}}, {"action", action}}}));
    int status = statusUnder(filter, [] {
      getppidCall();
      return kChildCallSucceeded;
    });
    ASSERT_TRUE(WIFSIGNALED(status)) << "child status " << status;
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
  }
}

TEST(SeccompFilter, UnknownSyscallNamesAreSkipped) {
  auto filter = SeccompFilter::compile(
      allowAllBut({denyWith42({"monocri_no_such_syscall", "getppid", "another_unknown_one"})}));
  EXPECT_EQ(errnoUnder(filter, getppidCall), kDenied);
}

TEST(SeccompFilter, RulesWithTheDefaultActionAreSkipped) {
  // libseccomp refuses such rules; runc skips them, and so must we.
  EXPECT_NO_THROW(SeccompFilter::compile(
      allowAllBut({{{"names", {"getppid", "getpid"}}, {"action", "SCMP_ACT_ALLOW"}}})));
  auto filter = SeccompFilter::compile(
      {{"defaultAction", "SCMP_ACT_ERRNO"},
       {"syscalls",
        {{{"names", {"getppid"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", EPERM}},
         {{"names", {"exit_group"}}, {"action", "SCMP_ACT_ALLOW"}}}}});
  EXPECT_EQ(errnoUnder(filter, getppidCall), EPERM);
}

TEST(SeccompFilter, ArchitecturesAndDuplicates) {
  json profile = allowAllBut({denyWith42({"getppid", "socketcall", "_llseek"})});
  profile["architectures"] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                              "SCMP_ARCH_X86"};
  auto filter = SeccompFilter::compile(profile);
  EXPECT_EQ(errnoUnder(filter, getppidCall), kDenied);

  // One byte order per filter: every little-endian architecture joins the native one...
  for (const char* arch :
       {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64", "SCMP_ARCH_X32",
        "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"}) {
    SCOPED_TRACE(arch);
    EXPECT_NO_THROW(
        SeccompFilter::compile({{"defaultAction", "SCMP_ACT_ALLOW"}, {"architectures", {arch}}}));
  }
  // ... and a big-endian one is refused with the reason.
  EXPECT_EQ(compileError({{"defaultAction", "SCMP_ACT_ALLOW"},
                          {"architectures", {"SCMP_ARCH_X86_64", "SCMP_ARCH_S390X"}}}),
            "linux.seccomp.architectures[1]: SCMP_ARCH_S390X has another byte order than the "
            "filter's other architectures, which libseccomp cannot mix");
}

TEST(SeccompFilter, SupportedFlagsCompileAndLoad) {
  json features = seccompFeatures();
  for (const std::string flag : features["supportedFlags"]) {
    SCOPED_TRACE(flag);
    json profile = allowAllBut({denyWith42({"getppid"})});
    profile["flags"] = {flag};
    auto filter = SeccompFilter::compile(profile);
    EXPECT_EQ(errnoUnder(filter, getppidCall), kDenied);
  }
  json profile = allowAllBut({denyWith42({"getppid"})});
  profile["flags"] = json::array();
  auto filter = SeccompFilter::compile(profile);
  EXPECT_EQ(errnoUnder(filter, getppidCall), kDenied);
}

TEST(SeccompFilter, ManyRulesUseTheBinaryTree) {
  // Above 32 rules the binary tree optimization is on: the filter must still be right.
  std::vector<std::string> names = {"getppid"};
  for (const char* name :
       {"read",      "write",     "close",  "fstat",       "lseek",    "mmap",  "mprotect",
        "munmap",    "brk",       "ioctl",  "pread64",     "pwrite64", "readv", "writev",
        "access",    "pipe",      "select", "sched_yield", "mremap",   "msync", "mincore",
        "madvise",   "shmget",    "shmat",  "shmctl",      "dup",      "dup2",  "pause",
        "nanosleep", "getitimer", "alarm",  "setitimer",   "getpid"}) {
    names.push_back(name);
  }
  json allowList = {{{"names", names}, {"action", "SCMP_ACT_ALLOW"}},
                    {{"names", {"exit_group"}}, {"action", "SCMP_ACT_ALLOW"}}};
  auto filter = SeccompFilter::compile(
      {{"defaultAction", "SCMP_ACT_ERRNO"}, {"defaultErrnoRet", 66}, {"syscalls", allowList}});
  EXPECT_EQ(errnoUnder(filter, getppidCall), 0);
  EXPECT_EQ(errnoUnder(filter, [] { return syscall(SYS_getuid); }), 66);
}

TEST(SeccompFilter, LoadWithoutNoNewPrivsOrCapSysAdminFails) {
  auto filter = SeccompFilter::compile(allowAllBut({denyWith42({"getppid"})}));
  pid_t pid = fork();
  if (pid == 0) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capset, &header, data) != 0) _exit(3);
    try {
      filter.load();
    } catch (const RuntimeError& error) {
      _exit(std::string(error.what()) == "loading the seccomp filter: permission denied" ? 0 : 1);
    }
    _exit(2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: wrong message, 2: loaded, 3: capset failed";
}

TEST(SeccompFilter, MovedFromFilterRefusesToLoad) {
  auto filter = SeccompFilter::compile(allowAllBut({denyWith42({"getppid"})}));
  SeccompFilter moved(std::move(filter));
  try {
    filter.load();  // NOLINT(bugprone-use-after-move): the point of the test.
    FAIL() << "a moved-from filter loaded";
  } catch (const RuntimeError& error) {
    EXPECT_STREQ(error.what(), "loading the seccomp filter: the filter was moved from");
  }
  auto other = SeccompFilter::compile({{"defaultAction", "SCMP_ACT_ALLOW"}});
  other = std::move(moved);
  EXPECT_EQ(errnoUnder(other, getppidCall), kDenied);
}

TEST(SeccompFilter, NotifyIsRefused) {
  EXPECT_EQ(compileError({{"defaultAction", "SCMP_ACT_NOTIFY"}}),
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY needs a seccomp listener "
            "(listenerPath), which monocri-runtime does not offer");
  EXPECT_EQ(compileError(allowAllBut({{{"names", {"mkdir"}}, {"action", "SCMP_ACT_NOTIFY"}}})),
            "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY needs a seccomp listener "
            "(listenerPath), which monocri-runtime does not offer");
}

TEST(SeccompFilter, CompileErrorsNameTheField) {
  auto withEntry = [](json entry) {
    return allowAllBut({{{"names", {"getppid"}}, {"action", "SCMP_ACT_ALLOW"}}, std::move(entry)});
  };
  auto arg = [&](json condition) {
    return withEntry(denyWith42(
        {"fcntl"}, {{{"index", 0}, {"value", 1}, {"op", "SCMP_CMP_EQ"}}, std::move(condition)}));
  };
  const std::pair<json, std::string> cases[] = {
      {json::array(), "linux.seccomp: expected an object, got array"},
      {"SCMP_ACT_ALLOW", "linux.seccomp: expected an object, got string"},
      {json::object(), "linux.seccomp.defaultAction: missing"},
      {{{"defaultAction", 3}}, "linux.seccomp.defaultAction: expected a string, got number"},
      {{{"defaultAction", "SCMP_ACT_FOO"}},
       "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_FOO\""},
      {{{"defaultAction", std::string(100, 'A')}},
       "linux.seccomp.defaultAction: unknown action \"" + std::string(64, 'A') + "\"..."},
      {{{"defaultAction", "SCMP_ACT_ERRNO"}, {"defaultErrnoRet", -1}},
       "linux.seccomp.defaultErrnoRet: expected an unsigned integer, got -1"},
      {{{"defaultAction", "SCMP_ACT_ERRNO"}, {"defaultErrnoRet", 1.5}},
       "linux.seccomp.defaultErrnoRet: expected an unsigned integer, got number"},
      {{{"defaultAction", "SCMP_ACT_ERRNO"}, {"defaultErrnoRet", "1"}},
       "linux.seccomp.defaultErrnoRet: expected an unsigned integer, got string"},
      {{{"defaultAction", "SCMP_ACT_ERRNO"}, {"defaultErrnoRet", 65536}},
       "linux.seccomp.defaultErrnoRet: 65536 is out of range (at most 65535)"},
      {{{"defaultAction", "SCMP_ACT_ALLOW"}, {"architectures", "SCMP_ARCH_X86"}},
       "linux.seccomp.architectures: expected an array, got string"},
      {{{"defaultAction", "SCMP_ACT_ALLOW"}, {"architectures", {"SCMP_ARCH_X86", 1}}},
       "linux.seccomp.architectures[1]: expected a string, got number"},
      {{{"defaultAction", "SCMP_ACT_ALLOW"}, {"architectures", {"SCMP_ARCH_VAX"}}},
       "linux.seccomp.architectures[0]: unknown architecture \"SCMP_ARCH_VAX\""},
      {{{"defaultAction", "SCMP_ACT_ALLOW"}, {"flags", json::object()}},
       "linux.seccomp.flags: expected an array, got object"},
      {{{"defaultAction", "SCMP_ACT_ALLOW"}, {"flags", {true}}},
       "linux.seccomp.flags[0]: expected a string, got boolean"},
      {{{"defaultAction", "SCMP_ACT_ALLOW"}, {"flags", {"SECCOMP_FILTER_FLAG_LOG", "BOGUS"}}},
       "linux.seccomp.flags[1]: unknown flag \"BOGUS\""},
      {{{"defaultAction", "SCMP_ACT_ALLOW"}, {"flags", {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"}}},
       "linux.seccomp.flags[0]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported by "
       "libseccomp 2.5.4"},
      {{{"defaultAction", "SCMP_ACT_ALLOW"}, {"syscalls", json::object()}},
       "linux.seccomp.syscalls: expected an array, got object"},
      {withEntry("getppid"), "linux.seccomp.syscalls[1]: expected an object, got string"},
      {withEntry({{"action", "SCMP_ACT_ERRNO"}}), "linux.seccomp.syscalls[1].names: missing"},
      {withEntry({{"names", "getppid"}, {"action", "SCMP_ACT_ERRNO"}}),
       "linux.seccomp.syscalls[1].names: expected an array, got string"},
      {withEntry({{"names", {"getppid", 7}}, {"action", "SCMP_ACT_ERRNO"}}),
       "linux.seccomp.syscalls[1].names[1]: expected a string, got number"},
      {withEntry({{"names", {""}}, {"action", "SCMP_ACT_ERRNO"}}),
       "linux.seccomp.syscalls[1].names[0]: an empty string is not a system call"},
      {withEntry({{"names", {"getppid"}}}), "linux.seccomp.syscalls[1].action: missing"},
      {withEntry({{"names", {"getppid"}}, {"action", {"SCMP_ACT_ERRNO"}}}),
       "linux.seccomp.syscalls[1].action: expected a string, got array"},
      {withEntry({{"names", {"getppid"}}, {"action", "SCMP_ACT_FOO"}}),
       "linux.seccomp.syscalls[1].action: unknown action \"SCMP_ACT_FOO\""},
      {withEntry({{"names", {"getppid"}}, {"action", "SCMP_ACT_ERRNO\n\"x"}}),
       "linux.seccomp.syscalls[1].action: unknown action \"SCMP_ACT_ERRNO\\n\\\"x\""},
      {withEntry({{"names", {"getppid"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", -5}}),
       "linux.seccomp.syscalls[1].errnoRet: expected an unsigned integer, got -5"},
      {withEntry({{"names", {"getppid"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 1u << 20}}),
       "linux.seccomp.syscalls[1].errnoRet: 1048576 is out of range (at most 65535)"},
      {withEntry({{"names", {"getppid"}}, {"action", "SCMP_ACT_ERRNO"}, {"args", 1}}),
       "linux.seccomp.syscalls[1].args: expected an array, got number"},
      {arg(5), "linux.seccomp.syscalls[1].args[1]: expected an object, got number"},
      {arg({{"value", 1}, {"op", "SCMP_CMP_EQ"}}),
       "linux.seccomp.syscalls[1].args[1].index: missing"},
      {arg({{"index", "0"}, {"value", 1}, {"op", "SCMP_CMP_EQ"}}),
       "linux.seccomp.syscalls[1].args[1].index: expected an unsigned integer, got string"},
      {arg({{"index", 6}, {"value", 1}, {"op", "SCMP_CMP_EQ"}}),
       "linux.seccomp.syscalls[1].args[1].index: 6 is out of range (a system call has 6 "
       "arguments)"},
      {arg({{"index", 1}, {"op", "SCMP_CMP_EQ"}}),
       "linux.seccomp.syscalls[1].args[1].value: missing"},
      {arg({{"index", 1}, {"value", -1}, {"op", "SCMP_CMP_EQ"}}),
       "linux.seccomp.syscalls[1].args[1].value: expected an unsigned integer, got -1"},
      {arg({{"index", 1}, {"value", 1e30}, {"op", "SCMP_CMP_EQ"}}),
       "linux.seccomp.syscalls[1].args[1].value: expected an unsigned integer, got number"},
      {arg({{"index", 1}, {"value", 1}, {"valueTwo", "2"}, {"op", "SCMP_CMP_MASKED_EQ"}}),
       "linux.seccomp.syscalls[1].args[1].valueTwo: expected an unsigned integer, got string"},
      {arg({{"index", 1}, {"value", 1}}), "linux.seccomp.syscalls[1].args[1].op: missing"},
      {arg({{"index", 1}, {"value", 1}, {"op", 4}}),
       "linux.seccomp.syscalls[1].args[1].op: expected a string, got number"},
      {arg({{"index", 1}, {"value", 1}, {"op", "SCMP_CMP_APPROX"}}),
       "linux.seccomp.syscalls[1].args[1].op: unknown operator \"SCMP_CMP_APPROX\""},
  };
  for (const auto& [profile, message] : cases) {
    SCOPED_TRACE(profile.dump());
    EXPECT_EQ(compileError(profile), message);
  }
}

TEST(SeccompFilter, ConflictingRulesTheFirstOneWins) {
  // libseccomp (and so runc) keeps the first unconditional rule of a system call.
  auto filter = SeccompFilter::compile(allowAllBut(
      {denyWith42({"getppid"}), {{"names", {"getppid"}}, {"action", "SCMP_ACT_KILL_PROCESS"}}}));
  EXPECT_EQ(errnoUnder(filter, getppidCall), kDenied);
}

TEST(SeccompFilter, NullMembersAreAbsent) {
  auto filter = SeccompFilter::compile({{"defaultAction", "SCMP_ACT_ALLOW"},
                                        {"defaultErrnoRet", nullptr},
                                        {"architectures", nullptr},
                                        {"flags", nullptr},
                                        {"syscalls",
                                         {{{"names", {"getppid"}},
                                           {"action", "SCMP_ACT_ERRNO"},
                                           {"errnoRet", nullptr},
                                           {"args", nullptr}}}}});
  EXPECT_EQ(errnoUnder(filter, getppidCall), EPERM);
}

TEST(SeccompFilter, FeaturesListWhatCompileAccepts) {
  json features = seccompFeatures();
  EXPECT_EQ(features["enabled"], true);
  EXPECT_EQ(features["operators"], json({"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                                         "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"}));
  EXPECT_EQ(features["actions"],
            json({"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                  "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"}));
  EXPECT_EQ(features["knownFlags"],
            json({"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                  "SECCOMP_FILTER_FLAG_LOG"}));
  for (const auto& flag : features["supportedFlags"]) {
    EXPECT_NE(std::find(features["knownFlags"].begin(), features["knownFlags"].end(), flag),
              features["knownFlags"].end());
  }
  for (const char* arch :
       {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_S390X", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64"}) {
    EXPECT_NE(std::find(features["archs"].begin(), features["archs"].end(), arch),
              features["archs"].end())
        << arch;
  }
  for (const std::string action : features["actions"]) {
    SCOPED_TRACE(action);
    EXPECT_NO_THROW(SeccompFilter::compile({{"defaultAction", action}}));
  }
}

}  // namespace
