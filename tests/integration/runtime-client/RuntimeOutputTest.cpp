// What the OCI runtime prints: the state document and the JSON log, parsed as hostile input.
// The documents here are the shapes runc 1.1.5 and crun 1.8 print (checked by hand against the
// binaries), then broken ones.
#include <gtest/gtest.h>

#include <string>

#include "oci/runtime-client/OciRuntimeClient.h"
#include "oci/runtime-client/OciState.h"
#include "oci/runtime-client/RuntimeLogScanner.h"

namespace monocri::oci {
namespace {

using grpc::StatusCode;

constexpr std::string_view kRuncCreated = R"({
  "ociVersion": "1.0.2-dev",
  "id": "c1",
  "pid": 30862,
  "status": "created",
  "bundle": "/tmp/rtc-exp",
  "rootfs": "/tmp/rtc-exp/rootfs",
  "created": "2026-11-22T04:25:57.671349579Z",
  "owner": ""
})";

TEST(OciState, ParsesRuncsDocument) {
  OciState state;
  ASSERT_TRUE(parseOciState(kRuncCreated, state).isOk());
  EXPECT_EQ(state.id, "c1");
  EXPECT_EQ(state.status, "created");
  EXPECT_EQ(state.pid, 30862);
  EXPECT_EQ(state.bundle, "/tmp/rtc-exp");
  EXPECT_TRUE(state.annotations.is_object());
  EXPECT_TRUE(state.annotations.empty());
}

TEST(OciState, StoppedHasPidZeroAndAnnotationsAreKept) {
  OciState state;
  ASSERT_TRUE(parseOciState(R"({"id":"x","pid":0,"status":"stopped","bundle":"/b",
                                "annotations":{"io.kubernetes.cri.container-type":"container"}})",
                            state)
                  .isOk());
  EXPECT_EQ(state.pid, 0);
  EXPECT_EQ(state.status, "stopped");
  EXPECT_EQ(state.annotations["io.kubernetes.cri.container-type"], "container");
}

TEST(OciState, RefusesWhatIsNotAUsableState) {
  const std::string_view broken[] = {
      "",
      "not json",
      "[]",
      R"({"status":"running","pid":5})",                     // no id
      R"({"id":"","status":"running","pid":5})",             // empty id
      R"({"id":7,"status":"running","pid":5})",              // id not a string
      R"({"id":"x","pid":5})",                               // no status
      R"({"id":"x","status":"exploded","pid":5})",           // unknown status
      R"({"id":"x","status":"running","pid":0})",            // running without a pid
      R"({"id":"x","status":"created"})",                    // created without a pid
      R"({"id":"x","status":"running","pid":-4})",           // negative pid
      R"({"id":"x","status":"running","pid":99999999999})",  // beyond PID_MAX_LIMIT
      R"({"id":"x","status":"running","pid":5.5})",          // not an integer
      R"({"id":"x","status":"running","pid":"5"})",          // a string
      R"({"id":"x","status":"running","pid":5,"bundle":3})",
      R"({"id":"x","status":"running","pid":5,"annotations":[]})",
      R"({"id":"x","status":"running","pid":5,"annotations":{"a":{"deep":"x"}}})",
      R"({"id":"x","status":"running","pid":5)",  // cut
  };
  for (std::string_view document : broken) {
    OciState state;
    state.id = "untouched";
    const auto status = parseOciState(document, state);
    EXPECT_EQ(status.code(), StatusCode::kInternal) << document;
    EXPECT_FALSE(status.message().empty());
    EXPECT_EQ(state.id, "untouched") << "a refused document must not half-fill the output";
  }
}

TEST(OciState, RefusesAnOversizedDocumentUnparsed) {
  std::string huge = R"({"id":"x","status":"stopped","pid":0,"bundle":")";
  huge.append(kMaxOciStateBytes, 'a');
  huge.append("\"}");
  OciState state;
  const auto status = parseOciState(huge, state);
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_NE(status.message().find("bytes"), std::string::npos) << status.message();
}

TEST(OciState, DeepNestingIsRefusedWithoutCrashing) {
  std::string deep = R"({"id":"x","status":"stopped","pid":0,"annotations":)";
  deep.append(100'000, '[');
  deep.append(100'000, ']');
  deep.append("}");
  OciState state;
  EXPECT_FALSE(parseOciState(deep, state).isOk());
}

TEST(RuntimeLogScanner, KeepsTheLastErrorOfRuncsLog) {
  RuntimeLogScanner scanner;
  scanner.feed(
      R"({"level":"warning","msg":"a warning","time":"2026-11-22T04:26:02Z"})"
      "\n"
      R"({"level":"error","msg":"first error","time":"2026-11-22T04:26:02Z"})"
      "\n"
      R"({"level":"info","msg":"after","time":"2026-11-22T04:26:02Z"})"
      "\n"
      R"({"level":"error","msg":"runc create failed: unable to start container process: exec: \"nosuchbin\": executable file not found in $PATH","time":"2026-11-22T04:26:02Z"})"
      "\n");
  scanner.finish();
  EXPECT_EQ(scanner.lastError(),
            "runc create failed: unable to start container process: exec: \"nosuchbin\": "
            "executable file not found in $PATH");
}

TEST(RuntimeLogScanner, ReadsCrunsFieldOrderAndALastLineWithoutNewline) {
  RuntimeLogScanner scanner;
  scanner.feed(
      R"({"msg":"error opening file `/r/x/status`: No such file or directory","level":"error","time":"2026-11-22T04:30:05.015438Z"})");
  EXPECT_EQ(scanner.lastError(), "") << "a line is complete only at its newline or the end";
  scanner.finish();
  EXPECT_EQ(scanner.lastError(), "error opening file `/r/x/status`: No such file or directory");
}

TEST(RuntimeLogScanner, TheSameWhateverTheSplit) {
  const std::string log =
      "plain text a runtime printed\n"
      R"({"level":"error","msg":"one","time":"t"})"
      "\n\n{broken json\n"
      R"({"level":"fatal","msg":"two\nlines\tand\u0001control","time":"t"})"
      "\n"
      R"({"level":"debug","msg":"three","time":"t"})"
      "\n";
  for (size_t chunk = 1; chunk <= log.size(); ++chunk) {
    RuntimeLogScanner scanner;
    for (size_t at = 0; at < log.size(); at += chunk)
      scanner.feed(std::string_view(log).substr(at, chunk));
    scanner.finish();
    EXPECT_EQ(scanner.lastError(), "two lines and control") << "chunk " << chunk;
  }
}

TEST(RuntimeLogScanner, SkipsAnOverlongLineWholeAndBoundsTheMessage) {
  RuntimeLogScanner scanner;
  std::string overlong = R"({"level":"error","msg":")";
  overlong.append(kMaxRuntimeLogLineBytes, 'x');
  overlong.append("\"}\n");
  scanner.feed(R"({"level":"error","msg":"kept","time":"t"})"
               "\n");
  scanner.feed(overlong.substr(0, 1000));
  scanner.feed(overlong.substr(1000));
  scanner.finish();
  EXPECT_EQ(scanner.lastError(), "kept");

  std::string longMessage = R"({"level":"error","msg":")";
  longMessage.append(kMaxRuntimeMessageBytes * 4, 'y');
  longMessage.append("\"}\n");
  scanner.feed(longMessage);
  EXPECT_LE(scanner.lastError().size(), kMaxRuntimeMessageBytes);
  EXPECT_TRUE(scanner.lastError().ends_with("yyy...")) << scanner.lastError().substr(0, 40);
}

TEST(CleanRuntimeText, CollapsesControlsAndRepairsUtf8) {
  EXPECT_EQ(cleanRuntimeText("  a\n\n b\t\x01 c  "), "a b c");
  EXPECT_EQ(cleanRuntimeText("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(cleanRuntimeText("bad \xff\xfe byte"), "bad ?? byte");
  EXPECT_EQ(cleanRuntimeText("overlong \xc0\xaf"), "overlong ??");
  EXPECT_EQ(cleanRuntimeText("surrogate \xed\xa0\x80"), "surrogate ???");
  EXPECT_EQ(cleanRuntimeText("cut \xe2\x82"), "cut ??");
}

TEST(CleanRuntimeText, CutsAtACharacterBoundary) {
  // Ten two-byte characters; room for 8 bytes leaves 2 characters and the mark.
  std::string text;
  for (int i = 0; i < 10; ++i)
    text += "\xc3\xa9";
  const std::string cut = cleanRuntimeText(text, 8);
  EXPECT_EQ(cut, "\xc3\xa9\xc3\xa9...");
  EXPECT_EQ(cleanRuntimeText("abcdef", 6), "abcdef");
  EXPECT_EQ(cleanRuntimeText("abcdefg", 6), "abc...");
  EXPECT_EQ(cleanRuntimeText("abc", 2), "");  // no room for a character and the mark
}

TEST(ContainerId, RuncsRule) {
  for (std::string_view good : {"c1", "abc_DEF-1.2+3", "0", "a...b"})
    EXPECT_TRUE(isValidContainerId(good)) << good;
  for (std::string_view bad : {"", ".", "..", "-rf", "a/b", "a b", "tab\t", "é", "a;b"})
    EXPECT_FALSE(isValidContainerId(bad)) << bad;
  EXPECT_TRUE(isValidContainerId(std::string(1024, 'a')));
  EXPECT_FALSE(isValidContainerId(std::string(1025, 'a')));
}

}  // namespace
}  // namespace monocri::oci
