#include "exec/http/HttpRequestParser.h"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace monocri::exec::http {
namespace {

// Optional whitespace around header values and list items (RFC 9110 5.6.3).
constexpr std::string_view kWhitespace = " \t";

std::string_view trim(std::string_view s) {
  const size_t begin = s.find_first_not_of(kWhitespace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kWhitespace) - begin + 1);
}

char asciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return asciiLower(x) == asciiLower(y);
         });
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding, as Go's url.QueryUnescape (which Kubernetes uses).
std::optional<std::string> queryUnescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] != '%') {
      out += s[i];
    } else {
      if (s.size() - i < 3) return std::nullopt;
      const int high = hexValue(s[i + 1]), low = hexValue(s[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out += static_cast<char>(high * 16 + low);
      i += 2;
    }
  }
  return out;
}

// A header name or value as written in a response: nothing in it may end a line.
void appendHeaderText(std::string& out, std::string_view text) {
  for (char c : text)
    out += (c == '\r' || c == '\n' || c == '\0') ? ' ' : c;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [headerName, value] : headers) {
    if (equalsIgnoreCase(headerName, name)) return &value;
  }
  return nullptr;
}

std::vector<std::string> HttpRequest::headerValues(std::string_view name) const {
  std::vector<std::string> values;
  for (const auto& [headerName, value] : headers) {
    if (!equalsIgnoreCase(headerName, name)) continue;
    std::string_view rest = value;
    while (true) {
      const size_t comma = rest.find(',');
      const std::string_view item = trim(rest.substr(0, comma));
      if (!item.empty()) values.emplace_back(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return values;
}

bool HttpRequest::headerHasToken(std::string_view name, std::string_view token) const {
  const std::vector<std::string> values = headerValues(name);
  return std::any_of(values.begin(), values.end(),
                     [token](const std::string& value) { return equalsIgnoreCase(value, token); });
}

// on_headers_complete returns 2: "no body, and nothing after this message is HTTP", so that
// http_parser_execute() stops right after the head's last '\n' whatever the request (returning 1
// only skips the body of a request, and the parser would go on to read the upgraded protocol's
// bytes as a next request). on_message_complete is not needed: the head is all we read.
constinit const http_parser_settings HttpRequestParser::kSettings = {
    .on_message_begin = nullptr,
    .on_url = &HttpRequestParser::onUrl,
    .on_status = nullptr,
    .on_header_field = &HttpRequestParser::onHeaderField,
    .on_header_value = &HttpRequestParser::onHeaderValue,
    .on_headers_complete = &HttpRequestParser::onHeadersComplete,
    .on_body = nullptr,
    .on_message_complete = nullptr,
    .on_chunk_header = nullptr,
    .on_chunk_complete = nullptr,
};

HttpRequestParser::HttpRequestParser() {
  http_parser_init(&parser_, HTTP_REQUEST);
}

// Which error a request gets must not depend on how its bytes were split, so errors are told in
// the order of the bytes that show them:
// - http-parser's own errors and checkStrict()'s, at the byte where they are found (whichever
//   is first: checkStrict() looks at the bytes the parser took, up to its error);
// - errors the callbacks find (deferred): a callback may come for a piece of a name at the end of
//   the bytes fed, or only for the whole name, after the parser took bytes that may be wrong
//   themselves. They are told when the head ends, unless a byte-placed error came first;
// - over kMaxHeaderBytes: 431, when the head has taken that much and is not over.
HttpRequestParser::Result HttpRequestParser::feed(std::string_view bytes, size_t& consumed) {
  consumed = 0;
  // http_parser_execute() takes 0 bytes for the end of the input: never pass it 0.
  if (result_ != Result::kNeedMore || bytes.empty()) return result_;
  // Never more than the head may still have: the parser is not even shown a byte beyond.
  const size_t length = std::min(bytes.size(), kMaxHeaderBytes - headBytes_);
  parser_.data = this;  // here rather than once: the parser may have been moved
  chunkStart_ = bytes.data();
  chunkEnd_ = bytes.data() + length;
  const size_t parsed = http_parser_execute(&parser_, &kSettings, bytes.data(), length);
  chunkStart_ = chunkEnd_ = nullptr;
  // On an error, `consumed` and headBytes() stop before the byte found wrong.
  std::string_view wrong;
  if (const size_t at = checkStrict(bytes.substr(0, parsed), wrong); at != std::string_view::npos) {
    consumed = at;
    headBytes_ += at;
    fail(400,
         "malformed request at byte " + std::to_string(headBytes_) + ": " + std::string(wrong));
    return result_;
  }
  consumed = parsed;
  headBytes_ += parsed;

  const auto parserError = HTTP_PARSER_ERRNO(&parser_);
  if (parserError == HPE_CB_headers_complete && verdictStatus_ != 0) {
    fail(verdictStatus_, std::move(verdictError_));
  } else if (parserError != HPE_OK) {
    fail(parserError == HPE_HEADER_OVERFLOW ? 431 : 400,
         "malformed request at byte " + std::to_string(headBytes_) + ": " +
             http_errno_description(parserError) + " (" + http_errno_name(parserError) + ")");
  } else if (headComplete_) {
    result_ = Result::kComplete;
  } else if (parsed != length) {
    // Only an upgrade or a pause stops the parser early, and neither happens before the end of
    // the head. Answered, though, rather than trusted.
    fail(400, "malformed request: the parser stopped at byte " + std::to_string(headBytes_));
  } else if (headBytes_ >= kMaxHeaderBytes) {
    // The head is not over, so it has at least one byte more.
    fail(431, "request head over " + std::to_string(kMaxHeaderBytes) + " bytes");
  }
  return result_;
}

// Debian builds http-parser with HTTP_PARSER_STRICT=0, which lets a CR stand for CRLF (the byte
// after it is taken for the LF, whatever it is), takes any word starting with 'H' for "HTTP/"
// (and "ICE/" for it too), and lets spaces into header names and control bytes into the target;
// and no build checks the first byte of a header value. The line ends and the protocol name are
// checked here, on the bytes the parser took; names, values and the target in the callbacks.
size_t HttpRequestParser::checkStrict(std::string_view parsed, std::string_view& what) {
  for (size_t i = 0; i < parsed.size(); ++i) {
    const char c = parsed[i];
    if (afterCr_ && c != '\n') {
      what = "CR not followed by LF";
      return i;
    }
    afterCr_ = c == '\r';
    if (requestLine_ == RequestLine::kDone) continue;
    if (c == '\r' || c == '\n') {
      if (requestLine_ == RequestLine::kBefore) continue;  // empty lines before it are allowed
      requestLine_ = RequestLine::kDone;
      // "<method> <target> HTTP/<major>.<minor>" (the parser has checked the digits); HTTP/0.9's
      // "<method> <target>" is for onHeadersComplete to refuse.
      if (requestLineWords_ >= 3 && wordStart_ != "HTTP/") {
        what = "the request line does not end in HTTP/<version>";
        return i;
      }
      continue;
    }
    requestLine_ = RequestLine::kIn;
    if (c == ' ') {
      inWord_ = false;
      continue;
    }
    if (!inWord_) {
      inWord_ = true;
      ++requestLineWords_;
      wordStart_.clear();
    }
    if (wordStart_.size() < 5) wordStart_ += c;
  }
  return std::string_view::npos;
}

void HttpRequestParser::fail(int status, std::string message) {
  result_ = Result::kError;
  errorStatus_ = status;
  error_ = std::move(message);
}

void HttpRequestParser::defer(int status, std::string message) {
  if (deferredStatus_ != 0) return;
  deferredStatus_ = status;
  deferredError_ = std::move(message);
}

int HttpRequestParser::onUrl(http_parser* parser, const char* at, size_t length) {
  auto& self = *static_cast<HttpRequestParser*>(parser->data);
  for (size_t i = 0; i < length; ++i) {
    const auto c = static_cast<unsigned char>(at[i]);
    if (c <= ' ' || c >= 0x7f) {
      self.defer(400, "malformed request at byte " + std::to_string(self.offsetOf(at + i)) +
                          ": invalid character in the request target");
      break;
    }
  }
  self.request_.target.append(at, length);
  return 0;
}

int HttpRequestParser::onHeaderField(http_parser* parser, const char* at, size_t length) {
  auto& self = *static_cast<HttpRequestParser*>(parser->data);
  if (self.part_ != HeaderPart::kName) {
    self.finishHeaderLine();
    self.part_ = HeaderPart::kName;
    if (++self.headerLines_ <= kMaxHeaders) {
      self.request_.headers.emplace_back();
    } else if (self.headerLines_ == kMaxHeaders + 1) {
      self.defer(431, "more than " + std::to_string(kMaxHeaders) + " header lines");
    }
  }
  for (size_t i = 0; i < length; ++i) {
    if (at[i] == ' ') {  // the only byte outside RFC 9110's tchar that the parser lets through
      self.defer(400, "malformed request at byte " + std::to_string(self.offsetOf(at + i)) +
                          ": invalid character in header name");
      break;
    }
  }
  if (self.headerLines_ > kMaxHeaders) return 0;
  std::string& name = self.request_.headers.back().first;
  for (size_t i = 0; i < length; ++i)
    name += asciiLower(at[i]);
  return 0;
}

int HttpRequestParser::onHeaderValue(http_parser* parser, const char* at, size_t length) {
  auto& self = *static_cast<HttpRequestParser*>(parser->data);
  if (self.part_ == HeaderPart::kNone) {  // the parser never does this
    self.defer(400, "malformed request: a header value without a name");
    return 0;
  }
  // A piece that comes after one that ended at a line end: the value goes on after an obsolete
  // line folding (CRLF, then whitespace), which becomes one space (RFC 9112 5.2).
  const bool folded = self.part_ == HeaderPart::kValue && self.valueLineEnded_;
  self.part_ = HeaderPart::kValue;
  for (size_t i = 0; i < length; ++i) {
    // http-parser checks the bytes of a value but its first: field-content is VCHAR, obs-text,
    // SP and HTAB (RFC 9110 5.5).
    const auto c = static_cast<unsigned char>(at[i]);
    if ((c < ' ' && c != '\t') || c == 0x7f) {
      self.defer(400, "malformed request at byte " + std::to_string(self.offsetOf(at + i)) +
                          ": invalid character in header value");
      break;
    }
  }
  // A piece ends before the end of the bytes fed only at the CR or LF that ends its line.
  self.valueLineEnded_ = at + length < self.chunkEnd_;
  if (self.headerLines_ > kMaxHeaders) return 0;
  std::string& value = self.request_.headers.back().second;
  std::string_view piece(at, length);
  if (folded) {
    value.erase(value.find_last_not_of(kWhitespace) + 1);
    value += ' ';
    self.foldWhitespace_ = true;
  }
  if (self.foldWhitespace_) {
    const size_t text = piece.find_first_not_of(kWhitespace);
    piece.remove_prefix(text == std::string_view::npos ? piece.size() : text);
    if (!piece.empty()) self.foldWhitespace_ = false;
  }
  value += piece;
  return 0;
}

void HttpRequestParser::finishHeaderLine() {
  foldWhitespace_ = false;
  valueLineEnded_ = false;
  if (part_ == HeaderPart::kNone || headerLines_ > kMaxHeaders) return;
  std::string& value = request_.headers.back().second;
  value = std::string(trim(value));
}

int HttpRequestParser::onHeadersComplete(http_parser* parser) {
  auto& self = *static_cast<HttpRequestParser*>(parser->data);
  self.finishHeaderLine();
  self.part_ = HeaderPart::kNone;
  HttpRequest& request = self.request_;
  request.method = http_method_str(static_cast<http_method>(parser->method));
  request.versionMajor = parser->http_major;
  request.versionMinor = parser->http_minor;
  request.upgrade = parser->upgrade != 0;
  const auto refuse = [&self](int status, std::string message) {
    self.verdictStatus_ = status;
    self.verdictError_ = std::move(message);
    return -1;  // http_parser_execute() stops with HPE_CB_headers_complete
  };

  if (request.versionMajor != 1 || request.versionMinor > 1) {
    return refuse(505, "HTTP version " + std::to_string(request.versionMajor) + "." +
                           std::to_string(request.versionMinor) +
                           " not supported (only 1.0 and 1.1)");
  }
  if (self.deferredStatus_ != 0) return refuse(self.deferredStatus_, self.deferredError_);
  // A request body is not read: the bytes after the head belong to the upgraded protocol.
  if (const std::string* encoding = request.header("transfer-encoding")) {
    return refuse(400, "request body not supported (Transfer-Encoding: " + *encoding + ")");
  }
  // http-parser has checked Content-Length (digits, one value); no header leaves it all ones.
  if (parser->content_length != 0 &&
      parser->content_length != std::numeric_limits<uint64_t>::max()) {
    return refuse(400, "request body not supported (Content-Length: " +
                           std::to_string(parser->content_length) + ")");
  }

  // Origin form ("/exec/x?a=b") as kubelet sends it, absolute form ("http://host/exec/x") as a
  // proxy may, authority form ("host:port") for CONNECT.
  http_parser_url url;
  http_parser_url_init(&url);
  if (http_parser_parse_url(request.target.data(), request.target.size(),
                            parser->method == HTTP_CONNECT, &url) != 0) {
    return refuse(400, "malformed request target");
  }
  const auto field = [&](http_parser_url_fields which) -> std::string {
    if ((url.field_set & (1u << which)) == 0) return {};
    return request.target.substr(url.field_data[which].off, url.field_data[which].len);
  };
  request.path = field(UF_PATH);
  request.query = field(UF_QUERY);

  self.headComplete_ = true;
  return 2;  // no body, and what follows is not HTTP: http_parser_execute() returns here
}

std::string_view reasonPhrase(int status) {
  switch (status) {
#define MONOCRI_HTTP_REASON(code, name, text) \
  case code:                                  \
    return #text;
    HTTP_STATUS_MAP(MONOCRI_HTTP_REASON)
#undef MONOCRI_HTTP_REASON
    default:
      return "Unknown";
  }
}

std::string responseBytes(int status,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view body) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
  out += reasonPhrase(status);
  out += "\r\n";
  for (const auto& [name, value] : headers) {
    appendHeaderText(out, name);
    out += ": ";
    appendHeaderText(out, value);
    out += "\r\n";
  }
  const bool statusHasBody = !(status >= 100 && status < 200) && status != 204;
  if (!body.empty() || statusHasBody) {
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  out += "\r\n";
  out += body;
  return out;
}

std::optional<std::vector<std::string>> queryValues(std::string_view query, std::string_view name) {
  std::vector<std::string> values;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view parameter = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    if (parameter.empty()) continue;
    const size_t equals = parameter.find('=');
    std::optional<std::string> key = queryUnescape(parameter.substr(0, equals));
    std::optional<std::string> value = queryUnescape(
        equals == std::string_view::npos ? std::string_view() : parameter.substr(equals + 1));
    if (!key || !value) return std::nullopt;
    if (*key == name) values.push_back(std::move(*value));
  }
  return values;
}

}  // namespace monocri::exec::http
