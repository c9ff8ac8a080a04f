#include "integration/runtime-client/TestBundle.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "state/StateFiles.h"

namespace monocri::testing {

namespace {

using Json = nlohmann::json;

constexpr const char* kBusybox = "/bin/busybox";
constexpr const char* kApplets[] = {"sh",     "echo", "cat",  "sleep", "true", "false",
                                    "printf", "ls",   "kill", "id",    "env"};

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream stream(text);
  while (std::getline(stream, part, separator))
    parts.push_back(part);
  return parts;
}

Json capabilities() {
  // A short list that a container init without special needs keeps.
  const Json names = {"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"};
  return {{"bounding", names}, {"effective", names}, {"permitted", names}};
}

Json mounts() {
  auto mount = [](const char* destination, const char* type, const char* source,
                  std::vector<std::string> options) {
    return Json{{"destination", destination},
                {"type", type},
                {"source", source},
                {"options", std::move(options)}};
  };
  return Json::array({
      mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=1m"}),
      mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}),
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=1m"}),
      mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      mount("/tmp", "tmpfs", "tmpfs", {"nosuid", "nodev", "size=1m"}),
  });
}

}  // namespace

std::string makeBusyboxRootfs(const std::string& dir) {
  for (const char* sub : {"", "/bin", "/proc", "/dev", "/sys", "/tmp", "/etc"}) {
    if (auto error = state::makeDirectories(dir + sub, 0755); !error.empty()) return error;
  }
  std::ifstream source(kBusybox, std::ios::binary);
  std::ofstream target(dir + "/bin/busybox", std::ios::binary);
  target << source.rdbuf();
  target.close();
  if (!source || !target) return std::string("copying ") + kBusybox + " failed";
  if (chmod((dir + "/bin/busybox").c_str(), 0755) != 0) return "chmod busybox failed";
  for (const char* applet : kApplets) {
    const std::string link = dir + "/bin/" + applet;
    if (symlink("busybox", link.c_str()) != 0 && errno != EEXIST) {
      return "symlink " + link + ": " + std::strerror(errno);
    }
  }
  return "";
}

std::string writeBundle(const std::string& dir, const std::string& rootfs,
                        const BundleConfig& config) {
  if (auto error = state::makeDirectories(dir, 0755); !error.empty()) return error;
  Json spec = {
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", config.terminal},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", config.args},
        {"env", {"PATH=/bin", "TERM=xterm"}},
        {"cwd", "/"},
        {"capabilities", capabilities()},
        {"noNewPrivileges", true}}},
      {"root", {{"path", rootfs}, {"readonly", true}}},
      {"hostname", "monocri-test"},
      {"mounts", mounts()},
      {"linux",
       {{"cgroupsPath", config.cgroupsPath},
        {"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
        {"namespaces",
         {{{"type", "pid"}},
          {{"type", "ipc"}},
          {{"type", "uts"}},
          {{"type", "mount"}},
          {{"type", "network"}}}},
        {"maskedPaths", {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"}},
        {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"}}}},
  };
  return state::writeFileAtomically(dir + "/config.json", spec.dump(2));
}

std::vector<std::string> cgroupDirectories(const std::string& relative) {
  // This process's cgroup per hierarchy: "4:memory:/a/b" (v1), "0::/a" (v2).
  std::map<std::string, std::string> ownByController;  // "memory", "name=systemd", "" (v2)
  std::ifstream cgroups("/proc/self/cgroup");
  for (std::string line; std::getline(cgroups, line);) {
    const size_t first = line.find(':');
    const size_t second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (controllers.empty()) ownByController[""] = path;
    for (const auto& controller : split(controllers, ','))
      ownByController[controller] = path;
  }
  // Mounts: "36 25 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:14 - cgroup cgroup rw,cpu".
  std::vector<std::string> directories;
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; std::getline(mountinfo, line);) {
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    const auto before = split(line.substr(0, dash), ' ');
    const auto after = split(line.substr(dash + 3), ' ');
    if (before.size() < 5 || after.size() < 3) continue;
    const std::string& mountRoot = before[3];
    const std::string& mountPoint = before[4];
    std::string own;
    if (after[0] == "cgroup2") {
      own = ownByController[""];
    } else if (after[0] == "cgroup") {
      for (const auto& option : split(after[2], ','))
        if (ownByController.count(option)) own = ownByController[option];
    } else {
      continue;
    }
    if (own.empty() || own.rfind(mountRoot, 0) != 0) continue;
    std::string inside = mountRoot == "/" ? own : own.substr(mountRoot.size());
    if (inside.empty() || inside.back() != '/') inside += '/';
    directories.push_back(mountPoint + inside + relative);
  }
  return directories;
}

}  // namespace monocri::testing
