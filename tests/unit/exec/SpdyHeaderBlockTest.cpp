// SPDY/3 header blocks: the dictionary proven against kubectl's and CRI-O's real blocks, one zlib
// stream per direction across blocks, and blocks a hostile peer could send (zlib bombs, absurd
// pair counts, truncation, bad names) refused with a clear error.
#include "exec/spdy/SpdyHeaderBlock.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace monocri::exec::spdy {
namespace {

std::string readFixture(const std::string& name) {
  std::ifstream file(std::string(MONOCRI_FIXTURES_DIR) + "/spdy/" + name, std::ios::binary);
  EXPECT_TRUE(file.good()) << name;
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

uint32_t u32At(std::string_view s, size_t at) {
  const auto* u = reinterpret_cast<const unsigned char*>(s.data() + at);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

std::string u32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// Compresses `raw` as a fresh zlib stream with `dictionary`, as a hostile peer could: any bytes,
// any dictionary, sync-flushed (or finished).
std::string deflateRaw(std::string_view raw, std::string_view dictionary = headerDictionary(),
                       int flush = Z_SYNC_FLUSH) {
  z_stream zs{};
  EXPECT_EQ(deflateInit(&zs, Z_BEST_COMPRESSION), Z_OK);
  if (!dictionary.empty()) {
    deflateSetDictionary(&zs, reinterpret_cast<const Bytef*>(dictionary.data()),
                         static_cast<uInt>(dictionary.size()));
  }
  std::string out(deflateBound(&zs, raw.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, flush);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// The SPDY frames of a fixture file: what follows the HTTP/1.1 prelude.
std::string framesOf(const std::string& name) {
  const std::string bytes = readFixture(name);
  return bytes.substr(bytes.find("\r\n\r\n") + 4);
}

TEST(SpdyHeaderBlock, DictionaryIsSpdy3s) {
  const std::string_view d = headerDictionary();
  EXPECT_EQ(d.size(), 1423u);
  EXPECT_EQ(d.substr(0, 11), std::string_view("\0\0\0\7options", 11));
  EXPECT_TRUE(d.ends_with("utf-,*,enq=0."));
  EXPECT_EQ(adler32(1, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size())),
            0xe3c6a7c2u);
}

TEST(SpdyHeaderBlock, DictionaryIdIsTheOneKubectlAndCrioUse) {
  // exec-echo: kubectl's first SYN_STREAM at byte 0 of the frames, its block after 18 bytes;
  // CRI-O's first SYN_REPLY, its block after 12. Both zlib headers announce a dictionary
  // (FDICT, 0x20) whose adler32 follows.
  const std::string_view d = headerDictionary();
  const uint32_t id =
      adler32(1, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size()));
  for (const auto& [file, blockAt] :
       {std::pair{"exec-echo.c2s.bin", 18}, {"exec-echo.s2c.bin", 12}}) {
    const std::string frames = framesOf(file);
    EXPECT_EQ(static_cast<unsigned char>(frames[blockAt + 1]) & 0x20, 0x20) << file;
    EXPECT_EQ(u32At(frames, blockAt + 2), id) << file;
  }
}

TEST(SpdyHeaderBlock, InflatesKubectlsPortForwardBlocksOnOneStream) {
  // port-forward.c2s: four SYN_STREAMs (frames.txt: @362 len=61, @439 len=26, @589 len=20,
  // @625 len=25; frames start at 362), blocks of 51, 16, 10 and 15 bytes.
  const std::string frames = framesOf("port-forward.c2s.bin");
  struct Block {
    size_t frameAt, blockBytes;
    HeaderList headers;
  };
  const std::vector<Block> blocks = {
      {0, 51, {{"streamtype", "error"}, {"port", "80"}, {"requestid", "0"}}},
      {439 - 362, 16, {{"port", "80"}, {"requestid", "0"}, {"streamtype", "data"}}},
      {589 - 362, 10, {{"streamtype", "error"}, {"port", "80"}, {"requestid", "1"}}},
      {625 - 362, 15, {{"requestid", "1"}, {"streamtype", "data"}, {"port", "80"}}},
  };
  HeaderBlockInflater inflater;
  for (const Block& block : blocks) {
    HeaderList headers;
    std::string error;
    ASSERT_TRUE(inflater.decode(
        std::string_view(frames).substr(block.frameAt + 18, block.blockBytes), headers, error))
        << error;
    EXPECT_EQ(headers, block.headers);
  }

  // The later blocks refer back to the earlier ones: alone, the fourth does not decode.
  HeaderBlockInflater fresh;
  HeaderList headers;
  std::string error;
  EXPECT_FALSE(fresh.decode(std::string_view(frames).substr(625 - 362 + 18, 15), headers, error));
  EXPECT_TRUE(error.starts_with("SPDY header block: ")) << error;
}

TEST(SpdyHeaderBlock, EmptyListIsStillACompressedBlock) {
  HeaderBlockDeflater deflater;
  HeaderBlockInflater inflater;
  for (int i = 0; i < 3; ++i) {
    const std::string block = deflater.encode({});
    ASSERT_GE(block.size(), 4u);
    EXPECT_TRUE(block.ends_with(std::string_view("\0\0\xff\xff", 4)));  // the sync flush
    if (i == 0) {
      // zlib header announcing the SPDY/3 dictionary, as CRI-O's first SYN_REPLY does.
      EXPECT_EQ(static_cast<unsigned char>(block[1]) & 0x20, 0x20);
      const std::string_view d = headerDictionary();
      EXPECT_EQ(u32At(block, 2),
                adler32(1, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size())));
    }
    HeaderList headers{{"stale", "entry"}};
    std::string error;
    ASSERT_TRUE(inflater.decode(block, headers, error)) << error;
    EXPECT_TRUE(headers.empty());
  }
}

TEST(SpdyHeaderBlock, ManyBlocksRoundTripOnOneStream) {
  std::mt19937 rng(31);
  HeaderBlockDeflater deflater;
  HeaderBlockInflater inflater;
  size_t compressedBytes = 0, rawBytes = 0;
  for (int round = 0; round < 3000; ++round) {
    HeaderList headers;
    if (round % 3 == 0) {
      // What kubectl sends for port-forward, over and over: compresses to a few bytes.
      headers = {{"streamtype", round % 2 ? "data" : "error"},
                 {"port", "80"},
                 {"requestid", std::to_string(round)}};
    } else {
      const size_t count = rng() % 12;
      for (size_t i = 0; i < count; ++i) {
        std::string name = "h" + std::to_string(i) + "-";
        for (size_t n = rng() % 20; n > 0; --n)
          name.push_back("abcdefghijklmnopqrstuvwxyz0123456789-:"[rng() % 38]);
        std::string value(rng() % 300, '\0');
        for (char& c : value)
          c = static_cast<char>(rng());  // any bytes, NULs (value separators) included
        headers.emplace_back(std::move(name), std::move(value));
      }
    }
    const std::string block = deflater.encode(headers);
    compressedBytes += block.size();
    rawBytes += serializeHeaderBlock(headers).size();
    HeaderList decoded;
    std::string error;
    ASSERT_TRUE(inflater.decode(block, decoded, error)) << "round " << round << ": " << error;
    ASSERT_EQ(decoded, headers) << "round " << round;
  }
  EXPECT_GT(rawBytes, 0u);
  EXPECT_GT(compressedBytes, 0u);
}

TEST(SpdyHeaderBlock, RepeatedHeadersCompressToAFewBytes) {
  HeaderBlockDeflater deflater;
  const HeaderList headers = {{"streamtype", "stdout"}};
  deflater.encode(headers);
  EXPECT_LE(deflater.encode(headers).size(), 12u);  // a back-reference and the sync marker
}

TEST(SpdyHeaderBlock, ValuesKeepTheirNulSeparators) {
  HeaderBlockDeflater deflater;
  HeaderBlockInflater inflater;
  const HeaderList headers = {{"accept", std::string("a\0b\0c", 5)}};
  HeaderList decoded;
  std::string error;
  ASSERT_TRUE(inflater.decode(deflater.encode(headers), decoded, error)) << error;
  EXPECT_EQ(decoded, headers);
}

// ---- hostile blocks ----

struct Refusal {
  std::string raw;      // the inflated block a peer sends
  std::string message;  // in the error
};

void expectRefused(const std::string& compressed, const std::string& message) {
  HeaderBlockInflater inflater;
  HeaderList headers;
  std::string error;
  EXPECT_FALSE(inflater.decode(compressed, headers, error));
  EXPECT_TRUE(headers.empty());
  EXPECT_TRUE(error.starts_with("SPDY header block: ")) << error;
  EXPECT_NE(error.find(message), std::string::npos) << "error: " << error << "\nwant: " << message;
  EXPECT_TRUE(inflater.failed());
  // The stream is broken for good: even a valid block is refused now.
  EXPECT_FALSE(inflater.decode(HeaderBlockDeflater().encode({{"a", "b"}}), headers, error));
  EXPECT_NE(error.find("earlier block"), std::string::npos) << error;
}

TEST(SpdyHeaderBlock, RefusesMalformedPairs) {
  const std::vector<Refusal> cases = {
      {"", "truncated: no pair count"},
      {u32(0) + "x", "1 bytes after the last pair"},
      {serializeHeaderBlock({{"a", "b"}}) + "zz", "2 bytes after the last pair"},
      {u32(1) + u32(1) + "a" + u32(5) + "xy", "truncated value of a"},
      {u32(1) + u32(9) + "abcd", "truncated name in pair 1"},
      {u32(2) + u32(1) + "a" + u32(0) + u32(100) + "b" + u32(0), "truncated name in pair 2"},
      {u32(1) + u32(0) + u32(1) + "v", "empty name in pair 1"},
      {serializeHeaderBlock({{"StreamType", "error"}}), "uppercase letter or NUL in pair 1"},
      {serializeHeaderBlock({{std::string("a\0b", 3), "error"}}), "uppercase letter or NUL"},
      {serializeHeaderBlock({{"port", "80"}, {"streamtype", "x"}, {"port", "81"}}),
       "duplicate name port"},
      {u32(257) + std::string(257 * 8, '\0'), "257 pairs, limit 256"},
      {u32(0x80000000u), "2147483648 pairs, limit 256"},
      {u32(200) + std::string(8, '\0'), "truncated: 200 pairs in 8 bytes"},
      {u32(1) + u32(1) + "a" + u32(0xffffffffu), "truncated value of a"},
  };
  for (const Refusal& c : cases) {
    SCOPED_TRACE(c.message);
    expectRefused(deflateRaw(c.raw), c.message);
  }
}

TEST(SpdyHeaderBlock, RefusesAZlibBomb) {
  // 1 MiB of one value compresses to about a kilobyte: inflating stops at 64 KiB.
  const std::string bomb = deflateRaw(serializeHeaderBlock({{"a", std::string(1 << 20, 'x')}}));
  EXPECT_LT(bomb.size(), 4096u);
  expectRefused(bomb, "inflates past 65536 bytes");
  // As does one block too many bytes long by one; exactly the limit is fine.
  const size_t fits = HeaderBlockInflater::kMaxInflatedBytes - 13;  // count, 2 lengths, name "a"
  expectRefused(deflateRaw(serializeHeaderBlock({{"a", std::string(fits + 1, 'y')}})),
                "inflates past 65536 bytes");
  HeaderBlockInflater inflater;
  HeaderList headers;
  std::string error;
  EXPECT_TRUE(inflater.decode(deflateRaw(serializeHeaderBlock({{"a", std::string(fits, 'y')}})),
                              headers, error))
      << error;
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0].second.size(), fits);
}

TEST(SpdyHeaderBlock, RefusesBadZlib) {
  const std::string valid = deflateRaw(serializeHeaderBlock({{"streamtype", "stdin"}}));
  expectRefused(valid.substr(0, valid.size() / 2), "truncated");
  expectRefused("not zlib at all", "zlib: incorrect header check");
  expectRefused(deflateRaw(serializeHeaderBlock({{"a", "b"}}), "another dictionary"),
                "dictionary other than SPDY/3's");
  // The peer ended its zlib stream and sent more after it.
  expectRefused(deflateRaw(serializeHeaderBlock({{"a", "b"}}), headerDictionary(), Z_FINISH) + "x",
                "bytes after the end of the zlib stream");
}

TEST(SpdyHeaderBlock, ABlockWithoutADictionaryIsAccepted) {
  // The spec says to use the dictionary; zlib streams that do not need it decode the same.
  HeaderBlockInflater inflater;
  HeaderList headers;
  std::string error;
  ASSERT_TRUE(inflater.decode(deflateRaw(serializeHeaderBlock({{"a", "b"}}), ""), headers, error))
      << error;
  EXPECT_EQ(headers, (HeaderList{{"a", "b"}}));
}

TEST(SpdyHeaderBlock, InflatersAndDeflatersMove) {
  HeaderBlockDeflater deflater;
  HeaderBlockInflater inflater;
  HeaderList headers;
  std::string error;
  ASSERT_TRUE(inflater.decode(deflater.encode({{"a", "1"}}), headers, error));
  HeaderBlockDeflater movedDeflater = std::move(deflater);
  HeaderBlockInflater movedInflater = std::move(inflater);
  ASSERT_TRUE(movedInflater.decode(movedDeflater.encode({{"a", "2"}}), headers, error)) << error;
  EXPECT_EQ(headers, (HeaderList{{"a", "2"}}));
}

}  // namespace
}  // namespace monocri::exec::spdy
