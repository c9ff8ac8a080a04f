// /proc/<pid>/mountinfo, as far as spec generation needs it: where a path is mounted, with which
// propagation, and which cgroup hierarchies exist.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace monocri::oci {

struct MountInfoEntry {
  std::string mountPoint;      // octal escapes (\040 ...) decoded
  std::string optionalFields;  // "shared:1 master:2", "" for a private mount
  std::string fsType;
  std::string superOptions;
};

// Lines that do not have the documented shape are skipped.
std::vector<MountInfoEntry> parseMountInfo(std::string_view text);

// The mount `path` (absolute, symlinks resolved) lives on: the last one mounted on `path` or on
// its nearest ancestor; nullptr when the table has none (not even "/").
const MountInfoEntry* mountContaining(const std::vector<MountInfoEntry>& mounts,
                                      std::string_view path);

}  // namespace monocri::oci
