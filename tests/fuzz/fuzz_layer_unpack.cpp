// The layer unpacker on arbitrary blobs (plain, gzip or zstd tar, or neither), each unpacked
// into a fresh directory that is removed afterwards. Whatever the blob, nothing may appear or
// change beside that directory, and a plain tar that unpacks has its own digest as diffID.
// Meant to run as root, as the image worker does (as another user, chown and mknod fail early).
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "oci/image/LayerUnpacker.h"
#include "state/StateFiles.h"

namespace {

std::set<std::string> listDirectory(const std::string& path) {
  std::set<std::string> names;
  if (DIR* dir = opendir(path.c_str())) {
    while (dirent* entry = readdir(dir)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") names.insert(name);
    }
    closedir(dir);
  }
  return names;
}

void fail(const char* what) {
  std::fprintf(stderr, "fuzz_layer_unpack: %s\n", what);
  std::abort();
}

// base/sentinel stays empty beside base/dest; base holds nothing else but the blob.
struct Workspace {
  Workspace() {
    char tmpl[] = "/tmp/monocri-fuzz-unpack-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) fail("mkdtemp");
    base = tmpl;
    sentinel = base + "/sentinel";
    if (mkdir(sentinel.c_str(), 0755) != 0) fail("mkdir sentinel");
    struct stat st {};
    stat(sentinel.c_str(), &st);
    sentinelMtime = st.st_mtim;
  }
  ~Workspace() { monocri::state::removeTree(base); }
  std::string base, sentinel;
  timespec sentinelMtime{};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Workspace workspace;
  const std::string blob = workspace.base + "/blob";
  const std::string dest = workspace.base + "/dest";
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::ofstream(blob, std::ios::binary | std::ios::trunc) << input;
  if (mkdir(dest.c_str(), 0755) != 0) fail("mkdir dest");

  const monocri::oci::LayerUnpackResult result = monocri::oci::unpackLayer(blob, dest);

  if (listDirectory(workspace.base) != std::set<std::string>{"blob", "dest", "sentinel"}) {
    fail("an entry was created beside the destination");
  }
  if (!listDirectory(workspace.sentinel).empty()) fail("an entry was created in the sentinel");
  struct stat st {};
  if (lstat(workspace.sentinel.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
      (st.st_mode & 07777) != 0755 || st.st_mtim.tv_sec != workspace.sentinelMtime.tv_sec ||
      st.st_mtim.tv_nsec != workspace.sentinelMtime.tv_nsec) {
    fail("the sentinel was changed");
  }
  if (lstat(blob.c_str(), &st) != 0 || static_cast<size_t>(st.st_size) != size) {
    fail("the blob was changed");
  }
  if (result.status.isOk()) {
    const bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    const bool zstd =
        size >= 4 && data[0] == 0x28 && data[1] == 0xb5 && data[2] == 0x2f && data[3] == 0xfd;
    if (!gzip && !zstd && result.diffId != monocri::oci::Digest::ofBytes(input)) {
      fail("the diffID of a plain tar is not its digest");
    }
  } else if (result.status.message().empty()) {
    fail("an error without a message");
  }
  if (!monocri::state::removeTree(dest).empty()) fail("cannot remove the destination");
  return 0;
}
