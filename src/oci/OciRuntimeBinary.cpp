#include "oci/OciRuntimeBinary.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace monocri::oci {

namespace {

bool isExecutableFile(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::optional<std::string> OciRuntimeBinary::resolve(std::string* why) const {
  if (nameOrPath_.find('/') != std::string::npos) {
    if (isExecutableFile(nameOrPath_)) return nameOrPath_;
    if (why) *why = fmt::format("OCI runtime {} is missing or not executable", nameOrPath_);
    return std::nullopt;
  }
  const char* env = std::getenv("PATH");
  const std::string searchPath =
      env ? env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  size_t start = 0;
  while (start <= searchPath.size()) {
    size_t colon = searchPath.find(':', start);
    std::string dir =
        searchPath.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!dir.empty()) {
      std::string candidate = dir + "/" + nameOrPath_;
      if (isExecutableFile(candidate)) return candidate;
    }
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (why) *why = fmt::format("OCI runtime '{}' not found in PATH ({})", nameOrPath_, searchPath);
  return std::nullopt;
}

}  // namespace monocri::oci
