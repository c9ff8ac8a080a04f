// The records the keeper and the daemon exchange over their SOCK_SEQPACKET socketpair.
//
// Every record is one datagram of exactly kRecordSize bytes (host byte order: both ends are
// the same binary on the same machine). HOLD and HELD carry exactly one descriptor
// (SCM_RIGHTS); no other record carries any. Fields a type does not use must be zero, so a
// record of one type can never be read as another by accident.
//
//   offset size  field
//        0    4  magic         kRecordMagic ("MKR1"): a wrong peer or version is refused
//        4    2  type          RecordType
//        6    2  ownerLength   0 (READY, some REFUSED) or 1-64
//        8    4  tag           HOLD, HELD: what the descriptor is to its owner (<= kMaxTag)
//       12    4  pid           TRACK, ACK, EXIT (> 0); REFUSED: the refused record's pid
//       16    4  waitStatus    EXIT: as waitpid(2) reports it (WIFEXITED, WTERMSIG...)
//       20    2  refusedType   REFUSED: the type of the refused record (0: unreadable)
//       22    2  reason        REFUSED: RefusalReason
//       24    8  timeNs        EXIT: when the keeper reaped it, CLOCK_REALTIME nanoseconds
//       32    4  heldCount     READY: HELD records sent since this daemon started
//       36    4  exitCount     READY: EXIT records sent since this daemon started
//       40   64  owner         container or exec id, zero-padded
//      104       end
//
// Daemon → keeper: HOLD(owner, tag, fd), RELEASE(owner), TRACK(owner, pid), ACK(owner, pid).
// Keeper → daemon: HELD(owner, tag, fd) and EXIT(owner, pid, waitStatus, timeNs), first those
// of the replay after a daemon (re)start, then READY(counts), then live EXITs; REFUSED(type,
// reason, owner, pid) at any time when a request could not be honoured.
//
// The keeper's side of this file is written for a process that must not crash: no
// allocation, no exceptions, fixed-size buffers.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace monocri::monitor {

inline constexpr size_t kRecordSize = 104;
inline constexpr uint32_t kRecordMagic = 0x31524b4d;  // "MKR1" in little-endian memory
inline constexpr size_t kMaxOwnerLength = 64;
// Tags say which of an owner's descriptors this is (stdout, stderr, a pty master...).
inline constexpr uint32_t kMaxTag = 0xffff;
// At most this many descriptors are accepted with one datagram; more are dropped by the kernel
// (MSG_CTRUNC) and the record is refused.
inline constexpr size_t kMaxFdsPerRecord = 4;

enum class RecordType : uint16_t {
  kNone = 0,
  // daemon → keeper
  kHold = 1,
  kRelease = 2,
  kTrack = 3,
  kAck = 4,
  // keeper → daemon
  kHeld = 16,
  kExit = 17,
  kReady = 18,
  kRefused = 19,
};

enum class RefusalReason : uint16_t {
  kNone = 0,
  kTableFull = 1,       // HOLD, TRACK: the keeper's fixed table is full
  kMalformed = 2,       // the record failed validation (its descriptors were closed)
  kNoDescriptor = 3,    // HOLD arrived without its descriptor (the keeper is out of fds)
  kUnknownProcess = 4,  // TRACK of a pid that is gone and whose exit the keeper does not have
};

// Which end is reading: each accepts only the other end's types.
enum class RecordSource { kDaemon, kKeeper };

// A container or exec id: 1-64 characters of [A-Za-z0-9._-], the first a letter or a digit.
// It names exit record files, so it can hold no '/' and never starts with '.'.
struct Owner {
  uint8_t length = 0;
  char bytes[kMaxOwnerLength] = {};

  std::string_view view() const { return {bytes, length}; }
  bool empty() const { return length == 0; }
  // False (and `out` left empty) when `text` is not a valid owner.
  static bool parse(std::string_view text, Owner& out);
  static bool isValid(std::string_view text);
  bool operator==(const Owner& other) const { return view() == other.view(); }
};

struct KeeperRecord {
  RecordType type = RecordType::kNone;
  Owner owner;
  uint32_t tag = 0;
  pid_t pid = 0;
  int32_t waitStatus = 0;
  RecordType refusedType = RecordType::kNone;
  RefusalReason reason = RefusalReason::kNone;
  int64_t timeNs = 0;
  uint32_t heldCount = 0;
  uint32_t exitCount = 0;
};

// Fills exactly kRecordSize bytes.
void encodeRecord(const KeeperRecord& record, uint8_t* out);

// Sends one encoded record (kRecordSize bytes) on the non-blocking SOCK_SEQPACKET `socket`, with
// `fd` attached (SCM_RIGHTS) when it is >= 0. Returns 0 when the whole record went, else the
// errno (EINTR retried here; a short send is EMSGSIZE). Both ends of the link use it.
int sendRecordMessage(int socket, const uint8_t* record, int fd);

// Validates one received datagram of `size` bytes that came with `fdCount` descriptors. Returns
// null and fills `out`, or a static string saying what is wrong; `out` then holds what could be
// read before the fault (type, owner, pid), for a refusal to name.
const char* decodeRecord(const uint8_t* data, size_t size, size_t fdCount, RecordSource from,
                         KeeperRecord& out);

// Whether `status` is one waitpid(2) could report for a process that ended: an exit code
// (0-255) or a terminating signal (1-64), with or without a core dump.
bool isTerminationWaitStatus(int32_t status);

// Whether records of this type carry a descriptor.
constexpr bool carriesDescriptor(RecordType type) {
  return type == RecordType::kHold || type == RecordType::kHeld;
}

// "HOLD", "EXIT"...; "UNKNOWN" for anything else.
const char* recordTypeName(RecordType type);
// "table full"...
const char* refusalReasonText(RefusalReason reason);

}  // namespace monocri::monitor
