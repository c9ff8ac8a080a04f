#include "logging/CacheSharingCpus.h"

#include <charconv>
#include <fstream>

namespace monocri::logging {

namespace {

// Cache indexes a CPU may have (L1d, L1i, L2, L3 on most; a few more on some).
constexpr int kMaxCacheIndexes = 16;
// sysfs attributes are a page at most; a CPU list of 1024 CPUs fits well within.
constexpr std::streamsize kMaxAttributeBytes = 4096;

std::optional<std::string> readAttribute(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string text(kMaxAttributeBytes, '\0');
  in.read(text.data(), kMaxAttributeBytes);
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

std::string_view withoutNewline(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return text;
}

bool parseCpu(std::string_view text, int& cpu) {
  // Unsigned: from_chars takes a '-' for a signed type ("0--0" would be a range).
  unsigned value = 0;
  const char* end = text.data() + text.size();
  const auto [next, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || next != end || text.empty() || value >= CPU_SETSIZE) return false;
  cpu = static_cast<int>(value);
  return true;
}

}  // namespace

std::optional<cpu_set_t> parseCpuList(std::string_view text) {
  cpu_set_t set;
  CPU_ZERO(&set);
  text = withoutNewline(text);
  if (text.empty()) return set;
  while (true) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    const size_t dash = item.find('-');
    int first = 0;
    if (!parseCpu(item.substr(0, dash), first)) return std::nullopt;
    int last = first;
    if (dash != std::string_view::npos && !parseCpu(item.substr(dash + 1), last)) {
      return std::nullopt;
    }
    if (last < first) return std::nullopt;
    for (int cpu = first; cpu <= last; ++cpu)
      CPU_SET(cpu, &set);
    if (comma == std::string_view::npos) return set;
    text.remove_prefix(comma + 1);
  }
}

const cpu_set_t& CacheSharingCpus::l2Of(int cpu) {
  const size_t index = static_cast<size_t>(cpu);
  if (known_.size() <= index) known_.resize(index + 1);
  if (!known_[index]) known_[index] = read(cpu);
  return *known_[index];
}

cpu_set_t CacheSharingCpus::read(int cpu) const {
  const std::string caches = root_ + "/cpu" + std::to_string(cpu) + "/cache/index";
  for (int i = 0; i < kMaxCacheIndexes; ++i) {
    const std::string dir = caches + std::to_string(i) + "/";
    const std::optional<std::string> level = readAttribute(dir + "level");
    if (!level) break;
    if (withoutNewline(*level) != "2") continue;
    const std::optional<std::string> type = readAttribute(dir + "type");
    if (type && withoutNewline(*type) == "Instruction") continue;
    const std::optional<std::string> list = readAttribute(dir + "shared_cpu_list");
    if (!list) break;
    const std::optional<cpu_set_t> shared = parseCpuList(*list);
    if (shared && CPU_ISSET(cpu, &*shared)) return *shared;
    break;
  }
  cpu_set_t alone;
  CPU_ZERO(&alone);
  CPU_SET(cpu, &alone);
  return alone;
}

}  // namespace monocri::logging
