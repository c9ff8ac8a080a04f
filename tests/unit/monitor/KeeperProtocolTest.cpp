#include "monitor/keeper/KeeperProtocol.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstring>
#include <string>

namespace monocri::monitor {
namespace {

using Bytes = std::array<uint8_t, kRecordSize>;

Bytes encode(const KeeperRecord& record) {
  Bytes bytes;
  encodeRecord(record, bytes.data());
  return bytes;
}

KeeperRecord make(RecordType type, const std::string& owner = "") {
  KeeperRecord record;
  record.type = type;
  if (!owner.empty()) {
    EXPECT_TRUE(Owner::parse(owner, record.owner));
  }
  return record;
}

const char* decode(const Bytes& bytes, size_t fds, RecordSource from, KeeperRecord& out) {
  return decodeRecord(bytes.data(), bytes.size(), fds, from, out);
}

void expectSame(const KeeperRecord& a, const KeeperRecord& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.owner.view(), b.owner.view());
  EXPECT_EQ(a.tag, b.tag);
  EXPECT_EQ(a.pid, b.pid);
  EXPECT_EQ(a.waitStatus, b.waitStatus);
  EXPECT_EQ(a.refusedType, b.refusedType);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.timeNs, b.timeNs);
  EXPECT_EQ(a.heldCount, b.heldCount);
  EXPECT_EQ(a.exitCount, b.exitCount);
}

TEST(KeeperProtocol, EveryRecordTypeRoundTrips) {
  std::vector<std::pair<KeeperRecord, RecordSource>> records;
  auto hold = make(RecordType::kHold, "4f2a9c");
  hold.tag = 2;
  records.push_back({hold, RecordSource::kDaemon});
  records.push_back({make(RecordType::kRelease, "c1"), RecordSource::kDaemon});
  auto track = make(RecordType::kTrack, "exec-7.a_b");
  track.pid = 4321;
  records.push_back({track, RecordSource::kDaemon});
  auto ack = make(RecordType::kAck, "c1");
  ack.pid = 1;
  records.push_back({ack, RecordSource::kDaemon});
  auto held = make(RecordType::kHeld, std::string(64, 'x'));
  held.tag = kMaxTag;
  records.push_back({held, RecordSource::kKeeper});
  auto exit = make(RecordType::kExit, "c1");
  exit.pid = 99;
  exit.waitStatus = 7 << 8;
  exit.timeNs = 1763772122199529000;
  records.push_back({exit, RecordSource::kKeeper});
  auto ready = make(RecordType::kReady);
  ready.heldCount = 3;
  ready.exitCount = 5;
  records.push_back({ready, RecordSource::kKeeper});
  auto refused = make(RecordType::kRefused, "c9");
  refused.refusedType = RecordType::kTrack;
  refused.reason = RefusalReason::kTableFull;
  refused.pid = 12;
  records.push_back({refused, RecordSource::kKeeper});
  auto unreadable = make(RecordType::kRefused);
  unreadable.reason = RefusalReason::kMalformed;
  records.push_back({unreadable, RecordSource::kKeeper});

  for (const auto& [record, from] : records) {
    SCOPED_TRACE(recordTypeName(record.type));
    KeeperRecord decoded;
    const char* problem =
        decode(encode(record), carriesDescriptor(record.type) ? 1 : 0, from, decoded);
    ASSERT_EQ(problem, nullptr) << problem;
    expectSame(decoded, record);
  }
}

TEST(KeeperProtocol, TheLayoutIsTheDocumentedOne) {
  auto exit = make(RecordType::kExit, "ab");
  exit.pid = 0x01020304;
  exit.waitStatus = 9;
  exit.timeNs = 0x1122334455667788;
  const Bytes bytes = encode(exit);
  uint32_t magic;
  std::memcpy(&magic, bytes.data(), 4);
  EXPECT_EQ(magic, kRecordMagic);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data()), 4), "MKR1");
  EXPECT_EQ(bytes[4], 17);  // EXIT
  EXPECT_EQ(bytes[6], 2);   // owner length
  int32_t pid;
  std::memcpy(&pid, bytes.data() + 12, 4);
  EXPECT_EQ(pid, 0x01020304);
  int64_t time;
  std::memcpy(&time, bytes.data() + 24, 8);
  EXPECT_EQ(time, 0x1122334455667788);
  EXPECT_EQ(bytes[40], 'a');
  EXPECT_EQ(bytes[41], 'b');
  for (size_t i = 42; i < kRecordSize; ++i)
    EXPECT_EQ(bytes[i], 0) << i;
}

TEST(KeeperProtocol, EachEndAcceptsOnlyTheOtherEndsTypes) {
  KeeperRecord out;
  auto track = make(RecordType::kTrack, "c1");
  track.pid = 5;
  EXPECT_STREQ(decode(encode(track), 0, RecordSource::kKeeper, out), "unknown record type");
  auto ready = make(RecordType::kReady);
  EXPECT_STREQ(decode(encode(ready), 0, RecordSource::kDaemon, out), "unknown record type");
  auto unknown = make(RecordType::kReady);
  unknown.type = static_cast<RecordType>(77);
  EXPECT_NE(decode(encode(unknown), 0, RecordSource::kKeeper, out), nullptr);
}

TEST(KeeperProtocol, DescriptorsOnlyWhereTheyBelong) {
  KeeperRecord out;
  auto hold = make(RecordType::kHold, "c1");
  EXPECT_STREQ(decode(encode(hold), 0, RecordSource::kDaemon, out),
               "record without its descriptor");
  EXPECT_STREQ(decode(encode(hold), 2, RecordSource::kDaemon, out),
               "record without its descriptor");
  auto release = make(RecordType::kRelease, "c1");
  EXPECT_STREQ(decode(encode(release), 1, RecordSource::kDaemon, out),
               "descriptor on a record that takes none");
  auto exit = make(RecordType::kExit, "c1");
  exit.pid = 3;
  EXPECT_NE(decode(encode(exit), 1, RecordSource::kKeeper, out), nullptr);
}

TEST(KeeperProtocol, SizeAndMagicAreChecked) {
  KeeperRecord out;
  const Bytes bytes = encode(make(RecordType::kRelease, "c1"));
  EXPECT_STREQ(decodeRecord(bytes.data(), kRecordSize - 1, 0, RecordSource::kDaemon, out),
               "wrong record size");
  EXPECT_STREQ(decodeRecord(bytes.data(), 0, 0, RecordSource::kDaemon, out), "wrong record size");
  Bytes bad = bytes;
  bad[0] ^= 1;
  EXPECT_STREQ(decode(bad, 0, RecordSource::kDaemon, out), "bad magic (not a keeper record)");
}

TEST(KeeperProtocol, OwnersAreShortSafeFileNameCharacters) {
  EXPECT_TRUE(Owner::isValid("a"));
  EXPECT_TRUE(Owner::isValid("0123456789abcdef"));
  EXPECT_TRUE(Owner::isValid("exec-1.2_X"));
  EXPECT_TRUE(Owner::isValid(std::string(64, 'f')));
  EXPECT_FALSE(Owner::isValid(""));
  EXPECT_FALSE(Owner::isValid(std::string(65, 'f')));
  for (const char* bad : {".hidden", "-x", "_x", "a/b", "..", "a b", "a\nb", "é", "a:b"}) {
    EXPECT_FALSE(Owner::isValid(bad)) << bad;
  }
  Owner owner;
  EXPECT_FALSE(Owner::parse("a/b", owner));
  EXPECT_TRUE(owner.empty());
}

TEST(KeeperProtocol, MalformedOwnersOnTheWireAreRefused) {
  KeeperRecord out;
  Bytes bytes = encode(make(RecordType::kRelease, "abc"));
  Bytes slash = bytes;
  slash[41] = '/';
  EXPECT_STREQ(decode(slash, 0, RecordSource::kDaemon, out),
               "owner has characters outside [A-Za-z0-9._-]");
  Bytes nul = bytes;
  nul[41] = 0;
  EXPECT_NE(decode(nul, 0, RecordSource::kDaemon, out), nullptr);
  Bytes trailing = bytes;
  trailing[50] = 'x';
  EXPECT_STREQ(decode(trailing, 0, RecordSource::kDaemon, out), "bytes after the owner");
  Bytes tooLong = bytes;
  tooLong[6] = 65;
  EXPECT_STREQ(decode(tooLong, 0, RecordSource::kDaemon, out), "owner too long");
  Bytes none = bytes;
  none[6] = 0;
  std::memset(none.data() + 40, 0, 3);
  EXPECT_STREQ(decode(none, 0, RecordSource::kDaemon, out), "record without an owner");
}

TEST(KeeperProtocol, FieldsATypeDoesNotUseMustBeZero) {
  KeeperRecord out;
  auto release = make(RecordType::kRelease, "c1");
  release.tag = 3;  // one descriptor of the owner
  EXPECT_EQ(decode(encode(release), 0, RecordSource::kDaemon, out), nullptr);
  EXPECT_EQ(out.tag, 3u);
  release.tag = kMaxTag + 1;
  EXPECT_STREQ(decode(encode(release), 0, RecordSource::kDaemon, out), "tag out of range");
  release.tag = 0;
  release.pid = 4;
  EXPECT_STREQ(decode(encode(release), 0, RecordSource::kDaemon, out),
               "pid on a record that takes none");
  auto track = make(RecordType::kTrack, "c1");
  track.pid = 4;
  track.tag = 1;
  EXPECT_STREQ(decode(encode(track), 0, RecordSource::kDaemon, out), "tag out of range");
  track.tag = 0;
  track.timeNs = 5;
  EXPECT_STREQ(decode(encode(track), 0, RecordSource::kDaemon, out), "invalid time");
  track.timeNs = 0;
  track.heldCount = 1;
  EXPECT_STREQ(decode(encode(track), 0, RecordSource::kDaemon, out),
               "counts on a non-READY record");
  track.heldCount = 0;
  track.reason = RefusalReason::kTableFull;
  EXPECT_STREQ(decode(encode(track), 0, RecordSource::kDaemon, out),
               "refusal fields on a record that is no refusal");
  auto ready = make(RecordType::kReady, "c1");
  EXPECT_STREQ(decode(encode(ready), 0, RecordSource::kKeeper, out), "READY with an owner");
}

TEST(KeeperProtocol, RangesAreChecked) {
  KeeperRecord out;
  auto hold = make(RecordType::kHold, "c1");
  hold.tag = kMaxTag + 1;
  EXPECT_STREQ(decode(encode(hold), 1, RecordSource::kDaemon, out), "tag out of range");
  auto track = make(RecordType::kTrack, "c1");
  track.pid = 0;
  EXPECT_STREQ(decode(encode(track), 0, RecordSource::kDaemon, out), "pid not positive");
  track.pid = -5;
  EXPECT_STREQ(decode(encode(track), 0, RecordSource::kDaemon, out), "pid not positive");
  auto exit = make(RecordType::kExit, "c1");
  exit.pid = 2;
  exit.timeNs = -1;
  EXPECT_STREQ(decode(encode(exit), 0, RecordSource::kKeeper, out), "invalid time");
  exit.timeNs = 0;
  exit.waitStatus = 0x7f;  // stopped: not an end
  EXPECT_STREQ(decode(encode(exit), 0, RecordSource::kKeeper, out), "invalid wait status");
  auto refused = make(RecordType::kRefused, "c1");
  refused.refusedType = RecordType::kExit;  // the keeper refuses only what the daemon sends
  refused.reason = RefusalReason::kTableFull;
  EXPECT_NE(decode(encode(refused), 0, RecordSource::kKeeper, out), nullptr);
  refused.refusedType = RecordType::kHold;
  refused.reason = static_cast<RefusalReason>(99);
  EXPECT_STREQ(decode(encode(refused), 0, RecordSource::kKeeper, out), "unknown refusal reason");
}

TEST(KeeperProtocol, WaitStatusesAreThoseOfEndedProcesses) {
  for (int code : {0, 1, 7, 127, 255}) {
    const int status = code << 8;
    EXPECT_TRUE(isTerminationWaitStatus(status));
    EXPECT_TRUE(WIFEXITED(status));
  }
  for (int sig : {1, 9, 15, 64}) {
    EXPECT_TRUE(isTerminationWaitStatus(sig)) << sig;
    EXPECT_TRUE(isTerminationWaitStatus(sig | 0x80)) << sig;  // core dumped
  }
  for (int bad : {-1, 0x7f, 0x137f /* stopped by SIGSTOP */, 65, 0x10000, 0x0109, 0xffff}) {
    EXPECT_FALSE(isTerminationWaitStatus(bad)) << bad;
  }
}

}  // namespace
}  // namespace monocri::monitor
