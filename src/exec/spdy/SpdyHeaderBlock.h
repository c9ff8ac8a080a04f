// SPDY/3 name/value header blocks and their zlib compression.
//
// Inflated, a block is (all integers 32-bit big-endian):
//
//   +------------------------------------+
//   | Number of name/value pairs (int32) |
//   +------------------------------------+
//   |     Length of name (int32)         |
//   +------------------------------------+
//   |           Name (string)            |  lowercase, non-empty, unique in the block
//   +------------------------------------+
//   |     Length of value (int32)        |
//   +------------------------------------+
//   |          Value   (string)          |  may hold several values separated by NUL
//   +------------------------------------+
//   |           (repeats)                |
//
// On the wire each block is a piece of ONE zlib stream per direction that lasts for the whole
// connection, primed with the SPDY/3 dictionary, each block ending with a sync flush. Both
// directions therefore keep state across blocks: a block can only be decoded by the inflater
// that decoded all the blocks before it, in order, and a decoder error leaves the stream
// unusable (the connection must be torn down).
//
// What kubectl (spdystream) sends: `streamtype`, `port`, `requestid`, in Go map order. What
// CRI-O answers in SYN_REPLY: an empty block (count 0), still compressed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace monocri::exec::spdy {

// Names lowercase as on the wire, values raw (NUL-separated multiple values left as they are).
using HeaderList = std::vector<std::pair<std::string, std::string>>;

// The zlib dictionary of SPDY/3 (1423 bytes, zlib dictionary id / adler32 0xe3c6a7c2).
std::string_view headerDictionary();

// One direction's header-block decompressor.
class HeaderBlockInflater {
 public:
  // A block inflating past this stops with an error (a "zlib bomb" is cut short: the inflater
  // never holds more than this much output).
  static constexpr size_t kMaxInflatedBytes = 64 * 1024;
  // More pairs than this in one block is an error (kubectl sends at most 3).
  static constexpr size_t kMaxPairs = 256;

  HeaderBlockInflater();  // cheap: zlib's state is allocated on the first block
  ~HeaderBlockInflater();
  HeaderBlockInflater(HeaderBlockInflater&&) noexcept;
  HeaderBlockInflater& operator=(HeaderBlockInflater&&) noexcept;

  // Inflates one block (the next in this direction's zlib stream) and decodes its pairs into
  // `out` (replacing its contents). Returns false with `error` set ("SPDY header block: ...")
  // on a zlib error or a wrong dictionary, output over kMaxInflatedBytes, more than kMaxPairs
  // pairs, a truncated block or bytes after the last pair, an empty, duplicate or non-lowercase
  // name, or a name holding a NUL. After a failure the inflater is unusable (every later call
  // fails): the caller tears down the connection.
  bool decode(std::string_view compressed, HeaderList& out, std::string& error);

  bool failed() const { return failed_; }

 private:
  struct Stream;
  std::unique_ptr<Stream> stream_;
  bool failed_ = false;
};

// The other direction's compressor: one deflate stream for the connection, primed with the
// dictionary, a sync flush after each block. It uses a 2 KiB window (the dictionary fits in it)
// and zlib's smallest hash tables: ~15 KiB per connection instead of zlib's default ~270 KiB,
// for blocks that are a few dozen bytes. Any SPDY/3 peer inflates it (the zlib header says so).
class HeaderBlockDeflater {
 public:
  HeaderBlockDeflater();  // cheap: zlib's state is allocated on the first block
  ~HeaderBlockDeflater();
  HeaderBlockDeflater(HeaderBlockDeflater&&) noexcept;
  HeaderBlockDeflater& operator=(HeaderBlockDeflater&&) noexcept;

  // The compressed block for `headers`, in order, as given (names should be lowercase and
  // unique: the peer rejects others). An empty list still gives a block (count 0).
  std::string encode(const HeaderList& headers);

 private:
  struct Stream;
  std::unique_ptr<Stream> stream_;
};

// The inflated form of a block and its decoding (no compression), with the checks decode()
// makes; exposed for tests and fuzzing. `error` starts with "SPDY header block: ".
std::string serializeHeaderBlock(const HeaderList& headers);
bool parseHeaderBlock(std::string_view inflated, HeaderList& out, std::string& error);

}  // namespace monocri::exec::spdy
