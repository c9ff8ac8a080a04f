// The layer unpacker on archives built here with libarchive's write API: what a layer may
// contain (files, directories, links, devices, xattrs, OCI whiteouts), its diffID over every
// compression, and hostile layers that try to create or change something outside the
// destination. Needs root (chown, mknod, trusted.* xattrs): ctest runs it through
// tests/harness/in-namespace.
#include "oci/image/LayerUnpacker.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "state/StateFiles.h"

namespace monocri::oci {
namespace {

using grpc::StatusCode;

constexpr time_t kTime = 1600000000;

// One tar entry, as a layer builder would write it.
struct Entry {
  std::string path;
  unsigned type = AE_IFREG;  // AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, AE_IFBLK, AE_IFIFO
  unsigned perm = 0644;
  std::string content;
  std::string symlink;   // AE_IFLNK target
  std::string hardlink;  // set: a hardlink to this path
  int64_t uid = 0;
  int64_t gid = 0;
  time_t mtime = kTime;
  long mtimeNsec = 0;
  unsigned rdevMajor = 0;
  unsigned rdevMinor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

Entry file(std::string path, std::string content, unsigned perm = 0644) {
  Entry e;
  e.path = std::move(path);
  e.content = std::move(content);
  e.perm = perm;
  return e;
}
Entry dir(std::string path, unsigned perm = 0755) {
  Entry e;
  e.path = std::move(path);
  e.type = AE_IFDIR;
  e.perm = perm;
  return e;
}
Entry symlink(std::string path, std::string target) {
  Entry e;
  e.path = std::move(path);
  e.type = AE_IFLNK;
  e.perm = 0777;
  e.symlink = std::move(target);
  return e;
}
Entry node(std::string path, unsigned type, unsigned perm, unsigned major = 0, unsigned minor = 0) {
  Entry e;
  e.path = std::move(path);
  e.type = type;
  e.perm = perm;
  e.rdevMajor = major;
  e.rdevMinor = minor;
  return e;
}
Entry hardlink(std::string path, std::string target) {
  Entry e;
  e.path = std::move(path);
  e.hardlink = std::move(target);
  return e;
}

la_ssize_t appendToString(archive*, void* client, const void* buffer, size_t length) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buffer), length);
  return static_cast<la_ssize_t>(length);
}

enum class Filter { kNone, kGzip, kZstd };

// The archive's bytes, made by libarchive (pax, as layer builders write them).
std::string makeTar(const std::vector<Entry>& entries, Filter filter = Filter::kNone) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  switch (filter) {
    case Filter::kNone:
      archive_write_add_filter_none(a);
      break;
    case Filter::kGzip:
      archive_write_add_filter_gzip(a);
      break;
    case Filter::kZstd:
      archive_write_add_filter_zstd(a);
      break;
  }
  // Compressed output unpadded, as libarchive writes it to a file (padding would follow the
  // compressed stream).
  if (filter != Filter::kNone) archive_write_set_bytes_in_last_block(a, 1);
  EXPECT_EQ(archive_write_open(a, &out, nullptr, appendToString, nullptr), ARCHIVE_OK)
      << archive_error_string(a);
  for (const Entry& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, e.perm);
    archive_entry_set_uid(entry, e.uid);
    archive_entry_set_gid(entry, e.gid);
    archive_entry_set_mtime(entry, e.mtime, e.mtimeNsec);
    if (!e.hardlink.empty()) {
      archive_entry_set_hardlink(entry, e.hardlink.c_str());
      archive_entry_set_size(entry, 0);
    } else if (e.type == AE_IFREG) {
      archive_entry_set_size(entry, static_cast<la_int64_t>(e.content.size()));
    }
    if (e.type == AE_IFLNK) archive_entry_set_symlink(entry, e.symlink.c_str());
    if (e.type == AE_IFCHR || e.type == AE_IFBLK) {
      archive_entry_set_rdevmajor(entry, e.rdevMajor);
      archive_entry_set_rdevminor(entry, e.rdevMinor);
    }
    for (const auto& [name, value] : e.xattrs)
      archive_entry_xattr_add_entry(entry, name.c_str(), value.data(), value.size());
    EXPECT_EQ(archive_write_header(a, entry), ARCHIVE_OK) << e.path << archive_error_string(a);
    if (e.type == AE_IFREG && e.hardlink.empty() && !e.content.empty()) {
      EXPECT_EQ(archive_write_data(a, e.content.data(), e.content.size()),
                static_cast<la_ssize_t>(e.content.size()));
    }
    archive_entry_free(entry);
  }
  EXPECT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
  return out;
}

// gzip and zstd done here with zlib and libzstd, independently of the unpacker's reader.
std::string gzip(std::string_view in) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, in.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstd(std::string_view in, bool checksum = false) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, checksum ? 1 : 0);
  std::string out(ZSTD_compressBound(in.size()), '\0');
  const size_t n = ZSTD_compress2(cctx, out.data(), out.size(), in.data(), in.size());
  EXPECT_FALSE(ZSTD_isError(n));
  ZSTD_freeCCtx(cctx);
  out.resize(n);
  return out;
}

// Every member of a gzip file, decompressed.
std::string gunzip(std::string_view in) {
  std::string out;
  size_t pos = 0;
  while (pos < in.size()) {
    z_stream z{};
    EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + pos));
    z.avail_in = static_cast<uInt>(in.size() - pos);
    int rc = Z_OK;
    char buffer[65536];
    while (rc == Z_OK) {
      z.next_out = reinterpret_cast<Bytef*>(buffer);
      z.avail_out = sizeof(buffer);
      rc = inflate(&z, Z_NO_FLUSH);
      out.append(buffer, sizeof(buffer) - z.avail_out);
    }
    EXPECT_EQ(rc, Z_STREAM_END);
    pos += z.total_in;
    inflateEnd(&z);
    if (rc != Z_STREAM_END) break;
  }
  return out;
}

std::string unzstd(std::string_view in) {
  ZSTD_DStream* stream = ZSTD_createDStream();
  std::string out;
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  char buffer[65536];
  size_t rc = 1;
  while (input.pos < input.size || rc != 0) {
    ZSTD_outBuffer output{buffer, sizeof(buffer), 0};
    rc = ZSTD_decompressStream(stream, &output, &input);
    EXPECT_FALSE(ZSTD_isError(rc));
    if (ZSTD_isError(rc)) break;
    out.append(buffer, output.pos);
    if (output.pos == 0 && input.pos == input.size) break;
  }
  ZSTD_freeDStream(stream);
  return out;
}

std::string sha256(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EXPECT_EQ(EVP_Digest(bytes.data(), bytes.size(), md, &length, EVP_sha256(), nullptr), 1);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string readText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::set<std::string> listDirectory(const std::string& path) {
  std::set<std::string> names;
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* entry = readdir(d)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") names.insert(name);
    }
    closedir(d);
  }
  return names;
}

struct stat lstatOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st;
}

bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

std::string getXattr(const std::string& path, const std::string& name) {
  char value[256];
  const ssize_t n = lgetxattr(path.c_str(), name.c_str(), value, sizeof(value));
  return n < 0 ? "(" + std::string(std::strerror(errno)) + ")" : std::string(value, n);
}

std::string statusText(const LayerUnpackResult& result) {
  return result.status.toString();
}

class LayerUnpackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root: run it through tests/harness/in-namespace";
    // /var/tmp rather than /tmp: a disk file system, with user.* and trusted.* xattrs.
    char tmpl[] = "/var/tmp/monocri-unpack-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    dest_ = base_ + "/dest";
    sentinel_ = base_ + "/sentinel";
    outside_ = base_ + "/outside-file";
    blob_ = base_ + "/blob";
    ASSERT_EQ(mkdir(dest_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(sentinel_.c_str(), 0755), 0);
    std::ofstream(outside_) << "outside";
    ASSERT_EQ(chmod(outside_.c_str(), 0644), 0);
    const timespec times[2] = {{kTime, 0}, {kTime, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, outside_.c_str(), times, 0), 0);
    ASSERT_EQ(utimensat(AT_FDCWD, sentinel_.c_str(), times, 0), 0);
  }
  void TearDown() override {
    if (!base_.empty()) {
      EXPECT_EQ(state::removeTree(base_), "");
    }
  }

  LayerUnpackResult unpack(const std::string& blob) {
    std::ofstream(blob_, std::ios::binary | std::ios::trunc) << blob;
    return unpackLayer(blob_, dest_);
  }

  // Unpacks into an empty destination again.
  void resetDestination() {
    ASSERT_EQ(state::removeTree(dest_), "");
    ASSERT_EQ(mkdir(dest_.c_str(), 0755), 0);
  }

  // Nothing outside the destination was created or changed.
  void expectOutsideUntouched() {
    EXPECT_EQ(listDirectory(base_),
              (std::set<std::string>{"blob", "dest", "outside-file", "sentinel"}));
    EXPECT_TRUE(listDirectory(sentinel_).empty());
    EXPECT_EQ(getXattr(sentinel_, "trusted.overlay.opaque"), "(No data available)");
    EXPECT_EQ(lstatOf(sentinel_).st_mtim.tv_sec, kTime);
    EXPECT_EQ(lstatOf(sentinel_).st_mode & 07777, 0755u);
    const struct stat st = lstatOf(outside_);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_nlink, 1u);
    EXPECT_EQ(st.st_mode & 07777, 0644u);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_mtim.tv_sec, kTime);
    EXPECT_EQ(readText(outside_), "outside");
    EXPECT_FALSE(exists(parentOfBase() + "/" + escapeName()));
  }

  // Refused with FAILED_PRECONDITION naming `entry`, nothing outside touched.
  void expectRefused(const std::vector<Entry>& entries, const std::string& entry) {
    SCOPED_TRACE(entry);
    resetDestination();
    LayerUnpackResult result = unpack(makeTar(entries));
    EXPECT_EQ(result.status.code(), StatusCode::kFailedPrecondition) << statusText(result);
    EXPECT_NE(result.status.message().find("'" + entry + "'"), std::string::npos)
        << statusText(result);
    expectOutsideUntouched();
  }

  std::string parentOfBase() const { return base_.substr(0, base_.rfind('/')); }
  // A name that a layer escaping to base_'s parent would create there.
  std::string escapeName() const { return base_.substr(base_.rfind('/') + 1) + "-escaped"; }

  std::string base_, dest_, sentinel_, outside_, blob_;
};

TEST_F(LayerUnpackerTest, RegularFilesKeepContentModeOwnerAndTime) {
  Entry tool = file("usr/bin/tool", "#!/bin/sh\necho hi\n", 04755);
  tool.uid = 1000;
  tool.gid = 2000;
  tool.mtimeNsec = 123456789;  // carried by a pax header, which the xattr makes sure of
  tool.xattrs = {{"user.origin", "test"}};
  Entry group = file("usr/bin/grouped", "g", 02711);
  group.gid = 50;
  std::string big;
  for (int i = 0; big.size() < 1500000; ++i)
    big += std::to_string(i * 7919) + ",";
  const std::vector<Entry> entries = {tool, group, file("etc/empty", "", 0600),
                                      file("./data/big", big), file("data//twice/../x", "no")};
  // The last entry climbs with "..": refused. Without it, all succeed.
  LayerUnpackResult result = unpack(makeTar({entries.begin(), entries.end() - 1}));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  EXPECT_EQ(result.entries, 4u);

  struct stat st = lstatOf(dest_ + "/usr/bin/tool");
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 04755u);  // set-user-ID survives the chown
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 2000u);
  EXPECT_EQ(st.st_mtim.tv_sec, kTime);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  EXPECT_EQ(readText(dest_ + "/usr/bin/tool"), "#!/bin/sh\necho hi\n");
  st = lstatOf(dest_ + "/usr/bin/grouped");
  EXPECT_EQ(st.st_mode & 07777, 02711u);
  EXPECT_EQ(st.st_gid, 50u);
  st = lstatOf(dest_ + "/etc/empty");
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(readText(dest_ + "/data/big"), big);
  // Directories the archive does not list are made 0755 root.
  st = lstatOf(dest_ + "/usr/bin");
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(listDirectory(dest_), (std::set<std::string>{"usr", "etc", "data"}));
  EXPECT_GE(result.inodes, 7u);  // 4 files, usr, usr/bin, etc, data
  EXPECT_GE(result.bytes, big.size());

  resetDestination();
  result = unpack(makeTar(entries));
  EXPECT_EQ(result.status.code(), StatusCode::kFailedPrecondition) << statusText(result);
  EXPECT_NE(result.status.message().find("data//twice/../x"), std::string::npos);
}

TEST_F(LayerUnpackerTest, DirectoryModesOwnersAndTimesAreAppliedLast) {
  Entry ro = dir("ro", 0555);
  ro.uid = 5;
  ro.gid = 6;
  ro.mtime = kTime + 10;
  ro.xattrs = {{"user.note", "dir"}};
  Entry inner = dir("ro/inner/", 0700);
  inner.mtime = kTime + 20;
  Entry root = dir("./", 0751);
  root.mtime = kTime + 30;
  LayerUnpackResult result = unpack(
      makeTar({root, ro, inner, file("ro/inner/f", "f"), file("ro/g", "g"), dir("ro/inner/sub")}));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  struct stat st = lstatOf(dest_ + "/ro");
  EXPECT_EQ(st.st_mode & 07777, 0555u);
  EXPECT_EQ(st.st_uid, 5u);
  EXPECT_EQ(st.st_gid, 6u);
  EXPECT_EQ(st.st_mtim.tv_sec, kTime + 10);  // not the time the files were written into it
  EXPECT_EQ(getXattr(dest_ + "/ro", "user.note"), "dir");
  st = lstatOf(dest_ + "/ro/inner");
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_mtim.tv_sec, kTime + 20);
  EXPECT_EQ(readText(dest_ + "/ro/inner/f"), "f");
  EXPECT_EQ(readText(dest_ + "/ro/g"), "g");
  // The layer root's own entry applies to the destination directory.
  st = lstatOf(dest_);
  EXPECT_EQ(st.st_mode & 07777, 0751u);
  EXPECT_EQ(st.st_mtim.tv_sec, kTime + 30);
}

// A directory listed twice takes the later entry's mode, owner and times, as tar and containerd do.
TEST_F(LayerUnpackerTest, ALaterEntryForTheSameDirectoryWins) {
  Entry first = dir("d", 0700);
  first.uid = 1;
  Entry second = dir("d", 0750);
  second.uid = 2;
  second.mtime = kTime + 5;
  LayerUnpackResult result = unpack(makeTar({first, file("d/f", "x"), second}));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  const struct stat st = lstatOf(dest_ + "/d");
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_uid, 2u);
  EXPECT_EQ(st.st_mtim.tv_sec, kTime + 5);
}

TEST_F(LayerUnpackerTest, SymlinksKeepTheirTargetTextAndAreNotFollowed) {
  Entry abs = symlink("etc/abs", outside_);
  abs.uid = 7;
  abs.gid = 8;
  abs.mtime = kTime + 1;
  LayerUnpackResult result =
      unpack(makeTar({abs, symlink("etc/rel", "../../sentinel/x"),
                      symlink("etc/dangling", "nowhere"), symlink("etc/self", "self")}));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  char target[4096];
  ssize_t n = readlink((dest_ + "/etc/abs").c_str(), target, sizeof(target));
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(target, n), outside_);
  n = readlink((dest_ + "/etc/rel").c_str(), target, sizeof(target));
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(target, n), "../../sentinel/x");
  const struct stat st = lstatOf(dest_ + "/etc/abs");
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_uid, 7u);  // the link's, not its target's
  EXPECT_EQ(st.st_gid, 8u);
  EXPECT_EQ(st.st_mtim.tv_sec, kTime + 1);
  EXPECT_TRUE(S_ISLNK(lstatOf(dest_ + "/etc/self").st_mode));
  expectOutsideUntouched();
}

TEST_F(LayerUnpackerTest, HardlinksShareTheInode) {
  LayerUnpackResult result =
      unpack(makeTar({file("a/file", "shared", 0640), hardlink("b/link", "a/file"),
                      hardlink("c", "./a/file"), hardlink("d", "/a/file")}));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  const struct stat original = lstatOf(dest_ + "/a/file");
  EXPECT_EQ(original.st_nlink, 4u);
  for (const char* link : {"/b/link", "/c", "/d"}) {
    const struct stat st = lstatOf(dest_ + link);
    EXPECT_EQ(st.st_ino, original.st_ino) << link;
    EXPECT_EQ(st.st_dev, original.st_dev) << link;
  }
  EXPECT_EQ(readText(dest_ + "/c"), "shared");

  // A hardlink to a symlink links the symlink itself, never what it points at.
  resetDestination();
  result = unpack(makeTar({symlink("sl", outside_), hardlink("hl", "sl")}));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  EXPECT_TRUE(S_ISLNK(lstatOf(dest_ + "/hl").st_mode));
  EXPECT_EQ(lstatOf(dest_ + "/hl").st_ino, lstatOf(dest_ + "/sl").st_ino);
  expectOutsideUntouched();
}

TEST_F(LayerUnpackerTest, DevicesAndFifos) {
  Entry null = node("dev/null", AE_IFCHR, 0666, 1, 3);
  Entry loop = node("dev/loop0", AE_IFBLK, 0660, 7, 0);
  loop.gid = 6;
  Entry fifo = node("run/fifo", AE_IFIFO, 0620);
  fifo.uid = 33;
  LayerUnpackResult result = unpack(makeTar({null, loop, fifo}));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  struct stat st = lstatOf(dest_ + "/dev/null");
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  EXPECT_EQ(major(st.st_rdev), 1u);
  EXPECT_EQ(minor(st.st_rdev), 3u);
  st = lstatOf(dest_ + "/dev/loop0");
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(major(st.st_rdev), 7u);
  EXPECT_EQ(minor(st.st_rdev), 0u);
  EXPECT_EQ(st.st_gid, 6u);
  st = lstatOf(dest_ + "/run/fifo");
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0620u);
  EXPECT_EQ(st.st_uid, 33u);
}

TEST_F(LayerUnpackerTest, XattrsAppliedExceptOverlayOnes) {
  // vfs_cap_data revision 2: cap_net_bind_service permitted and effective.
  const std::string capability(
      "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00",
      20);
  Entry ping = file("bin/ping", "elf", 0755);
  ping.xattrs = {{"user.mime_type", "application/x-executable"},
                 {"security.capability", capability},
                 {"trusted.overlay.opaque", "y"},
                 {"trusted.overlay.redirect", "/etc"}};
  Entry d = dir("forged");
  d.xattrs = {{"trusted.overlay.opaque", "y"}};
  LayerUnpackResult result = unpack(makeTar({ping, d}));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  const std::string path = dest_ + "/bin/ping";
  EXPECT_EQ(getXattr(path, "user.mime_type"), "application/x-executable");
  EXPECT_EQ(getXattr(path, "security.capability"), capability);
  EXPECT_EQ(getXattr(path, "trusted.overlay.opaque"), "(No data available)");
  EXPECT_EQ(getXattr(path, "trusted.overlay.redirect"), "(No data available)");
  EXPECT_EQ(getXattr(dest_ + "/forged", "trusted.overlay.opaque"), "(No data available)");
  std::string warnings;
  for (const auto& w : result.warnings)
    warnings += w + "\n";
  EXPECT_NE(warnings.find("/bin/ping': xattr trusted.overlay.opaque not applied"),
            std::string::npos)
      << warnings;
  EXPECT_NE(warnings.find("trusted.overlay.redirect"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("/forged': xattr trusted.overlay.opaque"), std::string::npos) << warnings;
}

TEST_F(LayerUnpackerTest, WhiteoutsBecomeOverlayWhiteouts) {
  Entry whiteout = file("etc/.wh.passwd", "");
  whiteout.uid = 1000;
  whiteout.gid = 1000;
  Entry later = dir("later", 0750);
  later.mtime = kTime + 3;
  LayerUnpackResult result = unpack(makeTar(
      {dir("etc"), whiteout, file(".wh.gone", ""), dir("opaque"), file("opaque/.wh..wh..opq", ""),
       file("opaque/kept", "k"), file("later/.wh..wh..opq", ""), later, file(".wh..wh..opq", "")}));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  for (const char* path : {"/etc/passwd", "/gone"}) {
    const struct stat st = lstatOf(dest_ + path);
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << path;
    EXPECT_EQ(st.st_rdev, makedev(0, 0)) << path;
    EXPECT_EQ(st.st_uid, 0u) << path;
    EXPECT_EQ(st.st_gid, 0u) << path;
  }
  // The markers themselves are not files of the layer.
  EXPECT_FALSE(exists(dest_ + "/etc/.wh.passwd"));
  EXPECT_FALSE(exists(dest_ + "/.wh.gone"));
  EXPECT_FALSE(exists(dest_ + "/opaque/.wh..wh..opq"));
  EXPECT_FALSE(exists(dest_ + "/later/.wh..wh..opq"));
  EXPECT_EQ(getXattr(dest_ + "/opaque", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(readText(dest_ + "/opaque/kept"), "k");
  // The marker came before its directory's entry: both apply.
  EXPECT_EQ(getXattr(dest_ + "/later", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(lstatOf(dest_ + "/later").st_mode & 07777, 0750u);
  EXPECT_EQ(lstatOf(dest_ + "/later").st_mtim.tv_sec, kTime + 3);
  EXPECT_EQ(getXattr(dest_, "trusted.overlay.opaque"), "y");
  EXPECT_EQ(getXattr(dest_ + "/etc", "trusted.overlay.opaque"), "(No data available)");
  EXPECT_EQ(listDirectory(dest_), (std::set<std::string>{"etc", "gone", "opaque", "later"}));

  // A whiteout replaces a file an earlier entry of the same layer put there.
  resetDestination();
  result = unpack(makeTar({file("x", "y"), file(".wh.x", "")}));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  EXPECT_TRUE(S_ISCHR(lstatOf(dest_ + "/x").st_mode));
}

TEST_F(LayerUnpackerTest, DiffIdIsTheDigestOfTheUncompressedTar) {
  std::string big;
  for (int i = 0; big.size() < 700000; ++i)
    big += "line " + std::to_string(i) + "\n";
  const std::string tar =
      makeTar({dir("app"), file("app/big", big), symlink("app/l", "big"), file("app/small", "s")});
  const std::string expected = sha256(tar);
  ASSERT_EQ(tar.size() % 512, 0u);
  // Two gzip members (as `cat a.gz b.gz` and parallel compressors make), split mid-entry.
  const std::string twoMembers = gzip(tar.substr(0, 300001)) + gzip(tar.substr(300001));
  const std::vector<std::pair<std::string, std::string>> blobs = {
      {"tar", tar},
      {"gzip", gzip(tar)},
      {"zstd", zstd(tar)},
      {"zstd with checksum", zstd(tar, true)},
      {"two gzip members", twoMembers}};
  for (const auto& [name, blob] : blobs) {
    SCOPED_TRACE(name);
    resetDestination();
    LayerUnpackResult result = unpack(blob);
    ASSERT_TRUE(result.status.isOk()) << statusText(result);
    EXPECT_EQ(result.diffId.str(), expected);
    EXPECT_EQ(result.entries, 4u);
    EXPECT_EQ(readText(dest_ + "/app/big"), big);
    EXPECT_EQ(readText(dest_ + "/app/small"), "s");
  }
}

TEST_F(LayerUnpackerTest, DiffIdOfLayersCompressedByLibarchive) {
  const std::vector<Entry> entries = {dir("etc"), file("etc/hostname", "node\n")};
  for (const Filter filter : {Filter::kGzip, Filter::kZstd}) {
    SCOPED_TRACE(static_cast<int>(filter));
    const std::string blob = makeTar(entries, filter);
    const std::string tar = filter == Filter::kGzip ? gunzip(blob) : unzstd(blob);
    ASSERT_GE(tar.size(), 1024u);
    resetDestination();
    LayerUnpackResult result = unpack(blob);
    ASSERT_TRUE(result.status.isOk()) << statusText(result);
    EXPECT_EQ(result.diffId.str(), sha256(tar));
    EXPECT_EQ(readText(dest_ + "/etc/hostname"), "node\n");
  }
}

TEST_F(LayerUnpackerTest, TheWellKnownEmptyLayer) {
  // Docker's empty layer: 1024 zero bytes, gzip-compressed; its diffID is known.
  const std::string zeros(1024, '\0');
  LayerUnpackResult result = unpack(gzip(zeros));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  EXPECT_EQ(result.diffId.str(),
            "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef");
  EXPECT_EQ(result.entries, 0u);
  EXPECT_TRUE(listDirectory(dest_).empty());
}

// A gzip member ending one byte before a read-buffer boundary: the next member's magic straddles
// two reads and must still be found (it once was not, and the layer ended early).
TEST_F(LayerUnpackerTest, GzipMemberEndingOneByteBeforeTheReadBuffer) {
  std::string big;
  for (int i = 0; big.size() < 400000; ++i)
    big += std::to_string(i) + " ";
  const std::string tar = makeTar({file("big", big)});
  // Member 1: stored deflate blocks, 10 + 4 * 5 + 262105 + 8 = 262143 bytes.
  const size_t firstBytes = 262105;
  ASSERT_GT(tar.size(), firstBytes);
  std::string member("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10);
  size_t pos = 0;
  for (const size_t length : {65535, 65535, 65535, 65500}) {
    const bool last = pos + length == firstBytes;
    member += static_cast<char>(last ? 1 : 0);
    member += static_cast<char>(length & 0xff);
    member += static_cast<char>(length >> 8);
    member += static_cast<char>(~length & 0xff);
    member += static_cast<char>((~length >> 8) & 0xff);
    member += tar.substr(pos, length);
    pos += length;
  }
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(tar.data()), firstBytes);
  for (int i = 0; i < 4; ++i)
    member += static_cast<char>((crc >> (8 * i)) & 0xff);
  for (int i = 0; i < 4; ++i)
    member += static_cast<char>((firstBytes >> (8 * i)) & 0xff);
  ASSERT_EQ(member.size(), 262143u);
  const std::string blob = member + gzip(tar.substr(firstBytes));
  ASSERT_EQ(gunzip(blob), tar);  // a valid two-member gzip file
  LayerUnpackResult result = unpack(blob);
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  EXPECT_EQ(result.diffId.str(), sha256(tar));
  EXPECT_EQ(readText(dest_ + "/big"), big);
}

TEST_F(LayerUnpackerTest, DotDotEntriesAreRefused) {
  expectRefused({file("../" + escapeName(), "x")}, "../" + escapeName());
  expectRefused({file("ok", "ok"), file("a/../../" + escapeName(), "x")},
                "a/../../" + escapeName());
  expectRefused({dir("../sentinel/d")}, "../sentinel/d/");  // libarchive writes the '/'

  expectRefused({symlink("../sentinel/l", "/")}, "../sentinel/l");
  expectRefused({file("../sentinel/.wh.x", "")}, "../sentinel/.wh.x");
  expectRefused({file("../sentinel/.wh..wh..opq", "")}, "../sentinel/.wh..wh..opq");
  // The archive really carries the '..': libarchive's writer did not clean it.
  EXPECT_NE(makeTar({file("../" + escapeName(), "x")}).find("../" + escapeName()),
            std::string::npos);
}

TEST_F(LayerUnpackerTest, AbsolutePathsLandInsideTheLayer) {
  const std::string tar = makeTar({file("/abs/file", "inside"), dir("/abs/d")});
  ASSERT_NE(tar.find("/abs/file"), std::string::npos);
  LayerUnpackResult result = unpack(tar);
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  EXPECT_EQ(readText(dest_ + "/abs/file"), "inside");
  EXPECT_TRUE(S_ISDIR(lstatOf(dest_ + "/abs/d").st_mode));
  EXPECT_FALSE(exists("/abs/file"));
  expectOutsideUntouched();
}

TEST_F(LayerUnpackerTest, EntriesThroughEscapingSymlinksAreRefused) {
  // An absolute symlink to a directory outside, then an entry through it.
  expectRefused({symlink("link", sentinel_), file("link/file", "x")}, "link/file");
  expectRefused({symlink("link", sentinel_), dir("link/sub")}, "link/sub");
  expectRefused({symlink("link", sentinel_), symlink("link/l", "x")}, "link/l");
  expectRefused({symlink("link", sentinel_), file("link/.wh.x", "")}, "link/x");
  expectRefused({symlink("link", sentinel_), file("link/.wh..wh..opq", "")}, "link/.wh..wh..opq");
  expectRefused({symlink("link", sentinel_), node("link/dev", AE_IFCHR, 0600, 1, 3)}, "link/dev");
  // Relative ones that climb out.
  expectRefused({symlink("up", "../.."), file("up/" + escapeName(), "x")}, "up/" + escapeName());
  expectRefused({symlink("up", "../sentinel"), file("up/file", "x")}, "up/file");
  expectRefused({dir("a"), symlink("a/up", "../../sentinel"), file("a/up/file", "x")}, "a/up/file");
  expectRefused({symlink("a", "b"), symlink("b", "../sentinel"), file("a/file", "x")}, "a/file");
  // Deeper: the escaping link is an intermediate component of a missing path.
  expectRefused({symlink("link", sentinel_), file("link/new/dir/file", "x")}, "link/new/dir/file");
}

TEST_F(LayerUnpackerTest, HardlinksOutOfTheLayerAreRefused) {
  expectRefused({hardlink("hl", "../outside-file")}, "hl");
  expectRefused({symlink("link", base_), hardlink("hl", "link/outside-file")}, "hl");
  expectRefused({symlink("rel", ".."), hardlink("hl", "rel/outside-file")}, "hl");
  expectRefused({dir("d"), hardlink("hl", "d")}, "hl");
  // An absolute target is a path of the layer, where there is no such file.
  expectRefused({hardlink("hl", "/etc/passwd")}, "hl");
  EXPECT_EQ(lstatOf("/etc/passwd").st_nlink, 1u);
  expectRefused({hardlink("hl", "missing")}, "hl");
}

TEST_F(LayerUnpackerTest, LaterEntriesReplaceEarlierFiles) {
  LayerUnpackResult result = unpack(makeTar({
      file("f", "old"), file("f", "new"),                   // a file by a file
      file("d", "file"), dir("d", 0711), file("d/x", "x"),  // a file by a directory
      file("s", "file"), symlink("s", outside_),            // a file by a symlink
      hardlink("h", "f"), file("h", "own"),                 // a hardlink by a file of its own
  }));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  EXPECT_EQ(readText(dest_ + "/f"), "new");
  EXPECT_TRUE(S_ISDIR(lstatOf(dest_ + "/d").st_mode));
  EXPECT_EQ(lstatOf(dest_ + "/d").st_mode & 07777, 0711u);
  EXPECT_EQ(readText(dest_ + "/d/x"), "x");
  EXPECT_TRUE(S_ISLNK(lstatOf(dest_ + "/s").st_mode));
  EXPECT_EQ(readText(dest_ + "/h"), "own");
  EXPECT_EQ(lstatOf(dest_ + "/f").st_nlink, 1u);
  expectOutsideUntouched();
}

// Entries replacing earlier directories and symlinks. (Removing one once closed the cached
// parent fd its caller was using: EBADF, or another directory on a busy worker.)
TEST_F(LayerUnpackerTest, LaterEntriesReplaceEarlierDirectoriesAndSymlinks) {
  LayerUnpackResult result = unpack(makeTar({
      dir("d"), file("d/x", "x"), file("d", "now a file"),      // a directory replaced by a file
      symlink("s", "d"), dir("s", 0711), file("s/inner", "i"),  // a symlink by a directory
      symlink("to-outside", outside_), file("to-outside", "replaced"),  // not written through
      dir("e", 0700), symlink("e", "d"),                                // a directory by a link
      dir("w"), file("w/y", "y"), file(".wh.w", ""),                    // a directory by a whiteout
  }));
  ASSERT_TRUE(result.status.isOk()) << statusText(result);
  EXPECT_TRUE(S_ISREG(lstatOf(dest_ + "/d").st_mode));
  EXPECT_EQ(readText(dest_ + "/d"), "now a file");
  EXPECT_TRUE(S_ISDIR(lstatOf(dest_ + "/s").st_mode));
  EXPECT_EQ(lstatOf(dest_ + "/s").st_mode & 07777, 0711u);
  EXPECT_EQ(readText(dest_ + "/s/inner"), "i");
  EXPECT_TRUE(S_ISREG(lstatOf(dest_ + "/to-outside").st_mode));
  EXPECT_EQ(readText(dest_ + "/to-outside"), "replaced");
  EXPECT_TRUE(S_ISLNK(lstatOf(dest_ + "/e").st_mode));
  // The replaced directory's mode was not applied through the link to "d".
  EXPECT_EQ(lstatOf(dest_ + "/d").st_mode & 07777, 0644u);
  EXPECT_TRUE(S_ISCHR(lstatOf(dest_ + "/w").st_mode));
  expectOutsideUntouched();
}

TEST_F(LayerUnpackerTest, CorruptAndTruncatedCompressionIsDataLoss) {
  std::string content;
  for (int i = 0; content.size() < 200000; ++i)
    content += std::to_string(i * 31) + "\n";
  const std::string tar = makeTar({file("a", content), file("b", "b")});
  const std::string gz = gzip(tar);
  const std::string zst = zstd(tar, true);
  auto flipped = [](std::string bytes, size_t at) {
    bytes[at] = static_cast<char>(bytes[at] ^ 0x55);
    return bytes;
  };
  const std::vector<std::pair<std::string, std::string>> blobs = {
      {"gzip cut in half", gz.substr(0, gz.size() / 2)},
      {"gzip without its length", gz.substr(0, gz.size() - 4)},
      {"gzip without its trailer", gz.substr(0, gz.size() - 8)},
      {"gzip with a bad crc", flipped(gz, gz.size() - 6)},
      {"gzip with a damaged block", flipped(gz, gz.size() / 3)},
      {"gzip header only", gz.substr(0, 10)},
      {"zstd cut in half", zst.substr(0, zst.size() / 2)},
      {"zstd without its checksum", zst.substr(0, zst.size() - 4)},
      {"zstd with a bad checksum", flipped(zst, zst.size() - 2)},
      {"zstd with a damaged block", flipped(zst, zst.size() / 3)},
      {"zstd magic only", zst.substr(0, 4)},
  };
  for (const auto& [name, blob] : blobs) {
    SCOPED_TRACE(name);
    resetDestination();
    LayerUnpackResult result = unpack(blob);
    EXPECT_EQ(result.status.code(), StatusCode::kDataLoss) << statusText(result);
    EXPECT_NE(result.status.message().find(name.starts_with("gzip") ? "gzip" : "zstd"),
              std::string::npos)
        << statusText(result);
    expectOutsideUntouched();
  }
  // A plain tar cut inside a file's data.
  resetDestination();
  LayerUnpackResult result = unpack(tar.substr(0, 100000));
  EXPECT_EQ(result.status.code(), StatusCode::kDataLoss) << statusText(result);
}

// A tar cut inside a pax header's data: libarchive gives no error string, and that must be an
// error, not an exception out of unpackLayer() (found by fuzz_layer_unpack).
TEST_F(LayerUnpackerTest, TarCutInsideAPaxHeaderIsAnErrorNotAnException) {
  Entry withXattr = file("etc/hostname", "node\n");
  withXattr.xattrs = {{"user.seed", "1"}};
  const std::string tar = makeTar({dir("etc"), withXattr});
  const size_t paxHeader = tar.find("PaxHeader");
  ASSERT_NE(paxHeader, std::string::npos);
  const size_t paxData = (paxHeader / 512 + 1) * 512;  // the block after the pax header's
  for (const size_t cut : {paxData, paxData + 1, paxData + 100, paxData + 511}) {
    SCOPED_TRACE(cut);
    resetDestination();
    LayerUnpackResult result;
    EXPECT_NO_THROW(result = unpack(tar.substr(0, cut)));
    EXPECT_EQ(result.status.code(), StatusCode::kDataLoss) << statusText(result);
  }
}

TEST_F(LayerUnpackerTest, NonTarBlobsAreErrors) {
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "this is not a tar archive\n";
  for (const std::string& blob :
       {text, gzip(text), zstd(text), std::string("PK\x03\x04", 4) + text}) {
    resetDestination();
    LayerUnpackResult result = unpack(blob);
    EXPECT_FALSE(result.status.isOk()) << blob.substr(0, 16);
    EXPECT_TRUE(listDirectory(dest_).empty());
  }
  // A destination that does not exist.
  LayerUnpackResult result = unpackLayer(blob_, base_ + "/missing");
  EXPECT_FALSE(result.status.isOk());
  EXPECT_FALSE(exists(base_ + "/missing"));
}

TEST_F(LayerUnpackerTest, EntryBelowARegularFileIsAnError) {
  resetDestination();
  LayerUnpackResult result = unpack(makeTar({file("f", "x"), file("f/g", "y")}));
  EXPECT_FALSE(result.status.isOk());
  EXPECT_NE(result.status.message().find("f"), std::string::npos) << statusText(result);
  EXPECT_EQ(readText(dest_ + "/f"), "x");
}

}  // namespace
}  // namespace monocri::oci
