#include "monitor/keeper/KeeperProtocol.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

namespace monocri::monitor {

namespace {

// Byte offsets of the wire layout drawn in KeeperProtocol.h.
constexpr size_t kMagicAt = 0;
constexpr size_t kTypeAt = 4;
constexpr size_t kOwnerLengthAt = 6;
constexpr size_t kTagAt = 8;
constexpr size_t kPidAt = 12;
constexpr size_t kWaitStatusAt = 16;
constexpr size_t kRefusedTypeAt = 20;
constexpr size_t kReasonAt = 22;
constexpr size_t kTimeAt = 24;
constexpr size_t kHeldCountAt = 32;
constexpr size_t kExitCountAt = 36;
constexpr size_t kOwnerAt = 40;
static_assert(kOwnerAt + kMaxOwnerLength == kRecordSize);

template <typename T>
void put(uint8_t* out, size_t at, T value) {
  std::memcpy(out + at, &value, sizeof value);
}

template <typename T>
T get(const uint8_t* data, size_t at) {
  T value;
  std::memcpy(&value, data + at, sizeof value);
  return value;
}

bool isOwnerCharacter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool fromDaemon(RecordType type) {
  return type == RecordType::kHold || type == RecordType::kRelease || type == RecordType::kTrack ||
         type == RecordType::kAck;
}

bool fromKeeper(RecordType type) {
  return type == RecordType::kHeld || type == RecordType::kExit || type == RecordType::kReady ||
         type == RecordType::kRefused;
}

bool knownReason(RefusalReason reason) {
  return reason >= RefusalReason::kTableFull && reason <= RefusalReason::kUnknownProcess;
}

}  // namespace

bool Owner::isValid(std::string_view text) {
  if (text.empty() || text.size() > kMaxOwnerLength || text[0] == '.' || text[0] == '_' ||
      text[0] == '-') {
    return false;
  }
  for (char c : text) {
    if (!isOwnerCharacter(c)) return false;
  }
  return true;
}

bool Owner::parse(std::string_view text, Owner& out) {
  out = Owner{};
  if (!isValid(text)) return false;
  out.length = static_cast<uint8_t>(text.size());
  std::memcpy(out.bytes, text.data(), text.size());
  return true;
}

bool isTerminationWaitStatus(int32_t status) {
  if (status < 0 || status > 0xffff) return false;
  const int low = status & 0x7f;
  if (low == 0) return (status & 0xff) == 0;   // exited: the code sits in bits 8-15
  if (low == 0x7f) return false;               // stopped, not ended
  return (status & 0xff00) == 0 && low <= 64;  // killed by signal `low`, 0x80 = core dumped
}

void encodeRecord(const KeeperRecord& record, uint8_t* out) {
  std::memset(out, 0, kRecordSize);
  put<uint32_t>(out, kMagicAt, kRecordMagic);
  put<uint16_t>(out, kTypeAt, static_cast<uint16_t>(record.type));
  put<uint16_t>(out, kOwnerLengthAt, record.owner.length);
  put<uint32_t>(out, kTagAt, record.tag);
  put<int32_t>(out, kPidAt, record.pid);
  put<int32_t>(out, kWaitStatusAt, record.waitStatus);
  put<uint16_t>(out, kRefusedTypeAt, static_cast<uint16_t>(record.refusedType));
  put<uint16_t>(out, kReasonAt, static_cast<uint16_t>(record.reason));
  put<int64_t>(out, kTimeAt, record.timeNs);
  put<uint32_t>(out, kHeldCountAt, record.heldCount);
  put<uint32_t>(out, kExitCountAt, record.exitCount);
  std::memcpy(out + kOwnerAt, record.owner.bytes, record.owner.length);
}

const char* decodeRecord(const uint8_t* data, size_t size, size_t fdCount, RecordSource from,
                         KeeperRecord& out) {
  out = KeeperRecord{};
  if (size != kRecordSize) return "wrong record size";
  if (get<uint32_t>(data, kMagicAt) != kRecordMagic) return "bad magic (not a keeper record)";
  const auto type = static_cast<RecordType>(get<uint16_t>(data, kTypeAt));
  if (from == RecordSource::kDaemon ? !fromDaemon(type) : !fromKeeper(type)) {
    return "unknown record type";
  }
  out.type = type;  // from here on, a refusal can name what it refuses
  out.tag = get<uint32_t>(data, kTagAt);
  out.pid = get<int32_t>(data, kPidAt);
  out.waitStatus = get<int32_t>(data, kWaitStatusAt);
  out.refusedType = static_cast<RecordType>(get<uint16_t>(data, kRefusedTypeAt));
  out.reason = static_cast<RefusalReason>(get<uint16_t>(data, kReasonAt));
  out.timeNs = get<int64_t>(data, kTimeAt);
  out.heldCount = get<uint32_t>(data, kHeldCountAt);
  out.exitCount = get<uint32_t>(data, kExitCountAt);

  const uint16_t ownerLength = get<uint16_t>(data, kOwnerLengthAt);
  if (ownerLength > kMaxOwnerLength) return "owner too long";
  const auto* ownerBytes = reinterpret_cast<const char*>(data + kOwnerAt);
  for (size_t i = ownerLength; i < kMaxOwnerLength; ++i) {
    if (ownerBytes[i] != 0) return "bytes after the owner";
  }
  if (ownerLength > 0 && !Owner::parse({ownerBytes, ownerLength}, out.owner)) {
    return "owner has characters outside [A-Za-z0-9._-]";
  }

  if (carriesDescriptor(type) ? fdCount != 1 : fdCount != 0) {
    return carriesDescriptor(type) ? "record without its descriptor"
                                   : "descriptor on a record that takes none";
  }

  // Per type: which fields it uses; every other one must be zero.
  const bool usesOwner = type != RecordType::kReady && type != RecordType::kRefused;
  // RELEASE: tag 0 releases every descriptor of the owner, another tag only that one.
  const bool usesTag =
      type == RecordType::kHold || type == RecordType::kHeld || type == RecordType::kRelease;
  const bool usesPid = type == RecordType::kTrack || type == RecordType::kAck ||
                       type == RecordType::kExit || type == RecordType::kRefused;
  const bool isExit = type == RecordType::kExit;
  const bool isReady = type == RecordType::kReady;
  const bool isRefused = type == RecordType::kRefused;

  if (usesOwner && out.owner.empty()) return "record without an owner";
  if (isReady && !out.owner.empty()) return "READY with an owner";
  if (usesTag ? out.tag > kMaxTag : out.tag != 0) return "tag out of range";
  if (!usesPid && out.pid != 0) return "pid on a record that takes none";
  if (usesPid && !isRefused && out.pid <= 0) return "pid not positive";
  if (isRefused && out.pid < 0) return "negative pid";
  if (isExit ? !isTerminationWaitStatus(out.waitStatus) : out.waitStatus != 0) {
    return "invalid wait status";
  }
  if (isExit ? out.timeNs < 0 : out.timeNs != 0) return "invalid time";
  if (!isReady && (out.heldCount != 0 || out.exitCount != 0)) return "counts on a non-READY record";
  if (isRefused) {
    if (out.refusedType != RecordType::kNone && !fromDaemon(out.refusedType)) {
      return "REFUSED names an unknown request type";
    }
    if (!knownReason(out.reason)) return "unknown refusal reason";
  } else if (out.refusedType != RecordType::kNone || out.reason != RefusalReason::kNone) {
    return "refusal fields on a record that is no refusal";
  }
  return nullptr;
}

const char* recordTypeName(RecordType type) {
  switch (type) {
    case RecordType::kHold:
      return "HOLD";
    case RecordType::kRelease:
      return "RELEASE";
    case RecordType::kTrack:
      return "TRACK";
    case RecordType::kAck:
      return "ACK";
    case RecordType::kHeld:
      return "HELD";
    case RecordType::kExit:
      return "EXIT";
    case RecordType::kReady:
      return "READY";
    case RecordType::kRefused:
      return "REFUSED";
    case RecordType::kNone:
      break;
  }
  return "UNKNOWN";
}

const char* refusalReasonText(RefusalReason reason) {
  switch (reason) {
    case RefusalReason::kTableFull:
      return "the keeper's table is full";
    case RefusalReason::kMalformed:
      return "the record was malformed";
    case RefusalReason::kNoDescriptor:
      return "the descriptor did not arrive";
    case RefusalReason::kUnknownProcess:
      return "no such process, and no exit of it is known";
    case RefusalReason::kNone:
      break;
  }
  return "unknown reason";
}

int sendRecordMessage(int socket, const uint8_t* record, int fd) {
  iovec io{const_cast<uint8_t*>(record), kRecordSize};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  if (fd >= 0) {
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  for (;;) {
    const ssize_t n = ::sendmsg(socket, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(kRecordSize)) return 0;
    if (n < 0 && errno == EINTR) continue;
    return n < 0 ? errno : EMSGSIZE;
  }
}

}  // namespace monocri::monitor
