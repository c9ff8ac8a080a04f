#include "monitor/MemoryCgroup.h"

#include <fmt/format.h>
#include <mntent.h>

#include <charconv>
#include <cstdio>
#include <memory>

#include "state/StateFiles.h"

namespace monocri::monitor {

namespace {

constexpr size_t kMaxProcCgroupBytes = 64 * 1024;
constexpr size_t kMaxCounterFileBytes = 16 * 1024;

bool hasOption(const mntent& entry, const char* option) {
  return hasmntopt(&entry, option) != nullptr;
}

struct CgroupMounts {
  std::string v1Memory, v2;
};

// The first mount of each: /proc/self/mounts lists /sys/fs/cgroup/... before later bind mounts.
CgroupMounts cgroupMounts() {
  CgroupMounts mounts;
  std::unique_ptr<FILE, int (*)(FILE*)> table(setmntent("/proc/self/mounts", "re"), endmntent);
  if (!table) return mounts;
  mntent entry{};
  char buffer[4096];
  while (getmntent_r(table.get(), &entry, buffer, sizeof buffer) != nullptr) {
    const std::string_view type = entry.mnt_type;
    if (type == "cgroup" && mounts.v1Memory.empty() && hasOption(entry, "memory")) {
      mounts.v1Memory = entry.mnt_dir;
    } else if (type == "cgroup2" && mounts.v2.empty()) {
      mounts.v2 = entry.mnt_dir;
    }
  }
  return mounts;
}

bool pathIsSafe(std::string_view path) {
  return !path.empty() && path.front() == '/' && path.find("/..") == std::string_view::npos;
}

}  // namespace

MemoryCgroup memoryCgroupFrom(std::string_view procCgroup, const std::string& v1MemoryMount,
                              const std::string& v2Mount) {
  std::string v1Path, v2Path;
  bool haveV2 = false;
  while (!procCgroup.empty()) {
    const size_t end = procCgroup.find('\n');
    std::string_view line = procCgroup.substr(0, end);
    procCgroup = end == std::string_view::npos ? std::string_view() : procCgroup.substr(end + 1);
    // hierarchy-id:controller-list:path
    const size_t first = line.find(':');
    if (first == std::string_view::npos) continue;
    const size_t second = line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, first);
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    const std::string_view path = line.substr(second + 1);
    if (!pathIsSafe(path)) continue;
    if (id == "0" && controllers.empty()) {
      v2Path = path;
      haveV2 = true;
      continue;
    }
    std::string_view rest = controllers;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      if (rest.substr(0, comma) == "memory") v1Path = path;
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  const auto join = [](const std::string& mount, const std::string& path) {
    return path == "/" ? mount : mount + path;
  };
  MemoryCgroup cgroup;
  if (!v1Path.empty() && !v1MemoryMount.empty()) {
    cgroup.oomCounterPath = join(v1MemoryMount, v1Path) + "/memory.oom_control";
  } else if (haveV2 && !v2Mount.empty()) {
    cgroup.oomCounterPath = join(v2Mount, v2Path) + "/memory.events";
  }
  return cgroup;
}

MemoryCgroup memoryCgroupOf(pid_t pid, std::string& error) {
  std::string text;
  if (std::string e =
          state::readFile(fmt::format("/proc/{}/cgroup", pid), kMaxProcCgroupBytes, text);
      !e.empty()) {
    error = e;
    return {};
  }
  static const CgroupMounts mounts = cgroupMounts();  // cgroup mounts do not move
  MemoryCgroup cgroup = memoryCgroupFrom(text, mounts.v1Memory, mounts.v2);
  if (cgroup.empty()) error = fmt::format("process {} is in no mounted memory cgroup", pid);
  return cgroup;
}

std::optional<uint64_t> parseOomKillCount(std::string_view text) {
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    constexpr std::string_view kKey = "oom_kill ";
    if (line.substr(0, kKey.size()) != kKey) continue;
    const std::string_view number = line.substr(kKey.size());
    uint64_t value = 0;
    const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || ptr != number.data() + number.size() || number.empty()) {
      return std::nullopt;
    }
    return value;
  }
  return std::nullopt;
}

std::optional<uint64_t> readOomKillCount(const MemoryCgroup& cgroup) {
  if (cgroup.empty()) return std::nullopt;
  std::string text;
  if (!state::readFile(cgroup.oomCounterPath, kMaxCounterFileBytes, text).empty()) {
    return std::nullopt;
  }
  return parseOomKillCount(text);
}

}  // namespace monocri::monitor
