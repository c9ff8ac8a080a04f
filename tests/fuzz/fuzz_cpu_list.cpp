// The kernel CPU list parser (sysfs shared_cpu_list) on arbitrary bytes. Beyond not crashing,
// it accepts exactly the lists an independent reading accepts, with the same CPUs: items
// "N" or "N-M" (N <= M < CPU_SETSIZE) joined by commas, an optional trailing newline.
#include <sched.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "logging/CacheSharingCpus.h"

namespace {

// Digits only, at most CPU_SETSIZE - 1; -1 otherwise.
long number(std::string_view digits) {
  if (digits.empty()) return -1;
  long value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return -1;
    value = std::min(value * 10 + (c - '0'), long{CPU_SETSIZE});  // leading zeros are fine
  }
  return value < CPU_SETSIZE ? value : -1;
}

std::optional<cpu_set_t> reference(std::string_view text) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.empty()) return set;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view item = text.substr(start, end - start);
    const size_t dash = item.find('-');
    const long first = number(item.substr(0, dash));
    const long last = dash == std::string_view::npos ? first : number(item.substr(dash + 1));
    if (first < 0 || last < first) return std::nullopt;
    for (long cpu = first; cpu <= last; ++cpu)
      CPU_SET(cpu, &set);
    start = end + 1;
  }
  return set;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::optional<cpu_set_t> parsed = monocri::logging::parseCpuList(text);
  const std::optional<cpu_set_t> expected = reference(text);
  if (parsed.has_value() != expected.has_value()) std::abort();
  if (parsed && !CPU_EQUAL(&*parsed, &*expected)) std::abort();
  return 0;
}
