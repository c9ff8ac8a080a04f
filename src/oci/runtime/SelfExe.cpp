#include "oci/runtime/SelfExe.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/runtime/RuntimeError.h"

extern char** environ;

namespace monocri::runtime {

namespace {

constexpr int kSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

void ensureSealedSelf(char** argv) {
  Fd self{open("/proc/self/exe", O_RDONLY | O_CLOEXEC)};
  if (self.fd < 0) throwErrno("opening /proc/self/exe");
  int seals = fcntl(self.fd, F_GET_SEALS);
  if (seals >= 0 && (seals & kSeals) == kSeals) return;  // already the sealed copy

  struct stat st {};
  if (fstat(self.fd, &st) < 0) throwErrno("stat /proc/self/exe");
  // MFD_EXEC (Linux 6.3) keeps the copy executable where vm.memfd_noexec would make memfds
  // noexec by default; older kernels refuse the flag and make them executable anyway.
  constexpr unsigned kMfdExec = 0x10;
  Fd copy{memfd_create("monocri-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING | kMfdExec)};
  if (copy.fd < 0 && errno == EINVAL)
    copy.fd = memfd_create("monocri-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (copy.fd < 0) throwErrno("memfd_create for the runtime's sealed copy");
  off_t offset = 0;
  while (offset < st.st_size) {
    ssize_t sent = sendfile(copy.fd, self.fd, &offset, static_cast<size_t>(st.st_size - offset));
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) throwErrno("copying the runtime binary into a memfd");
  }
  if (fcntl(copy.fd, F_ADD_SEALS, kSeals) < 0) throwErrno("sealing the runtime's memfd copy");
  fexecve(copy.fd, argv, environ);
  throwErrno("re-executing the runtime from its sealed copy");
}

}  // namespace monocri::runtime
