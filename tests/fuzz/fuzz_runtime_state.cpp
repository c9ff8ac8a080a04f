// What an OCI runtime prints, as another program may print it: the state document (`runc
// state`) and the JSON log (`--log-format json`). The first byte picks where the log is cut into
// reads; the rest is both a state document and a log. Nothing may crash or throw; an accepted
// state is usable; the log's verdict does not depend on how its bytes were split; every message
// is bounded, valid UTF-8 without control characters.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "oci/runtime-client/OciState.h"
#include "oci/runtime-client/RuntimeLogScanner.h"

using namespace monocri::oci;

namespace {

void checkMessage(const std::string& message) {
  if (message.size() > kMaxRuntimeMessageBytes) std::abort();
  for (unsigned char c : message)
    if (c < 0x20 || c == 0x7F) std::abort();
  // Cleaning clean text changes nothing (it is valid UTF-8, trimmed, collapsed).
  if (cleanRuntimeText(message) != message) std::abort();
}

void checkState(std::string_view document) {
  OciState state;
  const auto status = parseOciState(document, state);
  if (!status.isOk()) {
    if (status.message().empty()) std::abort();
    return;
  }
  if (state.id.empty() || state.pid < 0 || state.pid > kMaxPid) std::abort();
  if ((state.status == "created" || state.status == "running") && state.pid == 0) std::abort();
  if (!state.annotations.is_object()) std::abort();
  for (const auto& [key, value] : state.annotations.items())
    if (!value.is_string()) std::abort();
}

void checkLog(std::string_view log, size_t chunk) {
  RuntimeLogScanner whole;
  whole.feed(log);
  whole.finish();
  RuntimeLogScanner split;
  for (size_t at = 0; at < log.size(); at += chunk)
    split.feed(log.substr(at, chunk));
  split.finish();
  if (whole.lastError() != split.lastError()) std::abort();
  checkMessage(whole.lastError());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 64;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    checkState(input);
    checkLog(input, chunk);
    checkMessage(cleanRuntimeText(input));
    checkMessage(cleanRuntimeText(input, 7));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exception: %s\n", e.what());
    std::abort();
  }
  return 0;
}
