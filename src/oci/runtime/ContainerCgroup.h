// A container's cgroup with the cgroupfs driver, on cgroup v1, v2 and hybrid hosts: the
// directory in every mounted hierarchy (v1 controllers, name=systemd, the unified one), the
// spec's linux.resources written to the controllers' files, freezing, the pids inside, removal.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace monocri::runtime {

class ContainerCgroup {
 public:
  // `cgroupsPath` as the OCI spec has it: absolute ("/kubepods/pod1/c1") from each hierarchy's
  // root, relative ("kubepods/c1") from this process's own cgroup in each hierarchy, or empty
  // (then the container id, relative). Paths with ".." components are refused. Throws.
  static ContainerCgroup forSpec(const std::string& cgroupsPath, const std::string& id);
  // The directories as recorded in the container's state.
  nlohmann::json toJson() const;
  static ContainerCgroup fromJson(const nlohmann::json& saved);

  // mkdir -p in every hierarchy (a new cpuset directory gets its parent's cpus and mems).
  void create();
  // Writes linux.resources (memory with swap, cpu, cpuset, pids, hugetlb, blkio/io, devices
  // allow/deny; on v2 the devices list as an eBPF program). A controller the host lacks is an
  // error naming it, a write that fails names the file and the value. Throws.
  void apply(const nlohmann::json& linuxResources);
  // Moves `pid` into the cgroup in every hierarchy.
  void join(pid_t pid);
  // Freezer: v1 freezer.state or v2 cgroup.freeze; waits until the state is reached.
  void setFrozen(bool frozen);
  bool frozen() const;
  // The container's directory in each v1 hierarchy, with the name the hierarchy has under a
  // container's /sys/fs/cgroup ("memory", "cpu,cpuacct", "systemd"); empty on a pure v2 host.
  std::vector<std::pair<std::string, std::string>> v1Directories() const;
  // Every process in the cgroup (and its descendants).
  std::vector<pid_t> pids() const;
  // rmdir everywhere, deepest first, retrying briefly while the last processes leave. Throws
  // naming a directory that would not go. Directories already gone are fine.
  void remove();

 private:
  struct Directory {
    std::string path;                      // absolute path of the container's directory
    std::vector<std::string> controllers;  // v1: the hierarchy's controllers; v2: empty
    bool unified = false;
  };
  // The freezer's directory and whether it is v1's (else the unified hierarchy's).
  std::pair<std::string, bool> freezerDirectory() const;

  std::vector<Directory> directories_;
};

}  // namespace monocri::runtime
