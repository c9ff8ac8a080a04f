// SPDY/3.1 frames on arbitrary bytes. Beyond not crashing:
// - the parser gives the same events, verdict, error and leftover however the bytes are split;
// - every event keeps the protocol's invariants (stream ids, priorities, header names and
//   counts, settings ids, window deltas, DATA piece sizes);
// - what it parsed, written back with the writers through one deflater, parses to the same
//   events (decode(encode(x)) == x), with nothing left over;
// - stop() after the Nth callback gives exactly the first N callbacks, and feed() returns true;
// - the input taken as one inflated header block: if it parses, it serializes back to itself;
//   taken as one compressed block: if it decodes, it re-encodes and decodes to the same pairs.
//
// Input: [split byte], then one direction's bytes. An HTTP/1.1 prelude (the fixtures' .bin files
// start with the upgrade request or the 101 response) is skipped up to the first "\r\n\r\n".
#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "FuzzScratch.h"
#include "exec/spdy/SpdyFrames.h"

using namespace monocri::exec::spdy;

namespace {

enum class Kind {
  kSynStream,
  kSynReply,
  kHeaders,
  kRst,
  kSettings,
  kPing,
  kGoaway,
  kWindow,
  kData
};

struct Event {
  Kind kind = Kind::kPing;
  uint32_t a = 0, b = 0;  // stream id, and associated id / status / delta / ping id
  uint8_t priority = 0;
  bool fin = false, unidirectional = false;
  HeaderList headers;
  std::vector<std::pair<uint32_t, uint32_t>> settings;
  std::string data;
  bool operator==(const Event&) const = default;
};

Event makeEvent(Kind kind, uint32_t a = 0, uint32_t b = 0, bool fin = false) {
  Event e;
  e.kind = kind;
  e.a = a;
  e.b = b;
  e.fin = fin;
  return e;
}

void checkHeaders(const HeaderList& headers) {
  CHECK(headers.size() <= HeaderBlockInflater::kMaxPairs);
  CHECK(serializeHeaderBlock(headers).size() <= HeaderBlockInflater::kMaxInflatedBytes);
  std::set<std::string_view> names;
  for (const auto& [name, value] : headers) {
    CHECK(!name.empty());
    for (char c : name)
      CHECK(c != '\0' && !(c >= 'A' && c <= 'Z'));
    CHECK(names.insert(name).second);
  }
}

void checkStream(uint32_t id) {
  CHECK(id != 0 && id <= 0x7fffffff);
}

class Recorder : public SpdyFrameParser::Handler {
 public:
  // With `join`, DATA pieces of a stream are one event until a FIN or another event (a split
  // feed cannot tell pieces of one frame from consecutive frames of a stream).
  explicit Recorder(bool join) : join_(join) {}

  std::vector<Event> events;
  size_t calls = 0;
  size_t stopAfter = 0;  // calls; 0: never
  SpdyFrameParser* parser = nullptr;

  void onSynStream(uint32_t streamId, uint32_t associatedId, uint8_t priority, bool fin,
                   bool unidirectional, HeaderList headers) override {
    checkStream(streamId);
    CHECK(associatedId <= 0x7fffffff);
    CHECK(priority <= 7);
    checkHeaders(headers);
    Event e = makeEvent(Kind::kSynStream, streamId, associatedId, fin);
    e.priority = priority;
    e.unidirectional = unidirectional;
    e.headers = std::move(headers);
    add(std::move(e));
  }
  void onSynReply(uint32_t streamId, bool fin, HeaderList headers) override {
    checkStream(streamId);
    checkHeaders(headers);
    Event e = makeEvent(Kind::kSynReply, streamId, 0, fin);
    e.headers = std::move(headers);
    add(std::move(e));
  }
  void onHeaders(uint32_t streamId, bool fin, HeaderList headers) override {
    checkStream(streamId);
    checkHeaders(headers);
    Event e = makeEvent(Kind::kHeaders, streamId, 0, fin);
    e.headers = std::move(headers);
    add(std::move(e));
  }
  void onRstStream(uint32_t streamId, uint32_t status) override {
    checkStream(streamId);
    add(makeEvent(Kind::kRst, streamId, status));
  }
  void onSettings(std::vector<std::pair<uint32_t, uint32_t>> idValues) override {
    CHECK(idValues.size() <= SpdyFrameParser::kMaxControlFrameBytes / 8);
    for (const auto& entry : idValues)
      CHECK(entry.first < (1u << 24));
    Event e = makeEvent(Kind::kSettings);
    e.settings = std::move(idValues);
    add(std::move(e));
  }
  void onPing(uint32_t id) override { add(makeEvent(Kind::kPing, 0, id)); }
  void onGoaway(uint32_t lastGoodStreamId, uint32_t status) override {
    CHECK(lastGoodStreamId <= 0x7fffffff);
    add(makeEvent(Kind::kGoaway, lastGoodStreamId, status));
  }
  void onWindowUpdate(uint32_t streamId, uint32_t delta) override {
    CHECK(streamId <= 0x7fffffff);
    CHECK(delta != 0 && delta <= 0x7fffffff);
    add(makeEvent(Kind::kWindow, streamId, delta));
  }
  void onData(uint32_t streamId, std::string_view bytes, bool fin) override {
    checkStream(streamId);
    CHECK(bytes.size() <= kMaxFrameLength);
    if (join_ && !events.empty()) {
      Event& last = events.back();
      if (last.kind == Kind::kData && last.a == streamId && !last.fin) {
        last.data.append(bytes);
        last.fin = fin;
        counted();
        return;
      }
    }
    Event e = makeEvent(Kind::kData, streamId, 0, fin);
    e.data.assign(bytes);
    add(std::move(e));
  }

 private:
  void add(Event e) {
    events.push_back(std::move(e));
    counted();
  }
  void counted() {
    ++calls;
    if (stopAfter != 0 && calls == stopAfter) parser->stop();
  }
  bool join_;
};

struct Outcome {
  bool ok;
  std::string error;
  bool midFrame;
  size_t buffered;
};

Outcome run(std::string_view bytes, Recorder& recorder, std::minstd_rand* random, int mode) {
  SpdyFrameParser parser(recorder);
  recorder.parser = &parser;
  bool ok = true;
  if (random == nullptr) {
    ok = parser.feed(bytes);
  } else {
    static constexpr size_t kMaxPiece[] = {4, 64, 4096, 1};
    for (size_t at = 0; at < bytes.size() && ok;) {
      const size_t n = std::min(bytes.size() - at, 1 + (*random)() % kMaxPiece[mode]);
      ok = parser.feed(bytes.substr(at, n));
      at += n;
    }
  }
  if (!ok) {
    // Failed for good: nothing more is taken, and the error stays.
    const std::string error = parser.error();
    const size_t calls = recorder.calls;
    CHECK(!parser.feed(pingFrame(1)));
    CHECK(parser.error() == error && recorder.calls == calls);
  }
  return {ok, parser.error(), parser.midFrame(), parser.bufferedBytes()};
}

// The events written back as frames, header blocks through one deflater.
std::string reencode(const std::vector<Event>& events) {
  HeaderBlockDeflater deflater;
  std::string wire;
  for (const Event& e : events) {
    switch (e.kind) {
      case Kind::kSynStream:
        wire += synStreamFrame(e.a, e.b, e.priority, e.fin, deflater.encode(e.headers),
                               e.unidirectional);
        break;
      case Kind::kSynReply:
        wire += synReplyFrame(e.a, e.fin, deflater.encode(e.headers));
        break;
      case Kind::kHeaders:
        wire += headersFrame(e.a, e.fin, deflater.encode(e.headers));
        break;
      case Kind::kRst:
        wire += rstStreamFrame(e.a, e.b);
        break;
      case Kind::kSettings:
        wire += settingsFrame(e.settings);
        break;
      case Kind::kPing:
        wire += pingFrame(e.b);
        break;
      case Kind::kGoaway:
        wire += goawayFrame(e.a, e.b);
        break;
      case Kind::kWindow:
        wire += windowUpdateFrame(e.a, e.b);
        break;
      case Kind::kData: {
        const auto header = dataFrameHeader(e.a, static_cast<uint32_t>(e.data.size()), e.fin);
        wire.append(header.data(), header.size());
        wire += e.data;
        break;
      }
    }
  }
  return wire;
}

void checkHeaderBlockPaths(std::string_view body) {
  HeaderList pairs;
  std::string error;
  if (parseHeaderBlock(body, pairs, error)) {
    checkHeaders(pairs);
    CHECK(serializeHeaderBlock(pairs) == body);
  } else {
    CHECK(pairs.empty() && error.starts_with("SPDY header block: "));
  }
  HeaderBlockInflater inflater;
  if (inflater.decode(body, pairs, error)) {
    checkHeaders(pairs);
    HeaderBlockDeflater deflater;
    HeaderBlockInflater again;
    HeaderList decoded;
    CHECK(again.decode(deflater.encode(pairs), decoded, error));
    CHECK(decoded == pairs);
  } else {
    CHECK(inflater.failed() && error.starts_with("SPDY header block: "));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t split = data[0];
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  if (const size_t prelude = body.find("\r\n\r\n"); prelude != std::string_view::npos) {
    body.remove_prefix(prelude + 4);
  }

  // Whole, then split: the same.
  Recorder whole(/*join=*/true);
  const Outcome wholeOutcome = run(body, whole, nullptr, 0);
  {
    Recorder pieces(/*join=*/true);
    std::minstd_rand random(split * 2654435761u + static_cast<uint32_t>(size));
    const Outcome outcome = run(body, pieces, &random, split & 3);
    CHECK(outcome.ok == wholeOutcome.ok);
    CHECK(outcome.error == wholeOutcome.error);
    CHECK(pieces.events == whole.events);
    if (outcome.ok) {
      CHECK(outcome.midFrame == wholeOutcome.midFrame);
      CHECK(outcome.buffered == wholeOutcome.buffered);
    }
  }
  CHECK(wholeOutcome.ok == wholeOutcome.error.empty());
  CHECK(wholeOutcome.ok || wholeOutcome.error.starts_with("SPDY: "));
  CHECK(wholeOutcome.buffered <= kFrameHeaderBytes + SpdyFrameParser::kMaxControlFrameBytes);

  // Written back, parsed again: the same events, and nothing left over.
  {
    const std::string wire = reencode(whole.events);
    Recorder again(/*join=*/true);
    const Outcome outcome = run(wire, again, nullptr, 0);
    CHECK(outcome.ok);
    CHECK(!outcome.midFrame);
    CHECK(again.events == whole.events);
  }

  // stop() after the Nth callback: exactly the first N (fed whole, one callback per frame).
  {
    Recorder all(/*join=*/false);
    run(body, all, nullptr, 0);
    if (all.calls > 0) {
      Recorder stopped(/*join=*/false);
      stopped.stopAfter = 1 + split % all.calls;
      const Outcome outcome = run(body, stopped, nullptr, 0);
      CHECK(outcome.ok);
      CHECK(stopped.calls == stopped.stopAfter);
      CHECK(std::equal(stopped.events.begin(), stopped.events.end(), all.events.begin()));
    }
  }

  if (body.size() <= 4096) checkHeaderBlockPaths(body);
  return 0;
}
