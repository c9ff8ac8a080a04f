#include "oci/image/ContainerRootfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "loop/WorkQueue.h"
#include "state/StateFiles.h"
#include "state/UniqueFd.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using state::UniqueFd;

namespace {

constexpr const char* kOpaqueXattr = "trusted.overlay.opaque";
// Page-size limit of mount(2)'s option string, for kernels without fsconfig's "lowerdir+".
constexpr size_t kMountDataLimit = 4095;

Status errnoStatus(std::string_view what, const std::string& path) {
  return Status(errno == ENOSPC ? StatusCode::kResourceExhausted : StatusCode::kInternal,
                fmt::format("{} {}: {}", what, path, std::strerror(errno)));
}

// What the kernel said about a failed fsconfig (its message log on the fs context fd).
std::string kernelMessages(int fsFd) {
  std::string messages;
  char buffer[512];
  ssize_t n;
  while ((n = read(fsFd, buffer, sizeof(buffer) - 1)) > 0) {
    buffer[n] = '\0';
    if (!messages.empty()) messages += "; ";
    messages += buffer;
  }
  return messages;
}

bool isWhiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && major(st.st_rdev) == 0 && minor(st.st_rdev) == 0;
}

bool isOpaque(int dirFd) {
  char value[2] = {};
  return fgetxattr(dirFd, kOpaqueXattr, value, sizeof(value)) == 1 && value[0] == 'y';
}

void copyXattrs(int from, int to) {
  char names[4096];
  const ssize_t length = flistxattr(from, names, sizeof(names));
  for (ssize_t i = 0; i < length; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
    const std::string_view name(names + i);
    if (name.starts_with("trusted.overlay.")) continue;
    char value[4096];
    const ssize_t size = fgetxattr(from, names + i, value, sizeof(value));
    if (size >= 0) fsetxattr(to, names + i, value, static_cast<size_t>(size), 0);
  }
}

void copyMetadata(int fd, const struct stat& st) {
  fchown(fd, st.st_uid, st.st_gid);
  fchmod(fd, st.st_mode & 07777);
  const timespec times[2] = {st.st_atim, st.st_mtim};
  futimens(fd, times);
}

// Applies one unpacked layer directory onto the snapshot directory, as overlayfs would show
// it: whiteouts delete, opaque directories hide what was below, the rest is copied.
Status applyLayer(int fromDir, int toDir, const std::string& snapshot, const std::string& path,
                  std::map<ino_t, std::string>& hardlinks) {
  if (isOpaque(fromDir)) {
    // Empty the directory itself, keeping it.
    int dup = ::dup(toDir);
    if (DIR* dir = fdopendir(dup)) {
      std::vector<std::string> names;
      while (dirent* entry = readdir(dir)) {
        std::string_view name = entry->d_name;
        if (name != "." && name != "..") names.emplace_back(name);
      }
      closedir(dir);
      for (const auto& name : names)
        state::removeTreeAt(toDir, name, path + "/" + name);
    } else {
      ::close(dup);
    }
  }
  int dup = ::dup(fromDir);
  DIR* dir = fdopendir(dup);
  if (dir == nullptr) {
    ::close(dup);
    return errnoStatus("open", path);
  }
  std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, closedir);
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::string child = path + "/" + name;
    struct stat st {};
    if (fstatat(fromDir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return errnoStatus("stat", child);
    }
    struct stat existing {};
    const bool exists = fstatat(toDir, name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
    if (isWhiteout(st)) {
      if (exists) state::removeTreeAt(toDir, name, child);
      continue;
    }
    if (exists && !(S_ISDIR(st.st_mode) && S_ISDIR(existing.st_mode))) {
      state::removeTreeAt(toDir, name, child);
    }
    if (S_ISDIR(st.st_mode)) {
      if (mkdirat(toDir, name.c_str(), 0700) != 0 && errno != EEXIST) {
        return errnoStatus("mkdir", child);
      }
      UniqueFd from(openat(fromDir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      UniqueFd to(openat(toDir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!from.valid() || !to.valid()) return errnoStatus("open", child);
      if (Status s = applyLayer(from.get(), to.get(), snapshot, child, hardlinks); !s.isOk()) {
        return s;
      }
      copyXattrs(from.get(), to.get());
      copyMetadata(to.get(), st);
    } else if (S_ISREG(st.st_mode)) {
      if (st.st_nlink > 1) {
        if (auto link = hardlinks.find(st.st_ino); link != hardlinks.end()) {
          // The same inode met before in this layer: a hardlink, not a second copy.
          if (linkat(AT_FDCWD, link->second.c_str(), toDir, name.c_str(), 0) == 0) continue;
        }
      }
      UniqueFd from(openat(fromDir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      UniqueFd to(
          openat(toDir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!from.valid() || !to.valid()) return errnoStatus("copy", child);
      off_t offset = 0;
      while (offset < st.st_size) {
        const ssize_t n =
            sendfile(to.get(), from.get(), &offset, static_cast<size_t>(st.st_size - offset));
        if (n <= 0) return errnoStatus("copy", child);
      }
      copyXattrs(from.get(), to.get());
      copyMetadata(to.get(), st);
      if (st.st_nlink > 1) {
        hardlinks[st.st_ino] = snapshot + child;
      }
    } else if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      const ssize_t n = readlinkat(fromDir, name.c_str(), target.data(), target.size());
      if (n < 0) return errnoStatus("readlink", child);
      target.resize(static_cast<size_t>(n));
      if (symlinkat(target.c_str(), toDir, name.c_str()) != 0) return errnoStatus("symlink", child);
      fchownat(toDir, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
    } else {
      if (mknodat(toDir, name.c_str(), st.st_mode, st.st_rdev) != 0) {
        return errnoStatus("mknod", child);
      }
      fchownat(toDir, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
    }
  }
  return Status::ok();
}

}  // namespace

bool isValidContainerId(const std::string& id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  return id.find_first_not_of(
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
             std::string::npos &&
         id.front() != '.' && id.front() != '-';
}

ContainerRootfs::ContainerRootfs(loop::Loop& loop, ImageStore& store, std::string stateRoot,
                                 std::string runRoot, RootfsMode mode)
    : loop_(loop),
      store_(store),
      stateRoot_(std::move(stateRoot)),
      runRoot_(std::move(runRoot)),
      mode_(mode) {}

std::string ContainerRootfs::stateDir(const std::string& id) const {
  return stateRoot_ + "/containers/" + id;
}

std::string ContainerRootfs::rootfsPath(const std::string& id) const {
  auto it = records_.find(id);
  if (it != records_.end() && it->second.mode == RootfsMode::kCopy) {
    return stateDir(id) + "/snapshot";
  }
  return runRoot_ + "/containers/" + id + "/rootfs";
}

RootfsMode ContainerRootfs::modeOf(const std::string& id) const {
  auto it = records_.find(id);
  return it == records_.end() ? mode_ : it->second.mode;
}

std::string ContainerRootfs::load(std::vector<std::string>& notes) {
  records_.clear();
  const std::string dir = stateRoot_ + "/containers";
  if (std::string error = state::makeDirectories(dir, 0700); !error.empty()) return error;
  DIR* listing = opendir(dir.c_str());
  if (listing == nullptr) return fmt::format("open {}: {}", dir, std::strerror(errno));
  std::vector<std::string> ids;
  while (dirent* entry = readdir(listing)) {
    if (isValidContainerId(entry->d_name)) ids.emplace_back(entry->d_name);
  }
  closedir(listing);
  for (const auto& id : ids) {
    std::string text;
    if (!state::readFile(stateDir(id) + "/rootfs.json", 64 * 1024, text).empty()) continue;
    auto json = nlohmann::json::parse(text, nullptr, false);
    if (!json.is_object() || !json.contains("imageId") || !json["imageId"].is_string()) {
      notes.push_back(fmt::format("container {}: unreadable rootfs record", id));
      continue;
    }
    auto imageId = Digest::parse(json["imageId"].get<std::string>());
    if (!imageId) continue;
    Record record{*imageId, json.value("mode", "overlay") == "copy" ? RootfsMode::kCopy
                                                                    : RootfsMode::kOverlay};
    records_[id] = record;
  }
  return {};
}

Status ContainerRootfs::writeRecord(const std::string& id, const Record& record) {
  nlohmann::json json{{"imageId", record.imageId.str()},
                      {"mode", record.mode == RootfsMode::kCopy ? "copy" : "overlay"}};
  // Names a mount a reboot removes anyway: no fsync (see state::Durability).
  if (std::string error = state::writeFileAtomically(stateDir(id) + "/rootfs.json", json.dump(),
                                                     0644, state::Durability::kProcessCrash);
      !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  return Status::ok();
}

Status ContainerRootfs::mountOverlay(const std::string& id, const ImageRecord& image) {
  const std::string upper = stateDir(id) + "/upper";
  const std::string work = stateDir(id) + "/work";
  const std::string target = runRoot_ + "/containers/" + id + "/rootfs";
  for (const auto& [path, mode] :
       {std::pair<std::string, mode_t>{upper, 0755}, {work, 0700}, {target, 0755}}) {
    if (std::string error = state::makeDirectories(path, mode); !error.empty()) {
      return Status(StatusCode::kInternal, error);
    }
  }
  // overlayfs lists the top layer first; an image without layers gets one empty lower dir.
  std::vector<std::string> lowers;
  for (auto it = image.diffIds.rbegin(); it != image.diffIds.rend(); ++it) {
    lowers.push_back(store_.layerPath(*it));
  }
  if (lowers.empty()) {
    const std::string empty = stateDir(id) + "/empty";
    state::makeDirectories(empty, 0755);
    lowers.push_back(empty);
  }

  // The new mount API takes the lower dirs one by one ("lowerdir+", Linux 6.8): no limit on
  // their number from the size of an option string.
  UniqueFd fs(fsopen("overlay", FSOPEN_CLOEXEC));
  if (!fs.valid()) {
    return Status(errno == ENODEV ? StatusCode::kUnimplemented : StatusCode::kInternal,
                  fmt::format("overlayfs is not available: {}", std::strerror(errno)));
  }
  bool lowerdirPlus = true;
  for (const auto& lower : lowers) {
    if (fsconfig(fs.get(), FSCONFIG_SET_STRING, "lowerdir+", lower.c_str(), 0) != 0) {
      lowerdirPlus = false;
      break;
    }
  }
  if (lowerdirPlus) {
    if (fsconfig(fs.get(), FSCONFIG_SET_STRING, "upperdir", upper.c_str(), 0) != 0 ||
        fsconfig(fs.get(), FSCONFIG_SET_STRING, "workdir", work.c_str(), 0) != 0 ||
        fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
      const int error = errno;
      return Status(
          error == EINVAL || error == EPERM ? StatusCode::kUnimplemented : StatusCode::kInternal,
          fmt::format("overlay mount for container {}: {} ({})", id, std::strerror(error),
                      kernelMessages(fs.get())));
    }
    UniqueFd mountFd(fsmount(fs.get(), FSMOUNT_CLOEXEC, 0));
    if (!mountFd.valid()) return errnoStatus("fsmount overlay for", id);
    if (move_mount(mountFd.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      return errnoStatus("move_mount overlay onto", target);
    }
    return Status::ok();
  }
  // Older kernels: mount(2) with every lower dir in one option string.
  std::string data = "lowerdir=";
  for (size_t i = 0; i < lowers.size(); ++i) {
    if (lowers[i].find_first_of(":,") != std::string::npos) {
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("layer path {} has ':' or ',', which overlay options cannot hold",
                                lowers[i]));
    }
    data += (i == 0 ? "" : ":") + lowers[i];
  }
  data += ",upperdir=" + upper + ",workdir=" + work;
  if (data.size() > kMountDataLimit) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("the image has {} layers: too many for this kernel's overlay mount "
                              "options (Linux 6.8 lifts the limit)",
                              lowers.size()));
  }
  if (::mount("overlay", target.c_str(), "overlay", 0, data.c_str()) != 0) {
    const int error = errno;
    return Status(error == ENODEV || error == EINVAL || error == EPERM ? StatusCode::kUnimplemented
                                                                       : StatusCode::kInternal,
                  fmt::format("overlay mount for container {}: {}", id, std::strerror(error)));
  }
  return Status::ok();
}

void ContainerRootfs::create(const std::string& id, const Digest& imageId,
                             std::function<void(Status, std::string)> done) {
  if (!isValidContainerId(id)) {
    done(Status(StatusCode::kInvalidArgument, fmt::format("invalid container id '{}'", id)), {});
    return;
  }
  if (records_.contains(id)) {
    done(Status(StatusCode::kAlreadyExists, fmt::format("container {} has a rootfs", id)), {});
    return;
  }
  const ImageRecord* image = store_.findById(imageId);
  if (image == nullptr) {
    done(Status(StatusCode::kNotFound, fmt::format("image {} is not on this node", imageId.str())),
         {});
    return;
  }
  if (std::string error = state::makeDirectories(stateDir(id), 0700); !error.empty()) {
    done(Status(StatusCode::kInternal, error), {});
    return;
  }
  Record record{imageId, RootfsMode::kOverlay};
  if (mode_ != RootfsMode::kCopy) {
    if (Status s = writeRecord(id, record); !s.isOk()) {
      done(s, {});
      return;
    }
    records_[id] = record;
    Status mounted = mountOverlay(id, *image);
    if (mounted.isOk()) {
      done(mounted, rootfsPath(id));
      return;
    }
    if (mode_ == RootfsMode::kOverlay || mounted.code() != StatusCode::kUnimplemented) {
      records_.erase(id);
      state::removeTree(stateDir(id));
      done(mounted, {});
      return;
    }
    spdlog::warn("container {}: {}; using a copied snapshot instead (slower, more disk)", id,
                 mounted.message());
  }
  // The copy fallback: every layer applied in order into one directory.
  record.mode = RootfsMode::kCopy;
  records_[id] = record;
  if (Status s = writeRecord(id, record); !s.isOk()) {
    records_.erase(id);
    done(s, {});
    return;
  }
  std::vector<std::string> layers;
  for (const auto& diffId : image->diffIds)
    layers.push_back(store_.layerPath(diffId));
  const std::string snapshot = stateDir(id) + "/snapshot";
  auto status = std::make_shared<Status>();
  loop::queueWork(
      loop_, "rootfs snapshot copied",
      [layers, snapshot, status] {
        if (std::string error = state::makeDirectories(snapshot, 0755); !error.empty()) {
          *status = Status(StatusCode::kInternal, error);
          return;
        }
        UniqueFd to(::open(snapshot.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        for (const auto& layer : layers) {
          UniqueFd from(::open(layer.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
          if (!from.valid() || !to.valid()) {
            *status = errnoStatus("open", layer);
            return;
          }
          std::map<ino_t, std::string> hardlinks;
          if (Status s = applyLayer(from.get(), to.get(), snapshot, "", hardlinks); !s.isOk()) {
            *status = s;
            return;
          }
        }
      },
      [this, id, snapshot, status, done] {
        if (!status->isOk()) {
          records_.erase(id);
          state::removeTree(stateDir(id));
          done(*status, {});
          return;
        }
        done(Status::ok(), snapshot);
      });
}

Status ContainerRootfs::unmount(const std::string& id) {
  auto it = records_.find(id);
  if (it == records_.end() || it->second.mode == RootfsMode::kCopy) return Status::ok();
  const std::string target = rootfsPath(id);
  if (umount2(target.c_str(), UMOUNT_NOFOLLOW) != 0 && errno != EINVAL && errno != ENOENT) {
    if (errno != EBUSY || umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
      return errnoStatus("unmount", target);
    }
  }
  return Status::ok();
}

Status ContainerRootfs::mount(const std::string& id, std::string& path) {
  auto it = records_.find(id);
  if (it == records_.end()) {
    return Status(StatusCode::kNotFound, fmt::format("container {} has no rootfs", id));
  }
  path = rootfsPath(id);
  if (it->second.mode == RootfsMode::kCopy) return Status::ok();
  const ImageRecord* image = store_.findById(it->second.imageId);
  if (image == nullptr) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("the image of container {} is gone", id));
  }
  return mountOverlay(id, *image);
}

void ContainerRootfs::remove(const std::string& id, std::function<void(Status)> done) {
  if (!records_.contains(id)) {
    done(Status::ok());
    return;
  }
  if (Status s = unmount(id); !s.isOk()) {
    done(s);
    return;
  }
  records_.erase(id);
  // The record file goes first: an unrecorded directory is garbage to the next load.
  unlink((stateDir(id) + "/rootfs.json").c_str());
  const std::string stateDirectory = stateDir(id);
  const std::string runDirectory = runRoot_ + "/containers/" + id;
  auto status = std::make_shared<Status>();
  loop::queueWork(
      loop_, "rootfs removed",
      [stateDirectory, runDirectory, status] {
        for (const auto& path : {stateDirectory, runDirectory}) {
          if (std::string error = state::removeTree(path); !error.empty()) {
            *status = Status(StatusCode::kInternal, error);
          }
        }
      },
      [status, done] { done(*status); });
}

std::vector<std::string> ContainerRootfs::containersUsing(const Digest& imageId) const {
  std::vector<std::string> ids;
  for (const auto& [id, record] : records_) {
    if (record.imageId == imageId) ids.push_back(id);
  }
  return ids;
}

}  // namespace monocri::oci
