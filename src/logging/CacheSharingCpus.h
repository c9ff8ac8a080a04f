// Which CPUs share a CPU's L2 cache, as sysfs describes them (cpuN/cache/indexM with level 2:
// the CPU itself and its SMT siblings on most machines). The log write thread runs there, next
// to the loop: it copies into the page cache the bytes the loop has just read, and taking them
// from another core's cache cost the daemon 10-20 % more CPU per GiB (measured in the README).
#pragma once

#include <sched.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace monocri::logging {

// A kernel CPU list ("0-3,8,10-11", a trailing newline allowed; an empty list is empty). Null
// if it is malformed, a range runs backwards or a CPU is not below CPU_SETSIZE.
std::optional<cpu_set_t> parseCpuList(std::string_view text);

class CacheSharingCpus {
 public:
  explicit CacheSharingCpus(std::string sysfsCpuRoot = "/sys/devices/system/cpu")
      : root_(std::move(sysfsCpuRoot)) {}

  // The CPUs sharing `cpu`'s L2 cache, `cpu` among them; `cpu` alone when sysfs does not say
  // (or says something that does not include it). Read once per CPU. `cpu` must be in
  // [0, CPU_SETSIZE).
  const cpu_set_t& l2Of(int cpu);

 private:
  cpu_set_t read(int cpu) const;

  std::string root_;
  std::vector<std::optional<cpu_set_t>> known_;  // by CPU number
};

}  // namespace monocri::logging
