#include "exec/spdy/SpdyHeaderBlock.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

namespace monocri::exec::spdy {

namespace {

// The SPDY/3 dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1): header names and common
// values, each with a 32-bit big-endian length in front as in a header block, then a run of
// status codes, reason phrases, dates and content types with no lengths.
constexpr std::array<std::string_view, 65> kDictionaryWords = {
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
};
constexpr std::string_view kDictionaryTail =
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information"
    "204 No Content"
    "301 Moved Permanently"
    "400 Bad Request"
    "401 Unauthorized"
    "403 Forbidden"
    "404 Not Found"
    "500 Internal Server Error"
    "501 Not Implemented"
    "503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,"
    "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch"
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

void appendU32(std::string& out, uint32_t v) {
  const char bytes[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                         static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(bytes, 4);
}

uint32_t readU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

Bytef* asBytes(const char* p) {
  return reinterpret_cast<Bytef*>(const_cast<char*>(p));
}

// The deflater's parameters (see the header): a 2^11-byte window holds the whole dictionary.
constexpr int kDeflateWindowBits = 11;
constexpr int kDeflateMemLevel = 1;
// The inflater accepts any window a peer chose (Go's flate always uses 32 KiB).
constexpr int kInflateWindowBits = 15;

bool isNameByteAllowed(char c) {
  return c != '\0' && !(c >= 'A' && c <= 'Z');
}

}  // namespace

std::string_view headerDictionary() {
  static const std::string dictionary = [] {
    std::string d;
    for (std::string_view word : kDictionaryWords) {
      appendU32(d, static_cast<uint32_t>(word.size()));
      d.append(word);
    }
    d.append(kDictionaryTail);
    return d;
  }();
  return dictionary;
}

std::string serializeHeaderBlock(const HeaderList& headers) {
  size_t size = 4;
  for (const auto& [name, value] : headers)
    size += 8 + name.size() + value.size();
  std::string raw;
  raw.reserve(size);
  appendU32(raw, static_cast<uint32_t>(headers.size()));
  for (const auto& [name, value] : headers) {
    appendU32(raw, static_cast<uint32_t>(name.size()));
    raw.append(name);
    appendU32(raw, static_cast<uint32_t>(value.size()));
    raw.append(value);
  }
  return raw;
}

bool parseHeaderBlock(std::string_view inflated, HeaderList& out, std::string& error) {
  out.clear();
  auto fail = [&](std::string what) {
    error = "SPDY header block: " + std::move(what);
    out.clear();
    return false;
  };
  if (inflated.size() < 4) return fail("truncated: no pair count");
  const uint32_t count = readU32(inflated.data());
  inflated.remove_prefix(4);
  if (count > HeaderBlockInflater::kMaxPairs) {
    return fail(std::to_string(count) + " pairs, limit " +
                std::to_string(HeaderBlockInflater::kMaxPairs));
  }
  // Each pair takes at least its two lengths: checked before anything is allocated for them.
  if (uint64_t{count} * 8 > inflated.size()) {
    return fail("truncated: " + std::to_string(count) + " pairs in " +
                std::to_string(inflated.size()) + " bytes");
  }
  out.reserve(count);
  auto takeString = [&](std::string_view& field) {
    if (inflated.size() < 4) return false;
    const uint32_t length = readU32(inflated.data());
    inflated.remove_prefix(4);
    if (length > inflated.size()) return false;
    field = inflated.substr(0, length);
    inflated.remove_prefix(length);
    return true;
  };
  for (uint32_t i = 0; i < count; ++i) {
    std::string_view name, value;
    if (!takeString(name)) return fail("truncated name in pair " + std::to_string(i + 1));
    if (name.empty()) return fail("empty name in pair " + std::to_string(i + 1));
    if (!std::all_of(name.begin(), name.end(), isNameByteAllowed)) {
      return fail("name with an uppercase letter or NUL in pair " + std::to_string(i + 1));
    }
    if (!takeString(value)) return fail("truncated value of " + std::string(name));
    out.emplace_back(name, value);
  }
  if (!inflated.empty()) {
    return fail(std::to_string(inflated.size()) + " bytes after the last pair");
  }
  if (out.size() > 1) {
    std::vector<std::string_view> names;
    names.reserve(out.size());
    for (const auto& pair : out)
      names.push_back(pair.first);
    std::sort(names.begin(), names.end());
    const auto duplicate = std::adjacent_find(names.begin(), names.end());
    if (duplicate != names.end()) return fail("duplicate name " + std::string(*duplicate));
  }
  return true;
}

// ---- inflater ----

struct HeaderBlockInflater::Stream {
  z_stream zs{};
  Stream() {
    // Fails only when out of memory.
    if (inflateInit2(&zs, kInflateWindowBits) != Z_OK) std::abort();
  }
  ~Stream() { inflateEnd(&zs); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};

HeaderBlockInflater::HeaderBlockInflater() = default;
HeaderBlockInflater::~HeaderBlockInflater() = default;
HeaderBlockInflater::HeaderBlockInflater(HeaderBlockInflater&&) noexcept = default;
HeaderBlockInflater& HeaderBlockInflater::operator=(HeaderBlockInflater&&) noexcept = default;

bool HeaderBlockInflater::decode(std::string_view compressed, HeaderList& out, std::string& error) {
  out.clear();
  if (failed_) {
    error = "SPDY header block: the zlib stream failed on an earlier block";
    return false;
  }
  auto fail = [&](std::string what) {
    failed_ = true;
    stream_.reset();  // no use for it any more
    error = "SPDY header block: " + std::move(what);
    return false;
  };
  if (!stream_) stream_ = std::make_unique<Stream>();
  z_stream& zs = stream_->zs;
  zs.next_in = asBytes(compressed.data());
  zs.avail_in = static_cast<uInt>(compressed.size());

  // Output grows geometrically up to one byte past the limit: reaching that byte is the error.
  std::string inflated;
  size_t produced = 0;
  for (;;) {
    if (produced == inflated.size()) {
      if (inflated.size() > kMaxInflatedBytes) {
        return fail("inflates past " + std::to_string(kMaxInflatedBytes) + " bytes");
      }
      inflated.resize(std::min(std::max<size_t>(256, inflated.size() * 2), kMaxInflatedBytes + 1));
    }
    zs.next_out = asBytes(inflated.data() + produced);
    zs.avail_out = static_cast<uInt>(inflated.size() - produced);
    const int rc = inflate(&zs, Z_SYNC_FLUSH);
    produced = inflated.size() - zs.avail_out;
    if (rc == Z_NEED_DICT) {
      const std::string_view dictionary = headerDictionary();
      if (inflateSetDictionary(&zs, asBytes(dictionary.data()),
                               static_cast<uInt>(dictionary.size())) != Z_OK) {
        return fail("zlib stream wants a dictionary other than SPDY/3's");
      }
      continue;
    }
    if (rc == Z_STREAM_END) {
      // The peer ended its zlib stream: this block may still be whole, the next cannot be.
      if (zs.avail_in != 0) return fail("bytes after the end of the zlib stream");
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return fail(std::string("zlib: ") + (zs.msg != nullptr ? zs.msg : "inflate error"));
    }
    if (zs.avail_out != 0) {
      // inflate stopped with room left: it used all the input it could.
      if (zs.avail_in != 0) return fail("zlib made no progress");
      break;
    }
  }
  inflated.resize(produced);
  if (!parseHeaderBlock(inflated, out, error)) {
    failed_ = true;
    stream_.reset();
    return false;
  }
  return true;
}

// ---- deflater ----

struct HeaderBlockDeflater::Stream {
  z_stream zs{};
  Stream() {
    // Fails only when out of memory (the parameters are valid).
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kDeflateWindowBits, kDeflateMemLevel,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
      std::abort();
    }
    const std::string_view dictionary = headerDictionary();
    if (deflateSetDictionary(&zs, asBytes(dictionary.data()),
                             static_cast<uInt>(dictionary.size())) != Z_OK) {
      std::abort();
    }
  }
  ~Stream() { deflateEnd(&zs); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};

HeaderBlockDeflater::HeaderBlockDeflater() = default;
HeaderBlockDeflater::~HeaderBlockDeflater() = default;
HeaderBlockDeflater::HeaderBlockDeflater(HeaderBlockDeflater&&) noexcept = default;
HeaderBlockDeflater& HeaderBlockDeflater::operator=(HeaderBlockDeflater&&) noexcept = default;

std::string HeaderBlockDeflater::encode(const HeaderList& headers) {
  if (!stream_) stream_ = std::make_unique<Stream>();
  z_stream& zs = stream_->zs;
  const std::string raw = serializeHeaderBlock(headers);
  zs.next_in = asBytes(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  // Room for the zlib header and dictionary id, the data, and the sync marker; grown if short.
  std::string out(raw.size() + raw.size() / 8 + 64, '\0');
  size_t produced = 0;
  for (;;) {
    zs.next_out = asBytes(out.data() + produced);
    zs.avail_out = static_cast<uInt>(out.size() - produced);
    const int rc = deflate(&zs, Z_SYNC_FLUSH);
    produced = out.size() - zs.avail_out;
    if (rc != Z_OK && rc != Z_BUF_ERROR) std::abort();  // a stream misused: a bug here
    if (zs.avail_out != 0) break;                       // all input in, flush complete
    out.resize(out.size() * 2);
  }
  out.resize(produced);
  return out;
}

}  // namespace monocri::exec::spdy
