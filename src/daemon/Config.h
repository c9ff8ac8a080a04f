// The daemon's configuration: defaults, then the TOML file, then command-line flags.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace monocri::daemon {

inline constexpr const char* kDefaultConfigPath = "/etc/monocri/monocri.toml";

struct Config {
  std::string root = "/var/lib/monocri";  // persistent state
  std::string runRoot = "/run/monocri";   // runtime state, gone at reboot
  std::string listen;                     // CRI socket; default <run_root>/monocri.sock
  std::string logLevel = "info";          // trace, debug, info, warn, error
  uint64_t stallThresholdMs = 50;         // loop turns longer than this are logged
  uint64_t shutdownGraceMs = 10'000;      // SIGTERM: time for calls in flight to finish
  // The OCI runtime: "monocri-runtime" (bundled, beside this binary), a name in PATH, a path.
  std::string ociRuntime = "monocri-runtime";
  std::string registriesConf = "/etc/containers/registries.conf";  // containers-registries.conf
  std::vector<std::string> pinnedImages;    // never removed (kubelet's image GC skips them too)
  uint64_t maxConcurrentDownloads = 3;      // layers fetched at once
  uint64_t pullProgressTimeoutMs = 60'000;  // a registry sending nothing this long has failed
  // Containers' CRI logs: the longest record (a longer line becomes P records), the size cap of
  // one file (kubelet's log_size_max; 0: none) and flood control (bytes/s and burst; 0: none;
  // a pod's annotation io.monocri.log-rate-limit may only lower it).
  uint64_t containerLogMaxLineBytes = 16 * 1024;
  uint64_t containerLogSizeMax = 0;
  uint64_t containerLogRateBytesPerSecond = 0;
  uint64_t containerLogRateBurstBytes = 0;
  // Output goes through a spool under the run root so that a daemon crash loses none of it
  // (LogJournal); off, a crash loses what the daemon held, for about half the CPU per byte.
  bool containerLogJournal = true;
  // The streaming server (exec, attach, port-forward URLs): HOST:PORT, IPv6 in brackets, port 0
  // for one the kernel picks. kubelet must reach it; nothing else should.
  std::string streamAddress = "127.0.0.1:0";
  // TLS for it (PEM files): set the certificate and key and the URLs are https; set the CA too
  // and clients must present a certificate it signed. Rotated files are picked up by the next
  // connection.
  std::string streamTlsCert, streamTlsKey, streamTlsCa;
  // Pod networks through CNI: the config dir (the first *.conflist/*.conf/*.json in lexical
  // order is the pod network; watched for changes) and where plugin binaries are looked for.
  std::string cniConfDir = "/etc/cni/net.d";
  std::vector<std::string> cniPluginDirs = {"/opt/cni/bin", "/usr/lib/cni"};
  // Network namespaces made ahead of RunPodSandbox, at low CPU priority: a pod takes a ready
  // one instead of waiting for the kernel to make it (0: each pod makes its own).
  uint64_t netnsPoolSize = 4;

  std::string configPath;  // the file the values came from ("" if none)

  // The socket path, with the default applied.
  std::string listenPath() const;
};

// Settings given on the command line; each one set overrides the file.
struct ConfigOverrides {
  std::optional<std::string> root, runRoot, listen, logLevel, ociRuntime, registriesConf,
      streamAddress, streamTlsCert, streamTlsKey, streamTlsCa, cniConfDir;
  std::optional<std::vector<std::string>> cniPluginDirs;
  std::optional<uint64_t> stallThresholdMs, shutdownGraceMs, pullProgressTimeoutMs;
};

// Reads `path`. A missing file gives the defaults unless `mustExist` (an explicit --config).
// Unknown keys, wrong types and invalid values are errors naming the key and the line.
// Returns the error message, or "" with `out` filled.
std::string loadConfig(const std::string& path, bool mustExist, Config& out);

// Parses TOML `text` (named `source` in messages) over the defaults.
std::string parseConfig(const std::string& text, const std::string& source, Config& out);

// Applies the overrides, then checks the result as a whole (absolute paths, socket length).
std::string applyOverrides(const ConfigOverrides& overrides, Config& config);

nlohmann::json configToJson(const Config& config);
std::string configToToml(const Config& config);

}  // namespace monocri::daemon
