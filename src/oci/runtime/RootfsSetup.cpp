#include "oci/runtime/RootfsSetup.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "oci/runtime/RuntimeError.h"

#include "state/UniqueFd.h"

namespace monocri::runtime {

using state::UniqueFd;

namespace {

using nlohmann::json;

// ---- path resolution inside the rootfs ----

UniqueFd openInRoot(int rootFd, const std::string& path, int flags, uint64_t resolve = 0) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve;
  size_t skip = path.find_first_not_of('/');
  const char* relative = skip == std::string::npos ? "." : path.c_str() + skip;
  for (;;) {
    long fd = syscall(SYS_openat2, rootFd, relative, &how, sizeof how);
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno != EINTR && errno != EAGAIN) return UniqueFd();
  }
}

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    std::string part = path.substr(start, slash - start);
    if (!part.empty() && part != ".") parts.push_back(std::move(part));
    start = slash + 1;
  }
  return parts;
}

// The directory `path` inside the rootfs, created (0755) where missing; every component is
// resolved with the rootfs as "/", so a symlink cannot lead out of it.
UniqueFd mkdirAllInRoot(int rootFd, const std::string& path) {
  std::string prefix;
  UniqueFd current = openInRoot(rootFd, "/", O_PATH | O_DIRECTORY);
  if (!current) throwErrno("opening the rootfs");
  for (const std::string& part : components(path)) {
    prefix += "/" + part;
    UniqueFd next = openInRoot(rootFd, prefix, O_PATH | O_DIRECTORY);
    if (!next && errno == ENOENT) {
      if (mkdirat(current.get(), part.c_str(), 0755) < 0 && errno != EEXIST)
        throwErrno(fmt::format("creating {} in the rootfs", prefix));
      next = openInRoot(rootFd, prefix, O_PATH | O_DIRECTORY);
    }
    if (!next) throwErrno(fmt::format("resolving {} in the rootfs", prefix));
    current = std::move(next);
  }
  return current;
}

std::pair<std::string, std::string> splitParent(const std::string& path) {
  auto parts = components(path);
  if (parts.empty()) return {"/", ""};
  std::string base = parts.back();
  parts.pop_back();
  std::string parent;
  for (auto& part : parts)
    parent += "/" + part;
  return {parent.empty() ? "/" : parent, base};
}

// The mount target `path` inside the rootfs, created as a directory or an empty file.
UniqueFd createTargetInRoot(int rootFd, const std::string& path, bool directory,
                            uint64_t resolve = 0) {
  if (directory) {
    mkdirAllInRoot(rootFd, path);
  } else {
    UniqueFd existing = openInRoot(rootFd, path, O_PATH, resolve);
    if (existing) return existing;
    auto [parent, base] = splitParent(path);
    UniqueFd parentFd = mkdirAllInRoot(rootFd, parent);
    UniqueFd reopened = openInRoot(rootFd, parent, O_DIRECTORY | O_RDONLY);
    if (!reopened) throwErrno(fmt::format("opening {} in the rootfs", parent));
    int fd =
        openat(reopened.get(), base.c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST && errno != ELOOP)
      throwErrno(fmt::format("creating {} in the rootfs", path));
    if (fd >= 0) close(fd);
  }
  UniqueFd target = openInRoot(rootFd, path, O_PATH, resolve);
  if (!target) throwErrno(fmt::format("resolving the mount target {} in the rootfs", path));
  return target;
}

std::string fdPath(int fd) {
  return fmt::format("/proc/self/fd/{}", fd);
}

// ---- mount options ----

struct MountFlag {
  const char* name;
  bool clear;
  unsigned long flag;
};

constexpr MountFlag kMountFlags[] = {
    {"async", true, MS_SYNCHRONOUS},
    {"atime", true, MS_NOATIME},
    {"bind", false, MS_BIND},
    {"defaults", false, 0},
    {"dev", true, MS_NODEV},
    {"diratime", true, MS_NODIRATIME},
    {"dirsync", false, MS_DIRSYNC},
    {"exec", true, MS_NOEXEC},
    {"mand", false, MS_MANDLOCK},
    {"noatime", false, MS_NOATIME},
    {"nodev", false, MS_NODEV},
    {"nodiratime", false, MS_NODIRATIME},
    {"noexec", false, MS_NOEXEC},
    {"nomand", true, MS_MANDLOCK},
    {"norelatime", true, MS_RELATIME},
    {"nostrictatime", true, MS_STRICTATIME},
    {"nosuid", false, MS_NOSUID},
    {"rbind", false, MS_BIND | MS_REC},
    {"relatime", false, MS_RELATIME},
    {"remount", false, MS_REMOUNT},
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"strictatime", false, MS_STRICTATIME},
    {"suid", true, MS_NOSUID},
    {"sync", false, MS_SYNCHRONOUS},
};

struct Propagation {
  const char* name;
  unsigned long flag;
};

constexpr Propagation kPropagations[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

struct MountOptions {
  unsigned long flags = 0;
  std::vector<unsigned long> propagation;
  std::string data;
};

MountOptions parseOptions(const json& options, const std::string& where) {
  MountOptions parsed;
  if (options.is_null()) return parsed;
  if (!options.is_array()) fail("{}.options: not an array", where);
  for (const auto& option : options) {
    if (!option.is_string()) fail("{}.options: {} is not a string", where, option.dump());
    const std::string& name = option.get_ref<const std::string&>();
    bool known = false;
    for (const auto& flag : kMountFlags) {
      if (name == flag.name) {
        parsed.flags = flag.clear ? parsed.flags & ~flag.flag : parsed.flags | flag.flag;
        known = true;
        break;
      }
    }
    for (const auto& propagation : kPropagations) {
      if (name == propagation.name) {
        parsed.propagation.push_back(propagation.flag);
        known = true;
        break;
      }
    }
    if (known) continue;
    if (name == "idmap" || name == "ridmap" || name == "tmpcopyup" ||
        (name.size() > 1 && name[0] == 'r' &&
         (name == "rro" || name == "rrw" || name == "rnosuid" || name == "rnodev" ||
          name == "rnoexec" || name == "rnoatime")))
      fail("{}.options: {:?} is not supported by monocri-runtime", where, name);
    if (!parsed.data.empty()) parsed.data += ',';
    parsed.data += name;
  }
  return parsed;
}

// Flags of the mount holding `path` that a bind remount must keep (a user namespace locks them).
unsigned long lockedFlags(const char* path) {
  struct statvfs st {};
  if (statvfs(path, &st) < 0) return 0;
  unsigned long flags = 0;
  if (st.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (st.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  if (st.f_flag & ST_RDONLY) flags |= MS_RDONLY;
  return flags;
}

void remountBind(const std::string& target, unsigned long flags, const std::string& what) {
  unsigned long base = MS_BIND | MS_REMOUNT | (flags & ~(MS_BIND | MS_REC | MS_REMOUNT));
  if (mount("", target.c_str(), "", base, nullptr) == 0) return;
  if (errno == EPERM &&
      mount("", target.c_str(), "", base | lockedFlags(target.c_str()), nullptr) == 0)
    return;
  throwErrno(fmt::format("remounting {}", what));
}

// ---- cgroup mounts ----

void mountCgroups(int rootFd, const std::string& destination, const MountOptions& options,
                  const std::string& where,
                  const std::vector<std::pair<std::string, std::string>>& hierarchies) {
  UniqueFd target = createTargetInRoot(rootFd, destination, true);
  if (hierarchies.empty()) {  // a pure v2 host
    if (mount("cgroup2", fdPath(target.get()).c_str(), "cgroup2", options.flags, nullptr) < 0)
      throwErrno(fmt::format("{}: mounting cgroup2 on {}", where, destination));
    return;
  }
  // v1: a tmpfs holding each hierarchy's container directory, as runc lays it out.
  if (mount("tmpfs", fdPath(target.get()).c_str(), "tmpfs",
            (options.flags & ~MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0)
    throwErrno(fmt::format("{}: mounting the tmpfs for cgroups on {}", where, destination));
  for (const auto& [name, hostDir] : hierarchies) {
    std::string sub = destination + "/" + name;
    UniqueFd subFd = createTargetInRoot(rootFd, sub, true);
    if (mount(hostDir.c_str(), fdPath(subFd.get()).c_str(), "", MS_BIND | MS_REC, nullptr) < 0)
      throwErrno(fmt::format("{}: binding {} on {}", where, hostDir, sub));
    UniqueFd mounted = openInRoot(rootFd, sub, O_PATH);
    if (!mounted) throwErrno(fmt::format("{}: reopening {}", where, sub));
    remountBind(fdPath(mounted.get()),
                MS_NOSUID | MS_NODEV | MS_NOEXEC | (options.flags & MS_RDONLY), sub);
    // "cpu,cpuacct" is also reachable as "cpu" and "cpuacct".
    if (name.find(',') != std::string::npos) {
      UniqueFd parent = openInRoot(rootFd, destination, O_DIRECTORY | O_RDONLY);
      size_t start = 0;
      while (start <= name.size()) {
        size_t comma = name.find(',', start);
        if (comma == std::string::npos) comma = name.size();
        std::string alias = name.substr(start, comma - start);
        if (symlinkat(name.c_str(), parent.get(), alias.c_str()) < 0 && errno != EEXIST)
          throwErrno(fmt::format("{}: linking {}/{}", where, destination, alias));
        start = comma + 1;
      }
    }
  }
  // The tmpfs itself stays writable, as runc leaves it; the hierarchies are what "ro" guards.
}

// ---- one mount of the spec ----

void mountOne(int rootFd, const json& entry, size_t index, const RootfsOptions& rootfs) {
  std::string where = fmt::format("mounts[{}]", index);
  if (!entry.is_object()) fail("{}: not an object", where);
  std::string destination = entry.value("destination", "");
  if (destination.empty()) fail("{}.destination is missing", where);
  if (destination.front() != '/') destination = "/" + destination;
  std::string type = entry.value("type", "");
  std::string source = entry.value("source", "");
  MountOptions options = parseOptions(entry.contains("options") ? entry["options"] : json(), where);
  where += " (" + destination + ")";
  bool bind = options.flags & MS_BIND;
  if (type == "bind") bind = true;

  if (type == "cgroup")
    return mountCgroups(rootFd, destination, options, where, rootfs.cgroupDirectories);

  // proc and sysfs over a symlink would let an image aim them at anything: refused, as runc.
  uint64_t resolve = (type == "proc" || type == "sysfs") ? RESOLVE_NO_SYMLINKS : 0;
  if (resolve) {
    UniqueFd existing = openInRoot(rootFd, destination, O_PATH, resolve);
    if (!existing && errno == ELOOP)
      fail("{}: the destination is a symlink inside the rootfs; refusing to mount {} there", where,
           type);
  }
  if (bind) {
    if (source.empty()) fail("{}: a bind mount needs a source", where);
    struct stat st {};
    if (stat(source.c_str(), &st) < 0) throwErrno(fmt::format("{}: source {}", where, source));
    UniqueFd target = createTargetInRoot(rootFd, destination, S_ISDIR(st.st_mode));
    if (mount(source.c_str(), fdPath(target.get()).c_str(), "", options.flags & (MS_BIND | MS_REC),
              nullptr) < 0)
      throwErrno(fmt::format("{}: binding {}", where, source));
    if (options.flags & ~(MS_BIND | MS_REC | MS_REMOUNT)) {
      UniqueFd mounted = openInRoot(rootFd, destination, O_PATH);
      if (!mounted) throwErrno(fmt::format("{}: reopening the mount", where));
      remountBind(fdPath(mounted.get()), options.flags, where);
    }
  } else {
    struct stat before {};
    bool existed = false;
    if (type == "tmpfs") {
      UniqueFd existing = openInRoot(rootFd, destination, O_PATH);
      existed = existing && fstat(existing.get(), &before) == 0 && S_ISDIR(before.st_mode);
    }
    UniqueFd target = createTargetInRoot(rootFd, destination, true, resolve);
    if (mount(source.empty() ? type.c_str() : source.c_str(), fdPath(target.get()).c_str(),
              type.c_str(), options.flags,
              options.data.empty() ? nullptr : options.data.c_str()) < 0) {
      int error = errno;
      throwErrno(fmt::format("{}: mounting {} (options {:?})", where, type, options.data), error);
    }
    // A tmpfs over a directory of the image keeps that directory's mode (/tmp stays 1777).
    if (existed) {
      UniqueFd mounted = openInRoot(rootFd, destination, O_RDONLY | O_DIRECTORY);
      if (!mounted || fchmod(mounted.get(), before.st_mode & 07777) < 0)
        throwErrno(fmt::format("{}: keeping the mode of {}", where, destination));
    }
  }
  for (unsigned long propagation : options.propagation) {
    UniqueFd mounted = openInRoot(rootFd, destination, O_PATH);
    if (!mounted || mount("", fdPath(mounted.get()).c_str(), "", propagation, nullptr) < 0)
      throwErrno(fmt::format("{}: setting propagation", where));
  }
}

// ---- /dev ----

struct DeviceSpec {
  std::string path;
  char type;
  unsigned major, minor;
  mode_t mode;
  uid_t uid;
  gid_t gid;
};

void createDevice(int rootFd, const DeviceSpec& device, bool bindFromHost) {
  auto [parent, base] = splitParent(device.path);
  mkdirAllInRoot(rootFd, parent);
  UniqueFd parentFd = openInRoot(rootFd, parent, O_DIRECTORY | O_RDONLY);
  if (!parentFd) throwErrno(fmt::format("opening {} in the rootfs", parent));
  if (bindFromHost) {
    UniqueFd target = createTargetInRoot(rootFd, device.path, false);
    if (mount(device.path.c_str(), fdPath(target.get()).c_str(), "", MS_BIND, nullptr) < 0)
      throwErrno(fmt::format("binding the device {} from the host", device.path));
    return;
  }
  mode_t type = device.type == 'b' ? S_IFBLK : device.type == 'p' ? S_IFIFO : S_IFCHR;
  unlinkat(parentFd.get(), base.c_str(), 0);
  if (mknodat(parentFd.get(), base.c_str(), type | (device.mode & 07777),
              makedev(device.major, device.minor)) < 0)
    throwErrno(fmt::format("creating the device {}", device.path));
  if (fchownat(parentFd.get(), base.c_str(), device.uid, device.gid, AT_SYMLINK_NOFOLLOW) < 0)
    throwErrno(fmt::format("chown of the device {}", device.path));
}

void setUpDev(int rootFd, const json& spec, bool newUserNamespace) {
  bool devBoundFromHost = false, hasDevpts = false;
  if (spec.contains("mounts") && spec["mounts"].is_array()) {
    for (const auto& entry : spec["mounts"]) {
      std::string destination = entry.value("destination", "");
      std::string type = entry.value("type", "");
      bool bind = type == "bind";
      if (entry.contains("options") && entry["options"].is_array())
        for (const auto& option : entry["options"])
          if (option == "bind" || option == "rbind") bind = true;
      if (destination == "/dev" && bind) devBoundFromHost = true;
      if (destination == "/dev/pts" && type == "devpts") hasDevpts = true;
    }
  }
  if (!devBoundFromHost) {
    std::vector<DeviceSpec> devices = {
        {"/dev/null", 'c', 1, 3, 0666, 0, 0},    {"/dev/zero", 'c', 1, 5, 0666, 0, 0},
        {"/dev/full", 'c', 1, 7, 0666, 0, 0},    {"/dev/tty", 'c', 5, 0, 0666, 0, 0},
        {"/dev/urandom", 'c', 1, 9, 0666, 0, 0}, {"/dev/random", 'c', 1, 8, 0666, 0, 0},
    };
    const json& linux = spec.contains("linux") ? spec["linux"] : json::object();
    if (linux.contains("devices") && linux["devices"].is_array()) {
      size_t index = 0;
      for (const auto& device : linux["devices"]) {
        std::string where = fmt::format("linux.devices[{}]", index++);
        std::string path = device.value("path", "");
        if (path.empty() || path.front() != '/') fail("{}.path must be absolute", where);
        std::string type = device.value("type", "");
        if (type != "c" && type != "b" && type != "u" && type != "p")
          fail("{}.type {:?} is not one of c, b, u, p", where, type);
        DeviceSpec spec{path,
                        type == "u" ? 'c' : type[0],
                        device.value("major", 0u),
                        device.value("minor", 0u),
                        static_cast<mode_t>(device.value("fileMode", 0666u)),
                        device.value("uid", 0u),
                        device.value("gid", 0u)};
        bool replaced = false;
        for (auto& existing : devices)
          if (existing.path == path) existing = spec, replaced = true;
        if (!replaced) devices.push_back(spec);
      }
    }
    for (const auto& device : devices)
      createDevice(rootFd, device, newUserNamespace);
  }
  UniqueFd dev = openInRoot(rootFd, "/dev", O_DIRECTORY | O_RDONLY);
  if (!dev) throwErrno("opening /dev in the rootfs");
  const std::pair<const char*, const char*> links[] = {
      {"/proc/self/fd", "fd"},
      {"/proc/self/fd/0", "stdin"},
      {"/proc/self/fd/1", "stdout"},
      {"/proc/self/fd/2", "stderr"},
  };
  for (const auto& [target, name] : links)
    if (symlinkat(target, dev.get(), name) < 0 && errno != EEXIST)
      throwErrno(fmt::format("creating the symlink /dev/{}", name));
  if (access("/proc/kcore", F_OK) == 0 && symlinkat("/proc/kcore", dev.get(), "core") < 0 &&
      errno != EEXIST)
    throwErrno("creating the symlink /dev/core");
  if (hasDevpts) {
    unlinkat(dev.get(), "ptmx", 0);
    if (symlinkat("pts/ptmx", dev.get(), "ptmx") < 0) throwErrno("creating the symlink /dev/ptmx");
  }
}

// The mount point holding `path` (longest prefix in mountinfo) made private if it is shared.
void makeParentMountPrivate(const std::string& path) {
  FILE* f = fopen("/proc/self/mountinfo", "re");
  if (!f) throwErrno("opening /proc/self/mountinfo");
  char* line = nullptr;
  size_t size = 0;
  std::string best;
  bool bestShared = false;
  while (getline(&line, &size, f) > 0) {
    char mountpoint[4096];
    if (sscanf(line, "%*s %*s %*s %*s %4095s", mountpoint) != 1) continue;
    std::string point = mountpoint;
    bool under = point == "/" || path == point ||
                 (path.compare(0, point.size(), point) == 0 && path[point.size()] == '/');
    if (!under || point.size() < best.size()) continue;
    const char* dash = strstr(line, " - ");
    std::string optional(line, dash ? static_cast<size_t>(dash - line) : strlen(line));
    best = point;
    bestShared = optional.find(" shared:") != std::string::npos;
  }
  free(line);
  fclose(f);
  if (bestShared && mount("", best.c_str(), "", MS_PRIVATE, nullptr) < 0)
    throwErrno(fmt::format("making {}, the rootfs's parent mount, private", best));
}

unsigned long rootPropagation(const json& spec) {
  const json& linux = spec.contains("linux") ? spec["linux"] : json::object();
  std::string name = linux.value("rootfsPropagation", "");
  if (name.empty()) return 0;
  for (const auto& propagation : kPropagations)
    if (name == propagation.name) return propagation.flag;
  fail("linux.rootfsPropagation {:?} is not a propagation mode", name);
}

// False when pivot_root cannot work here (the current root is the initramfs, which cannot be
// unmounted), with nothing changed.
bool pivotRoot(const std::string& rootfs) {
  if (chdir(rootfs.c_str()) < 0) throwErrno(fmt::format("chdir to the rootfs {}", rootfs));
  // pivot_root(".", "."): the old root ends up stacked under the new one, then goes, with no
  // directory in the image needed for it.
  if (syscall(SYS_pivot_root, ".", ".") < 0) {
    int error = errno;
    struct statfs root {};
    if (error == EINVAL && statfs("/", &root) == 0 && root.f_type == RAMFS_MAGIC) return false;
    throwErrno(fmt::format("pivot_root to {}", rootfs), error);
  }
  // The old root's unmount must not propagate to the host.
  if (mount("", ".", "", MS_SLAVE | MS_REC, nullptr) < 0)
    throwErrno("making the old root a slave mount");
  if (umount2(".", MNT_DETACH) < 0) throwErrno("unmounting the old root");
  if (chdir("/") < 0) throwErrno("chdir to the new root");
  return true;
}

void moveRoot(const std::string& rootfs) {
  if (chdir(rootfs.c_str()) < 0) throwErrno(fmt::format("chdir to the rootfs {}", rootfs));
  if (mount(rootfs.c_str(), "/", nullptr, MS_MOVE, nullptr) < 0)
    throwErrno(fmt::format("moving the rootfs {} to /", rootfs));
  if (chroot(".") < 0) throwErrno("chroot to the rootfs");
  if (chdir("/") < 0) throwErrno("chdir to the new root");
}

std::vector<std::string> stringList(const json& object, const char* key, const char* where) {
  std::vector<std::string> list;
  if (!object.contains(key)) return list;
  const json& array = object[key];
  if (!array.is_array()) fail("{}.{}: not an array", where, key);
  for (const auto& item : array) {
    if (!item.is_string()) fail("{}.{}: {} is not a string", where, key, item.dump());
    list.push_back(item.get<std::string>());
  }
  return list;
}

}  // namespace

void prepareRootfs(const json& spec, const RootfsOptions& options,
                   const std::function<void()>& beforePivot) {
  unsigned long propagation = rootPropagation(spec);
  if (mount("", "/", "", propagation ? propagation : MS_SLAVE | MS_REC, nullptr) < 0)
    throwErrno("setting the propagation of /");
  // pivot_root refuses a shared parent, and a shared parent would carry every mount below to
  // the host: the rootfs's parent mount becomes private (runc's rule) when "/" was made shared.
  makeParentMountPrivate(options.rootfs);
  // A mount point of its own, so that pivot_root can take it.
  if (mount(options.rootfs.c_str(), options.rootfs.c_str(), "bind", MS_BIND | MS_REC, nullptr) < 0)
    throwErrno(fmt::format("binding the rootfs {} on itself", options.rootfs));
  UniqueFd rootFd(open(options.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!rootFd) throwErrno(fmt::format("opening the rootfs {}", options.rootfs));

  if (spec.contains("mounts")) {
    if (!spec["mounts"].is_array()) fail("mounts: not an array");
    size_t index = 0;
    for (const auto& entry : spec["mounts"])
      mountOne(rootFd.get(), entry, index++, options);
  }
  setUpDev(rootFd.get(), spec, options.newUserNamespace);
  beforePivot();
  if (options.noPivot) {
    moveRoot(options.rootfs);
  } else if (!pivotRoot(options.rootfs)) {
    // The initramfs, which pivot_root cannot leave: MS_MOVE as --no-pivot does.
    moveRoot(options.rootfs);
  }
  if (propagation && mount("", "/", "", propagation, nullptr) < 0)
    throwErrno("setting linux.rootfsPropagation on the new root");
}

void applySysctls(const json& spec) {
  const json& linux = spec.contains("linux") ? spec["linux"] : json::object();
  if (!linux.contains("sysctl")) return;
  if (!linux["sysctl"].is_object()) fail("linux.sysctl: not an object");
  for (const auto& [key, value] : linux["sysctl"].items()) {
    if (!value.is_string()) fail("linux.sysctl.{}: not a string", key);
    if (key.empty() || key.find("..") != std::string::npos || key.front() == '.' ||
        key.front() == '/')
      fail("linux.sysctl: invalid name {:?}", key);
    std::string path = "/proc/sys/" + key;
    for (size_t i = 10; i < path.size(); ++i)
      if (path[i] == '.') path[i] = '/';
    int fd = open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throwErrno(fmt::format("linux.sysctl.{}: opening {}", key, path));
    struct statfs fs {};
    if (fstatfs(fd, &fs) < 0 || fs.f_type != PROC_SUPER_MAGIC) {
      close(fd);
      fail("linux.sysctl.{}: {} is not on procfs", key, path);
    }
    const std::string& text = value.get_ref<const std::string&>();
    ssize_t written = write(fd, text.data(), text.size());
    int error = errno;
    close(fd);
    if (written != static_cast<ssize_t>(text.size()))
      throwErrno(fmt::format("linux.sysctl.{}: writing {:?} to {}", key, text, path), error);
  }
}

void finishRootfs(const json& spec) {
  const json& linux = spec.contains("linux") ? spec["linux"] : json::object();
  applySysctls(spec);
  for (const auto& path : stringList(linux, "readonlyPaths", "linux")) {
    if (mount(path.c_str(), path.c_str(), "", MS_BIND | MS_REC, nullptr) < 0) {
      if (errno == ENOENT) continue;
      throwErrno(fmt::format("linux.readonlyPaths: binding {}", path));
    }
    remountBind(path, MS_RDONLY | MS_REC | lockedFlags(path.c_str()),
                fmt::format("linux.readonlyPaths {} read-only", path));
  }
  // By fds: the container's /dev/null checked to be the device, each target opened without
  // following a symlink, so nothing in the image can turn a mask into a bind of something else.
  UniqueFd devNull;
  for (const auto& path : stringList(linux, "maskedPaths", "linux")) {
    UniqueFd target(open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!target) {
      if (errno == ENOENT) continue;
      throwErrno(fmt::format("linux.maskedPaths: {}", path));
    }
    struct stat st {};
    if (fstat(target.get(), &st) < 0) throwErrno(fmt::format("linux.maskedPaths: {}", path));
    std::string targetPath = fdPath(target.get());
    int rc;
    if (S_ISDIR(st.st_mode)) {
      rc = mount("tmpfs", targetPath.c_str(), "tmpfs", MS_RDONLY, nullptr);
    } else {
      if (!devNull) {
        devNull.reset(open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC));
        struct stat null {};
        if (!devNull || fstat(devNull.get(), &null) < 0 || !S_ISCHR(null.st_mode) ||
            null.st_rdev != makedev(1, 3))
          fail("linux.maskedPaths: the container's /dev/null is not the null device");
      }
      rc = mount(fdPath(devNull.get()).c_str(), targetPath.c_str(), "", MS_BIND, nullptr);
    }
    if (rc < 0) throwErrno(fmt::format("linux.maskedPaths: masking {}", path));
  }
  const json& root = spec.contains("root") ? spec["root"] : json::object();
  if (root.value("readonly", false)) remountBind("/", MS_RDONLY, "the root read-only");
}

}  // namespace monocri::runtime
