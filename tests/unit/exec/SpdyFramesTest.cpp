// SPDY/3.1 frames: every fixture connection (kubectl via kubelet <-> CRI-O) parsed however it is
// split, checked frame by frame against its decoded transcript; the writers byte for byte against
// the same captures; writer -> parser round trips; and hostile input refused with a clear error.
#include "exec/spdy/SpdyFrames.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace monocri::exec::spdy {
namespace {

std::string readFixture(const std::string& name) {
  std::ifstream file(std::string(MONOCRI_FIXTURES_DIR) + "/spdy/" + name, std::ios::binary);
  EXPECT_TRUE(file.good()) << name;
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

// The SPDY part of a capture: what follows the HTTP/1.1 upgrade request or 101 response.
std::string framesOf(const std::string& name) {
  const std::string bytes = readFixture(name);
  const size_t end = bytes.find("\r\n\r\n");
  EXPECT_NE(end, std::string::npos) << name;
  return bytes.substr(end + 4);
}

std::string u32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// An 8-byte control frame header, any version/type/flags/length.
std::string controlHeader(uint16_t version, uint16_t type, uint8_t flags, uint32_t length) {
  return u32(0x80000000u | (uint32_t{version} << 16) | type) +
         u32((uint32_t{flags} << 24) | (length & 0xffffff));
}

std::string renderHeaders(const HeaderList& headers) {
  std::string out;
  for (const auto& [name, value] : headers)
    out += " " + name + "=" + value;
  return out;
}

// Records the parser's events as text lines, and every DATA byte per stream.
class Recorder : public SpdyFrameParser::Handler {
 public:
  struct Event {
    std::string text;  // empty for DATA
    uint32_t stream = 0;
    size_t bytes = 0;
    bool fin = false;
  };
  std::vector<Event> events;
  std::map<uint32_t, std::string> data;
  std::function<void()> afterEvent;  // e.g. a stop()

  void onSynStream(uint32_t streamId, uint32_t associatedId, uint8_t priority, bool fin,
                   bool unidirectional, HeaderList headers) override {
    add("SYN_STREAM stream=" + std::to_string(streamId) + " assoc=" + std::to_string(associatedId) +
        " priority=" + std::to_string(priority) + " fin=" + std::to_string(fin) +
        " uni=" + std::to_string(unidirectional) + renderHeaders(headers));
  }
  void onSynReply(uint32_t streamId, bool fin, HeaderList headers) override {
    add("SYN_REPLY stream=" + std::to_string(streamId) + " fin=" + std::to_string(fin) +
        renderHeaders(headers));
  }
  void onHeaders(uint32_t streamId, bool fin, HeaderList headers) override {
    add("HEADERS stream=" + std::to_string(streamId) + " fin=" + std::to_string(fin) +
        renderHeaders(headers));
  }
  void onRstStream(uint32_t streamId, uint32_t status) override {
    add("RST_STREAM stream=" + std::to_string(streamId) + " status=" + std::to_string(status));
  }
  void onSettings(std::vector<std::pair<uint32_t, uint32_t>> idValues) override {
    std::string text = "SETTINGS";
    for (const auto& [id, value] : idValues)
      text += " " + std::to_string(id) + "=" + std::to_string(value);
    add(text);
  }
  void onPing(uint32_t id) override { add("PING id=" + std::to_string(id)); }
  void onGoaway(uint32_t lastGoodStreamId, uint32_t status) override {
    add("GOAWAY last_good=" + std::to_string(lastGoodStreamId) +
        " status=" + std::to_string(status));
  }
  void onWindowUpdate(uint32_t streamId, uint32_t delta) override {
    add("WINDOW_UPDATE stream=" + std::to_string(streamId) + " delta=" + std::to_string(delta));
  }
  void onData(uint32_t streamId, std::string_view bytes, bool fin) override {
    events.push_back({"", streamId, bytes.size(), fin});
    data[streamId].append(bytes);
    if (afterEvent) afterEvent();
  }

  // One line per event. With `joinData`, consecutive DATA pieces of one stream are one line
  // until a FIN: a split feed gives several pieces per frame, and cannot tell two frames of a
  // stream in a row apart (nor need it).
  std::vector<std::string> lines(bool joinData = false) const {
    std::vector<std::string> out;
    const Event* open = nullptr;
    size_t openBytes = 0;
    auto flush = [&] {
      if (open == nullptr) return;
      out.push_back("DATA stream=" + std::to_string(open->stream) +
                    " len=" + std::to_string(openBytes) + " fin=" + std::to_string(open->fin));
      open = nullptr;
    };
    for (const Event& e : events) {
      if (!e.text.empty()) {
        flush();
        out.push_back(e.text);
        continue;
      }
      if (open != nullptr && open->stream != e.stream) flush();
      if (open == nullptr) openBytes = 0;
      open = &e;
      openBytes += e.bytes;
      if (!joinData || e.fin) flush();
    }
    flush();
    return out;
  }

 private:
  void add(std::string text) {
    events.push_back({std::move(text)});
    if (afterEvent) afterEvent();
  }
};

struct FeedResult {
  bool ok = true;
  std::string error;
  bool midFrame = false;
  size_t buffered = 0;
};

// Feeds `bytes` in pieces of `piece` bytes (0: all at once).
FeedResult feedInPieces(std::string_view bytes, size_t piece, Recorder& recorder) {
  SpdyFrameParser parser(recorder);
  FeedResult result;
  const size_t step = piece == 0 ? std::max<size_t>(bytes.size(), 1) : piece;
  for (size_t at = 0; at < bytes.size() && result.ok; at += step)
    result.ok = parser.feed(bytes.substr(at, step));
  result.error = parser.error();
  result.midFrame = parser.midFrame();
  result.buffered = parser.bufferedBytes();
  return result;
}

// ---- the fixtures' transcripts (frames.txt), read as the expected result ----

std::string unquote(std::string_view quoted) {
  std::string out;
  for (size_t i = 0; i < quoted.size(); ++i) {
    if (quoted[i] != '\\' || i + 1 == quoted.size()) {
      out.push_back(quoted[i]);
      continue;
    }
    const char c = quoted[++i];
    if (c == 'n') {
      out.push_back('\n');
    } else if (c == 'r') {
      out.push_back('\r');
    } else if (c == 't') {
      out.push_back('\t');
    } else if (c == 'x' && i + 2 < quoted.size()) {
      out.push_back(
          static_cast<char>(std::stoi(std::string(quoted.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(c);  // \" and \\ .
    }
  }
  return out;
}

struct Direction {
  std::vector<std::string> lines;         // one per frame, as Recorder::lines() gives
  std::map<uint32_t, std::string> data;   // quoted DATA payloads, per stream
  std::set<uint32_t> hexStreams;          // streams whose payloads are shown in hex only
  std::map<uint32_t, size_t> dataTotals;  // the summary's byte counts
  size_t partialBytes = 0;                // an unfinished frame at the end
};

std::map<std::string, Direction> readTranscript(const std::string& name) {
  std::map<std::string, Direction> directions;
  std::istringstream file(readFixture(name + ".frames.txt"));
  std::string line;
  Direction* last = nullptr;
  while (std::getline(file, line)) {
    if (line.starts_with("[")) {
      std::istringstream tokens(line.substr(line.find(']') + 1));
      std::string dir, at, type;
      tokens >> dir >> at >> type;
      Direction& d = directions[dir];
      last = &d;
      if (line.find("bytes that are not a complete frame") != std::string::npos) {
        d.partialBytes = std::stoul(type);
        continue;
      }
      std::map<std::string, std::string> fields;
      for (std::string token; tokens >> token;) {
        if (token.starts_with("data=")) break;
        const size_t eq = token.find('=');
        if (eq != std::string::npos) fields[token.substr(0, eq)] = token.substr(eq + 1);
      }
      const int flags = std::stoi(fields["flags"], nullptr, 16);
      const std::string fin = " fin=" + std::to_string(flags & 1);
      if (type == "SYN_STREAM") {
        d.lines.push_back("SYN_STREAM stream=" + fields["stream"] + " assoc=" + fields["assoc"] +
                          " priority=" + fields["priority"] + fin +
                          " uni=" + std::to_string((flags >> 1) & 1));
      } else if (type == "SYN_REPLY") {
        d.lines.push_back("SYN_REPLY stream=" + fields["stream"] + fin);
      } else if (type == "DATA") {
        d.lines.push_back("DATA stream=" + fields["stream"] + " len=" + fields["len"] + fin);
        const uint32_t stream = std::stoul(fields["stream"]);
        const size_t quoted = line.find("data=\"");
        if (quoted != std::string::npos) {
          d.data[stream] +=
              unquote(std::string_view(line).substr(quoted + 6, line.size() - quoted - 7));
        } else if (line.find("data=hex") != std::string::npos) {
          d.hexStreams.insert(stream);
        }
      } else if (type == "RST_STREAM") {
        d.lines.push_back("RST_STREAM stream=" + fields["stream"] + " status=" + fields["status"]);
      } else if (type == "GOAWAY") {
        d.lines.push_back("GOAWAY last_good=" + fields["last_good_stream"] +
                          " status=" + fields["status"]);
      } else if (type == "PING") {
        d.lines.push_back("PING id=" + fields["id"]);
      } else {
        ADD_FAILURE() << "frame type the test does not know: " << line;
      }
    } else if (line.starts_with("      ") && last != nullptr && !last->lines.empty()) {
      const size_t colon = line.find(": ");
      const size_t start = line.find_first_not_of(' ');
      last->lines.back() += " " + line.substr(start, colon - start) + "=" + line.substr(colon + 2);
    } else if (line.starts_with("#   stream ")) {
      // "#   stream 3 (opened by c2s): ...; data c2s=29 s2c=0; ..."
      const uint32_t stream = std::stoul(line.substr(11));
      for (const std::string dir : {"c2s", "s2c"}) {
        const size_t at = line.find(" " + dir + "=", line.find("; data "));
        directions[dir].dataTotals[stream] = std::stoul(line.substr(at + 5));
      }
    }
  }
  return directions;
}

const std::vector<std::string> kFixtures = {
    "exec-echo",    "exec-stdin",   "exec-exit-code", "exec-tty",
    "attach-stdin", "port-forward", "exec-stderr",    "exec-cat-256k",
};

class SpdyFixture : public testing::TestWithParam<std::string> {};

// Both directions of every capture, fed whole and in pieces of 1, 2, 3 and 7 bytes (the peers
// write field by field: frames really arrive in 2-4 byte segments).
TEST_P(SpdyFixture, ParsesEveryFrameHoweverSplit) {
  const std::map<std::string, Direction> transcript = readTranscript(GetParam());
  ASSERT_EQ(transcript.size(), 2u);
  for (const auto& [dir, expected] : transcript) {
    SCOPED_TRACE(dir);
    const std::string frames = framesOf(GetParam() + "." + dir + ".bin");
    ASSERT_FALSE(expected.lines.empty());

    Recorder whole;
    const FeedResult wholeResult = feedInPieces(frames, 0, whole);
    ASSERT_TRUE(wholeResult.ok) << wholeResult.error;
    // Fed whole, each DATA frame comes in one call: the events are the frames, one for one.
    EXPECT_EQ(whole.lines(), expected.lines);
    EXPECT_EQ(wholeResult.midFrame, expected.partialBytes != 0);
    EXPECT_EQ(wholeResult.buffered, expected.partialBytes);

    for (const auto& [stream, total] : expected.dataTotals) {
      const auto it = whole.data.find(stream);
      EXPECT_EQ(it == whole.data.end() ? 0 : it->second.size(), total) << "stream " << stream;
    }
    for (const auto& [stream, bytes] : expected.data) {
      if (expected.hexStreams.count(stream) == 0) {
        EXPECT_EQ(whole.data[stream], bytes) << "stream " << stream;
      }
    }

    for (size_t piece : {1, 2, 3, 7}) {
      SCOPED_TRACE("pieces of " + std::to_string(piece));
      Recorder split;
      const FeedResult result = feedInPieces(frames, piece, split);
      ASSERT_TRUE(result.ok) << result.error;
      EXPECT_EQ(split.lines(true), whole.lines(true));
      EXPECT_EQ(split.data, whole.data);
      EXPECT_EQ(result.midFrame, wholeResult.midFrame);
      EXPECT_EQ(result.buffered, wholeResult.buffered);
      // No empty pieces but the one call of each 0-length frame.
      auto emptyCalls = [](const Recorder& r) {
        return std::count_if(r.events.begin(), r.events.end(), [](const Recorder::Event& e) {
          return e.text.empty() && e.bytes == 0;
        });
      };
      EXPECT_EQ(emptyCalls(split), emptyCalls(whole));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Captures, SpdyFixture, testing::ValuesIn(kFixtures),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::erase(name, '-');
                           return name;
                         });

// ---- what the transcripts say, stated here too ----

TEST(SpdyCaptures, ExecEchoClientOpensErrorStdoutStderr) {
  Recorder client;
  ASSERT_TRUE(feedInPieces(framesOf("exec-echo.c2s.bin"), 2, client).ok);
  EXPECT_EQ(client.lines(),
            (std::vector<std::string>{
                "SYN_STREAM stream=1 assoc=0 priority=0 fin=0 uni=0 streamtype=error",
                "SYN_STREAM stream=3 assoc=0 priority=0 fin=0 uni=0 streamtype=stdout",
                "SYN_STREAM stream=5 assoc=0 priority=0 fin=0 uni=0 streamtype=stderr",
            }));

  Recorder server;
  ASSERT_TRUE(feedInPieces(framesOf("exec-echo.s2c.bin"), 2, server).ok);
  EXPECT_EQ(server.lines(true), (std::vector<std::string>{
                                    "SYN_REPLY stream=1 fin=0",
                                    "SYN_REPLY stream=3 fin=0",
                                    "SYN_REPLY stream=5 fin=0",
                                    "DATA stream=3 len=6 fin=0",
                                    "DATA stream=1 len=34 fin=0",
                                    "RST_STREAM stream=3 status=5",
                                    "RST_STREAM stream=5 status=5",
                                    "RST_STREAM stream=1 status=5",
                                    "GOAWAY last_good=5 status=0",
                                }));
  EXPECT_EQ(server.data[3], "hello\n");
  EXPECT_EQ(server.data[1], R"({"metadata":{},"status":"Success"})");
}

TEST(SpdyCaptures, ExecExitCodeStatusOnTheErrorStream) {
  Recorder server;
  ASSERT_TRUE(feedInPieces(framesOf("exec-exit-code.s2c.bin"), 3, server).ok);
  EXPECT_EQ(server.data[1],
            R"({"metadata":{},"status":"Failure","message":"command terminated with non-zero )"
            R"(exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":)"
            R"([{"reason":"ExitCode","message":"3"}]}})");
}

TEST(SpdyCaptures, ExecCat256kMovesEveryByteBothWays) {
  Recorder client, server;
  ASSERT_TRUE(feedInPieces(framesOf("exec-cat-256k.c2s.bin"), 7, client).ok);
  ASSERT_TRUE(feedInPieces(framesOf("exec-cat-256k.s2c.bin"), 0, server).ok);
  EXPECT_EQ(client.data[3].size(), 262144u);  // stdin
  EXPECT_EQ(server.data[5].size(), 262144u);  // stdout
  EXPECT_EQ(client.data[3], server.data[5]);  // cat: what went in came out
  // stdin: 8 frames of 32 KiB, then FIN in a 0-length frame.
  const std::vector<std::string> lines = client.lines(true);
  EXPECT_EQ(lines.back(), "DATA stream=3 len=262144 fin=1");
  size_t frames = 0;
  for (const std::string& line : server.lines())
    frames += line == "DATA stream=5 len=32768 fin=0";
  EXPECT_EQ(frames, 8u);
  EXPECT_EQ(server.lines().back(), "GOAWAY last_good=7 status=0");
}

TEST(SpdyCaptures, PortForwardStreamPairsShareARequestId) {
  Recorder client, server;
  ASSERT_TRUE(feedInPieces(framesOf("port-forward.c2s.bin"), 1, client).ok);
  ASSERT_TRUE(feedInPieces(framesOf("port-forward.s2c.bin"), 1, server).ok);
  std::vector<std::string> syns, pings;
  for (const std::string& line : client.lines()) {
    if (line.starts_with("SYN_STREAM")) syns.push_back(line);
    if (line.starts_with("PING")) pings.push_back(line);
  }
  EXPECT_EQ(syns, (std::vector<std::string>{
                      "SYN_STREAM stream=1 assoc=0 priority=0 fin=0 uni=0 streamtype=error "
                      "port=80 requestid=0",
                      "SYN_STREAM stream=3 assoc=0 priority=0 fin=0 uni=0 port=80 requestid=0 "
                      "streamtype=data",
                      "SYN_STREAM stream=5 assoc=0 priority=0 fin=0 uni=0 streamtype=error "
                      "port=80 requestid=1",
                      "SYN_STREAM stream=7 assoc=0 priority=0 fin=0 uni=0 requestid=1 "
                      "streamtype=data port=80",
                  }));
  EXPECT_EQ(pings, (std::vector<std::string>{"PING id=1", "PING id=3"}));
  EXPECT_EQ(client.lines().back(), "GOAWAY last_good=0 status=0");
  EXPECT_TRUE(client.data[3].starts_with("GET /hello.txt HTTP/1.1\r\n"));
  EXPECT_EQ(client.data[1], "");  // the error stream: half-closed at once, no data
  EXPECT_EQ(server.data[3].size(), 235u);
  EXPECT_TRUE(server.data[3].ends_with("hello from busybox httpd\n"));
  EXPECT_EQ(server.data[7].size(), 235u);
}

TEST(SpdyCaptures, ExecTtyEndsMidFrameAndResizesAsJson) {
  Recorder client, server;
  ASSERT_TRUE(feedInPieces(framesOf("exec-tty.c2s.bin"), 2, client).ok);
  EXPECT_EQ(client.data[7], "{\"Width\":100,\"Height\":30}\n{\"Width\":120,\"Height\":40}\n");
  EXPECT_EQ(client.data[3], "stty size\rstty size\rexit\r");

  // CRI-O was cut off 2 bytes into a control frame (80 03): the parser waits, it does not fail.
  const FeedResult result = feedInPieces(framesOf("exec-tty.s2c.bin"), 2, server);
  ASSERT_TRUE(result.ok) << result.error;
  EXPECT_TRUE(result.midFrame);
  EXPECT_EQ(result.buffered, 2u);
  EXPECT_EQ(server.lines().back(), "RST_STREAM stream=1 status=5");
  // Its first stdout frame is empty and has no FIN: exactly one call, with no bytes.
  const auto firstData = std::find_if(server.events.begin(), server.events.end(),
                                      [](const Recorder::Event& e) { return e.text.empty(); });
  ASSERT_NE(firstData, server.events.end());
  EXPECT_EQ(firstData->stream, 5u);
  EXPECT_EQ(firstData->bytes, 0u);
  EXPECT_FALSE(firstData->fin);
  EXPECT_EQ(std::next(firstData)->bytes, 2u);  // then "/ # " in 2-byte pieces
}

// ---- writers, byte for byte what the captures hold ----

TEST(SpdyWriters, MatchTheCapturedBytes) {
  const std::string echoC2s = readFixture("exec-echo.c2s.bin");
  const std::string echoS2c = readFixture("exec-echo.s2c.bin");
  const std::string pfC2s = readFixture("port-forward.c2s.bin");
  auto at = [](const std::string& bytes, size_t offset, size_t n) {
    return bytes.substr(offset, n);
  };

  // Offsets and lengths from exec-echo.frames.txt and port-forward.frames.txt.
  EXPECT_EQ(rstStreamFrame(3, kCancel), at(echoS2c, 246, 16));
  EXPECT_EQ(rstStreamFrame(1, kCancel), at(echoS2c, 278, 16));
  EXPECT_EQ(goawayFrame(5, kGoawayOk), at(echoS2c, 294, 16));
  EXPECT_EQ(goawayFrame(0, kGoawayOk), at(pfC2s, 774, 16));
  EXPECT_EQ(pingFrame(1), at(pfC2s, 577, 12));
  EXPECT_EQ(pingFrame(3), at(pfC2s, 762, 12));
  EXPECT_EQ(dataFrame(3, "hello\n", false), at(echoS2c, 190, 14));
  EXPECT_EQ(dataFrame(1, "", true), at(pfC2s, 431, 8));
  const auto header = dataFrameHeader(3, 6, false);
  EXPECT_EQ(std::string(header.data(), header.size()), at(echoS2c, 190, 8));
  // The frames around the (captured) header blocks.
  EXPECT_EQ(synStreamFrame(1, 0, 0, false, at(echoC2s, 481 + 18, 31)), at(echoC2s, 481, 49));
  EXPECT_EQ(synReplyFrame(1, false, at(echoS2c, 122 + 12, 16)), at(echoS2c, 122, 28));
  EXPECT_EQ(synReplyFrame(3, false, at(echoS2c, 150 + 12, 8)), at(echoS2c, 150, 20));
}

TEST(SpdyWriters, Layouts) {
  using namespace std::string_literals;
  EXPECT_EQ(synStreamFrame(0x80000005u, 3, 7, true, "blk", true),
            "\x80\x03\x00\x01\x03\x00\x00\x0d"
            "\x00\x00\x00\x05\x00\x00\x00\x03\xe0\x00"
            "blk"s);
  EXPECT_EQ(synReplyFrame(7, true, "b"),
            "\x80\x03\x00\x02\x01\x00\x00\x05\x00\x00\x00\x07"
            "b"s);
  EXPECT_EQ(headersFrame(9, false, ""), "\x80\x03\x00\x08\x00\x00\x00\x04\x00\x00\x00\x09"s);
  EXPECT_EQ(settingsFrame({{4, 100}, {0x01000007, 65536}}),
            "\x80\x03\x00\x04\x00\x00\x00\x14\x00\x00\x00\x02"
            "\x00\x00\x00\x04\x00\x00\x00\x64\x00\x00\x00\x07\x00\x01\x00\x00"s);
  EXPECT_EQ(windowUpdateFrame(0, 0x80001000u),
            "\x80\x03\x00\x09\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x10\x00"s);
  EXPECT_EQ(rstStreamFrame(0xffffffffu, kFrameTooLarge),
            "\x80\x03\x00\x03\x00\x00\x00\x08\x7f\xff\xff\xff\x00\x00\x00\x0b"s);
  const auto big = dataFrameHeader(0x7fffffff, kMaxFrameLength, true);
  EXPECT_EQ(std::string(big.data(), big.size()), "\x7f\xff\xff\xff\x01\xff\xff\xff"s);
}

// Every writer's frame, through one deflater, parsed back however split.
TEST(SpdyWriters, RoundTripThroughTheParser) {
  HeaderBlockDeflater deflater;
  std::string wire;
  wire += synStreamFrame(1, 0, 0, false, deflater.encode({{"streamtype", "error"}}));
  wire += synStreamFrame(3, 1, 5, true, deflater.encode({{"streamtype", "stdin"}}), true);
  wire += synReplyFrame(1, false, deflater.encode({}));
  wire += headersFrame(3, true, deflater.encode({{"a", std::string("x\0y", 3)}, {"b", ""}}));
  wire += dataFrame(3, "line one\n", false);
  wire += dataFrame(3, "", true);
  wire += settingsFrame({{4, 100}, {7, 65536}});
  wire += settingsFrame({});
  wire += pingFrame(0xfffffffe);
  wire += windowUpdateFrame(0, 0x7fffffff);
  wire += windowUpdateFrame(3, 1);
  wire += rstStreamFrame(3, kCancel);
  wire += goawayFrame(3, kGoawayInternalError);
  const std::vector<std::string> expected = {
      "SYN_STREAM stream=1 assoc=0 priority=0 fin=0 uni=0 streamtype=error",
      "SYN_STREAM stream=3 assoc=1 priority=5 fin=1 uni=1 streamtype=stdin",
      "SYN_REPLY stream=1 fin=0",
      std::string("HEADERS stream=3 fin=1 a=x\0y b=", 31),
      "DATA stream=3 len=9 fin=0",
      "DATA stream=3 len=0 fin=1",
      "SETTINGS 4=100 7=65536",
      "SETTINGS",
      "PING id=4294967294",
      "WINDOW_UPDATE stream=0 delta=2147483647",
      "WINDOW_UPDATE stream=3 delta=1",
      "RST_STREAM stream=3 status=5",
      "GOAWAY last_good=3 status=2",
  };
  Recorder whole;
  ASSERT_TRUE(feedInPieces(wire, 0, whole).ok);
  EXPECT_EQ(whole.lines(), expected);
  EXPECT_EQ(whole.data[3], "line one\n");
  for (size_t piece = 1; piece <= 13; ++piece) {
    Recorder split;
    const FeedResult result = feedInPieces(wire, piece, split);
    ASSERT_TRUE(result.ok) << result.error;
    EXPECT_FALSE(result.midFrame);
    EXPECT_EQ(split.lines(true), whole.lines(true)) << "pieces of " << piece;
    EXPECT_EQ(split.data, whole.data);
  }
}

// ---- DATA is handed over as it arrives ----

TEST(SpdyParser, DataIsNeverBufferedWhole) {
  Recorder recorder;
  SpdyFrameParser parser(recorder);
  const auto header = dataFrameHeader(9, kMaxFrameLength, true);
  ASSERT_TRUE(parser.feed(std::string_view(header.data(), header.size())));
  const std::string chunk(64 * 1024, 'z');
  size_t sent = 0;
  while (kMaxFrameLength - sent > chunk.size()) {
    ASSERT_TRUE(parser.feed(chunk));
    sent += chunk.size();
    EXPECT_EQ(parser.bufferedBytes(), 0u);
  }
  EXPECT_TRUE(parser.midFrame());
  EXPECT_EQ(recorder.events.size(), sent / chunk.size());
  EXPECT_FALSE(recorder.events.back().fin);
  ASSERT_TRUE(parser.feed(std::string(kMaxFrameLength - sent, 'z') + pingFrame(2)));
  EXPECT_FALSE(parser.midFrame());
  EXPECT_EQ(recorder.data[9].size(), kMaxFrameLength);
  ASSERT_GE(recorder.events.size(), 2u);
  EXPECT_TRUE(recorder.events[recorder.events.size() - 2].fin);  // the last piece, then the PING
  EXPECT_EQ(recorder.lines().back(), "PING id=2");
}

TEST(SpdyParser, AnEmptyDataFrameIsOneCall) {
  for (bool fin : {false, true}) {
    Recorder recorder;
    SpdyFrameParser parser(recorder);
    const std::string frame = dataFrame(1, "", fin);
    for (char c : frame)
      ASSERT_TRUE(parser.feed(std::string_view(&c, 1)));
    ASSERT_EQ(recorder.events.size(), 1u);
    EXPECT_EQ(recorder.events[0].bytes, 0u);
    EXPECT_EQ(recorder.events[0].fin, fin);
  }
}

TEST(SpdyParser, SkipsUnknownControlTypes) {
  std::string wire = controlHeader(3, 10, 0, 100) + std::string(100, '\x01');  // CREDENTIAL
  wire += controlHeader(3, 0xffff, 0xff, 0);
  wire += controlHeader(3, 5, 0, 4) + u32(1);  // SPDY/2's NOOP
  wire += pingFrame(7);
  for (size_t piece : {0, 1, 5}) {
    Recorder recorder;
    const FeedResult result = feedInPieces(wire, piece, recorder);
    ASSERT_TRUE(result.ok) << result.error;
    EXPECT_EQ(recorder.lines(), (std::vector<std::string>{"PING id=7"}));
    EXPECT_EQ(result.buffered, 0u);
  }
}

TEST(SpdyParser, ReservedBitsAreIgnored) {
  HeaderBlockDeflater deflater;
  // Stream ids with the reserved top bit set, and a slot byte.
  std::string syn = synStreamFrame(5, 0, 2, false, deflater.encode({{"streamtype", "resize"}}));
  syn[8] = static_cast<char>(syn[8] | 0x80);
  syn[12] = static_cast<char>(syn[12] | 0x80);
  syn[16] = static_cast<char>(syn[16] | 0x1f);
  syn[17] = 9;
  Recorder recorder;
  ASSERT_TRUE(feedInPieces(syn, 0, recorder).ok);
  EXPECT_EQ(recorder.lines(),
            (std::vector<std::string>{"SYN_STREAM stream=5 assoc=0 priority=2 fin=0 uni=0 "
                                      "streamtype=resize"}));
}

// ---- stop() ----

TEST(SpdyParser, StopEndsTheFeedAfterTheCallback) {
  const std::string wire = pingFrame(1) + dataFrame(3, "abc", false) + pingFrame(3);
  Recorder recorder;
  SpdyFrameParser parser(recorder);
  recorder.afterEvent = [&] {
    if (recorder.events.size() == 2) parser.stop();
  };
  EXPECT_TRUE(parser.feed(wire));
  EXPECT_TRUE(parser.stopped());
  EXPECT_EQ(recorder.lines(), (std::vector<std::string>{"PING id=1", "DATA stream=3 len=3 fin=0"}));
  EXPECT_TRUE(parser.feed(pingFrame(5)));
  EXPECT_EQ(recorder.events.size(), 2u);
}

TEST(SpdyParser, StopInTheMiddleOfDataPieces) {
  Recorder recorder;
  SpdyFrameParser parser(recorder);
  recorder.afterEvent = [&] { parser.stop(); };
  EXPECT_TRUE(parser.feed(dataFrame(3, "abcdef", true).substr(0, 10)));
  EXPECT_TRUE(parser.feed("cdef"));
  ASSERT_EQ(recorder.events.size(), 1u);
  EXPECT_EQ(recorder.data[3], "ab");
}

TEST(SpdyParserDeathTest, FeedFromACallbackAborts) {
  Recorder recorder;
  SpdyFrameParser parser(recorder);
  recorder.afterEvent = [&] { parser.feed(pingFrame(2)); };
  EXPECT_DEATH(parser.feed(pingFrame(1)), "");
}

// ---- hostile input ----

struct Hostile {
  std::string name;
  std::string wire;     // after a valid PING
  std::string message;  // the whole error()
};

std::vector<Hostile> hostileInputs() {
  using namespace std::string_literals;
  HeaderBlockDeflater deflater;
  // A SYN_STREAM around a given block (a fresh connection: the block must start a zlib stream).
  auto synWith = [](std::string_view block) { return synStreamFrame(1, 0, 0, false, block); };
  auto deflateRaw = [](std::string_view raw) {
    z_stream zs{};
    deflateInit(&zs, Z_BEST_COMPRESSION);
    const std::string_view d = headerDictionary();
    deflateSetDictionary(&zs, reinterpret_cast<const Bytef*>(d.data()),
                         static_cast<uInt>(d.size()));
    std::string out(deflateBound(&zs, raw.size()) + 64, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
    zs.avail_in = static_cast<uInt>(raw.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    deflate(&zs, Z_SYNC_FLUSH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
  };
  const std::string validBlock = HeaderBlockDeflater().encode({{"streamtype", "error"}});
  const std::string bomb =
      deflateRaw(serializeHeaderBlock({{"streamtype", std::string(1 << 20, 'e')}}));
  return {
      {"version 2", controlHeader(2, 1, 0, 10) + std::string(10, '\0'),
       "SPDY: control frame version 2, want 3"},
      {"version 0x7fff (garbage)", std::string("\xff\xff\xff\xff garbage"),
       "SPDY: control frame version 32767, want 3"},
      {"oversized control frame", controlHeader(3, 1, 0, 65537),
       "SPDY: SYN_STREAM frame of 65537 bytes, limit 65536"},
      {"oversized unknown frame", controlHeader(3, 77, 0, 0xffffff),
       "SPDY: type 77 frame of 16777215 bytes, limit 65536"},
      {"DATA on stream 0", std::string(8, '\0'), "SPDY: DATA frame on stream 0"},
      {"SYN_STREAM on stream 0", synStreamFrame(0, 0, 0, false, validBlock),
       "SPDY: SYN_STREAM on stream 0"},
      {"SYN_REPLY on stream 0", synReplyFrame(0, false, validBlock), "SPDY: SYN_REPLY on stream 0"},
      {"HEADERS on stream 0", headersFrame(0, false, validBlock), "SPDY: HEADERS on stream 0"},
      {"RST_STREAM on stream 0", rstStreamFrame(0, kCancel), "SPDY: RST_STREAM on stream 0"},
      {"short SYN_STREAM", controlHeader(3, 1, 0, 9) + u32(1) + u32(0) + "\0"s,
       "SPDY: SYN_STREAM length 9, want at least 10"},
      {"short SYN_REPLY", controlHeader(3, 2, 0, 3) + "\0\0\1"s,
       "SPDY: SYN_REPLY length 3, want at least 4"},
      {"long RST_STREAM", controlHeader(3, 3, 0, 9) + u32(1) + u32(5) + "\0"s,
       "SPDY: RST_STREAM length 9, want 8"},
      {"short PING", controlHeader(3, 6, 0, 3) + "\0\0\1"s, "SPDY: PING length 3, want 4"},
      {"long PING", controlHeader(3, 6, 0, 5) + u32(1) + "\0"s, "SPDY: PING length 5, want 4"},
      {"short GOAWAY", controlHeader(3, 7, 0, 4) + u32(1), "SPDY: GOAWAY length 4, want 8"},
      {"short WINDOW_UPDATE", controlHeader(3, 9, 0, 7) + u32(1) + "\0\0\1"s,
       "SPDY: WINDOW_UPDATE length 7, want 8"},
      {"WINDOW_UPDATE delta 0", windowUpdateFrame(3, 0),
       "SPDY: WINDOW_UPDATE on stream 3 with delta 0"},
      {"WINDOW_UPDATE delta 0 but the reserved bit", windowUpdateFrame(0, 0x80000000u),
       "SPDY: WINDOW_UPDATE on stream 0 with delta 0"},
      {"SETTINGS count over its length", controlHeader(3, 4, 0, 12) + u32(2) + u32(4) + u32(1),
       "SPDY: SETTINGS length 12 does not hold 2 entries"},
      {"SETTINGS count 2^31", controlHeader(3, 4, 0, 12) + u32(0x80000000u) + u32(4) + u32(1),
       "SPDY: SETTINGS length 12 does not hold 2147483648 entries"},
      {"SETTINGS with a stray byte", controlHeader(3, 4, 0, 13) + u32(1) + u32(4) + u32(1) + "x",
       "SPDY: SETTINGS length 13 does not hold 1 entries"},
      {"truncated header block", synWith(validBlock.substr(0, validBlock.size() - 7)),
       "SPDY: SYN_STREAM: SPDY header block: truncated value of streamtype"},
      {"zlib bomb", synWith(bomb),
       "SPDY: SYN_STREAM: SPDY header block: inflates past 65536 bytes"},
      {"2^31 pairs", synWith(deflateRaw(u32(0x80000000u))),
       "SPDY: SYN_STREAM: SPDY header block: 2147483648 pairs, limit 256"},
      {"uppercase name", synWith(deflater.encode({{"StreamType", "error"}})),
       "SPDY: SYN_STREAM: SPDY header block: name with an uppercase letter or NUL in pair 1"},
      {"not zlib", synReplyFrame(1, false, "garbage!"),
       "SPDY: SYN_REPLY: SPDY header block: zlib: incorrect header check"},
  };
}

TEST(SpdyParser, RefusesHostileInput) {
  for (const Hostile& h : hostileInputs()) {
    SCOPED_TRACE(h.name);
    const std::string wire = pingFrame(9) + h.wire;
    for (size_t piece : {0, 1, 3}) {
      Recorder recorder;
      SpdyFrameParser parser(recorder);
      bool ok = true;
      const size_t step = piece == 0 ? wire.size() : piece;
      for (size_t at = 0; at < wire.size() && ok; at += step)
        ok = parser.feed(std::string_view(wire).substr(at, step));
      EXPECT_FALSE(ok);
      EXPECT_TRUE(parser.failed());
      EXPECT_EQ(parser.error(), h.message);
      // The valid frame before came through; nothing after the error does.
      EXPECT_EQ(recorder.lines(), (std::vector<std::string>{"PING id=9"}));
      EXPECT_FALSE(parser.feed(pingFrame(10)));
      EXPECT_EQ(parser.error(), h.message);
      EXPECT_EQ(recorder.events.size(), 1u);
      EXPECT_LE(parser.bufferedBytes(), h.wire.size());
    }
  }
}

TEST(SpdyParser, AnOversizedControlFrameIsRefusedFromItsHeader) {
  // Refused from the 8 header bytes alone: nothing of the claimed 64 KiB + 1 is awaited or held.
  Recorder recorder;
  SpdyFrameParser parser(recorder);
  EXPECT_FALSE(parser.feed(controlHeader(3, 2, 0, SpdyFrameParser::kMaxControlFrameBytes + 1)));
  EXPECT_EQ(parser.bufferedBytes(), 0u);
  // A frame of exactly the limit is fine (an unknown type, skipped).
  Recorder ok;
  SpdyFrameParser fine(ok);
  EXPECT_TRUE(fine.feed(controlHeader(3, 200, 0, SpdyFrameParser::kMaxControlFrameBytes) +
                        std::string(SpdyFrameParser::kMaxControlFrameBytes, 'x') + pingFrame(1)));
  EXPECT_EQ(ok.lines(), (std::vector<std::string>{"PING id=1"}));
}

TEST(SpdyParser, AHeaderBlockErrorBreaksTheConnectionsZlibStream) {
  // After a bad block, even a block valid on a fresh stream is refused: the caller must close.
  HeaderBlockDeflater deflater;
  const std::string first = deflater.encode({{"streamtype", "error"}});
  Recorder recorder;
  SpdyFrameParser parser(recorder);
  ASSERT_TRUE(parser.feed(synStreamFrame(1, 0, 0, false, first)));
  EXPECT_FALSE(parser.feed(synStreamFrame(3, 0, 0, false, first)));  // a zlib header mid-stream
  EXPECT_NE(parser.error().find("SPDY header block"), std::string::npos) << parser.error();
  EXPECT_EQ(recorder.events.size(), 1u);
}

TEST(SpdyNames, ForLogs) {
  EXPECT_EQ(controlTypeName(1), "SYN_STREAM");
  EXPECT_EQ(controlTypeName(9), "WINDOW_UPDATE");
  EXPECT_EQ(controlTypeName(10), "type 10");
  EXPECT_EQ(rstStatusName(kCancel), "CANCEL");
  EXPECT_EQ(rstStatusName(kStreamAlreadyClosed), "STREAM_ALREADY_CLOSED");
  EXPECT_EQ(rstStatusName(99), "99");
}

}  // namespace
}  // namespace monocri::exec::spdy
