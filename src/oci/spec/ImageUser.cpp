#include "oci/spec/ImageUser.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "oci/spec/Quoted.h"
#include "state/UniqueFd.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;

namespace {

constexpr int kOpenRetries = 8;  // openat2 answers EAGAIN when a rename races the resolution

Status invalid(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    const size_t end = text.find(separator, start);
    if (end == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

// A decimal id within runc's range; no sign, no spaces, no leading '+'.
std::optional<uint32_t> parseId(std::string_view text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0 ||
      value > kMaxContainerId) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(value);
}

bool isAllDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Names compared with entries: printable, no separator or blank.
bool isPlausibleName(std::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte > 0x20 && byte != 0x7f && c != ':' && c != ',';
  });
}

// Calls `onLine` with each line that is not empty, a comment, a NIS entry, too long, or holding
// a control byte (tabs aside, which GECOS fields may hold).
template <typename OnLine>
void forEachAccountLine(std::string_view text, OnLine onLine) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty() || line.size() > kMaxAccountLineBytes) continue;
    if (line[0] == '#' || line[0] == '+' || line[0] == '-') continue;
    const bool control = std::any_of(line.begin(), line.end(), [](char c) {
      const auto byte = static_cast<unsigned char>(c);
      return (byte < 0x20 && c != '\t') || byte == 0x7f;
    });
    if (!control) onLine(line);
  }
}

struct AccountFiles {
  const std::string& rootfs;
  std::optional<std::string> passwdText, groupText;
  bool passwdRead = false, groupRead = false;
  std::vector<PasswdEntry> passwd;
  std::vector<GroupEntry> group;

  Status loadPasswd() {
    if (passwdRead) return Status::ok();
    passwdRead = true;
    auto status = readRootfsFile(rootfs, "etc/passwd", kMaxAccountFileBytes, passwdText);
    if (status.isOk() && passwdText) passwd = parsePasswd(*passwdText);
    return status;
  }
  Status loadGroup() {
    if (groupRead) return Status::ok();
    groupRead = true;
    auto status = readRootfsFile(rootfs, "etc/group", kMaxAccountFileBytes, groupText);
    if (status.isOk() && groupText) group = parseGroup(*groupText);
    return status;
  }
};

Status checkRequestedId(const char* field, int64_t value) {
  if (value < 0 || value > kMaxContainerId) {
    return invalid(fmt::format("{} {} is outside 0..{}", field, value, kMaxContainerId));
  }
  return Status::ok();
}

}  // namespace

std::vector<PasswdEntry> parsePasswd(std::string_view text) {
  std::vector<PasswdEntry> entries;
  forEachAccountLine(text, [&](std::string_view line) {
    const auto fields = split(line, ':');
    if (fields.size() < 4 || !isPlausibleName(fields[0])) return;
    const auto uid = parseId(fields[2]);
    const auto gid = parseId(fields[3]);
    if (!uid || !gid) return;
    entries.push_back({std::string(fields[0]), *uid, *gid});
  });
  return entries;
}

std::vector<GroupEntry> parseGroup(std::string_view text) {
  std::vector<GroupEntry> entries;
  forEachAccountLine(text, [&](std::string_view line) {
    const auto fields = split(line, ':');
    if (fields.size() < 3 || !isPlausibleName(fields[0])) return;
    const auto gid = parseId(fields[2]);
    if (!gid) return;
    GroupEntry entry{std::string(fields[0]), *gid, {}};
    if (fields.size() > 3 && !fields[3].empty()) {
      for (std::string_view member : split(fields[3], ',')) {
        if (isPlausibleName(member)) entry.members.emplace_back(member);
      }
    }
    entries.push_back(std::move(entry));
  });
  return entries;
}

Status readRootfsFile(const std::string& rootfs, const std::string& relativePath, size_t limit,
                      std::optional<std::string>& out) {
  out.reset();
  const std::string shown = "/" + relativePath;
  state::UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("cannot open the container rootfs {}: {}", quotedValue(rootfs),
                              std::strerror(errno)));
  }
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  long fd = -1;
  for (int attempt = 0; attempt < kOpenRetries; ++attempt) {
    fd = ::syscall(SYS_openat2, root.get(), relativePath.c_str(), &how, sizeof(how));
    if (fd >= 0 || errno != EAGAIN) break;
  }
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return Status::ok();
    if (errno == ELOOP) {
      return invalid(fmt::format("the image's {} is a symlink loop", shown));
    }
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("cannot open the image's {}: {}", shown, std::strerror(errno)));
  }
  state::UniqueFd path(static_cast<int>(fd));
  struct stat st {};
  if (::fstat(path.get(), &st) != 0) {
    return Status(StatusCode::kInternal,
                  fmt::format("fstat of the image's {}: {}", shown, std::strerror(errno)));
  }
  // A device or fifo planted by the image must never be opened: opening is already an action.
  if (!S_ISREG(st.st_mode)) {
    return invalid(fmt::format("the image's {} is not a regular file", shown));
  }
  if (static_cast<uint64_t>(st.st_size) > limit) {
    return invalid(fmt::format("the image's {} is {} bytes, over the {} byte limit", shown,
                               st.st_size, limit));
  }
  // Reopen the very inode checked above for reading.
  const std::string procPath = fmt::format("/proc/self/fd/{}", path.get());
  state::UniqueFd file(::open(procPath.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!file.valid()) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("cannot read the image's {}: {}", shown, std::strerror(errno)));
  }
  std::string text;
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(file.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("cannot read the image's {}: {}", shown, std::strerror(errno)));
    }
    if (n == 0) break;
    // The file may have grown since fstat.
    if (text.size() + static_cast<size_t>(n) > limit) {
      return invalid(fmt::format("the image's {} is over the {} byte limit", shown, limit));
    }
    text.append(buffer, static_cast<size_t>(n));
  }
  out = std::move(text);
  return Status::ok();
}

Status resolveUser(const UserRequest& request, const std::string& rootfs, ResolvedUser& out) {
  out = ResolvedUser{};
  if (request.runAsUser) {
    if (auto status = checkRequestedId("run_as_user", *request.runAsUser); !status.isOk()) {
      return status;
    }
  }
  if (request.runAsGroup) {
    if (auto status = checkRequestedId("run_as_group", *request.runAsGroup); !status.isOk()) {
      return status;
    }
    if (!request.runAsUser && request.runAsUsername.empty()) {
      return invalid("run_as_group is set without run_as_user or run_as_username");
    }
  }
  for (int64_t group : request.supplementalGroups) {
    if (auto status = checkRequestedId("supplemental group", group); !status.isOk()) return status;
  }

  // What names the user, and the group when the image's "user:group" does.
  std::string userPart, groupPart;
  bool hasGroupPart = false;
  std::string source;  // for messages
  if (!request.runAsUsername.empty()) {
    userPart = request.runAsUsername;
    source = "run_as_username";
  } else if (request.runAsUser) {
    userPart = std::to_string(*request.runAsUser);
    source = "run_as_user";
  } else if (!request.imageUser.empty()) {
    source = "the image's User";
    const auto parts = split(request.imageUser, ':');
    if (parts.size() > 2 || parts[0].empty() || (parts.size() == 2 && parts[1].empty())) {
      return invalid(fmt::format("the image's User {} is not user, uid, user:group or uid:gid",
                                 quotedValue(request.imageUser)));
    }
    userPart = std::string(parts[0]);
    if (parts.size() == 2) {
      groupPart = std::string(parts[1]);
      hasGroupPart = true;
    }
  } else {
    userPart = "0";
    source = "the default user";
  }

  AccountFiles files{rootfs, {}, {}, false, false, {}, {}};
  if (auto status = files.loadPasswd(); !status.isOk()) return status;

  if (isAllDigits(userPart)) {
    const auto uid = parseId(userPart);
    if (!uid) {
      return invalid(
          fmt::format("{} {} is outside 0..{}", source, quotedValue(userPart), kMaxContainerId));
    }
    out.uid = *uid;
    out.gid = 0;
    for (const auto& entry : files.passwd) {
      if (entry.uid == *uid) {
        out.gid = entry.gid;
        out.username = entry.name;
        break;
      }
    }
  } else {
    if (!isPlausibleName(userPart)) {
      return invalid(fmt::format("{} {} is not a valid user name", source, quotedValue(userPart)));
    }
    const auto it = std::find_if(files.passwd.begin(), files.passwd.end(),
                                 [&](const PasswdEntry& entry) { return entry.name == userPart; });
    if (it == files.passwd.end()) {
      return invalid(fmt::format("user {} ({}) is not found in the image's /etc/passwd{}",
                                 quotedValue(userPart), source,
                                 files.passwdText ? "" : " (the image has no /etc/passwd)"));
    }
    out.uid = it->uid;
    out.gid = it->gid;
    out.username = it->name;
  }

  if (request.runAsGroup) {
    out.gid = static_cast<uint32_t>(*request.runAsGroup);
  } else if (hasGroupPart) {
    if (isAllDigits(groupPart)) {
      const auto gid = parseId(groupPart);
      if (!gid) {
        return invalid(fmt::format("the image's User group {} is outside 0..{}",
                                   quotedValue(groupPart), kMaxContainerId));
      }
      out.gid = *gid;
    } else {
      if (!isPlausibleName(groupPart)) {
        return invalid(fmt::format("the image's User group {} is not a valid group name",
                                   quotedValue(groupPart)));
      }
      if (auto status = files.loadGroup(); !status.isOk()) return status;
      const auto it =
          std::find_if(files.group.begin(), files.group.end(),
                       [&](const GroupEntry& entry) { return entry.name == groupPart; });
      if (it == files.group.end()) {
        return invalid(fmt::format(
            "group {} (the image's User) is not found in the image's "
            "/etc/group{}",
            quotedValue(groupPart), files.groupText ? "" : " (the image has no /etc/group)"));
      }
      out.gid = it->gid;
    }
  }

  out.additionalGids.push_back(out.gid);
  if (!request.strictSupplementalGroups && !out.username.empty()) {
    if (auto status = files.loadGroup(); !status.isOk()) return status;
    for (const auto& entry : files.group) {
      if (std::find(entry.members.begin(), entry.members.end(), out.username) !=
          entry.members.end()) {
        out.additionalGids.push_back(entry.gid);
      }
    }
  }
  for (int64_t group : request.supplementalGroups)
    out.additionalGids.push_back(static_cast<uint32_t>(group));
  std::sort(out.additionalGids.begin(), out.additionalGids.end());
  out.additionalGids.erase(std::unique(out.additionalGids.begin(), out.additionalGids.end()),
                           out.additionalGids.end());
  return Status::ok();
}

}  // namespace monocri::oci
