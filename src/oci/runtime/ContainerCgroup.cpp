// The cgroupfs driver: runc 1.1's libcontainer/cgroups/fs (v1) and fs2 (v2) behaviour with
// plain open/write/close calls. A cgroup is the list of its directories; which of them take the
// limits follows from that list: a v1 directory of the controller when any v1 controller
// hierarchy is there (v1 and hybrid hosts: the unified directory only holds the processes), the
// unified directory otherwise (v2 hosts).
#include "oci/runtime/ContainerCgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>
#include <optional>
#include <string_view>
#include <utility>

#include <fmt/ranges.h>

#include "oci/runtime/RuntimeError.h"

namespace monocri::runtime {

using Json = nlohmann::json;

namespace {

constexpr size_t kMaxCgroupFileBytes = 1 << 20;  // cgroup.procs of a large cgroup stays below
constexpr int kFreezeAttempts = 1000;            // runc's v1 freezer retry count
constexpr auto kFreezeWaitLimit = std::chrono::seconds(10);
constexpr auto kRemoveRetryLimit = std::chrono::milliseconds(1000);
constexpr uint32_t kMaxAttachedPrograms = 64;  // device programs of one cgroup we replace

// ---------------------------------------------------------------------------------------------
// Files

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

void sleepFor(std::chrono::microseconds duration) {
  timespec ts{static_cast<time_t>(duration.count() / 1000000),
              static_cast<long>(duration.count() % 1000000) * 1000};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

std::string joinPath(std::string_view directory, std::string_view name) {
  std::string path(directory);
  if (path.empty() || path.back() != '/') path += '/';
  path += name;
  return path;
}

// The content, or nullopt when the file does not exist. Other failures throw.
std::optional<std::string> readOptional(const std::string& path) {
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::nullopt;
    throwErrno(fmt::format("open {}", path));
  }
  std::string content;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      throwErrno(fmt::format("read {}", path));
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
    if (content.size() > kMaxCgroupFileBytes)
      fail("{} is larger than {} bytes", path, kMaxCgroupFileBytes);
  }
  return content;
}

std::string readFile(const std::string& path) {
  auto content = readOptional(path);
  if (!content) throwErrno(fmt::format("open {}", path), ENOENT);
  return std::move(*content);
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.remove_suffix(1);
  while (!text.empty() && (text.front() == '\n' || text.front() == ' '))
    text.remove_prefix(1);
  return text;
}

// 0 or the errno of the failed open/write.
int tryWrite(const std::string& path, std::string_view value) {
  const Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) return errno;
  ssize_t n;
  do {
    n = ::write(fd.get(), value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  return static_cast<size_t>(n) == value.size() ? 0 : EIO;
}

void writeFile(const std::string& path, std::string_view value) {
  if (const int error = tryWrite(path, value); error != 0)
    throwErrno(fmt::format("write \"{}\" to {}", value, path), error);
}

bool exists(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

std::optional<uint64_t> parseUint(std::string_view text) {
  text = trimmed(text);
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::vector<std::string_view> splitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

std::vector<std::string_view> splitOn(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  for (;;) {
    const size_t end = text.find(separator);
    parts.push_back(text.substr(0, end));
    if (end == std::string_view::npos) return parts;
    text.remove_prefix(end + 1);
  }
}

bool containsWord(std::string_view list, std::string_view word) {
  for (const auto item : splitOn(trimmed(list), ' '))
    if (item == word) return true;
  return false;
}

// "/a//b/" → "a/b"; refuses "..". `what` names the setting in the error.
std::string cleanRelative(std::string_view path, std::string_view what) {
  if (path.find('\0') != std::string_view::npos) fail("{} holds a NUL byte", what);
  std::string clean;
  for (const auto part : splitOn(path, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") fail("{} \"{}\" has a \"..\" component", what, path);
    if (!clean.empty()) clean += '/';
    clean += part;
  }
  return clean;
}

// Directories first-level children of `path` (cgroup directories hold only files and cgroups).
std::vector<std::string> subdirectories(const std::string& path) {
  std::vector<std::string> children;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return children;
    throwErrno(fmt::format("open directory {}", path));
  }
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_type != DT_DIR) continue;
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    children.push_back(joinPath(path, name));
  }
  ::closedir(dir);
  return children;
}

// rmdir of `path` and what is under it, deepest first: 0, or the errno of the first that failed
// (with *failed naming it). A tree already gone is 0.
int removeTree(const std::string& path, std::string* failed) {
  for (const auto& child : subdirectories(path)) {
    if (const int error = removeTree(child, failed); error != 0) return error;
  }
  if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return 0;
  *failed = path;
  return errno;
}

// ---------------------------------------------------------------------------------------------
// /proc/self/mountinfo and /proc/self/cgroup

struct CgroupMount {
  std::string root;        // the hierarchy's directory mounted here ("/" for the whole)
  std::string mountpoint;  // where
  bool unified = false;
  std::vector<std::string> options;  // v1 super options: "rw", "memory", "name=systemd"...
};

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescapeOctal(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && field.size() - i >= 4) {
      const auto digit = [&](size_t k) { return field[i + k] >= '0' && field[i + k] <= '7'; };
      if (digit(1) && digit(2) && digit(3)) {
        out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                 (field[i + 3] - '0'));
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

// "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices"
std::vector<CgroupMount> cgroupMounts() {
  std::vector<CgroupMount> mounts;
  const std::string table = readFile("/proc/self/mountinfo");
  for (const auto line : splitLines(table)) {
    const size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    const auto after = splitOn(line.substr(dash + 3), ' ');
    if (after.size() < 3 || (after[0] != "cgroup" && after[0] != "cgroup2")) continue;
    const auto before = splitOn(line.substr(0, dash), ' ');
    if (before.size() < 5) continue;
    CgroupMount mount;
    mount.root = unescapeOctal(before[3]);
    mount.mountpoint = unescapeOctal(before[4]);
    mount.unified = after[0] == "cgroup2";
    for (const auto option : splitOn(after[2], ','))
      mount.options.emplace_back(option);
    mounts.push_back(std::move(mount));
  }
  return mounts;
}

struct OwnCgroup {
  std::vector<std::string> controllers;  // "cpu", "cpuacct" or "name=systemd"; empty for v2
  std::string path;                      // from the hierarchy's root
  bool unified = false;
};

// "4:memory:/process_api/822218c7"; "0::/" is the unified hierarchy.
std::vector<OwnCgroup> ownCgroups() {
  std::vector<OwnCgroup> own;
  const std::string table = readFile("/proc/self/cgroup");
  for (const auto line : splitLines(table)) {
    const size_t first = line.find(':');
    const size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    OwnCgroup entry;
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    entry.unified = line.substr(0, first) == "0" && controllers.empty();
    if (!controllers.empty()) {
      for (const auto controller : splitOn(controllers, ','))
        entry.controllers.emplace_back(controller);
    }
    entry.path = std::string(line.substr(second + 1));
    own.push_back(std::move(entry));
  }
  return own;
}

const CgroupMount* mountOf(const std::vector<CgroupMount>& mounts, const OwnCgroup& own) {
  for (const auto& mount : mounts) {
    if (mount.unified != own.unified) continue;
    if (own.unified) return &mount;
    if (own.controllers.empty()) continue;
    const bool all = std::all_of(own.controllers.begin(), own.controllers.end(), [&](auto& c) {
      return std::find(mount.options.begin(), mount.options.end(), c) != mount.options.end();
    });
    if (all) return &mount;
  }
  return nullptr;
}

// `hierarchyPath` (from the hierarchy's root) below the mount's root, or nullopt when the mount
// does not show it.
std::optional<std::string> belowMountRoot(const std::string& root,
                                          const std::string& hierarchyPath) {
  if (root == "/") return hierarchyPath;
  if (hierarchyPath == root) return std::string("/");
  if (hierarchyPath.size() > root.size() && hierarchyPath.compare(0, root.size(), root) == 0 &&
      hierarchyPath[root.size()] == '/') {
    return hierarchyPath.substr(root.size());
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// linux.resources fields, type-checked with the setting's name in the error

const Json* member(const Json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

const Json* objectMember(const Json& object, const char* key, std::string_view where) {
  const Json* value = member(object, key);
  if (value != nullptr && !value->is_object())
    fail("{}.{} must be an object, not {}", where, key, value->type_name());
  return value;
}

const Json* arrayMember(const Json& object, const char* key, std::string_view where) {
  const Json* value = member(object, key);
  if (value != nullptr && !value->is_array())
    fail("{}.{} must be an array, not {}", where, key, value->type_name());
  return value;
}

std::optional<int64_t> int64Member(const Json& object, const char* key, std::string_view where) {
  const Json* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number_integer())
    fail("{}.{} must be an integer, not {} {}", where, key, value->type_name(), value->dump());
  if (value->is_number_unsigned() && value->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    fail("{}.{} {} is out of range", where, key, value->dump());
  return value->get<int64_t>();
}

std::optional<uint64_t> uint64Member(const Json& object, const char* key, std::string_view where) {
  const Json* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number_unsigned() && !(value->is_number_integer() && value->get<int64_t>() >= 0))
    fail("{}.{} must be a non-negative integer, not {}", where, key, value->dump());
  return value->get<uint64_t>();
}

std::optional<std::string> stringMember(const Json& object, const char* key,
                                        std::string_view where) {
  const Json* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_string())
    fail("{}.{} must be a string, not {} {}", where, key, value->type_name(), value->dump());
  auto text = value->get<std::string>();
  if (text.find_first_of(std::string_view("\0\n", 2)) != std::string::npos)
    fail("{}.{} holds a newline or NUL", where, key);
  return text;
}

std::optional<bool> boolMember(const Json& object, const char* key, std::string_view where) {
  const Json* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_boolean()) fail("{}.{} must be true or false, not {}", where, key, value->dump());
  return value->get<bool>();
}

// -1 (or any negative) "max", 0 unset, else the number: fs2's numToStr.
std::string v2Limit(int64_t value) {
  return value < 0 ? "max" : std::to_string(value);
}

// runc's ConvertCPUSharesToCgroupV2Value: [2, 262144] → [1, 10000].
uint64_t cpuWeightFromShares(uint64_t shares) {
  if (shares == 0) return 0;
  if (shares < 2) shares = 2;
  return 1 + ((shares - 2) * 9999) / 262142;
}

// runc's ConvertBlkIOToIOWeightValue: [10, 1000] → [1, 10000].
uint64_t ioWeightFromBlkio(uint64_t weight) {
  if (weight == 0) return 0;
  if (weight < 10) weight = 10;
  return 1 + (weight - 10) * 9999 / 990;
}

// ---------------------------------------------------------------------------------------------
// Devices

struct DeviceRule {
  bool allow = false;
  char type = 'a';     // 'a', 'b' or 'c'
  int64_t major = -1;  // -1: any
  int64_t minor = -1;
  std::string access = "rwm";
};

std::vector<DeviceRule> deviceRules(const Json& list) {
  std::vector<DeviceRule> rules;
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& entry = list[i];
    const std::string where = fmt::format("linux.resources.devices[{}]", i);
    if (!entry.is_object()) fail("{} must be an object, not {}", where, entry.type_name());
    DeviceRule rule;
    const auto allow = boolMember(entry, "allow", where);
    if (!allow) fail("{}.allow is missing", where);
    rule.allow = *allow;
    if (const auto type = stringMember(entry, "type", where)) {
      if (type->size() != 1 || (*type != "a" && *type != "b" && *type != "c"))
        fail("{}.type \"{}\" is none of a, b, c", where, *type);
      rule.type = (*type)[0];
    }
    for (auto [key, field] : {std::pair{"major", &rule.major}, std::pair{"minor", &rule.minor}}) {
      if (const auto number = int64Member(entry, key, where)) {
        if (*number < -1 || *number > UINT32_MAX)
          fail("{}.{} {} is not a device number", where, key, *number);
        *field = *number;
      }
    }
    if (const auto access = stringMember(entry, "access", where)) {
      if (access->find_first_not_of("rwm") != std::string::npos)
        fail("{}.access \"{}\" is not made of r, w, m", where, *access);
      if (!access->empty()) rule.access = *access;
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

std::string deviceNumber(int64_t number) {
  return number < 0 ? "*" : std::to_string(number);
}

// cgroup v1: "a" denied first, then each rule in order, as runc did.
void applyDevicesV1(const std::string& dir, const std::vector<DeviceRule>& rules) {
  writeFile(joinPath(dir, "devices.deny"), "a");
  for (const auto& rule : rules) {
    const std::string file = joinPath(dir, rule.allow ? "devices.allow" : "devices.deny");
    const bool everything = rule.major < 0 && rule.minor < 0 && rule.access.size() == 3 &&
                            rule.access.find_first_not_of("rwm") == std::string::npos &&
                            rule.access.find('r') != std::string::npos &&
                            rule.access.find('w') != std::string::npos &&
                            rule.access.find('m') != std::string::npos;
    if (rule.type == 'a' && everything) {
      writeFile(file, "a");
      continue;
    }
    // The kernel reads a "a" entry as every device whatever follows: a narrower rule for both
    // kinds is written for each.
    const std::string numbers =
        fmt::format("{}:{} {}", deviceNumber(rule.major), deviceNumber(rule.minor), rule.access);
    if (rule.type == 'a' || rule.type == 'c') writeFile(file, "c " + numbers);
    if (rule.type == 'a' || rule.type == 'b') writeFile(file, "b " + numbers);
  }
}

bpf_insn instruction(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn insn{};
  insn.code = code;
  insn.dst_reg = dst & 0xf;
  insn.src_reg = src & 0xf;
  insn.off = off;
  insn.imm = imm;
  return insn;
}

// The BPF_PROG_TYPE_CGROUP_DEVICE program of runc's devicefilter: the rules checked from the
// last to the first (the last matching one decides), anything no rule matches denied.
//   r2 = device type, r3 = access, r4 = major, r5 = minor (struct bpf_cgroup_dev_ctx)
std::vector<bpf_insn> deviceProgram(const std::vector<DeviceRule>& rules) {
  std::vector<bpf_insn> program = {
      instruction(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, 0, 0),
      instruction(BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xFFFF),
      instruction(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_1, 0, 0),
      instruction(BPF_ALU | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16),
      instruction(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1, 4, 0),
      instruction(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_5, BPF_REG_1, 8, 0),
  };
  for (auto rule = rules.rbegin(); rule != rules.rend(); ++rule) {
    std::vector<size_t> jumps;  // to the next rule's block
    const auto jumpIfNot = [&](bpf_insn insn) {
      jumps.push_back(program.size());
      program.push_back(insn);
    };
    if (rule->type != 'a') {
      const int32_t type = rule->type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK;
      jumpIfNot(instruction(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, 0, type));
    }
    int32_t access = 0;
    for (const char c : rule->access) {
      access |= c == 'r'   ? BPF_DEVCG_ACC_READ
                : c == 'w' ? BPF_DEVCG_ACC_WRITE
                           : BPF_DEVCG_ACC_MKNOD;
    }
    if (access != (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)) {
      // if ((r3 & access) != r3) next: the access asked for must be within the rule's
      program.push_back(instruction(BPF_ALU | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0));
      program.push_back(instruction(BPF_ALU | BPF_AND | BPF_K, BPF_REG_1, 0, 0, access));
      jumpIfNot(instruction(BPF_JMP | BPF_JNE | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0));
    }
    if (rule->major >= 0) {
      jumpIfNot(instruction(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, 0,
                            static_cast<int32_t>(rule->major)));
    }
    if (rule->minor >= 0) {
      jumpIfNot(instruction(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 0,
                            static_cast<int32_t>(rule->minor)));
    }
    program.push_back(instruction(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, rule->allow ? 1 : 0));
    program.push_back(instruction(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    // A rule matching every device decides alone: the rules before it are unreachable (and
    // the verifier refuses unreachable instructions).
    if (jumps.empty()) return program;
    for (const size_t jump : jumps)
      program[jump].off = static_cast<int16_t>(program.size() - jump - 1);
  }
  program.push_back(instruction(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0));
  program.push_back(instruction(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
  return program;
}

long bpfCall(int command, bpf_attr& attr) {
  return ::syscall(SYS_bpf, command, &attr, sizeof attr);
}

uint64_t pointerValue(const void* pointer) {
  return reinterpret_cast<uintptr_t>(pointer);
}

// cgroup v2: the rules as an eBPF program attached (BPF_F_ALLOW_MULTI) to `dir`; the programs
// attached before (an earlier apply) are detached once the new one is in place, as runc does.
void applyDevicesV2(const std::string& dir, const std::vector<DeviceRule>& rules) {
  const std::vector<bpf_insn> program = deviceProgram(rules);
  static constexpr char kLicense[] = "Apache";
  bpf_attr load{};
  load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  load.insns = pointerValue(program.data());
  load.insn_cnt = static_cast<uint32_t>(program.size());
  load.license = pointerValue(kLicense);
  const Fd programFd(static_cast<int>(bpfCall(BPF_PROG_LOAD, load)));
  if (programFd.get() < 0) {
    const int error = errno;
    std::string log(4096, '\0');
    load.log_buf = pointerValue(log.data());
    load.log_size = static_cast<uint32_t>(log.size());
    load.log_level = 1;
    const Fd retry(static_cast<int>(bpfCall(BPF_PROG_LOAD, load)));
    log.resize(std::strlen(log.c_str()));
    fail("load the devices eBPF program ({} instructions) for {}: {}{}{}", program.size(), dir,
         std::strerror(error), log.empty() ? "" : ": ", trimmed(log));
  }

  const Fd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirFd.get() < 0) throwErrno(fmt::format("open {}", dir));
  std::array<uint32_t, kMaxAttachedPrograms> attached{};
  bpf_attr query{};
  query.query.target_fd = static_cast<uint32_t>(dirFd.get());
  query.query.attach_type = BPF_CGROUP_DEVICE;
  query.query.prog_ids = pointerValue(attached.data());
  query.query.prog_cnt = kMaxAttachedPrograms;
  uint32_t attachedCount = 0;
  if (bpfCall(BPF_PROG_QUERY, query) == 0) {
    attachedCount = std::min(query.query.prog_cnt, kMaxAttachedPrograms);
  } else if (errno != EINVAL && errno != ENOSPC) {
    throwErrno(fmt::format("query the device programs of {}", dir));
  }

  bpf_attr attach{};
  attach.target_fd = static_cast<uint32_t>(dirFd.get());
  attach.attach_bpf_fd = static_cast<uint32_t>(programFd.get());
  attach.attach_type = BPF_CGROUP_DEVICE;
  attach.attach_flags = BPF_F_ALLOW_MULTI;
  if (bpfCall(BPF_PROG_ATTACH, attach) != 0)
    throwErrno(fmt::format("attach the devices eBPF program to {}", dir));

  for (uint32_t i = 0; i < attachedCount; ++i) {
    bpf_attr byId{};
    byId.prog_id = attached[i];
    const Fd oldFd(static_cast<int>(bpfCall(BPF_PROG_GET_FD_BY_ID, byId)));
    if (oldFd.get() < 0) {
      if (errno == ENOENT) continue;  // gone meanwhile
      throwErrno(fmt::format("open the device program {} of {}", attached[i], dir));
    }
    bpf_attr detach{};
    detach.target_fd = static_cast<uint32_t>(dirFd.get());
    detach.attach_bpf_fd = static_cast<uint32_t>(oldFd.get());
    detach.attach_type = BPF_CGROUP_DEVICE;
    if (bpfCall(BPF_PROG_DETACH, detach) != 0 && errno != ENOENT)
      throwErrno(fmt::format("detach the previous device program {} from {}", attached[i], dir));
  }
}

// ---------------------------------------------------------------------------------------------
// Applying linux.resources

class Resources {
 public:
  explicit Resources(const std::vector<std::pair<std::string, std::vector<std::string>>>& v1,
                     const std::string* unified)
      : v1_(v1), unified_(unified) {
    for (const auto& [path, controllers] : v1_) {
      for (const auto& c : controllers)
        if (c.rfind("name=", 0) != 0) v1Host_ = true;
    }
  }

  bool v1Host() const { return v1Host_; }

  // The directory that takes `controller`'s files for the `setting`, or an error naming both.
  const std::string& dirFor(std::string_view controller, std::string_view setting) {
    if (v1Host_) {
      if (const std::string* dir = v1Dir(controller)) return *dir;
      fail(
          "linux.resources.{} needs the cgroup {} controller, and no cgroup v1 {} hierarchy is "
          "mounted{}",
          setting, controller, controller,
          unified_ != nullptr ? " (this host uses cgroup v1 for limits, not the unified hierarchy)"
                              : "");
    }
    if (unified_ == nullptr) fail("linux.resources.{}: no cgroup hierarchy is mounted", setting);
    if (!controllers_) controllers_ = readOptional(joinPath(*unified_, "cgroup.controllers"));
    if (!controllers_ || !containsWord(*controllers_, controller)) {
      fail(
          "linux.resources.{} needs the cgroup v2 {} controller, which is not enabled for {} "
          "(cgroup.controllers: \"{}\")",
          setting, controller, *unified_, controllers_ ? trimmed(*controllers_) : "");
    }
    return *unified_;
  }

  const std::string* v1Dir(std::string_view controller) const {
    for (const auto& [path, controllers] : v1_) {
      if (std::find(controllers.begin(), controllers.end(), controller) != controllers.end())
        return &path;
    }
    return nullptr;
  }
  const std::string* unified() const { return unified_; }

  void apply(const Json& resources) {
    if (resources.is_null()) return;
    if (!resources.is_object())
      fail("linux.resources must be an object, not {}", resources.type_name());
    constexpr std::string_view where = "linux.resources";
    // Parse everything that can be refused before the first write.
    std::optional<std::vector<DeviceRule>> devices;
    if (const Json* list = arrayMember(resources, "devices", where)) devices = deviceRules(*list);
    if (const Json* rdma = member(resources, "rdma"); rdma != nullptr && !rdma->empty())
      fail("linux.resources.rdma is not supported");

    if (const Json* cpu = objectMember(resources, "cpu", where)) {
      cpuset(*cpu);
    }
    if (devices) applyDevices(*devices);
    if (const Json* memory = objectMember(resources, "memory", where))
      v1Host_ ? memoryV1(*memory) : memoryV2(*memory);
    if (const Json* cpu = objectMember(resources, "cpu", where))
      v1Host_ ? cpuV1(*cpu) : cpuV2(*cpu);
    if (const Json* pids = objectMember(resources, "pids", where)) {
      if (const auto limit = int64Member(*pids, "limit", "linux.resources.pids")) {
        writeFile(joinPath(dirFor("pids", "pids.limit"), "pids.max"),
                  *limit > 0 ? std::to_string(*limit) : "max");
      }
    }
    if (const Json* blockIO = objectMember(resources, "blockIO", where)) blkio(*blockIO);
    if (const Json* pages = arrayMember(resources, "hugepageLimits", where)) hugetlb(*pages);
    if (const Json* network = objectMember(resources, "network", where)) this->network(*network);
    if (const Json* unified = objectMember(resources, "unified", where)) unifiedFiles(*unified);
  }

 private:
  void memoryV1(const Json& memory) {
    constexpr std::string_view where = "linux.resources.memory";
    const auto limit = int64Member(memory, "limit", where).value_or(0);
    auto swap = int64Member(memory, "swap", where).value_or(0);
    const auto reservation = int64Member(memory, "reservation", where);
    const auto kernelTCP = int64Member(memory, "kernelTCP", where);
    const auto swappiness = int64Member(memory, "swappiness", where);
    const auto disableOOMKiller = boolMember(memory, "disableOOMKiller", where);
    if (limit < -1 || swap < -1) fail("{}.limit/swap must be -1, 0 or a size", where);
    if (swappiness && (*swappiness < -1 || *swappiness > 100))
      fail("{}.swappiness {} is outside 0..100", where, *swappiness);
    const std::string& dir = dirFor("memory", "memory");
    const std::string limitFile = joinPath(dir, "memory.limit_in_bytes");
    const std::string swapFile = joinPath(dir, "memory.memsw.limit_in_bytes");
    // Unlimited memory with swap not given: unlimited swap too, when the host accounts it.
    if (limit == -1 && swap == 0 && exists(swapFile)) swap = -1;
    if (swap != 0 && !exists(swapFile))
      fail("{}.swap {}: this host does not account swap (no {})", where, swap, swapFile);
    const auto setLimit = [&] {
      if (limit != 0) writeFile(limitFile, std::to_string(limit));
    };
    const auto setSwap = [&] {
      if (swap != 0) writeFile(swapFile, std::to_string(swap));
    };
    // memory ≤ memory+swap must hold after each write: raise memsw first when it grows past the
    // current memory limit, else lower the memory limit first.
    bool swapFirst = false;
    if (limit != 0 && swap != 0) {
      const auto current = parseUint(readFile(limitFile));
      if (!current) fail("{} holds no number", limitFile);
      swapFirst = swap == -1 || *current < static_cast<uint64_t>(swap);
    }
    if (swapFirst) {
      setSwap();
      setLimit();
    } else {
      setLimit();
      setSwap();
    }
    if (reservation && *reservation != 0)
      writeFile(joinPath(dir, "memory.soft_limit_in_bytes"), std::to_string(*reservation));
    if (kernelTCP && *kernelTCP != 0)
      writeFile(joinPath(dir, "memory.kmem.tcp.limit_in_bytes"), std::to_string(*kernelTCP));
    if (disableOOMKiller.value_or(false)) writeFile(joinPath(dir, "memory.oom_control"), "1");
    if (swappiness && *swappiness >= 0)
      writeFile(joinPath(dir, "memory.swappiness"), std::to_string(*swappiness));
  }

  void memoryV2(const Json& memory) {
    constexpr std::string_view where = "linux.resources.memory";
    const auto limit = int64Member(memory, "limit", where).value_or(0);
    const auto swap = int64Member(memory, "swap", where).value_or(0);
    const auto reservation = int64Member(memory, "reservation", where).value_or(0);
    if (limit < -1 || swap < -1) fail("{}.limit/swap must be -1, 0 or a size", where);
    if (limit == 0 && swap == 0 && reservation == 0) return;
    const std::string& dir = dirFor("memory", "memory");
    // memory.swap.max is swap alone: the spec's swap is memory plus swap.
    int64_t swapOnly = swap;
    if (limit == -1 && swap == 0) {
      swapOnly = -1;
    } else if (swap > 0) {
      if (limit <= 0) fail("{}.swap {} needs a memory limit", where, swap);
      if (swap < limit) fail("{}.swap {} (memory plus swap) is below limit {}", where, swap, limit);
      swapOnly = swap - limit;
    }
    if (swapOnly != 0 || swap > 0) {
      const std::string file = joinPath(dir, "memory.swap.max");
      const std::string value = v2Limit(swapOnly);
      // A host without swap accounting: "max" and "0" are what it has anyway.
      if (const int error = tryWrite(file, value);
          error != 0 && !(error == ENOENT && swapOnly <= 0))
        throwErrno(fmt::format("write \"{}\" to {}", value, file), error);
    }
    if (limit != 0) writeFile(joinPath(dir, "memory.max"), v2Limit(limit));
    if (reservation != 0) writeFile(joinPath(dir, "memory.low"), v2Limit(reservation));
  }

  void cpuset(const Json& cpu) {
    constexpr std::string_view where = "linux.resources.cpu";
    const auto cpus = stringMember(cpu, "cpus", where);
    const auto mems = stringMember(cpu, "mems", where);
    if (cpus && !cpus->empty())
      writeFile(joinPath(dirFor("cpuset", "cpu.cpus"), "cpuset.cpus"), *cpus);
    if (mems && !mems->empty())
      writeFile(joinPath(dirFor("cpuset", "cpu.mems"), "cpuset.mems"), *mems);
  }

  struct CpuFields {
    uint64_t shares = 0, period = 0;
    int64_t quota = 0, realtimeRuntime = 0;
    uint64_t realtimePeriod = 0;
    std::optional<uint64_t> burst;
    std::optional<int64_t> idle;
  };
  static CpuFields cpuFields(const Json& cpu) {
    constexpr std::string_view where = "linux.resources.cpu";
    CpuFields f;
    f.shares = uint64Member(cpu, "shares", where).value_or(0);
    f.quota = int64Member(cpu, "quota", where).value_or(0);
    f.period = uint64Member(cpu, "period", where).value_or(0);
    f.realtimeRuntime = int64Member(cpu, "realtimeRuntime", where).value_or(0);
    f.realtimePeriod = uint64Member(cpu, "realtimePeriod", where).value_or(0);
    f.burst = uint64Member(cpu, "burst", where);
    f.idle = int64Member(cpu, "idle", where);
    return f;
  }
  bool anyCpu(const CpuFields& f) const {
    return f.shares != 0 || f.quota != 0 || f.period != 0 || f.realtimeRuntime != 0 ||
           f.realtimePeriod != 0 || f.burst || f.idle;
  }

  void cpuV1(const Json& cpu) {
    const CpuFields f = cpuFields(cpu);
    if (!anyCpu(f)) return;
    const std::string& dir = dirFor("cpu", "cpu");
    if (f.shares != 0) {
      const std::string file = joinPath(dir, "cpu.shares");
      writeFile(file, std::to_string(f.shares));
      const auto set = parseUint(readFile(file));
      if (set && *set != f.shares) {
        fail("linux.resources.cpu.shares {} is outside the kernel's range: it set {}", f.shares,
             *set);
      }
    }
    const std::string periodFile = joinPath(dir, "cpu.cfs_period_us");
    bool periodPending = false;
    if (f.period != 0) {
      // A period below the current one can be refused (EINVAL) until the quota is lowered:
      // then it is written again after the quota.
      const int error = tryWrite(periodFile, std::to_string(f.period));
      if (error == EINVAL && f.quota != 0) {
        periodPending = true;
      } else if (error != 0) {
        throwErrno(fmt::format("write \"{}\" to {}", f.period, periodFile), error);
      }
    }
    if (f.quota != 0) writeFile(joinPath(dir, "cpu.cfs_quota_us"), std::to_string(f.quota));
    if (periodPending) writeFile(periodFile, std::to_string(f.period));
    if (f.burst) writeFile(joinPath(dir, "cpu.cfs_burst_us"), std::to_string(*f.burst));
    if (f.realtimePeriod != 0)
      writeFile(joinPath(dir, "cpu.rt_period_us"), std::to_string(f.realtimePeriod));
    if (f.realtimeRuntime != 0)
      writeFile(joinPath(dir, "cpu.rt_runtime_us"), std::to_string(f.realtimeRuntime));
    if (f.idle) writeFile(joinPath(dir, "cpu.idle"), std::to_string(*f.idle));
  }

  void cpuV2(const Json& cpu) {
    const CpuFields f = cpuFields(cpu);
    if (!anyCpu(f)) return;
    if (f.realtimeRuntime != 0 || f.realtimePeriod != 0)
      fail("linux.resources.cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no realtime limits");
    const std::string& dir = dirFor("cpu", "cpu");
    if (f.shares != 0)
      writeFile(joinPath(dir, "cpu.weight"), std::to_string(cpuWeightFromShares(f.shares)));
    if (f.quota != 0 || f.period != 0) {
      std::string max = f.quota > 0 ? std::to_string(f.quota) : "max";
      if (f.period != 0) max += " " + std::to_string(f.period);
      writeFile(joinPath(dir, "cpu.max"), max);
    }
    if (f.burst) writeFile(joinPath(dir, "cpu.max.burst"), std::to_string(*f.burst));
    if (f.idle) writeFile(joinPath(dir, "cpu.idle"), std::to_string(*f.idle));
  }

  void applyDevices(const std::vector<DeviceRule>& rules) {
    if (rules.empty()) return;
    if (v1Host_) {
      if (const std::string* dir = v1Dir("devices")) return applyDevicesV1(*dir, rules);
    }
    if (unified_ == nullptr)
      fail("linux.resources.devices: no devices cgroup hierarchy is mounted");
    applyDevicesV2(*unified_, rules);
  }

  void blkio(const Json& blockIO) {
    constexpr std::string_view where = "linux.resources.blockIO";
    const auto weight = uint64Member(blockIO, "weight", where).value_or(0);
    const auto leafWeight = uint64Member(blockIO, "leafWeight", where).value_or(0);
    struct Entry {
      std::string device;  // "major:minor"
      uint64_t value = 0, leafWeight = 0;
    };
    const auto entries = [&](const char* key, const char* valueKey) {
      std::vector<Entry> list;
      const Json* array = arrayMember(blockIO, key, where);
      if (array == nullptr) return list;
      for (size_t i = 0; i < array->size(); ++i) {
        const Json& item = (*array)[i];
        const std::string at = fmt::format("{}.{}[{}]", where, key, i);
        if (!item.is_object()) fail("{} must be an object, not {}", at, item.type_name());
        const auto major = uint64Member(item, "major", at);
        const auto minor = uint64Member(item, "minor", at);
        if (!major || !minor) fail("{} needs major and minor", at);
        list.push_back({fmt::format("{}:{}", *major, *minor),
                        uint64Member(item, valueKey, at).value_or(0),
                        uint64Member(item, "leafWeight", at).value_or(0)});
      }
      return list;
    };
    const auto weightDevices = entries("weightDevice", "weight");
    const std::array<std::pair<std::vector<Entry>, std::pair<const char*, const char*>>, 4>
        throttles = {{
            {entries("throttleReadBpsDevice", "rate"), {"blkio.throttle.read_bps_device", "rbps"}},
            {entries("throttleWriteBpsDevice", "rate"),
             {"blkio.throttle.write_bps_device", "wbps"}},
            {entries("throttleReadIOPSDevice", "rate"),
             {"blkio.throttle.read_iops_device", "riops"}},
            {entries("throttleWriteIOPSDevice", "rate"),
             {"blkio.throttle.write_iops_device", "wiops"}},
        }};
    bool any = weight != 0 || leafWeight != 0 || !weightDevices.empty();
    for (const auto& throttle : throttles)
      any = any || !throttle.first.empty();
    if (!any) return;

    if (v1Host_) {
      const std::string& dir = dirFor("blkio", "blockIO");
      // BFQ's files where the kernel has them (CFQ's blkio.weight went with CFQ).
      const bool bfq = exists(joinPath(dir, "blkio.bfq.weight"));
      const std::string weightFile = joinPath(dir, bfq ? "blkio.bfq.weight" : "blkio.weight");
      const std::string deviceFile =
          joinPath(dir, bfq ? "blkio.bfq.weight_device" : "blkio.weight_device");
      if (weight != 0) writeFile(weightFile, std::to_string(weight));
      if (leafWeight != 0)
        writeFile(joinPath(dir, "blkio.leaf_weight"), std::to_string(leafWeight));
      for (const auto& entry : weightDevices) {
        if (entry.value != 0)
          writeFile(deviceFile, fmt::format("{} {}", entry.device, entry.value));
        if (entry.leafWeight != 0) {
          writeFile(joinPath(dir, "blkio.leaf_weight_device"),
                    fmt::format("{} {}", entry.device, entry.leafWeight));
        }
      }
      for (const auto& [list, names] : throttles) {
        for (const auto& entry : list)
          writeFile(joinPath(dir, names.first), fmt::format("{} {}", entry.device, entry.value));
      }
      return;
    }
    const std::string& dir = dirFor("io", "blockIO");
    const std::string bfqFile = joinPath(dir, "io.bfq.weight");
    const bool bfq = (weight != 0 || !weightDevices.empty()) && exists(bfqFile);
    if (weight != 0) {
      if (bfq) {
        writeFile(bfqFile, std::to_string(weight));
      } else {
        writeFile(joinPath(dir, "io.weight"), std::to_string(ioWeightFromBlkio(weight)));
      }
    }
    for (const auto& entry : weightDevices) {
      if (entry.value == 0) continue;
      if (bfq) {
        writeFile(bfqFile, fmt::format("{} {}", entry.device, entry.value));
      } else {
        writeFile(joinPath(dir, "io.weight"),
                  fmt::format("{} {}", entry.device, ioWeightFromBlkio(entry.value)));
      }
    }
    for (const auto& [list, names] : throttles) {
      for (const auto& entry : list)
        writeFile(joinPath(dir, "io.max"),
                  fmt::format("{} {}={}", entry.device, names.second, entry.value));
    }
  }

  void hugetlb(const Json& pages) {
    for (size_t i = 0; i < pages.size(); ++i) {
      const Json& item = pages[i];
      const std::string at = fmt::format("linux.resources.hugepageLimits[{}]", i);
      if (!item.is_object()) fail("{} must be an object, not {}", at, item.type_name());
      const auto size = stringMember(item, "pageSize", at);
      const auto limit = uint64Member(item, "limit", at);
      if (!size || !limit) fail("{} needs pageSize and limit", at);
      if (size->empty() || !std::all_of(size->begin(), size->end(), [](char c) {
            return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
          })) {
        fail("{}.pageSize \"{}\" is not a size like 2MB", at, *size);
      }
      const std::string& dir = dirFor("hugetlb", "hugepageLimits");
      const std::string file = v1Host_ ? fmt::format("hugetlb.{}.limit_in_bytes", *size)
                                       : fmt::format("hugetlb.{}.max", *size);
      writeFile(joinPath(dir, file), std::to_string(*limit));
    }
  }

  void network(const Json& network) {
    constexpr std::string_view where = "linux.resources.network";
    const auto classID = uint64Member(network, "classID", where);
    const Json* priorities = arrayMember(network, "priorities", where);
    if (!v1Host_ && (classID || (priorities && !priorities->empty())))
      fail("{}: cgroup v2 has no net_cls or net_prio controller", where);
    if (classID)
      writeFile(joinPath(dirFor("net_cls", "network.classID"), "net_cls.classid"),
                std::to_string(*classID));
    if (priorities == nullptr) return;
    for (size_t i = 0; i < priorities->size(); ++i) {
      const Json& item = (*priorities)[i];
      const std::string at = fmt::format("{}.priorities[{}]", where, i);
      if (!item.is_object()) fail("{} must be an object, not {}", at, item.type_name());
      const auto name = stringMember(item, "name", at);
      const auto priority = uint64Member(item, "priority", at);
      if (!name || !priority) fail("{} needs name and priority", at);
      writeFile(joinPath(dirFor("net_prio", "network.priorities"), "net_prio.ifpriomap"),
                fmt::format("{} {}", *name, *priority));
    }
  }

  void unifiedFiles(const Json& files) {
    if (files.empty()) return;
    if (v1Host_ || unified_ == nullptr)
      fail("linux.resources.unified needs a cgroup v2 host; this one uses cgroup v1 for limits");
    for (const auto& [key, value] : files.items()) {
      if (key.empty() || key.find('/') != std::string::npos || key.front() == '.')
        fail("linux.resources.unified key \"{}\" is not a cgroup file name", key);
      if (!value.is_string())
        fail("linux.resources.unified.{} must be a string, not {}", key, value.dump());
      // "memory.high" needs the memory controller: its file is missing otherwise.
      const std::string file = joinPath(*unified_, key);
      if (const int error = tryWrite(file, value.get<std::string>()); error != 0) {
        if (error == ENOENT) {
          const std::string controller = key.substr(0, key.find('.'));
          dirFor(controller, "unified." + key);
        }
        throwErrno(fmt::format("write \"{}\" to {}", value.get<std::string>(), file), error);
      }
    }
  }

  const std::vector<std::pair<std::string, std::vector<std::string>>>& v1_;
  const std::string* unified_;
  bool v1Host_ = false;
  std::optional<std::string> controllers_;
};

// mkdir -p; `made` gets the levels created now, top first.
void makeDirectories(const std::string& path, std::vector<std::string>& made) {
  if (::mkdir(path.c_str(), 0755) == 0) {
    made.push_back(path);
    return;
  }
  if (errno == EEXIST) return;
  const size_t slash = path.rfind('/');
  if (errno != ENOENT || slash == 0 || slash == std::string::npos)
    throwErrno(fmt::format("create cgroup directory {}", path));
  makeDirectories(path.substr(0, slash), made);
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    throwErrno(fmt::format("create cgroup directory {}", path));
  made.push_back(path);
}

// A new v1 cpuset cgroup starts with no cpus and mems (unless cgroup.clone_children): its
// parent's are copied, an empty parent's own first, as runc's cpuset ensureParent.
void inheritCpuset(const std::string& dir) {
  for (const char* name : {"cpuset.cpus", "cpuset.mems"}) {
    const std::string file = joinPath(dir, name);
    const auto value = readOptional(file);
    if (!value || !trimmed(*value).empty()) continue;
    const std::string parent = dir.substr(0, dir.rfind('/'));
    auto inherited = readOptional(joinPath(parent, name));
    if (inherited && trimmed(*inherited).empty() && parent.size() > 1) {
      inheritCpuset(parent);
      inherited = readOptional(joinPath(parent, name));
    }
    if (inherited && !trimmed(*inherited).empty()) writeFile(file, trimmed(*inherited));
  }
}

// cgroup v2: each level above `path` enables for its children what it may hand down (runc
// enables them all). A level holding processes refuses (EBUSY): the limits needing it then fail
// by name in apply().
void enableControllersAbove(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string level = path.substr(0, slash);
    const auto available = readOptional(joinPath(level, "cgroup.controllers"));
    if (!available) continue;  // above the mount
    const auto enabled = readOptional(joinPath(level, "cgroup.subtree_control"));
    std::vector<std::string> missing;
    for (const auto controller : splitOn(trimmed(*available), ' ')) {
      if (!controller.empty() && !containsWord(enabled.value_or(""), controller))
        missing.push_back(fmt::format("+{}", controller));
    }
    if (missing.empty()) continue;
    const std::string file = joinPath(level, "cgroup.subtree_control");
    if (tryWrite(file, fmt::format("{}", fmt::join(missing, " "))) != 0) {
      for (const auto& one : missing)
        (void)tryWrite(file, one);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

ContainerCgroup ContainerCgroup::forSpec(const std::string& cgroupsPath, const std::string& id) {
  const bool absolute = !cgroupsPath.empty() && cgroupsPath.front() == '/';
  std::string relative;
  if (cgroupsPath.empty()) {
    relative = cleanRelative(id, "container id");
  } else {
    relative = cleanRelative(cgroupsPath, "cgroupsPath");
  }
  if (relative.empty()) fail("cgroupsPath \"{}\" names no cgroup below a root", cgroupsPath);

  const auto mounts = cgroupMounts();
  ContainerCgroup cgroup;
  for (const auto& own : ownCgroups()) {
    const CgroupMount* mount = mountOf(mounts, own);
    if (mount == nullptr) continue;  // a hierarchy not mounted in this mount namespace
    std::string base;
    if (absolute) {
      // From the hierarchy's root; a mount of a subtree (a container's view) is its root.
      base = belowMountRoot(mount->root, "/" + relative).value_or("/" + relative);
      base = joinPath(mount->mountpoint, base.substr(1));
    } else {
      const auto own_path = belowMountRoot(mount->root, own.path);
      if (!own_path) {
        fail("this process's cgroup {} in the {} hierarchy is outside its mount at {} (root {})",
             own.path, own.unified ? "unified" : fmt::format("{}", fmt::join(own.controllers, ",")),
             mount->mountpoint, mount->root);
      }
      base = joinPath(joinPath(mount->mountpoint, own_path->substr(1)), relative);
    }
    while (base.size() > 1 && base.back() == '/')
      base.pop_back();
    const bool seen = std::any_of(cgroup.directories_.begin(), cgroup.directories_.end(),
                                  [&](const Directory& d) { return d.path == base; });
    if (!seen) cgroup.directories_.push_back({base, own.controllers, own.unified});
  }
  if (cgroup.directories_.empty()) fail("no cgroup hierarchy is mounted (/proc/self/mountinfo)");
  return cgroup;
}

std::vector<std::pair<std::string, std::string>> ContainerCgroup::v1Directories() const {
  std::vector<std::pair<std::string, std::string>> result;
  // Hierarchy ids ascending, as runc mounts them (directories_ follows /proc/self/cgroup, which
  // lists them from the highest id down).
  for (auto it = directories_.rbegin(); it != directories_.rend(); ++it) {
    const Directory& d = *it;
    if (d.unified || d.controllers.empty()) continue;
    std::string name;
    for (const auto& controller : d.controllers) {
      if (!name.empty()) name += ',';
      name += controller.rfind("name=", 0) == 0 ? controller.substr(5) : controller;
    }
    result.emplace_back(std::move(name), d.path);
  }
  return result;
}

Json ContainerCgroup::toJson() const {
  Json directories = Json::array();
  for (const auto& d : directories_) {
    directories.push_back(
        Json{{"path", d.path}, {"controllers", d.controllers}, {"unified", d.unified}});
  }
  return Json{{"directories", std::move(directories)}};
}

ContainerCgroup ContainerCgroup::fromJson(const Json& saved) {
  const Json* directories =
      saved.is_object() ? arrayMember(saved, "directories", "cgroup") : nullptr;
  if (directories == nullptr)
    fail("the saved cgroup has no \"directories\" list: {}", saved.dump());
  ContainerCgroup cgroup;
  for (size_t i = 0; i < directories->size(); ++i) {
    const Json& entry = (*directories)[i];
    const std::string where = fmt::format("cgroup.directories[{}]", i);
    if (!entry.is_object()) fail("{} must be an object, not {}", where, entry.type_name());
    Directory directory;
    const auto path = stringMember(entry, "path", where);
    if (!path || path->empty() || path->front() != '/')
      fail("{}.path must be an absolute path", where);
    directory.path = "/" + cleanRelative(*path, where + ".path");
    directory.unified = boolMember(entry, "unified", where).value_or(false);
    if (const Json* controllers = arrayMember(entry, "controllers", where)) {
      for (const auto& controller : *controllers) {
        if (!controller.is_string()) fail("{}.controllers must hold strings", where);
        directory.controllers.push_back(controller.get<std::string>());
      }
    }
    cgroup.directories_.push_back(std::move(directory));
  }
  return cgroup;
}

void ContainerCgroup::create() {
  const bool v1Host = std::any_of(directories_.begin(), directories_.end(), [](const Directory& d) {
    return std::any_of(d.controllers.begin(), d.controllers.end(),
                       [](const std::string& c) { return c.rfind("name=", 0) != 0; });
  });
  std::vector<std::string> made;
  for (const auto& directory : directories_) {
    made.clear();
    makeDirectories(directory.path, made);
    if (std::find(directory.controllers.begin(), directory.controllers.end(), "cpuset") !=
        directory.controllers.end()) {
      for (const auto& level : made)
        inheritCpuset(level);
    }
    if (directory.unified && !v1Host) enableControllersAbove(directory.path);
  }
}

void ContainerCgroup::apply(const Json& linuxResources) {
  std::vector<std::pair<std::string, std::vector<std::string>>> v1;
  const std::string* unified = nullptr;
  for (const auto& d : directories_) {
    if (d.unified) {
      if (unified == nullptr) unified = &d.path;
    } else {
      v1.emplace_back(d.path, d.controllers);
    }
  }
  Resources(v1, unified).apply(linuxResources);
}

void ContainerCgroup::join(pid_t pid) {
  if (pid <= 0) fail("join: {} is not a process id", pid);
  const std::string value = std::to_string(pid);
  for (const auto& d : directories_)
    writeFile(joinPath(d.path, "cgroup.procs"), value);
}

// The directory whose freezer the container uses: v1's freezer hierarchy, else the unified one.
std::pair<std::string, bool> ContainerCgroup::freezerDirectory() const {
  const std::string* unified = nullptr;
  for (const auto& d : directories_) {
    if (std::find(d.controllers.begin(), d.controllers.end(), "freezer") != d.controllers.end())
      return {d.path, true};
    if (d.unified && unified == nullptr) unified = &d.path;
  }
  if (unified != nullptr) return {*unified, false};
  fail("freezing needs the cgroup freezer controller: no freezer hierarchy is mounted");
}

void ContainerCgroup::setFrozen(bool frozen) {
  const auto [dir, v1] = freezerDirectory();
  if (v1) {
    const std::string file = joinPath(dir, "freezer.state");
    if (!frozen) return writeFile(file, "THAWED");
    // runc's loop: a cgroup v1 freeze can stay FREEZING while processes keep appearing;
    // rewriting FROZEN, with an occasional thaw and pause, gets it through.
    for (int i = 0; i < kFreezeAttempts; ++i) {
      if (i % 50 == 49) {
        (void)tryWrite(file, "THAWED");
        sleepFor(std::chrono::milliseconds(10));
      }
      writeFile(file, "FROZEN");
      if (i % 25 == 24) sleepFor(std::chrono::microseconds(10));
      const std::string state(trimmed(readFile(file)));
      if (state == "FROZEN") return;
      if (state != "FREEZING") fail("{} is \"{}\" after writing FROZEN", file, state);
    }
    (void)tryWrite(file, "THAWED");
    fail("{} stayed FREEZING: could not freeze the cgroup", file);
  }
  writeFile(joinPath(dir, "cgroup.freeze"), frozen ? "1" : "0");
  const std::string events = joinPath(dir, "cgroup.events");
  const std::string wanted = frozen ? "frozen 1" : "frozen 0";
  const auto deadline = std::chrono::steady_clock::now() + kFreezeWaitLimit;
  auto pause = std::chrono::microseconds(100);
  for (;;) {
    const std::string state = readFile(events);
    for (const auto line : splitLines(state))
      if (line == wanted) return;
    if (std::chrono::steady_clock::now() > deadline)
      fail("{} did not reach \"{}\" within {} s", events, wanted, kFreezeWaitLimit.count());
    sleepFor(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(10000));
  }
}

bool ContainerCgroup::frozen() const {
  const auto [dir, v1] = freezerDirectory();
  if (v1) return trimmed(readFile(joinPath(dir, "freezer.state"))) == "FROZEN";
  const std::string events = readFile(joinPath(dir, "cgroup.events"));
  for (const auto line : splitLines(events))
    if (line == "frozen 1") return true;
  return false;
}

std::vector<pid_t> ContainerCgroup::pids() const {
  if (directories_.empty()) return {};
  // A hierarchy every container process is in: freezer or pids on v1, else the unified one.
  const Directory* chosen = nullptr;
  for (const char* controller : {"freezer", "pids"}) {
    for (const auto& d : directories_) {
      if (chosen == nullptr &&
          std::find(d.controllers.begin(), d.controllers.end(), controller) != d.controllers.end())
        chosen = &d;
    }
  }
  for (const auto& d : directories_)
    if (chosen == nullptr && d.unified) chosen = &d;
  if (chosen == nullptr) chosen = &directories_.front();

  std::vector<pid_t> pids;
  std::vector<std::string> pending = {chosen->path};
  while (!pending.empty()) {
    const std::string dir = std::move(pending.back());
    pending.pop_back();
    const auto procs = readOptional(joinPath(dir, "cgroup.procs"));
    if (!procs) continue;  // removed meanwhile
    for (const auto line : splitLines(*procs)) {
      if (const auto pid = parseUint(line)) pids.push_back(static_cast<pid_t>(*pid));
    }
    for (auto& child : subdirectories(dir))
      pending.push_back(std::move(child));
  }
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  return pids;
}

void ContainerCgroup::remove() {
  std::vector<std::string> pending;
  for (const auto& d : directories_)
    pending.push_back(d.path);
  const auto deadline = std::chrono::steady_clock::now() + kRemoveRetryLimit;
  auto pause = std::chrono::milliseconds(5);
  for (;;) {
    std::vector<std::string> busy;
    std::string failed;
    int lastError = 0;
    for (const auto& path : pending) {
      std::string where;
      const int error = removeTree(path, &where);
      if (error == 0) continue;
      // EBUSY: processes still leaving (or a child cgroup being created).
      if (error != EBUSY) throwErrno(fmt::format("remove cgroup directory {}", where), error);
      busy.push_back(path);
      failed = where;
      lastError = error;
    }
    if (busy.empty()) return;
    if (std::chrono::steady_clock::now() > deadline) {
      throwErrno(fmt::format("remove cgroup directory {} (still holding processes after {} ms)",
                             failed, kRemoveRetryLimit.count()),
                 lastError);
    }
    pending = std::move(busy);
    sleepFor(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
}

}  // namespace monocri::runtime
