// Small files of the host (procfs, sysfs, cgroupfs, seccomp profiles), read whole with a bound.
#pragma once

#include <cstddef>
#include <string>

namespace monocri::oci {

// Reads `path` into `out`. Returns 0, or the errno of the failure; EFBIG when the file holds more
// than `limit` bytes (reading stops at the first block past the limit).
int readHostFile(const std::string& path, size_t limit, std::string& out);

}  // namespace monocri::oci
