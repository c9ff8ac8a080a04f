// The user a container runs as: kubelet's run_as_user / run_as_username / run_as_group /
// supplemental_groups, else the image's User ("uid", "name", "uid:gid", "name:group", ...), with
// names and group memberships looked up in the image's own /etc/passwd and /etc/group.
//
// The rootfs is an untrusted image: its account files are opened with openat2(RESOLVE_IN_ROOT),
// so that "..", absolute symlinks and symlinked parents resolve inside the rootfs (a symlink to
// the host's /etc/passwd reads the image's), never followed into a device or fifo, bounded in
// size, and parsed line by line with every malformed line skipped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"

namespace monocri::oci {

// Largest /etc/passwd or /etc/group read from an image; larger ones are refused.
inline constexpr size_t kMaxAccountFileBytes = 4 * 1024 * 1024;
// Longest line considered; longer ones are skipped as hostile.
inline constexpr size_t kMaxAccountLineBytes = 64 * 1024;
// runc requires ids to fit a signed 32-bit integer (containerd applies the same bound).
inline constexpr int64_t kMaxContainerId = 0x7fffffff;

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

struct GroupEntry {
  std::string name;
  uint32_t gid = 0;
  std::vector<std::string> members;
};

// "name:password:uid:gid[:gecos:home:shell]" lines; comments, NIS (+/-) entries, lines with a
// NUL or control byte, an empty name, a non-decimal or out-of-range id, or over
// kMaxAccountLineBytes are skipped.
std::vector<PasswdEntry> parsePasswd(std::string_view text);
// "name:password:gid[:member,member...]" lines, skipped by the same rules.
std::vector<GroupEntry> parseGroup(std::string_view text);

// Reads `relativePath` (e.g. "etc/passwd") of the tree at `rootfs` with every component resolved
// inside it. `out` is nullopt when the file does not exist (or a component is not a directory);
// an error when it is not a regular file, is larger than `limit`, or cannot be read.
grpc::Status readRootfsFile(const std::string& rootfs, const std::string& relativePath,
                            size_t limit, std::optional<std::string>& out);

struct UserRequest {
  std::optional<int64_t> runAsUser;
  std::string runAsUsername;
  std::optional<int64_t> runAsGroup;
  std::vector<int64_t> supplementalGroups;
  bool strictSupplementalGroups = false;  // SupplementalGroupsPolicy Strict: no /etc/group merge
  std::string imageUser;                  // the image config's User
};

struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  // Sorted, unique; holds the primary gid, the groups /etc/group lists the user in (unless
  // strict) and the requested supplemental groups, as containerd sets them.
  std::vector<uint32_t> additionalGids;
  std::string username;  // "" when a numeric uid has no /etc/passwd entry
};

// A name that the image does not list is an INVALID_ARGUMENT naming it; a numeric uid without an
// entry runs with gid 0. run_as_group without a user is an INVALID_ARGUMENT (the CRI says so).
grpc::Status resolveUser(const UserRequest& request, const std::string& rootfs, ResolvedUser& out);

}  // namespace monocri::oci
