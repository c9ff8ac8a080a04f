// The HTTP/1.1 request that opens a connection to the streaming server, and the response that
// answers it. kubelet relays `kubectl exec/attach/port-forward` as
//
//   POST /exec/<token> HTTP/1.1            GET /exec/<token>?command=sh&stdin=1 HTTP/1.1
//   Connection: Upgrade                    Connection: Upgrade
//   Upgrade: SPDY/3.1                      Upgrade: websocket
//   X-Stream-Protocol-Version: v4...       Sec-WebSocket-Protocol: v4.channel.k8s.io, ...
//   Content-Length: 0
//   <empty line>  ← the head ends here; the client's first frames may follow at once
//
// The parser is http-parser (nodejs/http-parser, Debian's libhttp-parser) driven through its
// callbacks, with the checks its non-strict Debian build leaves out done here. It is resumable:
// bytes may come in pieces of any size, split anywhere, with the same result (and the same
// error). It reads the head only, and stops right after it: what follows belongs to the upgraded
// protocol and stays with the caller. Hostile input is expected, and memory stays bounded: the
// head is at most kMaxHeaderBytes, with at most kMaxHeaders header lines.
#pragma once

#include <http_parser.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace monocri::exec::http {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path and query, e.g. "/exec/abc?command=sh&stdin=1"
  std::string path;    // target without the query (and fragment); percent-decoding NOT applied
  std::string query;   // after '?', without it; empty if none
  int versionMajor = 1, versionMinor = 1;
  // Names lowercased, values trimmed (spaces and tabs), in order; repeated headers kept as
  // separate entries. An obsolete line folding inside a value becomes one space.
  std::vector<std::pair<std::string, std::string>> headers;
  // http-parser's upgrade flag: Connection: upgrade and an Upgrade header, or CONNECT.
  bool upgrade = false;

  // The first value of a header (name compared case-insensitively), nullptr if absent.
  const std::string* header(std::string_view name) const;
  // Every value of a header: repeated lines, and each line split at commas, trimmed, empty items
  // dropped (X-Stream-Protocol-Version and Sec-WebSocket-Protocol come both ways).
  std::vector<std::string> headerValues(std::string_view name) const;
  // Whether a comma-separated header has this token, case-insensitively (Connection: keep-alive,
  // Upgrade).
  bool headerHasToken(std::string_view name, std::string_view token) const;
};

class HttpRequestParser {
 public:
  // Bytes of the head: any empty lines before the request line, the request line, the header
  // lines and the empty line that ends the head, line ends included. kubelet's upgrade requests
  // are about 480 bytes.
  static constexpr size_t kMaxHeaderBytes = 16 * 1024;
  // Header lines (a folded line counts once).
  static constexpr size_t kMaxHeaders = 100;

  enum class Result { kNeedMore, kComplete, kError };

  HttpRequestParser();

  // Feeds the bytes that follow those fed before.
  // - kNeedMore: all of `bytes` belong to the head (consumed == bytes.size()), which goes on.
  // - kComplete: the head ended; `consumed` is how many bytes of THIS call belong to it. The rest
  //   (e.g. SPDY frames the client sent right behind the upgrade request) belongs to the upgraded
  //   protocol and the caller keeps it. A body is not read: a request announcing one (non-zero
  //   Content-Length, or any Transfer-Encoding) is an error.
  // - kError: errorStatus() is the HTTP status to answer and error() says what was wrong:
  //   400 malformed (or a body), 431 a head over kMaxHeaderBytes or with more than kMaxHeaders
  //   lines, 505 an HTTP version other than 1.0 and 1.1. `consumed` and headBytes() stop before
  //   the byte where the error was found.
  // After kComplete or kError, further feeds return the same result with consumed 0. An empty
  // `bytes` returns the current state (kNeedMore before the end) and is not an end of input.
  // Whatever the split of the bytes, the result, the request and the error are the same.
  Result feed(std::string_view bytes, size_t& consumed);

  // The request (filled in as the head is read; whole once feed() returned kComplete).
  const HttpRequest& request() const { return request_; }
  // Moves the request out; request() is empty afterwards.
  HttpRequest takeRequest() { return std::move(request_); }
  // 0 unless feed() returned kError.
  int errorStatus() const { return errorStatus_; }
  // "" unless feed() returned kError; e.g. "malformed request at byte 25: invalid character in
  // header name", "request body not supported (Content-Length: 5)".
  const std::string& error() const { return error_; }
  // Bytes of the head fed so far (the head's length once complete).
  size_t headBytes() const { return headBytes_; }

 private:
  enum class HeaderPart { kNone, kName, kValue };
  enum class RequestLine { kBefore, kIn, kDone };

  static int onUrl(http_parser* parser, const char* at, size_t length);
  static int onHeaderField(http_parser* parser, const char* at, size_t length);
  static int onHeaderValue(http_parser* parser, const char* at, size_t length);
  static int onHeadersComplete(http_parser* parser);
  static const http_parser_settings kSettings;

  // What Debian's http-parser, built without HTTP_PARSER_STRICT, lets through, checked on the
  // bytes it took: the index of the first wrong byte and what is wrong, or npos.
  size_t checkStrict(std::string_view parsed, std::string_view& what);
  // An error found in a callback, kept until the head ends (the first one only).
  void defer(int status, std::string message);
  size_t offsetOf(const char* at) const {
    return headBytes_ + static_cast<size_t>(at - chunkStart_);
  }
  void finishHeaderLine();
  void fail(int status, std::string message);

  http_parser parser_{};
  HttpRequest request_;
  Result result_ = Result::kNeedMore;
  int errorStatus_ = 0;
  std::string error_;
  size_t headBytes_ = 0;  // before the bytes in http_parser_execute, during the call
  // The bytes in http_parser_execute, during the call.
  const char* chunkStart_ = nullptr;
  const char* chunkEnd_ = nullptr;

  // Callbacks.
  HeaderPart part_ = HeaderPart::kNone;
  bool valueLineEnded_ = false;  // the value's last piece ended at a line end (next: a folding)
  bool foldWhitespace_ = false;  // after a folding: whitespace still to skip
  size_t headerLines_ = 0;       // counted past kMaxHeaders, though no more are kept
  bool headComplete_ = false;
  int deferredStatus_ = 0;  // found in a callback, reported when the head ends
  std::string deferredError_;
  int verdictStatus_ = 0;  // on_headers_complete's verdict, when it refused the request
  std::string verdictError_;

  // checkStrict().
  bool afterCr_ = false;
  RequestLine requestLine_ = RequestLine::kBefore;
  size_t requestLineWords_ = 0;
  bool inWord_ = false;
  std::string wordStart_;  // the first bytes of the request line's current word
};

// The reason phrase of a status ("Switching Protocols", "Bad Request"); "Unknown" for a code
// without one.
std::string_view reasonPhrase(int status);

// A response head and optional body: "HTTP/1.1 <status> <reason>\r\n", the headers in order,
// "Content-Length: <body size>" when there is a body or the status allows one (not 1xx, 204),
// "\r\n", the body. The headers must not include Content-Length; CR, LF and NUL in names and
// values are written as spaces, so that no value can end the head.
std::string responseBytes(int status,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view body = {});

// The percent-decoded values of a query parameter, in order:
// queryValues("command=ls&command=-l%20x&ports=80,8080", "command") == {"ls", "-l x"}.
// Parameters are separated by '&' (empty ones skipped), names and values decoded alike ('+' is a
// space, "%2F" is '/'), a parameter without '=' has the value "". std::nullopt if any name or
// value of the query has a malformed escape ('%' not followed by two hex digits), whatever the
// parameter asked for: such a query is malformed as a whole.
std::optional<std::vector<std::string>> queryValues(std::string_view query, std::string_view name);

}  // namespace monocri::exec::http
