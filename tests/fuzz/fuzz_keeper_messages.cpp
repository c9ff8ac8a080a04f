// What the daemon reads from the keeper socket, and the exit record files the keeper reads
// back at start: hostile bytes and descriptors in, and out only canonical records, every
// descriptor either handed on or closed.
//
// Input: a first byte choosing the target, then
//   even: datagrams, each [length][flags: descriptor count (bits 0-1), truncated (bit 2)][bytes]
//         read by KeeperLink::RecordReader (and decodeRecord for the keeper's side)
//   odd:  one exit record file for parseExitRecord
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

#include "monitor/KeeperLink.h"
#include "monitor/keeper/ExitRecordFile.h"
#include "monitor/keeper/KeeperProtocol.h"

using monocri::monitor::KeeperLink;
using namespace monocri::monitor;

namespace {

bool isOpen(int fd) {
  return fcntl(fd, F_GETFD) >= 0;
}

// A record that decodes is the only encoding of itself: no field, padding or owner byte is
// ignored on the way in.
void checkCanonical(const uint8_t* data, size_t size, size_t fds, RecordSource from) {
  KeeperRecord record;
  if (decodeRecord(data, size, fds, from, record) != nullptr) return;
  uint8_t again[kRecordSize];
  encodeRecord(record, again);
  if (size != kRecordSize || std::memcmp(again, data, kRecordSize) != 0) std::abort();
}

void fuzzDatagrams(const uint8_t* data, size_t size) {
  KeeperLink::RecordReader reader;
  std::set<int> kept;
  bool ready = false;
  size_t replayedExits = 0;
  while (size >= 2) {
    const size_t length = std::min<size_t>(data[0], size - 2);
    const size_t fdCount = data[1] & 3;
    const bool truncated = (data[1] & 4) != 0;
    const uint8_t* datagram = data + 2;
    data += 2 + length;
    size -= 2 + length;

    checkCanonical(datagram, length, fdCount, RecordSource::kKeeper);
    checkCanonical(datagram, length, fdCount, RecordSource::kDaemon);

    std::vector<int> fds;
    for (size_t i = 0; i < fdCount; ++i) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) std::abort();
      fds.push_back(fd);
    }
    const auto outcome = reader.read({datagram, length}, fds, truncated);
    using Outcome = KeeperLink::RecordReader::Outcome;
    if (outcome == Outcome::kReplayed && fdCount == 1) {
      if (!isOpen(fds[0]) || ready) std::abort();  // a HELD, kept for the daemon
      kept.insert(fds[0]);
    } else {
      for (int fd : fds) {
        if (isOpen(fd)) std::abort();  // nobody took it: it must be closed
      }
    }
    if (outcome == Outcome::kReplayed && fdCount == 0) ++replayedExits;
    if (outcome == Outcome::kReady && ready) std::abort();  // READY counts once
    if (outcome == Outcome::kExit && !ready) std::abort();  // live exits only after READY
    if (outcome == Outcome::kExit && !isTerminationWaitStatus(reader.lastExit().waitStatus)) {
      std::abort();
    }
    if (outcome == Outcome::kReady) ready = true;
    if (reader.ready() != ready) std::abort();
  }
  const auto held = reader.takeHeld();
  if (held.size() != kept.size()) std::abort();
  for (const auto& h : held) {
    if (!kept.count(h.fd) || !Owner::isValid(h.owner) || h.tag > kMaxTag) std::abort();
    ::close(h.fd);
  }
  const auto exits = reader.takeReplayedExits();
  if (exits.size() != replayedExits) std::abort();
  for (const auto& e : exits) {
    if (!Owner::isValid(e.owner) || e.pid <= 0 || e.timeNs < 0) std::abort();
  }
}

void fuzzExitRecord(const uint8_t* data, size_t size) {
  ExitInfo exit;
  if (parseExitRecord(reinterpret_cast<const char*>(data), size, exit) != nullptr) return;
  char text[kMaxExitRecordBytes];
  const size_t length = formatExitRecord(exit, text);
  if (length != size || std::memcmp(text, data, size) != 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);  // every skipped record is logged otherwise
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    fuzzDatagrams(data + 1, size - 1);
  } else {
    fuzzExitRecord(data + 1, size - 1);
  }
  return 0;
}
