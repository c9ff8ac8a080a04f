// libarchive read handles, as the worker's tar readers (layers, import archives) use them.
#pragma once

#include <memory>

#include <archive.h>

namespace monocri::oci {

struct ArchiveReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchiveReader = std::unique_ptr<archive, ArchiveReadFree>;

// libarchive's message for the last error; it may have none (a null pointer), which fmt
// refuses to format.
inline const char* archiveError(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unreadable archive";
}

}  // namespace monocri::oci
