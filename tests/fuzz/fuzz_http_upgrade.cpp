// The streaming server's upgrade request reader on arbitrary bytes. Beyond not crashing:
// - every feed takes at most what it was given, all of it while the head goes on, and once the
//   head is over (or wrong) nothing more, with the same result;
// - fed whole or in pieces of any size, the result, the head's length, the request and the error
//   are the same; bytes behind a complete head are never taken;
// - a complete request is sane: a method, a target holding its path and query, HTTP/1.0 or 1.1,
//   at most kMaxHeaders headers with lowercase names and trimmed values that no line end is in,
//   a head of at most kMaxHeaderBytes ending in '\n'; the head's bytes alone give it again;
// - an error is 400, 431 or 505, with a message;
// - a response written with the request's headers has its head end where it should, and a query
//   value percent-encoded any way decodes back to itself.
//
// Input: the bytes a client sends (the seeds are real upgrade requests); how they are split is
// drawn from a generator seeded by the input.
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "FuzzScratch.h"
#include "exec/http/HttpRequestParser.h"

using namespace monocri::exec::http;
using Result = HttpRequestParser::Result;

namespace {

struct Run {
  Result result = Result::kNeedMore;
  size_t headEnd = 0;  // the sum of `consumed`
  HttpRequest request;
  int errorStatus = 0;
  std::string error;
};

// Feeds `bytes` in pieces drawn by `random` (whole if `random` is null).
Run run(std::string_view bytes, std::minstd_rand* random, size_t maxPiece) {
  HttpRequestParser parser;
  Run out;
  for (size_t at = 0; at < bytes.size();) {
    const size_t n = random == nullptr ? bytes.size() : 1 + (*random)() % maxPiece;
    const std::string_view piece = bytes.substr(at, n);
    at += piece.size();
    size_t consumed = SIZE_MAX;
    const Result result = parser.feed(piece, consumed);
    CHECK(consumed <= piece.size());
    if (out.result != Result::kNeedMore) {
      CHECK(result == out.result);
      CHECK(consumed == 0);
      continue;
    }
    if (result == Result::kNeedMore) CHECK(consumed == piece.size());
    out.result = result;
    out.headEnd += consumed;
  }
  size_t consumed = SIZE_MAX;
  CHECK(parser.feed({}, consumed) == out.result);
  CHECK(consumed == 0);
  CHECK(parser.headBytes() == out.headEnd);
  CHECK(out.headEnd <= HttpRequestParser::kMaxHeaderBytes);
  out.errorStatus = parser.errorStatus();
  out.error = parser.error();
  out.request = parser.takeRequest();
  return out;
}

bool sameRequest(const HttpRequest& a, const HttpRequest& b) {
  return a.method == b.method && a.target == b.target && a.path == b.path && a.query == b.query &&
         a.versionMajor == b.versionMajor && a.versionMinor == b.versionMinor &&
         a.headers == b.headers && a.upgrade == b.upgrade;
}

bool sameRun(const Run& a, const Run& b) {
  if (a.result != b.result || a.headEnd != b.headEnd) return false;
  if (a.result == Result::kError) return a.errorStatus == b.errorStatus && a.error == b.error;
  return a.result != Result::kComplete || sameRequest(a.request, b.request);
}

bool hasLineEnd(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != s.npos;
}

void checkComplete(std::string_view input, const Run& whole) {
  const HttpRequest& request = whole.request;
  CHECK(whole.headEnd > 0 && input[whole.headEnd - 1] == '\n');
  CHECK(!request.method.empty());
  for (char c : request.method)
    CHECK((c >= 'A' && c <= 'Z') || c == '-');
  CHECK(!request.target.empty() && !hasLineEnd(request.target));
  CHECK(request.target.find(' ') == std::string::npos);
  CHECK(request.target.find(request.path) != std::string::npos);
  CHECK(request.query.empty() || request.target.find("?" + request.query) != std::string::npos);
  CHECK(request.versionMajor == 1 && (request.versionMinor == 0 || request.versionMinor == 1));
  CHECK(request.headers.size() <= HttpRequestParser::kMaxHeaders);
  for (const auto& [name, value] : request.headers) {
    CHECK(!name.empty());
    for (char c : name)
      CHECK(c > ' ' && c < 0x7f && !(c >= 'A' && c <= 'Z') && c != ':');
    CHECK(!hasLineEnd(value));
    if (!value.empty()) {
      CHECK(value.front() != ' ' && value.front() != '\t');
      CHECK(value.back() != ' ' && value.back() != '\t');
    }
    CHECK(request.header(name) != nullptr);
    for (const std::string& item : request.headerValues(name)) {
      CHECK(!item.empty() && item.find(',') == std::string::npos);
      CHECK(item.front() != ' ' && item.back() != ' ');
      CHECK(request.headerHasToken(name, item));
    }
  }
  if (!request.headers.empty()) {
    CHECK(request.header(request.headers[0].first) == &request.headers[0].second);
  }

  // The head alone gives the same request.
  const Run headOnly = run(input.substr(0, whole.headEnd), nullptr, 0);
  CHECK(sameRun(headOnly, whole));

  // A response echoing the headers: its head ends right before the body.
  const std::string response = responseBytes(400, request.headers, "body");
  CHECK(response.find("\r\n\r\n") == response.size() - 8);
  (void)queryValues(request.query, "command");
}

// Percent-encodes `value` the ways a client may: unreserved bytes as is or escaped, spaces as
// '+' or "%20", hex digits in either case.
std::string encode(std::string_view value, std::minstd_rand& random) {
  static const char* const kHex[] = {"0123456789ABCDEF", "0123456789abcdef"};
  std::string out;
  for (unsigned char c : value) {
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
    const uint32_t choice = random();
    if (unreserved && choice % 4 != 0) {
      out += static_cast<char>(c);
    } else if (c == ' ' && choice % 2 == 0) {
      out += '+';
    } else {
      const char* hex = kHex[(choice >> 4) % 2];
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  uint32_t seed = static_cast<uint32_t>(size) * 2654435761u;
  for (size_t i = 0; i < size && i < 64; ++i)
    seed = seed * 31 + data[size - 1 - i];
  std::minstd_rand random(seed);

  const Run whole = run(input, nullptr, 0);
  if (whole.result == Result::kError) {
    CHECK(whole.errorStatus == 400 || whole.errorStatus == 431 || whole.errorStatus == 505);
    CHECK(!whole.error.empty());
  } else {
    CHECK(whole.errorStatus == 0 && whole.error.empty());
  }
  if (whole.result == Result::kComplete) checkComplete(input, whole);

  // Split anywhere: the same. With bytes behind the input, the same once the input decided.
  static const size_t kMaxPieces[] = {1, 3, 16, 256};
  const size_t maxPiece = kMaxPieces[random() % 4];
  const Run pieces = run(input, &random, maxPiece);
  if (whole.result == Result::kNeedMore) {
    CHECK(pieces.result == Result::kNeedMore && pieces.headEnd == input.size());
  } else {
    CHECK(sameRun(pieces, whole));
    static constexpr char kBehind[] = "\x80\x03\x00\x01\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    const std::string more = std::string(input) + std::string(kBehind, sizeof(kBehind) - 1);
    CHECK(sameRun(run(more, &random, maxPiece), whole));
  }

  // Query values decode back to what was encoded, whatever the bytes.
  const std::string value(input.substr(0, 256));
  const std::vector<std::pair<std::string, std::string>> parameters = {
      {"x", "1"}, {"v", value}, {"vv", "2"}, {"v", ""}, {value, "v"}};
  std::string query;
  for (const auto& [name, parameterValue] : parameters) {
    if (!query.empty()) query += '&';
    query += encode(name, random);
    // A parameter without '=' has the value "".
    if (!parameterValue.empty() || random() % 2 == 0) query += "=" + encode(parameterValue, random);
  }
  for (const std::string& name : {std::string("v"), value}) {
    std::vector<std::string> expected;
    for (const auto& [parameterName, parameterValue] : parameters) {
      if (parameterName == name) expected.push_back(parameterValue);
    }
    const auto values = queryValues(query, name);
    CHECK(values.has_value() && *values == expected);
  }
  return 0;
}
