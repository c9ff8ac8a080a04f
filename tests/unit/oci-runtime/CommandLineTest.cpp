// runc's command-line grammar as monocri-runtime parses it: what callers (the daemon's runtime
// client, CRI-O, containerd, people) send.
#include "oci/runtime/CommandLine.h"

#include <gtest/gtest.h>

#include "oci/runtime/RuntimeError.h"

using namespace monocri::runtime;

namespace {

const std::vector<FlagSpec> kFlags = {
    {"bundle", 'b', true}, {"pid-file", 0, true}, {"detach", 'd', false}, {"env", 'e', true}};

ParsedCommandLine parse(std::vector<std::string> args, size_t stopAfter = 0) {
  args.insert(args.begin(), "monocri-runtime");
  return parseCommandLine(args, 1, kFlags, "create", stopAfter);
}

}  // namespace

TEST(CommandLine, LongShortAndEqualsForms) {
  auto line = parse({"--bundle", "/b", "--pid-file=/p", "-d", "id"});
  EXPECT_EQ(line.value("bundle"), "/b");
  EXPECT_EQ(line.value("pid-file"), "/p");
  EXPECT_TRUE(line.has("detach"));
  EXPECT_EQ(line.positionals, std::vector<std::string>{"id"});
  line = parse({"id", "-b", "/c", "-bundle=/d"});  // flags after the id, single-dash long form
  EXPECT_EQ(line.value("bundle"), "/d");
  EXPECT_EQ(line.all("bundle"), (std::vector<std::string>{"/c", "/d"}));
  EXPECT_FALSE(line.has("detach"));
  EXPECT_FALSE(parse({"--detach=false", "id"}).has("detach"));
}

TEST(CommandLine, RepeatedValuesAndTheEndOfFlags) {
  auto line = parse({"-e", "A=1", "--env", "B=2", "--", "-id-with-dash"});
  EXPECT_EQ(line.all("env"), (std::vector<std::string>{"A=1", "B=2"}));
  EXPECT_EQ(line.positionals, std::vector<std::string>{"-id-with-dash"});
}

TEST(CommandLine, ExecTakesTheCommandVerbatimAfterTheId) {
  auto line = parse({"-d", "id", "sh", "-c", "echo -d --bundle x"}, 1);
  EXPECT_TRUE(line.has("detach"));
  EXPECT_FALSE(line.has("bundle"));
  EXPECT_EQ(line.positionals, (std::vector<std::string>{"id", "sh", "-c", "echo -d --bundle x"}));
}

TEST(CommandLine, GlobalFlagsStopAtTheCommand) {
  std::vector<std::string> args = {"rt", "--root", "/r", "--log=/l", "create", "--bundle", "b"};
  size_t next = 0;
  auto global = parseCommandLine(args, 1, {{"root", 0, true}, {"log", 0, true}}, "monocri-runtime",
                                 0, true, &next);
  EXPECT_EQ(global.value("root"), "/r");
  EXPECT_EQ(global.value("log"), "/l");
  EXPECT_EQ(next, 4u);
  EXPECT_TRUE(global.positionals.empty());
}

TEST(CommandLine, ClearErrors) {
  try {
    parse({"--bogus", "id"});
    FAIL();
  } catch (const RuntimeError& e) {
    EXPECT_STREQ(e.what(), "create: flag provided but not defined: --bogus");
  }
  try {
    parse({"id", "--bundle"});
    FAIL();
  } catch (const RuntimeError& e) {
    EXPECT_STREQ(e.what(), "create: flag needs an argument: --bundle");
  }
  EXPECT_THROW(parse({"--detach=maybe", "id"}), RuntimeError);
}
