// Where the kernel counts a container's OOM kills: the memory cgroup its init process is in
// (cgroup v1 "memory" controller, else the unified v2 hierarchy, as on hybrid hosts the memory
// controller lives in v1). Read at the container's exit, before the runtime's delete removes
// the cgroup: a non-zero count is the CRI's "OOMKilled".
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace monocri::monitor {

struct MemoryCgroup {
  // The file holding "oom_kill N": <dir>/memory.oom_control (v1) or <dir>/memory.events (v2).
  std::string oomCounterPath;
  bool empty() const { return oomCounterPath.empty(); }
};

// From /proc/<pid>/cgroup and the mount table; empty with `error` when the pid is gone or no
// memory cgroup is mounted.
MemoryCgroup memoryCgroupOf(pid_t pid, std::string& error);
// From the text of a /proc/<pid>/cgroup file and the mount points of the v1 memory controller
// and of the v2 hierarchy ("" when not mounted). Split out for tests.
MemoryCgroup memoryCgroupFrom(std::string_view procCgroup, const std::string& v1MemoryMount,
                              const std::string& v2Mount);
// The "oom_kill" count of a memory.oom_control or memory.events text; nullopt without one.
std::optional<uint64_t> parseOomKillCount(std::string_view text);
// Reads and parses the counter file; nullopt when it cannot be read (the cgroup is gone).
std::optional<uint64_t> readOomKillCount(const MemoryCgroup& cgroup);

}  // namespace monocri::monitor
