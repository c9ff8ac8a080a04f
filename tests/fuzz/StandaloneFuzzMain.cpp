// Runs a libFuzzer target without libFuzzer: over every file named on the command line (or in
// a directory named there), then over N random inputs, some of them mutations of those files.
// Deterministic (fixed seed), so a failure reproduces.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void collect(const std::string& path, std::vector<std::string>& inputs) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "fuzz driver: cannot stat %s\n", path.c_str());
    std::exit(2);
  }
  if (S_ISDIR(st.st_mode)) {
    DIR* dir = opendir(path.c_str());
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') collect(path + "/" + entry->d_name, inputs);
    }
    closedir(dir);
    return;
  }
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  inputs.push_back(bytes.str());
}

// The input being run, written out if it crashes the target, as libFuzzer does.
const std::string* currentInput = nullptr;

void saveCrashingInput(int sig) {
  const char path[] = "fuzz-crash-input";
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0 && currentInput != nullptr) {
    (void)!write(fd, currentInput->data(), currentInput->size());
    close(fd);
    const char note[] = "fuzz driver: the crashing input is in ./fuzz-crash-input\n";
    (void)!write(2, note, sizeof(note) - 1);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void run(const std::string& input) {
  currentInput = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  currentInput = nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL})
    signal(sig, saveCrashingInput);
  size_t randomRuns = 0;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--random") == 0 && i + 1 < argc) {
      randomRuns = std::strtoul(argv[++i], nullptr, 10);
    } else {
      collect(argv[i], inputs);
    }
  }
  for (const auto& input : inputs)
    run(input);
  std::mt19937_64 rng(20261122);
  for (size_t n = 0; n < randomRuns; ++n) {
    std::string input;
    if (!inputs.empty() && n % 2 == 0) {
      input = inputs[rng() % inputs.size()];
      const size_t edits = 1 + rng() % 8;
      for (size_t e = 0; e < edits && !input.empty(); ++e) {
        switch (rng() % 4) {
          case 0:
            input[rng() % input.size()] = static_cast<char>(rng());
            break;
          case 1:
            input.erase(rng() % input.size(), 1 + rng() % 16);
            break;
          case 2:
            input.insert(rng() % input.size(), 1 + rng() % 16, static_cast<char>(rng()));
            break;
          case 3:
            input.resize(rng() % (input.size() + 1));
            break;
        }
      }
    } else {
      input.resize(rng() % 512);
      for (char& c : input)
        c = static_cast<char>(rng());
    }
    run(input);
  }
  std::printf("fuzz driver: %zu seed input(s), %zu random input(s), no crash\n", inputs.size(),
              randomRuns);
  return 0;
}
