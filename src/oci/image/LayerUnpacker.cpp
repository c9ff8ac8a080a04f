#include "oci/image/LayerUnpacker.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "oci/image/ArchiveRead.h"
#include "state/StateFiles.h"
#include "state/UniqueFd.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using state::UniqueFd;

namespace {

constexpr size_t kChunkBytes = 256 * 1024;
constexpr size_t kMaxWarnings = 8;
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr const char* kOverlayOpaqueXattr = "trusted.overlay.opaque";

// Opens `path` below the directory `dirFd` without ever leaving it: no "..", no absolute or
// escaping symlinks, no /proc magic links.
UniqueFd openBeneath(int dirFd, const std::string& path, int flags, uint64_t resolve = 0) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | resolve;
  long fd = syscall(SYS_openat2, dirFd, path.empty() ? "." : path.c_str(), &how, sizeof(how));
  return UniqueFd(fd < 0 ? -1 : static_cast<int>(fd));
}

Status ioError(std::string_view what, const std::string& path) {
  const int error = errno;
  return Status(
      error == ENOSPC || error == EDQUOT ? StatusCode::kResourceExhausted : StatusCode::kInternal,
      fmt::format("unpacking layer: {} {}: {}", what, path, std::strerror(error)));
}

Status hostile(const std::string& path, std::string_view why) {
  return Status(StatusCode::kFailedPrecondition,
                fmt::format("layer entry '{}' refused: {}", path.substr(0, 512), why));
}

// The decompressed bytes of a blob, hashed as they are produced (the layer's diffID).
class DecompressingReader {
 public:
  ~DecompressingReader() {
    if (gzip_) inflateEnd(&z_);
    if (zstd_) ZSTD_freeDStream(zstd_);
  }

  Status open(const std::string& path) {
    fd_ = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd_.valid()) return ioError("open", path);
    in_.resize(kChunkBytes);
    out_.resize(kChunkBytes);
    if (!fillAtLeast(4)) return status_;
    const auto* bytes = reinterpret_cast<const unsigned char*>(in_.data() + inPos_);
    const size_t have = inEnd_ - inPos_;
    if (have >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
      gzip_ = true;
      if (inflateInit2(&z_, 15 + 16) != Z_OK) return Status(StatusCode::kInternal, "inflateInit2");
    } else if (have >= 4 && bytes[0] == 0x28 && bytes[1] == 0xb5 && bytes[2] == 0x2f &&
               bytes[3] == 0xfd) {
      zstd_ = ZSTD_createDStream();
      if (zstd_ == nullptr || ZSTD_isError(ZSTD_initDStream(zstd_))) {
        return Status(StatusCode::kInternal, "ZSTD_initDStream");
      }
    }
    return Status::ok();
  }

  // The next decompressed piece; empty at the end or on error (see status()).
  std::string_view next() {
    if (!status_.isOk()) return {};
    std::string_view piece = gzip_ ? nextGzip() : zstd_ ? nextZstd() : nextPlain();
    hasher_.update(piece);
    return piece;
  }

  // Reads what the tar parser left (end-of-archive blocks, padding) so the digest covers all.
  Status drain() {
    while (!next().empty()) {
    }
    return status_;
  }

  const Status& status() const { return status_; }
  Digest digest() { return hasher_.finish(); }

 private:
  // Reads more compressed input if the buffer is used up; false at error.
  bool fill() { return fillAtLeast(1); }

  // Reads until `n` unread bytes are buffered or the blob ends (eof_); false at error. Unread
  // bytes move to the front first: a gzip member may end one byte before a read boundary.
  bool fillAtLeast(size_t n) {
    while (inEnd_ - inPos_ < n && !eof_) {
      if (inPos_ != 0) {
        std::memmove(in_.data(), in_.data() + inPos_, inEnd_ - inPos_);
        inEnd_ -= inPos_;
        inPos_ = 0;
      }
      ssize_t got;
      do {
        got = read(fd_.get(), in_.data() + inEnd_, in_.size() - inEnd_);
      } while (got < 0 && errno == EINTR);
      if (got < 0) {
        status_ = ioError("read", "layer blob");
        return false;
      }
      inEnd_ += static_cast<size_t>(got);
      eof_ = got == 0;
    }
    return true;
  }

  bool drained() const { return eof_ && inPos_ == inEnd_; }

  std::string_view nextPlain() {
    if (!fill() || drained()) return {};
    std::string_view piece(in_.data() + inPos_, inEnd_ - inPos_);
    inPos_ = inEnd_;
    return piece;
  }

  std::string_view nextGzip() {
    while (true) {
      if (!fill()) return {};
      if (gzipDone_) return {};
      if (drained()) {
        status_ = Status(StatusCode::kDataLoss, "the layer's gzip stream is truncated");
        return {};
      }
      z_.next_in = reinterpret_cast<Bytef*>(in_.data() + inPos_);
      z_.avail_in = static_cast<uInt>(inEnd_ - inPos_);
      z_.next_out = reinterpret_cast<Bytef*>(out_.data());
      z_.avail_out = static_cast<uInt>(out_.size());
      const int rc = inflate(&z_, Z_NO_FLUSH);
      inPos_ = inEnd_ - z_.avail_in;
      const size_t produced = out_.size() - z_.avail_out;
      if (rc == Z_STREAM_END) {
        // Another gzip member may follow (concatenated streams); anything else ends the data.
        if (!fillAtLeast(2)) return {};
        const auto* b = reinterpret_cast<const unsigned char*>(in_.data() + inPos_);
        if (inEnd_ - inPos_ >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
          inflateReset(&z_);
        } else {
          gzipDone_ = true;
        }
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        status_ =
            Status(StatusCode::kDataLoss, fmt::format("the layer's gzip stream is corrupt ({})",
                                                      z_.msg ? z_.msg : "inflate error"));
        return {};
      }
      if (produced != 0) return std::string_view(out_.data(), produced);
    }
  }

  std::string_view nextZstd() {
    while (true) {
      if (!fill()) return {};
      if (drained()) {
        if (zstdPending_ != 0) {
          status_ = Status(StatusCode::kDataLoss, "the layer's zstd stream is truncated");
        }
        return {};
      }
      ZSTD_inBuffer input{in_.data() + inPos_, inEnd_ - inPos_, 0};
      ZSTD_outBuffer output{out_.data(), out_.size(), 0};
      zstdPending_ = ZSTD_decompressStream(zstd_, &output, &input);
      inPos_ += input.pos;
      if (ZSTD_isError(zstdPending_)) {
        status_ =
            Status(StatusCode::kDataLoss, fmt::format("the layer's zstd stream is corrupt ({})",
                                                      ZSTD_getErrorName(zstdPending_)));
        return {};
      }
      if (output.pos != 0) return std::string_view(out_.data(), output.pos);
    }
  }

  UniqueFd fd_;
  std::string in_, out_;
  size_t inPos_ = 0, inEnd_ = 0;
  bool eof_ = false;
  bool gzip_ = false;
  bool gzipDone_ = false;
  z_stream z_{};
  ZSTD_DStream* zstd_ = nullptr;
  size_t zstdPending_ = 0;
  Sha256 hasher_;
  Status status_;
};

la_ssize_t readFromDecompressor(archive* a, void* opaque, const void** buffer) {
  auto* reader = static_cast<DecompressingReader*>(opaque);
  std::string_view piece = reader->next();
  if (!reader->status().isOk()) {
    archive_set_error(a, EIO, "%s", reader->status().message().c_str());
    return -1;
  }
  *buffer = piece.data();
  return static_cast<la_ssize_t>(piece.size());
}

// "./usr//bin/sh" -> "usr/bin/sh"; "/etc/x" -> "etc/x" (tar's leading slash dropped, as GNU tar
// does); any ".." component refused. "" is the layer root.
std::optional<std::string> cleanPath(std::string_view raw) {
  std::string clean;
  size_t start = 0;
  while (start <= raw.size()) {
    const size_t slash = raw.find('/', start);
    const std::string_view part =
        raw.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part == "..") return std::nullopt;
    if (!part.empty() && part != ".") {
      if (!clean.empty()) clean += '/';
      clean += part;
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return clean;
}

bool xattrAllowed(std::string_view name) {
  if (name.starts_with("trusted.overlay.")) return false;  // would forge whiteouts/redirects
  return name.starts_with("user.") || name.starts_with("trusted.") || name == "security.capability";
}

struct Xattr {
  std::string name;
  std::string value;
};

struct PendingDirectory {
  std::string path;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  timespec mtime;
  std::vector<Xattr> xattrs;
};

class LayerWriter {
 public:
  LayerWriter(int rootFd, LayerUnpackResult& result) : rootFd_(rootFd), result_(result) {}

  Status write(archive* a, archive_entry* entry) {
    const char* rawPath = archive_entry_pathname(entry);
    if (rawPath == nullptr) return hostile("", "it has no name");
    auto path = cleanPath(rawPath);
    if (!path) return hostile(rawPath, "it climbs out of the layer with '..'");
    ++result_.entries;

    const std::string base = baseName(*path);
    if (base == kOpaqueMarker) return makeOpaque(parentOf(*path));
    if (base.starts_with(kWhiteoutPrefix)) {
      const std::string hidden = base.substr(kWhiteoutPrefix.size());
      if (hidden.empty() || hidden == "." || hidden == "..") {
        return hostile(*path, "a whiteout for no name");
      }
      const std::string parent = parentOf(*path);
      return makeWhiteout(parent.empty() ? hidden : parent + "/" + hidden);
    }
    if (path->empty()) {  // the layer root itself: only its metadata
      if (archive_entry_filetype(entry) != AE_IFDIR)
        return hostile(".", "the root is not a directory");
      remember(*path, entry);
      return Status::ok();
    }
    if (const char* target = archive_entry_hardlink(entry); target != nullptr) {
      return makeHardlink(*path, target);
    }
    switch (archive_entry_filetype(entry)) {
      case AE_IFREG:
        return makeFile(a, *path, entry);
      case AE_IFDIR:
        return makeDirectory(*path, entry);
      case AE_IFLNK:
        return makeSymlink(*path, entry);
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO:
        return makeNode(*path, entry);
      default:
        warn(fmt::format("'{}': entry type socket or unknown skipped", *path));
        return Status::ok();
    }
  }

  // Directory ownership, modes, xattrs and times last, deepest first: entries written into a
  // directory after it would otherwise change its mtime, and a read-only mode would stop them.
  Status finish() {
    for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) {
      UniqueFd dir =
          openBeneath(rootFd_, it->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, RESOLVE_NO_SYMLINKS);
      if (!dir.valid()) continue;  // replaced by a later entry
      if (fchown(dir.get(), it->uid, it->gid) != 0) return ioError("chown", display(it->path));
      if (fchmod(dir.get(), it->mode) != 0) return ioError("chmod", display(it->path));
      for (const auto& xattr : it->xattrs)
        setXattr(dir.get(), it->path, xattr);
      const timespec times[2] = {it->mtime, it->mtime};
      futimens(dir.get(), times);
      struct stat st {};
      if (fstat(dir.get(), &st) == 0) result_.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    }
    return Status::ok();
  }

 private:
  static std::string baseName(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
  }
  static std::string parentOf(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash);
  }
  static std::string display(const std::string& path) { return "/" + path; }

  void warn(std::string message) {
    if (result_.warnings.size() < kMaxWarnings) result_.warnings.push_back(std::move(message));
  }

  // The directory that will hold `path`, created (0755, root) where the archive has no entry
  // for it. Resolution never leaves the layer.
  Status parentDirectory(const std::string& path, int& parentFd) {
    const std::string parent = parentOf(path);
    if (parentCache_.valid() && parent == parentCachePath_) {
      parentFd = parentCache_.get();
      return Status::ok();
    }
    UniqueFd dir = openBeneath(rootFd_, parent, O_PATH | O_DIRECTORY);
    if (!dir.valid()) {
      if (errno == EXDEV || errno == ELOOP) {
        return hostile(path, "its directory is reached through a link out of the layer");
      }
      if (errno != ENOENT) return ioError("open", display(parent));
      // Create the missing directories one by one, each resolved below the one before.
      dir = openBeneath(rootFd_, "", O_PATH | O_DIRECTORY);
      size_t start = 0;
      while (start < parent.size()) {
        const size_t slash = parent.find('/', start);
        const std::string component =
            parent.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        UniqueFd next = openBeneath(dir.get(), component, O_PATH | O_DIRECTORY);
        if (!next.valid() && errno == ENOENT) {
          if (mkdirat(dir.get(), component.c_str(), 0755) != 0 && errno != EEXIST) {
            return ioError("mkdir", display(parent));
          }
          ++result_.inodes;
          next = openBeneath(dir.get(), component, O_PATH | O_DIRECTORY);
        }
        if (!next.valid()) {
          if (errno == EXDEV || errno == ELOOP || errno == ENOTDIR) {
            return hostile(path, "its directory is reached through a link out of the layer");
          }
          return ioError("open", display(parent));
        }
        dir = std::move(next);
        if (slash == std::string::npos) break;
        start = slash + 1;
      }
    }
    parentCache_ = std::move(dir);
    parentCachePath_ = parent;
    parentFd = parentCache_.get();
    return Status::ok();
  }

  // Makes room for a new entry at (parentFd, name): what a later tar entry replaces goes.
  Status clearName(int parentFd, const std::string& name, const std::string& path,
                   bool keepDirectory) {
    struct stat st {};
    if (fstatat(parentFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return errno == ENOENT ? Status::ok() : ioError("stat", display(path));
    }
    if (keepDirectory && S_ISDIR(st.st_mode)) return Status::ok();
    // A cached parent at or below what goes would point into a removed tree: forget it. The
    // caller's parentFd holds `path` itself, so it is never that cache.
    if (parentCache_.valid() && (S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)) &&
        (parentCachePath_ == path || parentCachePath_.starts_with(path + "/"))) {
      parentCache_.reset();
      parentCachePath_.clear();
    }
    if (std::string error = state::removeTreeAt(parentFd, name, display(path)); !error.empty()) {
      return Status(StatusCode::kInternal, "unpacking layer: " + error);
    }
    return Status::ok();
  }

  std::vector<Xattr> xattrsOf(archive_entry* entry, const std::string& path) {
    std::vector<Xattr> xattrs;
    archive_entry_xattr_reset(entry);
    const char* name;
    const void* value;
    size_t size;
    while (archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK) {
      if (!xattrAllowed(name)) {
        warn(fmt::format("'{}': xattr {} not applied", display(path), name));
        continue;
      }
      xattrs.push_back(Xattr{name, std::string(static_cast<const char*>(value), size)});
    }
    return xattrs;
  }

  void setXattr(int fd, const std::string& path, const Xattr& xattr) {
    if (fsetxattr(fd, xattr.name.c_str(), xattr.value.data(), xattr.value.size(), 0) != 0) {
      warn(fmt::format("'{}': xattr {} could not be set: {}", display(path), xattr.name,
                       std::strerror(errno)));
    }
  }

  void remember(const std::string& path, archive_entry* entry) {
    PendingDirectory directory{
        path,
        static_cast<mode_t>(archive_entry_perm(entry) & 07777),
        static_cast<uid_t>(archive_entry_uid(entry)),
        static_cast<gid_t>(archive_entry_gid(entry)),
        timespec{archive_entry_mtime(entry), archive_entry_mtime_nsec(entry)},
        xattrsOf(entry, path)};
    // A directory listed again takes the later entry's metadata, as tar and containerd do.
    auto [it, added] = pendingIndex_.try_emplace(path, pending_.size());
    if (added) {
      pending_.push_back(std::move(directory));
    } else {
      pending_[it->second] = std::move(directory);
    }
  }

  Status setOwnerAndTimes(int parentFd, const std::string& name, const std::string& path,
                          archive_entry* entry) {
    if (fchownat(parentFd, name.c_str(), static_cast<uid_t>(archive_entry_uid(entry)),
                 static_cast<gid_t>(archive_entry_gid(entry)), AT_SYMLINK_NOFOLLOW) != 0) {
      return ioError("chown", display(path));
    }
    const timespec mtime{archive_entry_mtime(entry), archive_entry_mtime_nsec(entry)};
    const timespec times[2] = {mtime, mtime};
    utimensat(parentFd, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return Status::ok();
  }

  Status makeFile(archive* a, const std::string& path, archive_entry* entry) {
    int parentFd;
    if (Status s = parentDirectory(path, parentFd); !s.isOk()) return s;
    const std::string name = baseName(path);
    if (Status s = clearName(parentFd, name, path, false); !s.isOk()) return s;
    UniqueFd file(
        openat(parentFd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!file.valid()) return ioError("create", display(path));
    const void* block;
    size_t size;
    la_int64_t offset;
    int rc;
    while ((rc = archive_read_data_block(a, &block, &size, &offset)) == ARCHIVE_OK) {
      const char* data = static_cast<const char*>(block);
      while (size > 0) {  // sparse files: blocks come with their offsets
        ssize_t n = pwrite(file.get(), data, size, offset);
        if (n < 0) {
          if (errno == EINTR) continue;
          return ioError("write", display(path));
        }
        data += n;
        size -= static_cast<size_t>(n);
        offset += n;
      }
    }
    if (rc != ARCHIVE_EOF) {
      return Status(StatusCode::kDataLoss, fmt::format("the layer's tar is damaged at '{}': {}",
                                                       display(path), archiveError(a)));
    }
    if (ftruncate(file.get(), archive_entry_size(entry)) != 0) {
      return ioError("truncate", display(path));
    }
    if (fchown(file.get(), static_cast<uid_t>(archive_entry_uid(entry)),
               static_cast<gid_t>(archive_entry_gid(entry))) != 0) {
      return ioError("chown", display(path));
    }
    // After chown, which clears set-user-ID bits.
    if (fchmod(file.get(), archive_entry_perm(entry) & 07777) != 0) {
      return ioError("chmod", display(path));
    }
    for (const auto& xattr : xattrsOf(entry, path))
      setXattr(file.get(), path, xattr);
    const timespec mtime{archive_entry_mtime(entry), archive_entry_mtime_nsec(entry)};
    const timespec times[2] = {mtime, mtime};
    futimens(file.get(), times);
    struct stat st {};
    if (fstat(file.get(), &st) == 0) result_.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    ++result_.inodes;
    return Status::ok();
  }

  Status makeDirectory(const std::string& path, archive_entry* entry) {
    int parentFd;
    if (Status s = parentDirectory(path, parentFd); !s.isOk()) return s;
    const std::string name = baseName(path);
    if (Status s = clearName(parentFd, name, path, true); !s.isOk()) return s;
    if (mkdirat(parentFd, name.c_str(), 0755) == 0) {
      ++result_.inodes;
    } else if (errno != EEXIST) {
      return ioError("mkdir", display(path));
    }
    remember(path, entry);
    return Status::ok();
  }

  Status makeSymlink(const std::string& path, archive_entry* entry) {
    const char* target = archive_entry_symlink(entry);
    if (target == nullptr) return hostile(path, "a symlink without a target");
    int parentFd;
    if (Status s = parentDirectory(path, parentFd); !s.isOk()) return s;
    const std::string name = baseName(path);
    if (Status s = clearName(parentFd, name, path, false); !s.isOk()) return s;
    // The target is only text here: it is resolved inside the container's root at run time.
    if (symlinkat(target, parentFd, name.c_str()) != 0) return ioError("symlink", display(path));
    ++result_.inodes;
    return setOwnerAndTimes(parentFd, name, path, entry);
  }

  Status makeNode(const std::string& path, archive_entry* entry) {
    int parentFd;
    if (Status s = parentDirectory(path, parentFd); !s.isOk()) return s;
    const std::string name = baseName(path);
    if (Status s = clearName(parentFd, name, path, false); !s.isOk()) return s;
    const mode_t type = static_cast<mode_t>(archive_entry_filetype(entry));
    const dev_t device =
        type == AE_IFIFO ? 0
                         : makedev(archive_entry_rdevmajor(entry), archive_entry_rdevminor(entry));
    if (mknodat(parentFd, name.c_str(), type | 0600, device) != 0) {
      return ioError("mknod", display(path));
    }
    ++result_.inodes;
    if (Status s = setOwnerAndTimes(parentFd, name, path, entry); !s.isOk()) return s;
    // Not a symlink (just made by us), so following is not a concern here.
    if (fchmodat(parentFd, name.c_str(), archive_entry_perm(entry) & 07777, 0) != 0) {
      return ioError("chmod", display(path));
    }
    return Status::ok();
  }

  Status makeHardlink(const std::string& path, const char* rawTarget) {
    auto target = cleanPath(rawTarget);
    if (!target || target->empty()) return hostile(path, "a hardlink that leaves the layer");
    UniqueFd source = openBeneath(rootFd_, *target, O_PATH | O_NOFOLLOW);
    if (!source.valid()) {
      if (errno == EXDEV || errno == ELOOP)
        return hostile(path, "a hardlink that leaves the layer");
      return hostile(path, fmt::format("a hardlink to '{}', which is not in the layer",
                                       target->substr(0, 256)));
    }
    struct stat st {};
    if (fstat(source.get(), &st) != 0) return ioError("stat", display(*target));
    if (S_ISDIR(st.st_mode)) return hostile(path, "a hardlink to a directory");
    int parentFd;
    if (Status s = parentDirectory(path, parentFd); !s.isOk()) return s;
    const std::string name = baseName(path);
    if (Status s = clearName(parentFd, name, path, false); !s.isOk()) return s;
    if (linkat(source.get(), "", parentFd, name.c_str(), AT_EMPTY_PATH) != 0) {
      // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc path does the same without it.
      const std::string viaProc = fmt::format("/proc/self/fd/{}", source.get());
      if (linkat(AT_FDCWD, viaProc.c_str(), parentFd, name.c_str(), AT_SYMLINK_FOLLOW) != 0) {
        return ioError("link", display(path));
      }
    }
    return Status::ok();
  }

  // ".wh.name": overlayfs hides `path` of the layers below with a 0:0 character device.
  Status makeWhiteout(const std::string& path) {
    int parentFd;
    if (Status s = parentDirectory(path, parentFd); !s.isOk()) return s;
    const std::string name = baseName(path);
    if (Status s = clearName(parentFd, name, path, false); !s.isOk()) return s;
    if (mknodat(parentFd, name.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0) {
      return ioError("mknod whiteout", display(path));
    }
    if (fchownat(parentFd, name.c_str(), 0, 0, AT_SYMLINK_NOFOLLOW) != 0) {
      return ioError("chown", display(path));
    }
    ++result_.inodes;
    return Status::ok();
  }

  // ".wh..wh..opq": overlayfs shows none of the layers below in this directory.
  Status makeOpaque(const std::string& directory) {
    UniqueFd dir = openBeneath(rootFd_, directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!dir.valid()) {
      if (errno != ENOENT) {
        return hostile(directory + "/.wh..wh..opq", "its directory is not in the layer");
      }
      // The marker may come before its directory's own entry: create it.
      int parentFd;
      const std::string child = directory.empty() ? std::string() : directory;
      if (Status s = parentDirectory(child + "/x", parentFd); !s.isOk()) return s;
      dir = openBeneath(rootFd_, directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      if (!dir.valid()) return ioError("open", display(directory));
    }
    if (fsetxattr(dir.get(), kOverlayOpaqueXattr, "y", 1, 0) != 0) {
      return ioError("set opaque xattr on", display(directory));
    }
    return Status::ok();
  }

  int rootFd_;
  LayerUnpackResult& result_;
  std::vector<PendingDirectory> pending_;
  std::unordered_map<std::string, size_t> pendingIndex_;  // path -> its place in pending_
  UniqueFd parentCache_;
  std::string parentCachePath_;
};

}  // namespace

LayerUnpackResult unpackLayer(const std::string& blobPath, const std::string& destDir) {
  LayerUnpackResult result;
  UniqueFd root(::open(destDir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) {
    result.status = ioError("open", destDir);
    return result;
  }
  DecompressingReader reader;
  if (result.status = reader.open(blobPath); !result.status.isOk()) return result;

  ArchiveReader a(archive_read_new());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  if (archive_read_open(a.get(), &reader, nullptr, readFromDecompressor, nullptr) != ARCHIVE_OK) {
    result.status = Status(StatusCode::kDataLoss, fmt::format("the layer is not a tar archive: {}",
                                                              archiveError(a.get())));
    return result;
  }
  LayerWriter writer(root.get(), result);
  archive_entry* entry = nullptr;
  while (true) {
    const int rc = archive_read_next_header(a.get(), &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      result.status =
          !reader.status().isOk()
              ? reader.status()
              : Status(StatusCode::kDataLoss,
                       fmt::format("the layer's tar is damaged: {}", archiveError(a.get())));
      return result;
    }
    if (Status s = writer.write(a.get(), entry); !s.isOk()) {
      result.status = !reader.status().isOk() ? reader.status() : s;
      return result;
    }
  }
  if (Status s = writer.finish(); !s.isOk()) {
    result.status = s;
    return result;
  }
  if (Status s = reader.drain(); !s.isOk()) {
    result.status = s;
    return result;
  }
  result.diffId = reader.digest();
  // One flush of the whole layer before it is renamed into place and trusted.
  if (syncfs(root.get()) != 0) result.status = ioError("syncfs", destDir);
  return result;
}

}  // namespace monocri::oci
