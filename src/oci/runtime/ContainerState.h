// A container's state directory under --root: state.json (what `create` decided: pid, its start
// time, bundle, the spec, the cgroup directories) and exec.fifo, whose existence means "created,
// not started". The status is computed from those and the live process, as runc does.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace monocri::runtime {

inline constexpr const char* kStateFile = "state.json";
inline constexpr const char* kExecFifo = "exec.fifo";

struct ContainerState {
  std::string id;
  std::string dir;  // <root>/<id>
  pid_t pid = 0;
  uint64_t pidStartTime = 0;  // /proc/<pid>/stat field 22: a reused pid is not ours
  std::string bundle;
  std::string rootfs;
  std::string created;  // RFC 3339 with nanoseconds, UTC
  nlohmann::json spec;  // the config.json the container was created from
  nlohmann::json cgroup;

  // "created", "running", "paused" or "stopped".
  std::string status() const;
  bool processAlive() const;
  // The OCI state document (`state`, the hooks' stdin).
  nlohmann::json ociState(const std::string& status) const;

  void save() const;  // atomically: temp file, rename
  // Throws RuntimeError "container <id> does not exist" when there is no state.
  static ContainerState load(const std::string& root, const std::string& id);
};

// Field 22 of /proc/<pid>/stat; 0 if the process is gone. `zombie` tells an exited, unreaped one.
uint64_t processStartTime(pid_t pid, bool* zombie = nullptr);
std::string nowRfc3339();
// The runtime's reader of whole files (state.json, config.json, process.json, /proc files);
// "-" is stdin. With `missing`, an absent file sets it and reads as "" instead of throwing.
std::string readWholeFile(const std::string& path, bool* missing = nullptr);
// runc's rule: letters, digits, "_+-.", not "." or "..", at most 1024 bytes.
bool isValidContainerId(const std::string& id);

}  // namespace monocri::runtime
