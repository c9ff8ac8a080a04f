// The streaming server's HTTP/1.1 request reader, response writer and query helper: kubelet's
// recorded upgrade requests (the fixtures) whole, byte by byte and split anywhere, with the SPDY
// bytes behind them left alone; a WebSocket upgrade; the limits (431), malformed requests (400),
// other HTTP versions (505), bodies; the response bytes CRI-O sent; query decoding.
#include "exec/http/HttpRequestParser.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace monocri::exec::http {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;
using Result = HttpRequestParser::Result;

const std::filesystem::path kSpdyFixtures = std::filesystem::path(MONOCRI_FIXTURES_DIR) / "spdy";

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// A fixture's upgrade request as <name>.upgrade.txt shows it.
struct FixtureRequest {
  std::string name;
  std::string connection;  // <name>.c2s.bin
  size_t headBytes = 0;    // "exact bytes are the first N bytes of <name>.c2s.bin"
  std::string method, target;
  Headers headers;  // names lowercased
};

std::vector<FixtureRequest> loadFixtures() {
  std::vector<FixtureRequest> fixtures;
  for (const auto& entry : std::filesystem::directory_iterator(kSpdyFixtures)) {
    const std::string file = entry.path().filename();
    const std::string suffix = ".upgrade.txt";
    if (file.size() <= suffix.size() || !file.ends_with(suffix)) continue;
    FixtureRequest fixture;
    fixture.name = file.substr(0, file.size() - suffix.size());
    fixture.connection = readFile(kSpdyFixtures / (fixture.name + ".c2s.bin"));
    std::istringstream text(readFile(entry.path()));
    std::string line;
    bool inRequest = false, requestLine = true;
    while (std::getline(text, line)) {
      const std::string firstBytes = "exact bytes are the first ";
      if (const size_t at = line.find(firstBytes); at != std::string::npos) {
        fixture.headBytes = std::stoul(line.substr(at + firstBytes.size()));
      } else if (line.starts_with("## request")) {
        inRequest = true;
      } else if (inRequest && line.empty()) {
        break;
      } else if (inRequest && requestLine) {
        std::istringstream words(line);
        words >> fixture.method >> fixture.target;
        requestLine = false;
      } else if (inRequest) {
        const size_t colon = line.find(": ");
        std::string name = line.substr(0, colon);
        for (char& c : name)
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        fixture.headers.emplace_back(name, line.substr(colon + 2));
      }
    }
    fixtures.push_back(std::move(fixture));
  }
  return fixtures;
}

struct Parsed {
  Result result = Result::kNeedMore;
  size_t headEnd = 0;  // where the head ended in the input: the sum of `consumed`
  HttpRequest request;
  int errorStatus = 0;
  std::string error;
};

// Feeds `bytes` in pieces of `pieceSize` (all at once if 0), checking what every feed() returns.
Parsed parse(std::string_view bytes, size_t pieceSize = 0) {
  HttpRequestParser parser;
  Parsed parsed;
  if (pieceSize == 0) pieceSize = bytes.size();
  for (size_t at = 0; at < bytes.size(); at += pieceSize) {
    const std::string_view piece = bytes.substr(at, pieceSize);
    size_t consumed = 12345;
    const Result result = parser.feed(piece, consumed);
    EXPECT_LE(consumed, piece.size());
    if (parsed.result != Result::kNeedMore) {
      EXPECT_EQ(result, parsed.result) << "a feed after the end changed the result";
      EXPECT_EQ(consumed, 0u);
      continue;
    }
    if (result == Result::kNeedMore) {
      EXPECT_EQ(consumed, piece.size());
    }
    parsed.result = result;
    parsed.headEnd += consumed;
  }
  parsed.errorStatus = parser.errorStatus();
  parsed.error = parser.error();
  if (parsed.result == Result::kComplete) {
    EXPECT_EQ(parser.headBytes(), parsed.headEnd);
    EXPECT_EQ(parser.errorStatus(), 0);
    EXPECT_EQ(parser.error(), "");
  }
  if (parsed.result == Result::kError) {
    EXPECT_NE(parser.errorStatus(), 0);
    EXPECT_NE(parser.error(), "");
  }
  parsed.request = parser.takeRequest();
  return parsed;
}

void expectSameRequest(const HttpRequest& a, const HttpRequest& b) {
  EXPECT_EQ(a.method, b.method);
  EXPECT_EQ(a.target, b.target);
  EXPECT_EQ(a.path, b.path);
  EXPECT_EQ(a.query, b.query);
  EXPECT_EQ(a.versionMajor, b.versionMajor);
  EXPECT_EQ(a.versionMinor, b.versionMinor);
  EXPECT_EQ(a.headers, b.headers);
  EXPECT_EQ(a.upgrade, b.upgrade);
}

// A head with the given header lines.
std::string head(std::string_view requestLine, const Headers& headers) {
  std::string out = std::string(requestLine) + "\r\n";
  for (const auto& [name, value] : headers)
    out += name + ": " + value + "\r\n";
  return out + "\r\n";
}

const std::string kWebSocketTarget =
    "/exec/Xq3_7zLa?command=sh&command=-c&command=echo+hi%3B%20ls%20%2Ftmp&stdin=1&stdout=1&tty=1";

// ---- kubelet's recorded SPDY upgrade requests ----

TEST(HttpRequestParserTest, FixtureUpgradeRequestsParse) {
  const std::vector<FixtureRequest> fixtures = loadFixtures();
  ASSERT_GE(fixtures.size(), 8u);  // exec, attach and port-forward, as README.md lists them
  for (const FixtureRequest& fixture : fixtures) {
    SCOPED_TRACE(fixture.name);
    ASSERT_GT(fixture.headBytes, 0u);
    // The prelude is the bytes up to and including the first empty line; SPDY follows.
    ASSERT_EQ(fixture.connection.find("\r\n\r\n") + 4, fixture.headBytes);
    ASSERT_GT(fixture.connection.size(), fixture.headBytes);
    EXPECT_EQ(static_cast<unsigned char>(fixture.connection[fixture.headBytes]), 0x80);

    const Parsed parsed = parse(fixture.connection);
    ASSERT_EQ(parsed.result, Result::kComplete) << parsed.error;
    EXPECT_EQ(parsed.headEnd, fixture.headBytes);
    const HttpRequest& request = parsed.request;
    EXPECT_EQ(request.method, "POST");
    EXPECT_EQ(request.method, fixture.method);
    EXPECT_EQ(request.target, fixture.target);
    EXPECT_EQ(request.path, fixture.target);
    EXPECT_EQ(request.query, "");
    EXPECT_EQ(request.versionMajor, 1);
    EXPECT_EQ(request.versionMinor, 1);
    EXPECT_TRUE(request.upgrade);
    EXPECT_EQ(request.headers, fixture.headers);
    ASSERT_NE(request.header("upgrade"), nullptr);
    EXPECT_EQ(*request.header("upgrade"), "SPDY/3.1");
    EXPECT_EQ(*request.header("Content-Length"), "0");
    EXPECT_EQ(*request.header("host"), "127.0.0.1:6443");
    EXPECT_TRUE(request.headerHasToken("connection", "upgrade"));
    EXPECT_EQ(request.headerValues("x-forwarded-for"),
              (std::vector<std::string>{"127.0.0.1", "127.0.0.1"}));
    EXPECT_EQ(request.header("authorization"), nullptr);
    if (fixture.name == "port-forward") {
      EXPECT_TRUE(request.path.starts_with("/portforward/"));
      EXPECT_EQ(request.headerValues("x-stream-protocol-version"),
                std::vector<std::string>{"portforward.k8s.io"});
    } else {
      EXPECT_TRUE(
          request.path.starts_with(fixture.name.starts_with("attach") ? "/attach/" : "/exec/"));
      EXPECT_EQ(request.headerValues("X-Stream-Protocol-Version"),
                (std::vector<std::string>{"v4.channel.k8s.io", "v3.channel.k8s.io",
                                          "v2.channel.k8s.io", "channel.k8s.io"}));
      EXPECT_EQ(*request.header("x-stream-protocol-version"), "v4.channel.k8s.io");
    }
  }
}

TEST(HttpRequestParserTest, FixtureUpgradeRequestsByteByByte) {
  for (const FixtureRequest& fixture : loadFixtures()) {
    SCOPED_TRACE(fixture.name);
    // The whole connection, one byte per feed: the feed of the head's last byte completes it
    // with consumed 1, every later one (SPDY) gives kComplete with consumed 0.
    const std::string_view bytes =
        std::string_view(fixture.connection).substr(0, fixture.headBytes + 4096);
    const Parsed whole = parse(fixture.connection);
    const Parsed pieces = parse(bytes, 1);
    ASSERT_EQ(pieces.result, Result::kComplete) << pieces.error;
    EXPECT_EQ(pieces.headEnd, fixture.headBytes);
    expectSameRequest(pieces.request, whole.request);

    HttpRequestParser parser;
    size_t consumed = 0;
    for (size_t i = 0; i + 1 < fixture.headBytes; ++i) {
      ASSERT_EQ(parser.feed(bytes.substr(i, 1), consumed), Result::kNeedMore);
      ASSERT_EQ(consumed, 1u);
    }
    ASSERT_EQ(parser.feed(bytes.substr(fixture.headBytes - 1, 1), consumed), Result::kComplete);
    EXPECT_EQ(consumed, 1u);
  }
}

TEST(HttpRequestParserTest, FixtureUpgradeRequestsSplitAnywhere) {
  for (const FixtureRequest& fixture : loadFixtures()) {
    SCOPED_TRACE(fixture.name);
    const std::string_view bytes =
        std::string_view(fixture.connection).substr(0, fixture.headBytes + 64);
    const Parsed whole = parse(bytes);
    for (size_t split = 0; split <= bytes.size(); ++split) {
      HttpRequestParser parser;
      size_t first = 0, second = 0;
      const Result a = parser.feed(bytes.substr(0, split), first);
      const Result b = parser.feed(bytes.substr(split), second);
      if (split < fixture.headBytes) {
        ASSERT_EQ(a, Result::kNeedMore) << split;
        ASSERT_EQ(first, split);
        ASSERT_EQ(b, Result::kComplete) << split;
        ASSERT_EQ(second, fixture.headBytes - split);
      } else {
        ASSERT_EQ(a, Result::kComplete) << split;
        ASSERT_EQ(first, fixture.headBytes);
        ASSERT_EQ(b, Result::kComplete);
        ASSERT_EQ(second, 0u);
      }
      expectSameRequest(parser.request(), whole.request);
    }
  }
}

TEST(HttpRequestParserTest, SpdyBytesBehindTheHeadAreLeftToTheCaller) {
  const std::string connection = readFile(kSpdyFixtures / "exec-stdin.c2s.bin");
  HttpRequestParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed(connection, consumed), Result::kComplete);
  ASSERT_EQ(consumed, 481u);
  // What is left starts with the SYN_STREAM of the error stream: 80 03 00 01.
  EXPECT_EQ(connection.substr(consumed, 4), std::string("\x80\x03\x00\x01", 4));
  // A piece ending in the middle of the head, then the rest with SPDY behind it.
  HttpRequestParser split;
  ASSERT_EQ(split.feed(std::string_view(connection).substr(0, 300), consumed), Result::kNeedMore);
  ASSERT_EQ(split.feed(std::string_view(connection).substr(300), consumed), Result::kComplete);
  EXPECT_EQ(consumed, 181u);
}

// ---- WebSocket ----

TEST(HttpRequestParserTest, WebSocketUpgrade) {
  const Headers common = {{"Host", "127.0.0.1:10250"},
                          {"Connection", "keep-alive, Upgrade"},
                          {"Upgrade", "websocket"},
                          {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                          {"Sec-WebSocket-Version", "13"}};
  Headers twoLines = common, oneLine = common;
  twoLines.emplace_back("Sec-WebSocket-Protocol", "v4.channel.k8s.io");
  twoLines.emplace_back("Sec-WebSocket-Protocol", "base64.channel.k8s.io");
  oneLine.emplace_back("Sec-WebSocket-Protocol", "v4.channel.k8s.io, base64.channel.k8s.io");
  // An obsolete line folding: the value goes on on the next line, after whitespace.
  Headers folded = common;
  folded.emplace_back("Sec-WebSocket-Protocol", "v4.channel.k8s.io,\r\n\tbase64.channel.k8s.io");

  for (const Headers& headers : {twoLines, oneLine, folded}) {
    const std::string bytes = head("GET " + kWebSocketTarget + " HTTP/1.1", headers);
    const std::string withFrame = bytes + "\x82\x85\x37\xfa\x21\x3d\x7f";
    for (size_t pieceSize : {size_t{0}, size_t{1}, size_t{7}}) {
      SCOPED_TRACE(pieceSize);
      const Parsed parsed = parse(withFrame, pieceSize);
      ASSERT_EQ(parsed.result, Result::kComplete) << parsed.error;
      EXPECT_EQ(parsed.headEnd, bytes.size());
      const HttpRequest& request = parsed.request;
      EXPECT_EQ(request.method, "GET");
      EXPECT_EQ(request.target, kWebSocketTarget);
      EXPECT_EQ(request.path, "/exec/Xq3_7zLa");
      EXPECT_EQ(request.query,
                "command=sh&command=-c&command=echo+hi%3B%20ls%20%2Ftmp&stdin=1&stdout=1&tty=1");
      EXPECT_TRUE(request.upgrade);
      EXPECT_TRUE(request.headerHasToken("connection", "Upgrade"));
      EXPECT_TRUE(request.headerHasToken("Connection", "keep-alive"));
      EXPECT_FALSE(request.headerHasToken("connection", "close"));
      EXPECT_TRUE(request.headerHasToken("upgrade", "WebSocket"));
      EXPECT_EQ(request.headerValues("sec-websocket-protocol"),
                (std::vector<std::string>{"v4.channel.k8s.io", "base64.channel.k8s.io"}));
      EXPECT_EQ(*request.header("sec-websocket-version"), "13");
      EXPECT_EQ(queryValues(request.query, "command"),
                (std::vector<std::string>{"sh", "-c", "echo hi; ls /tmp"}));
      EXPECT_EQ(queryValues(request.query, "tty"), std::vector<std::string>{"1"});
      EXPECT_EQ(queryValues(request.query, "stderr"), std::vector<std::string>{});
    }
  }
  const Parsed parsed = parse(head("GET /x HTTP/1.1", folded));
  EXPECT_EQ(*parsed.request.header("sec-websocket-protocol"),
            "v4.channel.k8s.io, base64.channel.k8s.io");
}

// ---- headers ----

TEST(HttpRequestParserTest, HeaderNamesCaseFoldedValuesTrimmed) {
  const std::string bytes =
      "POST /exec/a HTTP/1.1\r\n"
      "X-STREAM-Protocol-version:   v4.channel.k8s.io  \t\r\n"
      "x-stream-protocol-VERSION:channel.k8s.io\r\n"
      "Empty:\r\n"
      "Blank: \t \r\n"
      "Connection: Upgrade\r\n"
      "UPGRADE: SPDY/3.1\r\n"
      "\r\n";
  for (size_t pieceSize : {size_t{0}, size_t{1}, size_t{2}, size_t{5}}) {
    SCOPED_TRACE(pieceSize);
    const Parsed parsed = parse(bytes, pieceSize);
    ASSERT_EQ(parsed.result, Result::kComplete) << parsed.error;
    const Headers expected = {{"x-stream-protocol-version", "v4.channel.k8s.io"},
                              {"x-stream-protocol-version", "channel.k8s.io"},
                              {"empty", ""},
                              {"blank", ""},
                              {"connection", "Upgrade"},
                              {"upgrade", "SPDY/3.1"}};
    EXPECT_EQ(parsed.request.headers, expected);
    EXPECT_TRUE(parsed.request.upgrade);
    EXPECT_EQ(*parsed.request.header("X-Stream-Protocol-Version"), "v4.channel.k8s.io");
    EXPECT_EQ(parsed.request.headerValues("x-stream-protocol-version"),
              (std::vector<std::string>{"v4.channel.k8s.io", "channel.k8s.io"}));
    EXPECT_EQ(*parsed.request.header("empty"), "");
    EXPECT_EQ(parsed.request.headerValues("empty"), std::vector<std::string>{});
    EXPECT_EQ(parsed.request.header("missing"), nullptr);
    EXPECT_FALSE(parsed.request.headerHasToken("missing", "x"));
  }
}

TEST(HttpRequestParserTest, HeaderValuesSplitAtCommas) {
  const Parsed parsed =
      parse(head("GET / HTTP/1.1", {{"A", " x ,, y,z , "}, {"a", ","}, {"A", "w"}}));
  ASSERT_EQ(parsed.result, Result::kComplete);
  EXPECT_EQ(parsed.request.headerValues("a"), (std::vector<std::string>{"x", "y", "z", "w"}));
  EXPECT_TRUE(parsed.request.headerHasToken("a", "Z"));
  EXPECT_FALSE(parsed.request.headerHasToken("a", "x ,"));
}

TEST(HttpRequestParserTest, NoUpgradeWithoutConnectionUpgrade) {
  Parsed parsed = parse(head("POST /exec/a HTTP/1.1", {{"Upgrade", "SPDY/3.1"}}));
  ASSERT_EQ(parsed.result, Result::kComplete);
  EXPECT_FALSE(parsed.request.upgrade);
  parsed = parse(head("GET /healthz HTTP/1.0", {{"Host", "x"}}));
  ASSERT_EQ(parsed.result, Result::kComplete);
  EXPECT_FALSE(parsed.request.upgrade);
  EXPECT_EQ(parsed.request.versionMinor, 0);
}

TEST(HttpRequestParserTest, TargetForms) {
  Parsed parsed = parse(head("GET http://127.0.0.1:10010/exec/abc?command=ls#frag HTTP/1.1", {}));
  ASSERT_EQ(parsed.result, Result::kComplete) << parsed.error;
  EXPECT_EQ(parsed.request.target, "http://127.0.0.1:10010/exec/abc?command=ls#frag");
  EXPECT_EQ(parsed.request.path, "/exec/abc");
  EXPECT_EQ(parsed.request.query, "command=ls");

  parsed = parse(head("GET /exec/abc? HTTP/1.1", {}));
  ASSERT_EQ(parsed.result, Result::kComplete) << parsed.error;
  EXPECT_EQ(parsed.request.path, "/exec/abc");
  EXPECT_EQ(parsed.request.query, "");

  parsed = parse(head("GET /a%20b/c?x=%2F&y HTTP/1.1", {}));
  ASSERT_EQ(parsed.result, Result::kComplete) << parsed.error;
  EXPECT_EQ(parsed.request.path, "/a%20b/c");
  EXPECT_EQ(parsed.request.query, "x=%2F&y");

  parsed = parse(head("CONNECT 127.0.0.1:80 HTTP/1.1", {}));
  ASSERT_EQ(parsed.result, Result::kComplete) << parsed.error;
  EXPECT_EQ(parsed.request.method, "CONNECT");
  EXPECT_EQ(parsed.request.path, "");
  EXPECT_TRUE(parsed.request.upgrade);
}

TEST(HttpRequestParserTest, EmptyLinesBeforeTheRequestLineBelongToTheHead) {
  const std::string bytes = "\r\n\r\n" + head("GET / HTTP/1.1", {{"Host", "x"}});
  const Parsed parsed = parse(bytes + "rest", 3);
  ASSERT_EQ(parsed.result, Result::kComplete) << parsed.error;
  EXPECT_EQ(parsed.headEnd, bytes.size());
}

TEST(HttpRequestParserTest, BareLineFeeds) {
  const Parsed parsed = parse("GET /exec/a HTTP/1.1\nConnection: upgrade\nUpgrade: x\n\nrest");
  ASSERT_EQ(parsed.result, Result::kComplete) << parsed.error;
  EXPECT_EQ(parsed.headEnd, 53u);
  EXPECT_TRUE(parsed.request.upgrade);
}

// ---- limits ----

TEST(HttpRequestParserTest, HeadOverSixteenKiBIs431) {
  const std::string big = head("POST /exec/a HTTP/1.1", {{"X-Big", std::string(17000, 'a')}});
  for (size_t pieceSize : {size_t{0}, size_t{1}, size_t{1000}}) {
    const Parsed parsed = parse(big, pieceSize);
    ASSERT_EQ(parsed.result, Result::kError);
    EXPECT_EQ(parsed.errorStatus, 431);
    EXPECT_NE(parsed.error.find("16384"), std::string::npos) << parsed.error;
  }
  // Many small headers adding up over the limit.
  Headers many;
  for (int i = 0; i < 90; ++i)
    many.emplace_back("X-H" + std::to_string(i), std::string(200, 'v'));
  const Parsed parsed = parse(head("POST /exec/a HTTP/1.1", many), 10);
  ASSERT_EQ(parsed.result, Result::kError);
  EXPECT_EQ(parsed.errorStatus, 431);
}

TEST(HttpRequestParserTest, HeadOfExactlySixteenKiBIsAccepted) {
  const std::string requestLine = "POST /exec/a HTTP/1.1";
  const size_t fixed = head(requestLine, {{"X-Pad", ""}}).size();
  std::string exact =
      head(requestLine, {{"X-Pad", std::string(HttpRequestParser::kMaxHeaderBytes - fixed, 'p')}});
  ASSERT_EQ(exact.size(), HttpRequestParser::kMaxHeaderBytes);
  for (size_t pieceSize : {size_t{0}, size_t{1}, size_t{4096}}) {
    const Parsed parsed = parse(exact + "spdy", pieceSize);
    ASSERT_EQ(parsed.result, Result::kComplete) << parsed.error;
    EXPECT_EQ(parsed.headEnd, exact.size());
  }
  // One byte more.
  std::string over = head(
      requestLine, {{"X-Pad", std::string(HttpRequestParser::kMaxHeaderBytes - fixed + 1, 'p')}});
  for (size_t pieceSize : {size_t{0}, size_t{1}, size_t{4096}}) {
    const Parsed parsed = parse(over, pieceSize);
    ASSERT_EQ(parsed.result, Result::kError);
    EXPECT_EQ(parsed.errorStatus, 431);
  }
  // The limit counts what the head has, not what is fed: a big piece with a small head is fine.
  const std::string small = head(requestLine, {{"Connection", "Upgrade"}, {"Upgrade", "x"}});
  const Parsed parsed = parse(small + std::string(100000, '\x80'));
  ASSERT_EQ(parsed.result, Result::kComplete);
  EXPECT_EQ(parsed.headEnd, small.size());
}

TEST(HttpRequestParserTest, MoreThanAHundredHeadersIs431) {
  Headers headers;
  for (size_t i = 0; i < HttpRequestParser::kMaxHeaders; ++i)
    headers.emplace_back("X-" + std::to_string(i), "v");
  Parsed parsed = parse(head("GET / HTTP/1.1", headers));
  ASSERT_EQ(parsed.result, Result::kComplete) << parsed.error;
  EXPECT_EQ(parsed.request.headers.size(), 100u);

  headers.emplace_back("X-100", "v");
  for (size_t pieceSize : {size_t{0}, size_t{1}, size_t{3}}) {
    parsed = parse(head("GET / HTTP/1.1", headers), pieceSize);
    ASSERT_EQ(parsed.result, Result::kError);
    EXPECT_EQ(parsed.errorStatus, 431);
    EXPECT_NE(parsed.error.find("header lines"), std::string::npos) << parsed.error;
    EXPECT_LE(parsed.request.headers.size(), HttpRequestParser::kMaxHeaders);
  }
}

// ---- errors ----

TEST(HttpRequestParserTest, GarbageIs400) {
  const std::vector<std::string> garbage = {
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),  // a TLS ClientHello
      std::string("\x80\x03\x00\x01\x00\x00\x00\x0a", 8),               // SPDY without a request
      "hello world\r\n\r\n",
      "GET\r\n\r\n",
      "GET /exec/a HTTP/1.1\r\nNo colon here\r\n\r\n",
      "GET /exec/a HTTP/1.1\r\nBad Name: x\r\n\r\n",
      "GET /exec/a HTTP/1.1\r\nX: a\x01b\r\n\r\n",
      "GET /exec/a b HTTP/1.1\r\n\r\n",
      "GET /exec/\x7f HTTP/1.1\r\n\r\n",
      "GET /exec/a HTTP/1.1\rX: y\r\n\r\n",
      "GET /exec/a HTTP/1.x\r\n\r\n",
      "GET /exec/a FTP/1.1\r\n\r\n",
      "BREW /pot HTTP/1.1\r\n\r\n",
      "GET /exec/a HTTP/1.1\r\nContent-Length: x\r\n\r\n",
      "GET /exec/a HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
      // What Debian's http-parser (built without HTTP_PARSER_STRICT) would let through.
      "GET /exec/a HXYZ/1.1\r\n\r\n",
      "SOURCE /exec/a ICE/1.0\r\n\r\n",
      "GET /exec/a\tb HTTP/1.1\r\n\r\n",
      "GET /exec/\xc3\xa9 HTTP/1.1\r\n\r\n",
      "GET /exec/a HTTP/1.1\r\nX: a\rY: b\r\n\r\n",
      "GET /exec/a HTTP/1.1\r\n\rX",
      "GET /exec/a HTTP/1.1\r\nX: y\r\n\r\r\n",
      std::string("GET /exec/a HTTP/1.1\r\nX: \0y\r\n\r\n", 31),
      "GET /exec/a HTTP/1.1\r\nX: \x01y\r\n\r\n",
  };
  for (const std::string& bytes : garbage) {
    SCOPED_TRACE(bytes);
    for (size_t pieceSize : {size_t{0}, size_t{1}}) {
      const Parsed parsed = parse(bytes, pieceSize);
      ASSERT_EQ(parsed.result, Result::kError);
      EXPECT_EQ(parsed.errorStatus, 400);
      EXPECT_NE(parsed.error.find("malformed"), std::string::npos) << parsed.error;
    }
  }
  Parsed parsed = parse("GET /exec/a HTTP/1.1\r\nBad Name: x\r\n\r\n");
  EXPECT_EQ(parsed.error, "malformed request at byte 25: invalid character in header name");
  // The error names the first wrong byte, and `consumed` stops before it.
  parsed = parse("GET /exec/a HTTP/1.1\r\n\rX");
  EXPECT_EQ(parsed.error, "malformed request at byte 23: CR not followed by LF");
  EXPECT_EQ(parsed.headEnd, 23u);
  parsed = parse("GET /exec/a HTTP/1.1\r\nX: 1\r\nContent-Length: z\r\n\r\n");
  EXPECT_EQ(parsed.error,
            "malformed request at byte 44: invalid character in content-length header "
            "(HPE_INVALID_CONTENT_LENGTH)");
  EXPECT_EQ(parsed.headEnd, 44u);
}

TEST(HttpRequestParserTest, OtherHttpVersionsAre505) {
  for (const std::string requestLine :
       {"GET /exec/a HTTP/2.0", "POST /exec/a HTTP/1.2", "GET /exec/a HTTP/0.9",
        "GET /exec/a HTTP/3.0", "GET /exec/a"}) {
    SCOPED_TRACE(requestLine);
    for (size_t pieceSize : {size_t{0}, size_t{1}}) {
      const Parsed parsed = parse(head(requestLine, {{"Host", "x"}}), pieceSize);
      ASSERT_EQ(parsed.result, Result::kError);
      EXPECT_EQ(parsed.errorStatus, 505);
      EXPECT_NE(parsed.error.find("HTTP version"), std::string::npos) << parsed.error;
    }
  }
  // HTTP/2 with prior knowledge: its preface's method is not one.
  EXPECT_EQ(parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").errorStatus, 400);
}

TEST(HttpRequestParserTest, BodiesAre400) {
  const std::vector<Headers> withBodies = {
      {{"Content-Length", "5"}},
      {{"Connection", "Upgrade"}, {"Upgrade", "SPDY/3.1"}, {"Content-Length", "12"}},
      {{"Transfer-Encoding", "chunked"}},
      {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}, {"Transfer-Encoding", "chunked"}},
      {{"Transfer-Encoding", "gzip"}},
      {{"Content-Length", "1048576"}},
  };
  for (const Headers& headers : withBodies) {
    for (size_t pieceSize : {size_t{0}, size_t{1}}) {
      const Parsed parsed = parse(head("POST /exec/a HTTP/1.1", headers) + "hello", pieceSize);
      ASSERT_EQ(parsed.result, Result::kError);
      EXPECT_EQ(parsed.errorStatus, 400);
      EXPECT_NE(parsed.error.find("request body not supported"), std::string::npos) << parsed.error;
    }
  }
  EXPECT_EQ(parse(head("POST /exec/a HTTP/1.1", {{"Content-Length", "5"}})).error,
            "request body not supported (Content-Length: 5)");
  EXPECT_EQ(parse(head("POST /exec/a HTTP/1.1", {{"Content-Length", "00"}})).result,
            Result::kComplete);
}

TEST(HttpRequestParserTest, TheEndIsFinal) {
  HttpRequestParser complete;
  size_t consumed = 99;
  EXPECT_EQ(complete.feed("", consumed), Result::kNeedMore);
  EXPECT_EQ(consumed, 0u);
  ASSERT_EQ(complete.feed("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", consumed),
            Result::kComplete);
  EXPECT_EQ(consumed, 18u);
  EXPECT_EQ(complete.feed("GET / HTTP/1.1\r\n\r\n", consumed), Result::kComplete);
  EXPECT_EQ(consumed, 0u);
  EXPECT_EQ(complete.feed("", consumed), Result::kComplete);

  HttpRequestParser failed;
  ASSERT_EQ(failed.feed("junk\r\n", consumed), Result::kError);
  EXPECT_EQ(failed.feed("GET / HTTP/1.1\r\n\r\n", consumed), Result::kError);
  EXPECT_EQ(consumed, 0u);
  EXPECT_EQ(failed.errorStatus(), 400);
}

TEST(HttpRequestParserTest, AParserMovedMidHeadGoesOn) {
  const std::string bytes = readFile(kSpdyFixtures / "exec-echo.c2s.bin");
  HttpRequestParser first;
  size_t consumed = 0;
  ASSERT_EQ(first.feed(std::string_view(bytes).substr(0, 200), consumed), Result::kNeedMore);
  HttpRequestParser moved = std::move(first);
  ASSERT_EQ(moved.feed(std::string_view(bytes).substr(200), consumed), Result::kComplete);
  EXPECT_EQ(consumed, 281u);
  EXPECT_EQ(moved.request().headerValues("x-stream-protocol-version").size(), 4u);
  const HttpRequest taken = moved.takeRequest();
  EXPECT_EQ(taken.path, "/exec/ExF0_k2t");
}

// ---- responses ----

TEST(HttpResponseTest, SwitchingProtocolsAsCriOSentIt) {
  const std::string recorded = readFile(kSpdyFixtures / "exec-echo.s2c.bin").substr(0, 122);
  EXPECT_EQ(responseBytes(101, {{"Connection", "Upgrade"},
                                {"Upgrade", "SPDY/3.1"},
                                {"X-Stream-Protocol-Version", "v4.channel.k8s.io"}}),
            recorded);
}

TEST(HttpResponseTest, ErrorsCarryALength) {
  EXPECT_EQ(responseBytes(400, {{"Content-Type", "text/plain; charset=utf-8"}}, "bad request\n"),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 12\r\n\r\nbad request\n");
  EXPECT_EQ(responseBytes(404, {}), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(responseBytes(204, {}), "HTTP/1.1 204 No Content\r\n\r\n");
  EXPECT_EQ(responseBytes(101, {}, "x"),
            "HTTP/1.1 101 Switching Protocols\r\nContent-Length: 1\r\n\r\nx");
}

TEST(HttpResponseTest, ReasonPhrases) {
  const std::vector<std::pair<int, std::string>> expected = {
      {101, "Switching Protocols"},
      {200, "OK"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {426, "Upgrade Required"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {503, "Service Unavailable"},
      {505, "HTTP Version Not Supported"},
      {599, "Unknown"}};
  for (const auto& [status, reason] : expected) {
    EXPECT_EQ(reasonPhrase(status), reason);
    EXPECT_TRUE(responseBytes(status, {})
                    .starts_with("HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n"));
  }
}

TEST(HttpResponseTest, NothingInAHeaderEndsTheHead) {
  const std::string bytes =
      responseBytes(400, {{"X-A\r\nInjected", "v\r\n\r\nbody"}, {"X-B", std::string("a\0b", 3)}});
  EXPECT_EQ(bytes,
            "HTTP/1.1 400 Bad Request\r\nX-A  Injected: v    body\r\nX-B: a b\r\n"
            "Content-Length: 0\r\n\r\n");
}

// ---- queries ----

using Values = std::optional<std::vector<std::string>>;

TEST(HttpQueryTest, ValuesInOrder) {
  EXPECT_EQ(queryValues("command=ls&command=-l%20x&ports=80,8080", "command"),
            (Values{{"ls", "-l x"}}));
  EXPECT_EQ(queryValues("command=ls&command=-l%20x&ports=80,8080", "ports"), (Values{{"80,8080"}}));
  EXPECT_EQ(queryValues("command=ls", "missing"), Values{std::vector<std::string>{}});
  EXPECT_EQ(queryValues("", "command"), Values{std::vector<std::string>{}});
}

TEST(HttpQueryTest, Decoding) {
  EXPECT_EQ(queryValues("path=%2Ftmp%2fx", "path"), (Values{{"/tmp/x"}}));
  EXPECT_EQ(queryValues("c=echo+a+b&c=1%2B1%3D2", "c"), (Values{{"echo a b", "1+1=2"}}));
  EXPECT_EQ(queryValues("c=%E2%82%AC&c=%00", "c"),
            (Values{{"\xe2\x82\xac", std::string(1, '\0')}}));
  EXPECT_EQ(queryValues("c=a=b", "c"), (Values{{"a=b"}}));
  // Names are decoded too.
  EXPECT_EQ(queryValues("com%6Dand=x&my+name=y", "command"), (Values{{"x"}}));
  EXPECT_EQ(queryValues("com%6Dand=x&my+name=y", "my name"), (Values{{"y"}}));
}

TEST(HttpQueryTest, EmptyValuesAndParameters) {
  EXPECT_EQ(queryValues("stdin=&stdout&tty=1", "stdin"), (Values{{""}}));
  EXPECT_EQ(queryValues("stdin=&stdout&tty=1", "stdout"), (Values{{""}}));
  EXPECT_EQ(queryValues("&&a=1&&a=2&", "a"), (Values{{"1", "2"}}));
  EXPECT_EQ(queryValues("=x&a=1", ""), (Values{{"x"}}));
  EXPECT_EQ(queryValues("a=1", ""), Values{std::vector<std::string>{}});
}

TEST(HttpQueryTest, NamesInsideOtherNamesDoNotMatch) {
  const std::string query = "xcommand=1&commands=2&command=3&command_=4&Command=5&c=6&command%3D=7";
  EXPECT_EQ(queryValues(query, "command"), (Values{{"3"}}));
  EXPECT_EQ(queryValues(query, "c"), (Values{{"6"}}));
  EXPECT_EQ(queryValues(query, "command="), (Values{{"7"}}));
  EXPECT_EQ(queryValues(query, "mand"), Values{std::vector<std::string>{}});
}

TEST(HttpQueryTest, MalformedEscapes) {
  for (const char* query :
       {"command=%", "command=%2", "command=%zz", "command=%g0", "command=a%", "command=%%41",
        "command=ok&other=%x1", "bad%=1&command=ok", "command=%2%46"}) {
    EXPECT_EQ(queryValues(query, "command"), std::nullopt) << query;
  }
  EXPECT_EQ(queryValues("command=%25", "command"), (Values{{"%"}}));
}

}  // namespace
}  // namespace monocri::exec::http
