// The TOML configuration parser on arbitrary text: an error message or a valid config.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "daemon/Config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  monocri::daemon::Config config;
  std::string error = monocri::daemon::parseConfig(
      std::string(reinterpret_cast<const char*>(data), size), "fuzz.toml", config);
  if (error.empty() && (config.root.empty() || config.root[0] != '/')) std::abort();
  return 0;
}
