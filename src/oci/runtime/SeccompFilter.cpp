// linux.seccomp compiled with libseccomp, with runc's rule-building behaviour: one entry per name,
// names unknown to libseccomp skipped, rules whose action is the default action skipped, and
// argument conditions on the same argument split into one rule each (OR instead of AND).
#include "oci/runtime/SeccompFilter.h"

#include <seccomp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "oci/runtime/RuntimeError.h"

namespace monocri::runtime {
namespace {

using nlohmann::json;

// A system call has at most six arguments (seccomp_data.args).
constexpr std::uint64_t kMaxSyscallArguments = 6;
// The return value of ERRNO and TRACE actions is the low 16 bits of the action.
constexpr std::uint64_t kMaxActionData = 0xffff;
// runc turns libseccomp's binary tree optimization on above this many syscall rules (libseccomp
// <= 2.5.4 misbehaves with the optimization and no rule at all).
constexpr std::size_t kBinaryTreeThreshold = 32;
// The longest piece of a hostile string quoted back in an error message.
constexpr std::size_t kMaxQuotedLength = 64;

struct ContextDeleter {
  void operator()(void* context) const { seccomp_release(context); }
};
using ContextPtr = std::unique_ptr<void, ContextDeleter>;

enum class ActionKind { kKillThread, kKillProcess, kTrap, kErrno, kTrace, kAllow, kLog, kNotify };

struct NamedAction {
  std::string_view name;
  ActionKind kind;
};

// Sorted by name, as runc's `features` lists them.
constexpr std::array kActions{
    NamedAction{"SCMP_ACT_ALLOW", ActionKind::kAllow},
    NamedAction{"SCMP_ACT_ERRNO", ActionKind::kErrno},
    NamedAction{"SCMP_ACT_KILL", ActionKind::kKillThread},
    NamedAction{"SCMP_ACT_KILL_PROCESS", ActionKind::kKillProcess},
    NamedAction{"SCMP_ACT_KILL_THREAD", ActionKind::kKillThread},
    NamedAction{"SCMP_ACT_LOG", ActionKind::kLog},
    NamedAction{"SCMP_ACT_NOTIFY", ActionKind::kNotify},
    NamedAction{"SCMP_ACT_TRACE", ActionKind::kTrace},
    NamedAction{"SCMP_ACT_TRAP", ActionKind::kTrap},
};

struct NamedOperator {
  std::string_view name;
  scmp_compare op;
};

constexpr std::array kOperators{
    NamedOperator{"SCMP_CMP_EQ", SCMP_CMP_EQ},
    NamedOperator{"SCMP_CMP_GE", SCMP_CMP_GE},
    NamedOperator{"SCMP_CMP_GT", SCMP_CMP_GT},
    NamedOperator{"SCMP_CMP_LE", SCMP_CMP_LE},
    NamedOperator{"SCMP_CMP_LT", SCMP_CMP_LT},
    NamedOperator{"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    NamedOperator{"SCMP_CMP_NE", SCMP_CMP_NE},
};

struct NamedArch {
  std::string_view name;
  std::uint32_t token;
};

// The spec's architecture names are libseccomp's macro names.
constexpr std::array kArchs{
    NamedArch{"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64},
    NamedArch{"SCMP_ARCH_ARM", SCMP_ARCH_ARM},
#ifdef SCMP_ARCH_LOONGARCH64
    NamedArch{"SCMP_ARCH_LOONGARCH64", SCMP_ARCH_LOONGARCH64},
#endif
    NamedArch{"SCMP_ARCH_MIPS", SCMP_ARCH_MIPS},
    NamedArch{"SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64},
    NamedArch{"SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32},
    NamedArch{"SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL},
    NamedArch{"SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64},
    NamedArch{"SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32},
    NamedArch{"SCMP_ARCH_PARISC", SCMP_ARCH_PARISC},
    NamedArch{"SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64},
    NamedArch{"SCMP_ARCH_PPC", SCMP_ARCH_PPC},
    NamedArch{"SCMP_ARCH_PPC64", SCMP_ARCH_PPC64},
    NamedArch{"SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE},
    NamedArch{"SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64},
    NamedArch{"SCMP_ARCH_S390", SCMP_ARCH_S390},
    NamedArch{"SCMP_ARCH_S390X", SCMP_ARCH_S390X},
    NamedArch{"SCMP_ARCH_X32", SCMP_ARCH_X32},
    NamedArch{"SCMP_ARCH_X86", SCMP_ARCH_X86},
    NamedArch{"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64},
};

constexpr std::string_view kFlagTsync = "SECCOMP_FILTER_FLAG_TSYNC";
constexpr std::string_view kFlagLog = "SECCOMP_FILTER_FLAG_LOG";
constexpr std::string_view kFlagSpecAllow = "SECCOMP_FILTER_FLAG_SPEC_ALLOW";
// In the spec, but libseccomp 2.5 has no attribute for it (SCMP_FLTATR_CTL_WAITKILL is 2.6).
constexpr std::string_view kFlagWaitKillableRecv = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV";

struct NamedFlag {
  std::string_view name;
  scmp_filter_attr attr;
};

constexpr std::array kFlags{
    NamedFlag{kFlagTsync, SCMP_FLTATR_CTL_TSYNC},
    NamedFlag{kFlagSpecAllow, SCMP_FLTATR_CTL_SSB},
    NamedFlag{kFlagLog, SCMP_FLTATR_CTL_LOG},
};

// A string from the profile, JSON-quoted and cut short, for an error message.
std::string quotedForError(std::string_view text) {
  std::string shown(text.substr(0, kMaxQuotedLength));
  std::string result = json(shown).dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > kMaxQuotedLength) result += "...";
  return result;
}

const char* typeName(const json& value) {
  return value.type_name();
}

const json* member(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

const std::string& asString(const json& value, const std::string& field) {
  if (!value.is_string()) fail("{}: expected a string, got {}", field, typeName(value));
  return value.get_ref<const std::string&>();
}

std::uint64_t asUnsigned(const json& value, const std::string& field) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer()) {
    const auto signedValue = value.get<std::int64_t>();
    if (signedValue >= 0) return static_cast<std::uint64_t>(signedValue);
    fail("{}: expected an unsigned integer, got {}", field, signedValue);
  }
  fail("{}: expected an unsigned integer, got {}", field, typeName(value));
}

const json& asArray(const json& value, const std::string& field) {
  if (!value.is_array()) fail("{}: expected an array, got {}", field, typeName(value));
  return value;
}

// errnoRet and defaultErrnoRet: the 16 bits of the action's data.
std::optional<std::uint16_t> returnCode(const json& object, const char* key,
                                        const std::string& field) {
  const json* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  const std::uint64_t code = asUnsigned(*value, field);
  if (code > kMaxActionData)
    fail("{}: {} is out of range (at most {})", field, code, kMaxActionData);
  return static_cast<std::uint16_t>(code);
}

// The libseccomp action for a spec action name; errnoRet applies to ERRNO and TRACE (EPERM when
// absent, as runc), and is ignored for the other actions as runc ignores it.
std::uint32_t action(const json& value, std::optional<std::uint16_t> errnoRet,
                     const std::string& field) {
  const std::string& name = asString(value, field);
  auto it = std::find_if(kActions.begin(), kActions.end(),
                         [&](const NamedAction& entry) { return entry.name == name; });
  if (it == kActions.end()) fail("{}: unknown action {}", field, quotedForError(name));
  const std::uint16_t code = errnoRet.value_or(EPERM);
  switch (it->kind) {
    case ActionKind::kKillThread:
      return SCMP_ACT_KILL_THREAD;
    case ActionKind::kKillProcess:
      return SCMP_ACT_KILL_PROCESS;
    case ActionKind::kTrap:
      return SCMP_ACT_TRAP;
    case ActionKind::kErrno:
      return SCMP_ACT_ERRNO(code);
    case ActionKind::kTrace:
      return SCMP_ACT_TRACE(code);
    case ActionKind::kAllow:
      return SCMP_ACT_ALLOW;
    case ActionKind::kLog:
      return SCMP_ACT_LOG;
    case ActionKind::kNotify:
      break;
  }
  fail(
      "{}: SCMP_ACT_NOTIFY needs a seccomp listener (listenerPath), which monocri-runtime does "
      "not offer",
      field);
}

scmp_arg_cmp condition(const json& arg, const std::string& field) {
  if (!arg.is_object()) fail("{}: expected an object, got {}", field, typeName(arg));
  const json* index = member(arg, "index");
  if (index == nullptr) fail("{}.index: missing", field);
  const std::uint64_t argIndex = asUnsigned(*index, field + ".index");
  if (argIndex >= kMaxSyscallArguments) {
    fail("{}.index: {} is out of range (a system call has {} arguments)", field, argIndex,
         kMaxSyscallArguments);
  }
  const json* value = member(arg, "value");
  if (value == nullptr) fail("{}.value: missing", field);
  const std::uint64_t datumA = asUnsigned(*value, field + ".value");
  const json* valueTwo = member(arg, "valueTwo");
  const std::uint64_t datumB = valueTwo == nullptr ? 0 : asUnsigned(*valueTwo, field + ".valueTwo");
  const json* op = member(arg, "op");
  if (op == nullptr) fail("{}.op: missing", field);
  const std::string& opName = asString(*op, field + ".op");
  auto it = std::find_if(kOperators.begin(), kOperators.end(),
                         [&](const NamedOperator& entry) { return entry.name == opName; });
  if (it == kOperators.end()) fail("{}.op: unknown operator {}", field, quotedForError(opName));
  // For SCMP_CMP_MASKED_EQ, value is the mask and valueTwo the expected result (as runc).
  return scmp_arg_cmp{static_cast<unsigned int>(argIndex), it->op, datumA, datumB};
}

void setAttribute(void* context, scmp_filter_attr attr, std::uint32_t value,
                  const std::string& what) {
  if (int rc = seccomp_attr_set(context, attr, value); rc < 0) throwErrno(what, -rc);
}

// Applies one spec flag; returns the libseccomp error (negative) when the kernel or libseccomp
// cannot, and fails for flags this runtime does not know.
int applyFlag(void* context, std::string_view flag, const std::string& field) {
  for (const NamedFlag& entry : kFlags) {
    if (entry.name == flag) return seccomp_attr_set(context, entry.attr, 1);
  }
  if (flag == kFlagWaitKillableRecv) {
    fail("{}: {} is not supported by libseccomp {}.{}.{}", field, flag, SCMP_VER_MAJOR,
         SCMP_VER_MINOR, SCMP_VER_MICRO);
  }
  fail("{}: unknown flag {}", field, quotedForError(flag));
}

struct SyscallRule {
  std::string field;
  std::uint32_t action;
  std::vector<std::string> names;
  std::vector<scmp_arg_cmp> conditions;
};

SyscallRule parseSyscall(const json& entry, const std::string& field) {
  if (!entry.is_object()) fail("{}: expected an object, got {}", field, typeName(entry));
  SyscallRule rule;
  rule.field = field;
  const json* names = member(entry, "names");
  if (names == nullptr) fail("{}.names: missing", field);
  asArray(*names, field + ".names");
  for (std::size_t i = 0; i < names->size(); ++i) {
    const std::string nameField = fmt::format("{}.names[{}]", field, i);
    const std::string& name = asString((*names)[i], nameField);
    if (name.empty()) fail("{}: an empty string is not a system call", nameField);
    rule.names.push_back(name);
  }
  const std::optional<std::uint16_t> errnoRet = returnCode(entry, "errnoRet", field + ".errnoRet");
  const json* actionValue = member(entry, "action");
  if (actionValue == nullptr) fail("{}.action: missing", field);
  rule.action = action(*actionValue, errnoRet, field + ".action");
  if (const json* args = member(entry, "args")) {
    asArray(*args, field + ".args");
    for (std::size_t i = 0; i < args->size(); ++i) {
      rule.conditions.push_back(condition((*args)[i], fmt::format("{}.args[{}]", field, i)));
    }
  }
  return rule;
}

void addRule(void* context, const SyscallRule& rule, const std::string& name, int number) {
  auto add = [&](const scmp_arg_cmp* conditions, unsigned int count) {
    int rc = seccomp_rule_add_array(context, rule.action, number, count, conditions);
    if (rc < 0) {
      throw RuntimeError(fmt::format("{}: adding the rule for {}: {}", rule.field,
                                     quotedForError(name), std::strerror(-rc)));
    }
  };
  std::array<unsigned, kMaxSyscallArguments> perIndex{};
  bool sharedIndex = false;
  for (const scmp_arg_cmp& condition : rule.conditions) {
    sharedIndex = sharedIndex || ++perIndex[condition.arg] > 1;
  }
  if (!sharedIndex) {
    add(rule.conditions.data(), static_cast<unsigned int>(rule.conditions.size()));
    return;
  }
  // Two conditions on one argument cannot be ANDed by libseccomp: runc then adds one rule per
  // condition, so that any of them matches.
  for (const scmp_arg_cmp& condition : rule.conditions)
    add(&condition, 1);
}

}  // namespace

SeccompFilter SeccompFilter::compile(const nlohmann::json& linuxSeccomp) {
  ContextPtr context;
  try {
    if (!linuxSeccomp.is_object()) {
      fail("linux.seccomp: expected an object, got {}", typeName(linuxSeccomp));
    }
    const json& spec = linuxSeccomp;

    const std::optional<std::uint16_t> defaultErrnoRet =
        returnCode(spec, "defaultErrnoRet", "linux.seccomp.defaultErrnoRet");
    const json* defaultActionValue = member(spec, "defaultAction");
    if (defaultActionValue == nullptr) fail("linux.seccomp.defaultAction: missing");
    const std::uint32_t defaultAction =
        action(*defaultActionValue, defaultErrnoRet, "linux.seccomp.defaultAction");

    context.reset(seccomp_init(defaultAction));
    if (!context) {
      fail(
          "linux.seccomp.defaultAction: libseccomp cannot create a filter with {} (kernel too "
          "old?)",
          quotedForError(defaultActionValue->get_ref<const std::string&>()));
    }

    if (const json* archs = member(spec, "architectures")) {
      asArray(*archs, "linux.seccomp.architectures");
      for (std::size_t i = 0; i < archs->size(); ++i) {
        const std::string field = fmt::format("linux.seccomp.architectures[{}]", i);
        const std::string& name = asString((*archs)[i], field);
        auto it = std::find_if(kArchs.begin(), kArchs.end(),
                               [&](const NamedArch& entry) { return entry.name == name; });
        if (it == kArchs.end()) fail("{}: unknown architecture {}", field, quotedForError(name));
        // The native architecture is in every new filter, and a profile may list one twice.
        const int rc = seccomp_arch_add(context.get(), it->token);
        if (rc == -EDOM) {
          fail(
              "{}: {} has another byte order than the filter's other architectures, which "
              "libseccomp cannot mix",
              field, name);
        }
        if (rc < 0 && rc != -EEXIST) throwErrno(fmt::format("{}: adding {}", field, name), -rc);
      }
    }

    if (const json* flags = member(spec, "flags")) {
      asArray(*flags, "linux.seccomp.flags");
      for (std::size_t i = 0; i < flags->size(); ++i) {
        const std::string field = fmt::format("linux.seccomp.flags[{}]", i);
        const std::string& flag = asString((*flags)[i], field);
        if (int rc = applyFlag(context.get(), flag, field); rc < 0) {
          throwErrno(fmt::format("{}: {} is not supported by libseccomp or the kernel", field,
                                 quotedForError(flag)),
                     -rc);
        }
      }
    } else {
      // No flags at all (not even an empty list): as runc, SECCOMP_FILTER_FLAG_SPEC_ALLOW where
      // the kernel has it, so that the filter does not also turn the costly speculative store
      // bypass mitigation on for the container.
      (void)seccomp_attr_set(context.get(), SCMP_FLTATR_CTL_SSB, 1);
    }

    // The init sets no_new_privs itself when process.noNewPrivileges asks.
    setAttribute(context.get(), SCMP_FLTATR_CTL_NNP, 0,
                 "linux.seccomp: clearing the NNP attribute");
    // Without it libseccomp 2.5 turns every kernel error of seccomp_load into ECANCELED.
    (void)seccomp_attr_set(context.get(), SCMP_FLTATR_API_SYSRAWRC, 1);

    std::vector<SyscallRule> rules;
    std::size_t ruleCount = 0;
    if (const json* syscalls = member(spec, "syscalls")) {
      asArray(*syscalls, "linux.seccomp.syscalls");
      for (std::size_t i = 0; i < syscalls->size(); ++i) {
        rules.push_back(parseSyscall((*syscalls)[i], fmt::format("linux.seccomp.syscalls[{}]", i)));
        ruleCount += rules.back().names.size();
      }
    }
    if (ruleCount > kBinaryTreeThreshold) {
      // Not fatal: the filter is only slower without it.
      (void)seccomp_attr_set(context.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);
    }

    for (const SyscallRule& rule : rules) {
      // libseccomp refuses a rule with the default action; it would change nothing anyway.
      if (rule.action == defaultAction) continue;
      for (const std::string& name : rule.names) {
        // As runc: a name libseccomp does not know (a newer system call, a typo) is skipped.
        const int number = seccomp_syscall_resolve_name(name.c_str());
        if (number == __NR_SCMP_ERROR) continue;
        addRule(context.get(), rule, name, number);
      }
    }
  } catch (const nlohmann::json::exception& error) {
    throw RuntimeError(fmt::format("linux.seccomp: {}", error.what()));
  }
  return SeccompFilter(context.release());
}

SeccompFilter::SeccompFilter(SeccompFilter&& other) noexcept
    : context_(std::exchange(other.context_, nullptr)) {}

SeccompFilter& SeccompFilter::operator=(SeccompFilter&& other) noexcept {
  if (this != &other) {
    if (context_ != nullptr) seccomp_release(context_);
    context_ = std::exchange(other.context_, nullptr);
  }
  return *this;
}

SeccompFilter::~SeccompFilter() {
  if (context_ != nullptr) seccomp_release(context_);
}

void SeccompFilter::load() {
  if (context_ == nullptr) fail("loading the seccomp filter: the filter was moved from");
  if (int rc = seccomp_load(context_); rc < 0) throwErrno("loading the seccomp filter", -rc);
}

nlohmann::json seccompFeatures() {
  json actions = json::array();
  for (const NamedAction& entry : kActions) {
    if (entry.kind != ActionKind::kNotify) actions.push_back(entry.name);
  }
  json operators = json::array();
  for (const NamedOperator& entry : kOperators)
    operators.push_back(entry.name);
  json archs = json::array();
  for (const NamedArch& entry : kArchs)
    archs.push_back(entry.name);
  json knownFlags = json::array();
  json supportedFlags = json::array();
  ContextPtr probe(seccomp_init(SCMP_ACT_ALLOW));
  for (const NamedFlag& entry : kFlags) {
    knownFlags.push_back(entry.name);
    if (probe && seccomp_attr_set(probe.get(), entry.attr, 1) == 0) {
      supportedFlags.push_back(entry.name);
    }
  }
  return json{{"enabled", true},
              {"actions", std::move(actions)},
              {"operators", std::move(operators)},
              {"archs", std::move(archs)},
              {"knownFlags", std::move(knownFlags)},
              {"supportedFlags", std::move(supportedFlags)}};
}

}  // namespace monocri::runtime
