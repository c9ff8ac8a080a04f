#include "daemon/Config.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace monocri::daemon {
struct TomlInvariantBroken : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace monocri::daemon

// toml++ 3.3 (Debian 12) is not safe on hostile input as it is. Found by tests/fuzz/fuzz_config:
//  - it asserts, and in NDEBUG builds tells the optimizer to assume, that a table header's key
//    starts with a key character; "[=" or "[[[a]]]" break that (fixed upstream in
//    tomlplusplus#301);
//  - its generated Unicode tables reach __builtin_unreachable() for some non-ASCII characters
//    where it looks for whitespace (U+00E9 among them).
// So parseConfig() hands it printable ASCII only (see there), and its internal checks and
// "unreachable" points are compiled as exceptions in every build, reported as parse errors.
// (Inside its noexcept functions such a throw terminates: deterministic, never undefined.)
#pragma push_macro("NDEBUG")
#undef NDEBUG
#define TOML_ASSERT(expr) \
  ((expr) ? static_cast<void>(0) : throw ::monocri::daemon::TomlInvariantBroken(#expr))
#pragma GCC diagnostic push
#ifdef __clang__
#pragma GCC diagnostic ignored "-Wexceptions"
#else
#pragma GCC diagnostic ignored "-Wterminate"
#endif
#include <toml++/impl/preprocessor.h>  // #pragma once: the definitions below then stay
#undef TOML_UNREACHABLE
#define TOML_UNREACHABLE throw ::monocri::daemon::TomlInvariantBroken("unreachable code reached")
#undef TOML_ASSUME
#define TOML_ASSUME(...) TOML_ASSERT(__VA_ARGS__)
#include <toml++/toml.h>
#pragma GCC diagnostic pop
#pragma pop_macro("NDEBUG")

namespace monocri::daemon {

namespace {

constexpr std::array<std::string_view, 5> kLogLevels = {"trace", "debug", "info", "warn", "error"};

std::string where(const toml::node& node, const std::string& path) {
  return fmt::format("{}:{}", path, node.source().begin.line);
}

std::string readString(const toml::node& node, std::string_view key, const std::string& path,
                       std::string& out) {
  auto value = node.value<std::string>();
  if (!node.is_string() || !value) {
    return fmt::format("{}: '{}' must be a string", where(node, path), key);
  }
  out = *value;
  return {};
}

std::string readPositive(const toml::node& node, std::string_view key, const std::string& path,
                         uint64_t& out) {
  if (!node.is_integer()) {
    return fmt::format("{}: '{}' must be an integer", where(node, path), key);
  }
  int64_t value = *node.value<int64_t>();
  if (value <= 0) {
    return fmt::format("{}: '{}' must be positive, got {}", where(node, path), key, value);
  }
  out = static_cast<uint64_t>(value);
  return {};
}

std::string validate(const Config& config) {
  const std::pair<std::string_view, std::string> paths[] = {
      {"root", config.root}, {"run_root", config.runRoot}, {"listen", config.listenPath()}};
  for (const auto& [key, value] : paths) {
    if (value.empty() || value.front() != '/') {
      return fmt::format("'{}' must be an absolute path, got '{}'", key, value);
    }
  }
  if (config.listenPath().size() >= sizeof(sockaddr_un::sun_path)) {
    return fmt::format("'listen' path is {} bytes long; unix sockets allow at most {}",
                       config.listenPath().size(), sizeof(sockaddr_un::sun_path) - 1);
  }
  if (std::find(kLogLevels.begin(), kLogLevels.end(), config.logLevel) == kLogLevels.end()) {
    return fmt::format("'log_level' must be one of trace, debug, info, warn, error; got '{}'",
                       config.logLevel);
  }
  if (config.ociRuntime.empty()) return "'oci_runtime' must not be empty";
  return {};
}

}  // namespace

std::string Config::listenPath() const {
  return listen.empty() ? runRoot + "/monocri.sock" : listen;
}

std::string loadConfig(const std::string& path, bool mustExist, Config& out) {
  out = Config{};
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT && !mustExist) return {};
    return fmt::format("cannot read config file {}: {}", path, std::strerror(errno));
  }
  std::ifstream file(path);
  if (!file) return fmt::format("cannot open config file {}", path);
  std::stringstream text;
  text << file.rdbuf();
  if (std::string error = parseConfig(text.str(), path, out); !error.empty()) return error;
  out.configPath = path;
  return {};
}

std::string parseConfig(const std::string& text, const std::string& path, Config& out) {
  out = Config{};
  // Printable ASCII, tabs and line ends only. TOML itself allows no raw control character
  // but tab and line ends; monocri's keys and values are ASCII, and a non-ASCII character in a
  // string can be written \uXXXX. This keeps toml++ 3.3 away from its unsafe paths (above).
  size_t line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const bool lineEnd = c == '\n' || (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n');
    if (c == '\n') {
      ++line;
    } else if (c >= 0x80) {
      return fmt::format(
          "{}:{}: byte 0x{:02x} is not ASCII; write non-ASCII characters in strings as \\uXXXX",
          path, line, c);
    } else if ((c < 0x20 && c != '\t' && !lineEnd) || c == 0x7f) {
      return fmt::format("{}:{}: control character 0x{:02x} is not allowed in TOML", path, line, c);
    }
  }
  toml::table table;
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& error) {
    return fmt::format("{}:{}:{}: {}", path, error.source().begin.line, error.source().begin.column,
                       error.description());
  } catch (const TomlInvariantBroken& error) {
    return fmt::format("{}: not valid TOML (the parser's check '{}' failed)", path, error.what());
  }
  for (auto&& [key, node] : table) {
    const std::string name(key.str());
    std::string error;
    if (name == "root") {
      error = readString(node, name, path, out.root);
    } else if (name == "run_root") {
      error = readString(node, name, path, out.runRoot);
    } else if (name == "listen") {
      error = readString(node, name, path, out.listen);
    } else if (name == "log_level") {
      error = readString(node, name, path, out.logLevel);
    } else if (name == "oci_runtime") {
      error = readString(node, name, path, out.ociRuntime);
    } else if (name == "stall_threshold_ms") {
      error = readPositive(node, name, path, out.stallThresholdMs);
    } else if (name == "shutdown_grace_ms") {
      error = readPositive(node, name, path, out.shutdownGraceMs);
    } else {
      error = fmt::format("{}: unknown key '{}'", where(node, path), name);
    }
    if (!error.empty()) return error;
  }
  if (std::string error = validate(out); !error.empty()) return path + ": " + error;
  return {};
}

std::string applyOverrides(const ConfigOverrides& overrides, Config& config) {
  if (overrides.root) config.root = *overrides.root;
  if (overrides.runRoot) config.runRoot = *overrides.runRoot;
  if (overrides.listen) config.listen = *overrides.listen;
  if (overrides.logLevel) config.logLevel = *overrides.logLevel;
  if (overrides.ociRuntime) config.ociRuntime = *overrides.ociRuntime;
  if (overrides.stallThresholdMs) config.stallThresholdMs = *overrides.stallThresholdMs;
  if (overrides.shutdownGraceMs) config.shutdownGraceMs = *overrides.shutdownGraceMs;
  return validate(config);
}

nlohmann::json configToJson(const Config& config) {
  return nlohmann::json{
      {"configPath", config.configPath},
      {"root", config.root},
      {"runRoot", config.runRoot},
      {"listen", config.listenPath()},
      {"logLevel", config.logLevel},
      {"stallThresholdMs", config.stallThresholdMs},
      {"shutdownGraceMs", config.shutdownGraceMs},
      {"ociRuntime", config.ociRuntime},
  };
}

std::string configToToml(const Config& config) {
  toml::table table{
      {"root", config.root},
      {"run_root", config.runRoot},
      {"listen", config.listenPath()},
      {"log_level", config.logLevel},
      {"stall_threshold_ms", static_cast<int64_t>(config.stallThresholdMs)},
      {"shutdown_grace_ms", static_cast<int64_t>(config.shutdownGraceMs)},
      {"oci_runtime", config.ociRuntime},
  };
  std::stringstream out;
  out << table << "\n";
  return out.str();
}

}  // namespace monocri::daemon
