#include "state/StateFiles.h"
#include "state/UniqueFd.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace monocri::state {

namespace {

std::string errnoText(std::string_view what, const std::string& path) {
  return fmt::format("{} {}: {}", what, path, std::strerror(errno));
}

// Removes the contents of the directory `dirFd` (owned by the caller), depth first.
std::string removeContents(int dirFd, const std::string& path) {
  int dupFd = dup(dirFd);
  if (dupFd < 0) return errnoText("dup", path);
  DIR* dir = fdopendir(dupFd);
  if (dir == nullptr) {
    ::close(dupFd);
    return errnoText("opendir", path);
  }
  std::string error;
  while (dirent* entry = readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::string childPath = path + "/" + entry->d_name;
    if (unlinkat(dirFd, entry->d_name, 0) == 0) continue;
    if (errno != EISDIR && errno != EPERM) {
      if (errno == ENOENT) continue;
      error = errnoText("unlink", childPath);
      break;
    }
    int childFd = openat(dirFd, entry->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (childFd < 0) {
      error = errnoText("open", childPath);
      break;
    }
    UniqueFd child(childFd);
    error = removeContents(child.get(), childPath);
    if (error.empty() && unlinkat(dirFd, entry->d_name, AT_REMOVEDIR) != 0) {
      error = errnoText("rmdir", childPath);
    }
    if (!error.empty()) break;
  }
  closedir(dir);
  return error;
}

}  // namespace

std::string writeFileAtomically(const std::string& path, std::string_view contents, mode_t mode,
                                Durability durability) {
  const std::string temp = path + ".tmp";
  UniqueFd fd(open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (fd.get() < 0) return errnoText("create", temp);
  size_t written = 0;
  while (written < contents.size()) {
    ssize_t n = write(fd.get(), contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string error = errnoText("write", temp);
      unlink(temp.c_str());
      return error;
    }
    written += static_cast<size_t>(n);
  }
  if (durability == Durability::kPowerLoss && fsync(fd.get()) != 0) {
    std::string error = errnoText("fsync", temp);
    unlink(temp.c_str());
    return error;
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    std::string error = errnoText("rename into", path);
    unlink(temp.c_str());
    return error;
  }
  if (durability == Durability::kProcessCrash) return {};
  return syncDirectory(std::filesystem::path(path).parent_path().string());
}

std::string readFile(const std::string& path, size_t maxBytes, std::string& out) {
  out.clear();
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return errnoText("open", path);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return errnoText("stat", path);
  if (static_cast<size_t>(st.st_size) > maxBytes) {
    return fmt::format("{} is {} bytes, more than the {} expected", path, st.st_size, maxBytes);
  }
  if (st.st_size == 0) {
    // procfs, sysfs and cgroupfs files report no size: read to the end, within the bound.
    char chunk[4096];
    while (true) {
      ssize_t n = read(fd.get(), chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errnoText("read", path);
      if (n == 0) return {};
      if (out.size() + static_cast<size_t>(n) > maxBytes) {
        return fmt::format("{} holds more than the {} bytes expected", path, maxBytes);
      }
      out.append(chunk, static_cast<size_t>(n));
    }
  }
  out.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0 ? fmt::format("{} shrank while read", path) : errnoText("read", path);
    got += static_cast<size_t>(n);
  }
  return {};
}

std::string syncDirectory(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return errnoText("open", path);
  if (fsync(fd.get()) != 0) return errnoText("fsync", path);
  return {};
}

std::string removeTree(const std::string& path) {
  if (unlink(path.c_str()) == 0 || errno == ENOENT) return {};
  if (errno != EISDIR && errno != EPERM) return errnoText("unlink", path);
  int dirFd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dirFd < 0) return errno == ENOENT ? std::string() : errnoText("open", path);
  UniqueFd dir(dirFd);
  if (std::string error = removeContents(dir.get(), path); !error.empty()) return error;
  if (rmdir(path.c_str()) != 0 && errno != ENOENT) return errnoText("rmdir", path);
  return {};
}

std::string removeTreeAt(int dirFd, const std::string& name, const std::string& displayPath) {
  if (unlinkat(dirFd, name.c_str(), 0) == 0 || errno == ENOENT) return {};
  if (errno != EISDIR && errno != EPERM) return errnoText("unlink", displayPath);
  int childFd = openat(dirFd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (childFd < 0) return errno == ENOENT ? std::string() : errnoText("open", displayPath);
  UniqueFd child(childFd);
  if (std::string error = removeContents(child.get(), displayPath); !error.empty()) return error;
  if (unlinkat(dirFd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return errnoText("rmdir", displayPath);
  }
  return {};
}

std::string makeDirectories(const std::string& path, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return fmt::format("create directory {}: {}", path, ec.message());
  if (chmod(path.c_str(), mode) != 0) return errnoText("chmod", path);
  return {};
}

}  // namespace monocri::state
