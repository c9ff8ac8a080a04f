// The keeper as monocri runs it, for the integration tests, plus a malloc counter: SIGUSR1
// appends "allocations N" to the file given with --alloc-report, so that a test can check that
// the keeper allocates nothing while it works.
//
//   keeper-test-keeper --exit-dir DIR [--max-held N] [--max-tracked N] [--max-pending N]
//                      [--max-untracked N] [--delay-min MS] [--delay-max MS] [--reset-after MS]
//                      [--alloc-report FILE] -- DAEMON [ARGS...]
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "monitor/keeper/Keeper.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace {

volatile size_t allocations = 0;
int reportFd = -1;

void reportAllocations(int) {
  char line[48] = "allocations ";
  char digits[24];
  size_t n = 0, value = allocations;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value);
  size_t at = std::strlen(line);
  while (n)
    line[at++] = digits[--n];
  line[at++] = '\n';
  if (reportFd >= 0) (void)!::write(reportFd, line, at);
}

}  // namespace

// Every allocation of the process goes through these (operator new calls malloc).
extern "C" {
void* malloc(size_t size) {
  allocations = allocations + 1;
  return __libc_malloc(size);
}
void* calloc(size_t count, size_t size) {
  allocations = allocations + 1;
  return __libc_calloc(count, size);
}
void* realloc(void* pointer, size_t size) {
  allocations = allocations + 1;
  return __libc_realloc(pointer, size);
}
void* memalign(size_t alignment, size_t size) {
  allocations = allocations + 1;
  return __libc_memalign(alignment, size);
}
void* aligned_alloc(size_t alignment, size_t size) {
  return memalign(alignment, size);
}
int posix_memalign(void** out, size_t alignment, size_t size) {
  *out = memalign(alignment, size);
  return *out ? 0 : ENOMEM;
}
void free(void* pointer) {
  __libc_free(pointer);
}
}

int main(int argc, char** argv) {
  monocri::monitor::KeeperOptions options;
  int i = 1;
  for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "keeper-test-keeper: %s needs a value\n", argv[i]);
      return 2;
    }
    const char* value = argv[++i];
    if (flag == "--exit-dir") {
      options.exitDir = value;
    } else if (flag == "--max-held") {
      options.maxHeldFds = std::strtoul(value, nullptr, 10);
    } else if (flag == "--max-tracked") {
      options.maxTracked = std::strtoul(value, nullptr, 10);
    } else if (flag == "--max-pending") {
      options.maxPendingExits = std::strtoul(value, nullptr, 10);
    } else if (flag == "--max-untracked") {
      options.maxUntrackedExits = std::strtoul(value, nullptr, 10);
    } else if (flag == "--delay-min") {
      options.restartDelayMinMs = std::strtoull(value, nullptr, 10);
    } else if (flag == "--delay-max") {
      options.restartDelayMaxMs = std::strtoull(value, nullptr, 10);
    } else if (flag == "--reset-after") {
      options.restartDelayResetAfterMs = std::strtoull(value, nullptr, 10);
    } else if (flag == "--alloc-report") {
      reportFd = ::open(value, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    } else {
      std::fprintf(stderr, "keeper-test-keeper: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  for (++i; i < argc; ++i)
    options.daemonArgv.push_back(argv[i]);
  struct sigaction report {};
  report.sa_handler = reportAllocations;
  report.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &report, nullptr);
  return monocri::monitor::runKeeper(options);
}
