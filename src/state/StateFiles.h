// Files of the daemon's state on disk, written so that a crash at any moment leaves either the
// old or the new content, never a torn one (DESIGN.md: "State on disk, atomically").
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace monocri::state {

// What a write must survive. A process crash never tears a file written through a temp file and
// a rename; surviving a power loss also takes two fsyncs, which on a disk busy with other writes
// can take tens of milliseconds each: state that a reboot makes moot anyway (a container's or a
// pod's record: after a reboot they are reconciled and reported as lost) skips them.
enum class Durability { kPowerLoss, kProcessCrash };

// Writes `contents` to a temp file beside `path`, renames it over `path`; with kPowerLoss, the
// file is fsynced before the rename and the directory after it. Returns "" or an error naming
// the path and the failing operation.
std::string writeFileAtomically(const std::string& path, std::string_view contents,
                                mode_t mode = 0644, Durability durability = Durability::kPowerLoss);

// Reads a whole file of at most `maxBytes` (a larger one is an error, not a truncation); files
// that report no size (procfs, sysfs, cgroupfs) are read to their end within the same bound.
std::string readFile(const std::string& path, size_t maxBytes, std::string& out);

// fsync of a directory, so that renames and creations in it are durable.
std::string syncDirectory(const std::string& path);

// rm -rf without following symlinks, even ones planted in the tree. A missing path is fine.
std::string removeTree(const std::string& path);

// Removes `name` in the directory `dirFd`, whatever it is, without following symlinks.
// `displayPath` names it in errors.
std::string removeTreeAt(int dirFd, const std::string& name, const std::string& displayPath);

// mkdir -p, then the mode of the last component.
std::string makeDirectories(const std::string& path, mode_t mode);

}  // namespace monocri::state
