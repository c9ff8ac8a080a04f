#include "oci/spec/HostFile.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "state/UniqueFd.h"

namespace monocri::oci {

int readHostFile(const std::string& path, size_t limit, std::string& out) {
  out.clear();
  state::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) return errno;
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return 0;
    if (out.size() + static_cast<size_t>(n) > limit) return EFBIG;
    out.append(buffer, static_cast<size_t>(n));
  }
}

}  // namespace monocri::oci
