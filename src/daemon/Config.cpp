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

#include "config/TomlReader.h"

namespace monocri::daemon {

namespace {

using config::TomlValue;

constexpr std::array<std::string_view, 5> kLogLevels = {"trace", "debug", "info", "warn", "error"};

std::string where(const TomlValue& value, const std::string& path) {
  return fmt::format("{}:{}", path, value.line);
}

std::string readString(const TomlValue& value, std::string_view key, const std::string& path,
                       std::string& out) {
  if (value.kind != TomlValue::Kind::kString) {
    return fmt::format("{}: '{}' must be a string, not a {}", where(value, path), key,
                       value.kindName());
  }
  out = value.text;
  return {};
}

std::string readStrings(const TomlValue& value, std::string_view key, const std::string& path,
                        std::vector<std::string>& out) {
  if (value.kind != TomlValue::Kind::kArray) {
    return fmt::format("{}: '{}' must be an array of strings", where(value, path), key);
  }
  out.clear();
  for (const auto& item : value.items) {
    if (item.kind != TomlValue::Kind::kString) {
      return fmt::format("{}: '{}' must be an array of strings", where(item, path), key);
    }
    out.push_back(item.text);
  }
  return {};
}

std::string readPositive(const TomlValue& value, std::string_view key, const std::string& path,
                         uint64_t& out) {
  if (value.kind != TomlValue::Kind::kInteger) {
    return fmt::format("{}: '{}' must be an integer, not a {}", where(value, path), key,
                       value.kindName());
  }
  if (value.integer <= 0) {
    return fmt::format("{}: '{}' must be positive, got {}", where(value, path), key, value.integer);
  }
  out = static_cast<uint64_t>(value.integer);
  return {};
}

std::string readBool(const TomlValue& value, std::string_view key, const std::string& path,
                     bool& out) {
  if (value.kind != TomlValue::Kind::kBoolean) {
    return fmt::format("{}: '{}' must be true or false, not a {}", where(value, path), key,
                       value.kindName());
  }
  out = value.boolean;
  return {};
}

std::string readCount(const TomlValue& value, std::string_view key, const std::string& path,
                      uint64_t& out) {
  if (value.kind != TomlValue::Kind::kInteger) {
    return fmt::format("{}: '{}' must be an integer, not a {}", where(value, path), key,
                       value.kindName());
  }
  if (value.integer < 0) {
    return fmt::format("{}: '{}' must be 0 or more, got {}", where(value, path), key,
                       value.integer);
  }
  out = static_cast<uint64_t>(value.integer);
  return {};
}

std::string validate(const Config& config) {
  const std::pair<std::string_view, std::string> paths[] = {
      {"root", config.root},
      {"run_root", config.runRoot},
      {"listen", config.listenPath()},
      {"registries_conf", config.registriesConf}};
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
  if (config.streamTlsCert.empty() != config.streamTlsKey.empty()) {
    return "'stream_tls_cert' and 'stream_tls_key' go together: set both for TLS, or neither";
  }
  if (!config.streamTlsCa.empty() && config.streamTlsCert.empty()) {
    return "'stream_tls_ca' checks clients of a TLS streaming server: it needs "
           "'stream_tls_cert' and 'stream_tls_key'";
  }
  for (const auto& [key, value] : {std::pair{"stream_tls_cert", &config.streamTlsCert},
                                   {"stream_tls_key", &config.streamTlsKey},
                                   {"stream_tls_ca", &config.streamTlsCa}}) {
    if (!value->empty() && value->front() != '/') {
      return fmt::format("'{}' must be an absolute path, got '{}'", key, *value);
    }
  }
  if (config.cniConfDir.empty() || config.cniConfDir.front() != '/') {
    return fmt::format("'cni_conf_dir' must be an absolute path, got '{}'", config.cniConfDir);
  }
  for (const auto& dir : config.cniPluginDirs) {
    if (dir.empty() || dir.front() != '/') {
      return fmt::format("'cni_plugin_dirs' must hold absolute paths, got '{}'", dir);
    }
  }
  if (config.netnsPoolSize > 64) {
    return "'netns_pool_size' must be at most 64";
  }
  if (config.maxConcurrentDownloads > 64) {
    return "'max_concurrent_downloads' must be at most 64";
  }
  if (config.containerLogMaxLineBytes > 64 * 1024 * 1024) {
    return "'container_log_max_line_bytes' must be at most 67108864 (64 MiB)";
  }
  if (config.containerLogSizeMax != 0 && config.containerLogSizeMax < 4096) {
    return "'container_log_size_max' must be 0 (no cap) or at least 4096 bytes";
  }
  if (config.containerLogRateBytesPerSecond > (uint64_t{1} << 40) ||
      config.containerLogRateBurstBytes > (uint64_t{1} << 40)) {
    return "'container_log_rate_bytes_per_second' and '_burst_bytes' must be at most 2^40";
  }
  if (config.containerLogRateBurstBytes != 0 && config.containerLogRateBytesPerSecond == 0) {
    return "'container_log_rate_burst_bytes' needs 'container_log_rate_bytes_per_second'";
  }
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
  TomlValue root;
  if (std::string error = config::parseToml(text, path, root); !error.empty()) return error;
  for (const auto& [name, value] : root.members) {
    std::string error;
    if (name == "root") {
      error = readString(value, name, path, out.root);
    } else if (name == "run_root") {
      error = readString(value, name, path, out.runRoot);
    } else if (name == "listen") {
      error = readString(value, name, path, out.listen);
    } else if (name == "log_level") {
      error = readString(value, name, path, out.logLevel);
    } else if (name == "oci_runtime") {
      error = readString(value, name, path, out.ociRuntime);
    } else if (name == "stall_threshold_ms") {
      error = readPositive(value, name, path, out.stallThresholdMs);
    } else if (name == "shutdown_grace_ms") {
      error = readPositive(value, name, path, out.shutdownGraceMs);
    } else if (name == "registries_conf") {
      error = readString(value, name, path, out.registriesConf);
    } else if (name == "pinned_images") {
      error = readStrings(value, name, path, out.pinnedImages);
    } else if (name == "max_concurrent_downloads") {
      error = readPositive(value, name, path, out.maxConcurrentDownloads);
    } else if (name == "pull_progress_timeout_ms") {
      error = readPositive(value, name, path, out.pullProgressTimeoutMs);
    } else if (name == "container_log_max_line_bytes") {
      error = readPositive(value, name, path, out.containerLogMaxLineBytes);
    } else if (name == "netns_pool_size") {
      error = readCount(value, name, path, out.netnsPoolSize);
    } else if (name == "container_log_size_max") {
      error = readCount(value, name, path, out.containerLogSizeMax);
    } else if (name == "container_log_rate_bytes_per_second") {
      error = readCount(value, name, path, out.containerLogRateBytesPerSecond);
    } else if (name == "container_log_rate_burst_bytes") {
      error = readCount(value, name, path, out.containerLogRateBurstBytes);
    } else if (name == "container_log_journal") {
      error = readBool(value, name, path, out.containerLogJournal);
    } else if (name == "stream_address") {
      error = readString(value, name, path, out.streamAddress);
    } else if (name == "stream_tls_cert") {
      error = readString(value, name, path, out.streamTlsCert);
    } else if (name == "stream_tls_key") {
      error = readString(value, name, path, out.streamTlsKey);
    } else if (name == "stream_tls_ca") {
      error = readString(value, name, path, out.streamTlsCa);
    } else if (name == "cni_conf_dir") {
      error = readString(value, name, path, out.cniConfDir);
    } else if (name == "cni_plugin_dirs") {
      error = readStrings(value, name, path, out.cniPluginDirs);
    } else {
      error = fmt::format("{}: unknown key '{}'", where(value, path), name);
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
  if (overrides.registriesConf) config.registriesConf = *overrides.registriesConf;
  if (overrides.streamAddress) config.streamAddress = *overrides.streamAddress;
  if (overrides.streamTlsCert) config.streamTlsCert = *overrides.streamTlsCert;
  if (overrides.streamTlsKey) config.streamTlsKey = *overrides.streamTlsKey;
  if (overrides.streamTlsCa) config.streamTlsCa = *overrides.streamTlsCa;
  if (overrides.cniConfDir) config.cniConfDir = *overrides.cniConfDir;
  if (overrides.cniPluginDirs) config.cniPluginDirs = *overrides.cniPluginDirs;
  if (overrides.pullProgressTimeoutMs) {
    config.pullProgressTimeoutMs = *overrides.pullProgressTimeoutMs;
  }
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
      {"registriesConf", config.registriesConf},
      {"pinnedImages", config.pinnedImages},
      {"maxConcurrentDownloads", config.maxConcurrentDownloads},
      {"pullProgressTimeoutMs", config.pullProgressTimeoutMs},
      {"containerLogMaxLineBytes", config.containerLogMaxLineBytes},
      {"containerLogSizeMax", config.containerLogSizeMax},
      {"containerLogRateBytesPerSecond", config.containerLogRateBytesPerSecond},
      {"containerLogRateBurstBytes", config.containerLogRateBurstBytes},
      {"containerLogJournal", config.containerLogJournal},
      {"streamAddress", config.streamAddress},
      {"streamTlsCert", config.streamTlsCert},
      {"streamTlsKey", config.streamTlsKey},
      {"streamTlsCa", config.streamTlsCa},
      {"cniConfDir", config.cniConfDir},
      {"cniPluginDirs", config.cniPluginDirs},
      {"netnsPoolSize", config.netnsPoolSize},
  };
}

std::string configToToml(const Config& config) {
  using monocri::config::tomlQuote;
  auto tomlList = [](const std::vector<std::string>& values) {
    std::string list;
    for (const auto& value : values)
      list += (list.empty() ? "" : ", ") + tomlQuote(value);
    return list;
  };
  return fmt::format(
      "root = {}\nrun_root = {}\nlisten = {}\nlog_level = {}\nstall_threshold_ms = {}\n"
      "shutdown_grace_ms = {}\noci_runtime = {}\nregistries_conf = {}\npinned_images = [{}]\n"
      "max_concurrent_downloads = {}\npull_progress_timeout_ms = {}\n"
      "container_log_max_line_bytes = {}\ncontainer_log_size_max = {}\n"
      "container_log_rate_bytes_per_second = {}\ncontainer_log_rate_burst_bytes = {}\n"
      "container_log_journal = {}\nstream_address = {}\nstream_tls_cert = {}\n"
      "stream_tls_key = {}\nstream_tls_ca = {}\ncni_conf_dir = {}\ncni_plugin_dirs = [{}]\n"
      "netns_pool_size = {}\n",
      tomlQuote(config.root), tomlQuote(config.runRoot), tomlQuote(config.listenPath()),
      tomlQuote(config.logLevel), config.stallThresholdMs, config.shutdownGraceMs,
      tomlQuote(config.ociRuntime), tomlQuote(config.registriesConf), tomlList(config.pinnedImages),
      config.maxConcurrentDownloads, config.pullProgressTimeoutMs, config.containerLogMaxLineBytes,
      config.containerLogSizeMax, config.containerLogRateBytesPerSecond,
      config.containerLogRateBurstBytes, config.containerLogJournal ? "true" : "false",
      tomlQuote(config.streamAddress), tomlQuote(config.streamTlsCert),
      tomlQuote(config.streamTlsKey), tomlQuote(config.streamTlsCa), tomlQuote(config.cniConfDir),
      tomlList(config.cniPluginDirs), config.netnsPoolSize);
}

}  // namespace monocri::daemon
