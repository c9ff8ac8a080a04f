#include "oci/spec/MountInfo.h"

namespace monocri::oci {

namespace {

std::vector<std::string_view> splitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (start < line.size()) {
    const size_t end = line.find(' ', start);
    const size_t stop = end == std::string_view::npos ? line.size() : end;
    if (stop > start) fields.push_back(line.substr(start, stop - start));
    start = stop + 1;
  }
  return fields;
}

// The kernel escapes space, tab, newline and backslash in paths as \ooo.
std::string unescapeOctal(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size()) {
      const char a = text[i + 1], b = text[i + 2], c = text[i + 3];
      if (a >= '0' && a <= '3' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
        out.push_back(static_cast<char>((a - '0') * 64 + (b - '0') * 8 + (c - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

bool isSameOrAncestor(std::string_view mountPoint, std::string_view path) {
  if (mountPoint == "/") return true;
  if (!path.starts_with(mountPoint)) return false;
  return path.size() == mountPoint.size() || path[mountPoint.size()] == '/';
}

}  // namespace

std::vector<MountInfoEntry> parseMountInfo(std::string_view text) {
  std::vector<MountInfoEntry> entries;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const auto fields = splitFields(text.substr(start, end - start));
    start = end + 1;
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    size_t separator = 6;
    while (separator < fields.size() && fields[separator] != "-")
      ++separator;
    if (fields.size() < 7 || separator + 1 >= fields.size() || !fields[4].starts_with('/')) {
      continue;
    }
    MountInfoEntry entry;
    entry.mountPoint = unescapeOctal(fields[4]);
    for (size_t i = 6; i < separator; ++i) {
      if (!entry.optionalFields.empty()) entry.optionalFields += ' ';
      entry.optionalFields += fields[i];
    }
    entry.fsType = std::string(fields[separator + 1]);
    if (separator + 3 < fields.size()) entry.superOptions = std::string(fields[separator + 3]);
    entries.push_back(std::move(entry));
  }
  return entries;
}

const MountInfoEntry* mountContaining(const std::vector<MountInfoEntry>& mounts,
                                      std::string_view path) {
  const MountInfoEntry* best = nullptr;
  for (const auto& entry : mounts) {
    if (!isSameOrAncestor(entry.mountPoint, path)) continue;
    // A longer mount point is nearer; among equals the later one is on top.
    if (best == nullptr || entry.mountPoint.size() >= best->mountPoint.size()) best = &entry;
  }
  return best;
}

}  // namespace monocri::oci
