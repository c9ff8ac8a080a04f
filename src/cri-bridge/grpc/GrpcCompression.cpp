#include "cri-bridge/grpc/GrpcCompression.h"

#include <zlib.h>

#include <array>

namespace monocri::grpc {

namespace {
constexpr int kGzipWindowBits = 15 + 16;  // zlib: 15-bit window, gzip header and trailer
}

bool isSupportedEncoding(std::string_view encoding) {
  return encoding == "identity" || encoding == "gzip";
}

std::optional<std::string> gunzip(std::string_view compressed, size_t maxBytes, bool& tooLarge) {
  tooLarge = false;
  z_stream zs{};
  if (inflateInit2(&zs, kGzipWindowBits) != Z_OK) return std::nullopt;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  zs.avail_in = static_cast<uInt>(compressed.size());
  std::string out;
  std::array<char, 16 * 1024> chunk;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk.data());
    zs.avail_out = chunk.size();
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    const size_t produced = chunk.size() - zs.avail_out;
    if (out.size() + produced > maxBytes) {
      tooLarge = true;
      break;
    }
    out.append(chunk.data(), produced);
    if (rc == Z_OK && produced == 0 && zs.avail_in == 0) break;  // truncated input
  }
  inflateEnd(&zs);
  // Trailing bytes after the gzip member are not a valid message either.
  if (rc != Z_STREAM_END || tooLarge || zs.avail_in != 0) return std::nullopt;
  return out;
}

std::string gzip(std::string_view data) {
  z_stream zs{};
  deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kGzipWindowBits, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace monocri::grpc
