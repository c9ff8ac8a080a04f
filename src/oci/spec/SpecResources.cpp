#include "oci/spec/SpecResources.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <map>

#include "oci/spec/Quoted.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;

namespace {

constexpr int64_t kMinCpuShares = 2;
constexpr int64_t kMaxCpuShares = 262144;
constexpr int64_t kMinCfsMicros = 1000;  // the kernel's bounds for cpu.cfs_period_us / quota
constexpr int64_t kMaxCfsPeriod = 1000000;
constexpr int kMinOomScoreAdj = -1000;
constexpr int kMaxOomScoreAdj = 1000;

constexpr std::array<const char*, 16> kRlimitNames = {
    "RLIMIT_CPU",      "RLIMIT_FSIZE", "RLIMIT_DATA",   "RLIMIT_STACK",
    "RLIMIT_CORE",     "RLIMIT_RSS",   "RLIMIT_NPROC",  "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",  "RLIMIT_AS",    "RLIMIT_LOCKS",  "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE", "RLIMIT_NICE",  "RLIMIT_RTPRIO", "RLIMIT_RTTIME"};
static_assert(RLIMIT_NOFILE == 7 && RLIMIT_RTTIME == 15, "Linux numbering");

Status invalid(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}

std::optional<uint64_t> decimal(std::string_view text) {
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// "0-3,5,7-8": what cpuset.cpus and cpuset.mems take.
bool isCpuList(std::string_view list) {
  if (list.empty() || list.size() > 4096) return false;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    const std::string_view item = list.substr(start, end - start);
    const size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      if (!decimal(item)) return false;
    } else {
      const auto low = decimal(item.substr(0, dash));
      const auto high = decimal(item.substr(dash + 1));
      if (!low || !high || *low > *high) return false;
    }
    start = end + 1;
  }
  return true;
}

// "2MB", "1GB", "64KB": what hugetlb.<size>.limit_in_bytes files are named by.
bool isPageSize(std::string_view size) {
  size_t digits = 0;
  while (digits < size.size() && std::isdigit(static_cast<unsigned char>(size[digits])))
    ++digits;
  if (digits == 0 || digits > 6 || size[0] == '0') return false;
  const std::string_view unit = size.substr(digits);
  return unit == "KB" || unit == "MB" || unit == "GB" || unit == "TB" || unit == "PB";
}

// A cgroup v2 interface file name: "memory.high", "cpu.max", "io.weight"...
bool isCgroupFileName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.find('.') == std::string_view::npos ||
      name.front() == '.' || name.back() == '.') {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

std::string joinedKeys(const google::protobuf::Map<std::string, std::string>& map) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : map)
    keys.push_back(quotedValue(key));
  std::sort(keys.begin(), keys.end());
  std::string text;
  for (const auto& key : keys) {
    if (!text.empty()) text += ", ";
    text += key;
  }
  return text;
}

}  // namespace

std::string rlimitName(int resource) {
  if (resource < 0 || resource >= static_cast<int>(kRlimitNames.size())) return "";
  return kRlimitNames[static_cast<size_t>(resource)];
}

Status buildResources(const runtime::v1::LinuxContainerResources& resources, const HostLimits& host,
                      Json& out, std::vector<std::string>& warnings) {
  out = Json::object();
  Json cpu = Json::object();
  if (const int64_t shares = resources.cpu_shares(); shares != 0) {
    if (shares < kMinCpuShares || shares > kMaxCpuShares) {
      return invalid(
          fmt::format("cpu_shares {} is outside {}..{}", shares, kMinCpuShares, kMaxCpuShares));
    }
    cpu["shares"] = static_cast<uint64_t>(shares);
  }
  if (const int64_t period = resources.cpu_period(); period != 0) {
    if (period < kMinCfsMicros || period > kMaxCfsPeriod) {
      return invalid(
          fmt::format("cpu_period {} us is outside {}..{}", period, kMinCfsMicros, kMaxCfsPeriod));
    }
    cpu["period"] = static_cast<uint64_t>(period);
  }
  if (const int64_t quota = resources.cpu_quota(); quota != 0) {
    if (quota != -1 && quota < kMinCfsMicros) {
      return invalid(fmt::format("cpu_quota {} us is neither -1 (unlimited) nor at least {}", quota,
                                 kMinCfsMicros));
    }
    cpu["quota"] = quota;
  }
  if (const auto& cpus = resources.cpuset_cpus(); !cpus.empty()) {
    if (!isCpuList(cpus))
      return invalid(fmt::format("cpuset_cpus {} is not a CPU list", quotedValue(cpus)));
    cpu["cpus"] = cpus;
  }
  if (const auto& mems = resources.cpuset_mems(); !mems.empty()) {
    if (!isCpuList(mems)) {
      return invalid(fmt::format("cpuset_mems {} is not a memory node list", quotedValue(mems)));
    }
    cpu["mems"] = mems;
  }
  if (!cpu.empty()) out["cpu"] = std::move(cpu);

  Json memory = Json::object();
  const int64_t limit = resources.memory_limit_in_bytes();
  const int64_t swap = resources.memory_swap_limit_in_bytes();
  if (limit < 0) return invalid(fmt::format("memory_limit_in_bytes {} is negative", limit));
  if (swap < -1) {
    return invalid(fmt::format("memory_swap_limit_in_bytes {} is neither -1 nor a size", swap));
  }
  if (swap > 0 && limit == 0) {
    return invalid("memory_swap_limit_in_bytes needs memory_limit_in_bytes");
  }
  if (swap > 0 && swap < limit) {
    return invalid(fmt::format(
        "memory_swap_limit_in_bytes {} (memory plus swap) is below memory_limit_in_bytes {}", swap,
        limit));
  }
  if (limit > 0) {
    memory["limit"] = limit;
    // Equal limits keep a limited container from swapping unless swap was asked for.
    if (host.swapAccounting) memory["swap"] = swap != 0 ? swap : limit;
  }
  if (swap != 0 && !host.swapAccounting) {
    warnings.push_back(
        fmt::format("memory_swap_limit_in_bytes {} is left out: this host does not account swap "
                    "(no memory.memsw / memory.swap.max)",
                    swap));
  }
  if (!memory.empty()) out["memory"] = std::move(memory);

  if (resources.hugepage_limits_size() > 0) {
    Json hugepages = Json::array();
    std::string sizes;
    for (const auto& hugepage : resources.hugepage_limits()) {
      if (!isPageSize(hugepage.page_size())) {
        return invalid(fmt::format("hugepage_limits page_size {} is not a size like 2MB or 1GB",
                                   quotedValue(hugepage.page_size())));
      }
      hugepages.push_back(Json{{"pageSize", hugepage.page_size()}, {"limit", hugepage.limit()}});
      if (!sizes.empty()) sizes += ", ";
      sizes += hugepage.page_size();
    }
    if (host.hugetlbLimitsUsable) {
      out["hugepageLimits"] = std::move(hugepages);
    } else {
      warnings.push_back(fmt::format(
          "hugepage limits ({}) are left out: {}", sizes,
          host.cgroupV2Only
              ? "the unified cgroup hierarchy has no hugetlb controller"
              : "no cgroup v1 hugetlb hierarchy is mounted, and the OCI runtime's v1 cgroup "
                "manager cannot set a hugetlb controller that only the unified hierarchy has"));
    }
  }

  if (!resources.unified().empty()) {
    if (!host.cgroupV2Only) {
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("unified cgroup settings ({}) need a cgroup v2 host; this one "
                                "mounts cgroup v1 at /sys/fs/cgroup",
                                joinedKeys(resources.unified())));
    }
    Json unified = Json::object();
    for (const auto& [key, value] : resources.unified()) {
      if (!isCgroupFileName(key)) {
        return invalid(fmt::format("unified key {} is not a cgroup file name", quotedValue(key)));
      }
      if (value.find_first_of(std::string_view("\0\n", 2)) != std::string::npos) {
        return invalid(fmt::format("unified value of {} holds a newline or NUL", key));
      }
      unified[key] = value;
    }
    out["unified"] = std::move(unified);
  }
  return Status::ok();
}

Status resolveOomScoreAdj(int64_t asked, int floor, int& out, std::vector<std::string>& warnings) {
  if (asked < kMinOomScoreAdj || asked > kMaxOomScoreAdj) {
    return invalid(
        fmt::format("oom_score_adj {} is outside {}..{}", asked, kMinOomScoreAdj, kMaxOomScoreAdj));
  }
  out = static_cast<int>(asked);
  if (out < floor) {
    warnings.push_back(fmt::format(
        "oom_score_adj {} is raised to {}: monocri's own, which it cannot go below without "
        "CAP_SYS_RESOURCE",
        asked, floor));
    out = floor;
  }
  return Status::ok();
}

Status buildRlimits(const std::vector<std::pair<int, std::pair<uint64_t, uint64_t>>>& defaults,
                    const HostLimits& host, Json& out, std::vector<std::string>& warnings) {
  out = Json::array();
  std::map<int, std::pair<uint64_t, uint64_t>> wanted;  // the last one for a resource wins
  for (const auto& [resource, limits] : defaults) {
    if (rlimitName(resource).empty())
      return invalid(fmt::format("rlimit {} names no limit", resource));
    if (limits.first > limits.second) {
      return invalid(fmt::format("{} soft limit {} is above its hard limit {}",
                                 rlimitName(resource), limits.first, limits.second));
    }
    wanted[resource] = limits;
  }
  for (auto [resource, limits] : wanted) {
    const auto ceiling = host.rlimits.find(resource);
    if (ceiling != host.rlimits.end() && limits.second > ceiling->second.second) {
      warnings.push_back(fmt::format("{} {}/{} is lowered to monocri's own hard limit {}",
                                     rlimitName(resource), limits.first, limits.second,
                                     ceiling->second.second));
      limits.second = ceiling->second.second;
      limits.first = std::min(limits.first, limits.second);
    }
    out.push_back(
        Json{{"type", rlimitName(resource)}, {"soft", limits.first}, {"hard", limits.second}});
  }
  return Status::ok();
}

}  // namespace monocri::oci
