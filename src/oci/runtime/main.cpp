// monocri-runtime: the OCI runtime bundled with monocri, with runc's command line.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/runtime/CommandLine.h"
#include "oci/runtime/ContainerCommands.h"
#include "oci/runtime/RuntimeError.h"
#include "oci/runtime/RuntimeLog.h"
#include "oci/runtime/SelfExe.h"

using namespace monocri::runtime;

namespace {

constexpr const char* kUsage =
    "usage: monocri-runtime [global flags] COMMAND [flags] ID [args]\n"
    "\n"
    "The OCI runtime bundled with monocri, with runc's command line.\n"
    "\n"
    "global flags: --root DIR  --log FILE  --log-format text|json  --systemd-cgroup (refused)\n"
    "commands:\n"
    "  create [-b BUNDLE] [--pid-file F] [--console-socket S] [--no-pivot] [--preserve-fds N] ID\n"
    "  run    [create's flags] [-d] ID     create, start, wait and delete\n"
    "  start ID | state ID | pause ID | resume ID\n"
    "  kill [-a] ID [SIGNAL]               SIGTERM by default\n"
    "  delete [-f] ID\n"
    "  exec [-p process.json | CMD ARGS...] [-d] [--pid-file F] [--console-socket S] [-t]\n"
    "       [--cwd DIR] [-e K=V]... [-u UID[:GID]] ID\n"
    "  list [-f table|json] [-q] | ps [-f table|json] ID\n"
    "  update [-r resources.json|-] [--memory N] [--cpu-share N] [--cpu-quota N]\n"
    "         [--cpu-period N] [--cpuset-cpus L] [--cpuset-mems L] [--pids-limit N] ID\n"
    "  features | spec [-b BUNDLE]\n";

const std::vector<FlagSpec> kGlobalFlags = {
    {"root", 0, true},       {"log", 0, true},
    {"log-format", 0, true}, {"systemd-cgroup", 0, false},
    {"debug", 0, false},     {"criu", 0, true},
    {"rootless", 0, true},   {"help", 'h', false},
    {"version", 'v', false},
};

const std::vector<FlagSpec> kCreateFlags = {
    {"bundle", 'b', true},  {"console-socket", 0, true},  {"pid-file", 0, true},
    {"no-pivot", 0, false}, {"no-new-keyring", 0, false}, {"preserve-fds", 0, true},
    {"detach", 'd', false}, {"keep", 0, false},
};

const std::vector<FlagSpec> kExecFlags = {
    {"process", 'p', true}, {"console-socket", 0, true}, {"pid-file", 0, true},
    {"detach", 'd', false}, {"tty", 't', false},         {"cwd", 0, true},
    {"env", 'e', true},     {"user", 'u', true},         {"preserve-fds", 0, true},
};

const std::vector<FlagSpec> kUpdateFlags = {
    {"resources", 'r', true},        {"memory", 0, true},      {"memory-swap", 0, true},
    {"memory-reservation", 0, true}, {"cpu-share", 0, true},   {"cpu-quota", 0, true},
    {"cpu-period", 0, true},         {"cpuset-cpus", 0, true}, {"cpuset-mems", 0, true},
    {"pids-limit", 0, true},
};

int64_t integerFlag(const ParsedCommandLine& line, const char* name) {
  std::string text = line.value(name);
  char* end = nullptr;
  errno = 0;
  long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0) fail("--{}: {:?} is not a number", name, text);
  return value;
}

// --preserve-fds: how many fds from 3 on go to the container.
int preservedFds(const ParsedCommandLine& line) {
  int64_t count = integerFlag(line, "preserve-fds");
  if (count < 0 || count > 65536) fail("--preserve-fds {}: must be between 0 and 65536", count);
  return static_cast<int>(count);
}

// A path given relative to the caller's directory, made absolute before create moves into the
// bundle (runc resolves --root, --pid-file and --console-socket the same way).
std::string absolute(const std::string& path) {
  if (path.empty() || path[0] == '/' || path == "-") return path;
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) throwErrno("getcwd");
  return std::string(cwd) + "/" + path;
}

// The one positional a command takes (the container id), and nothing else.
std::string onlyId(const ParsedCommandLine& line, const std::string& command, size_t most = 1) {
  if (line.positionals.empty()) fail("{}: a container id is required", command);
  if (line.positionals.size() > most) fail("{}: too many arguments", command);
  return line.positionals[0];
}

CreateOptions createOptions(const ParsedCommandLine& line, const std::string& command) {
  CreateOptions options;
  options.id = onlyId(line, command);
  options.bundle = line.value("bundle", ".");
  options.pidFile = absolute(line.value("pid-file"));
  options.consoleSocket = absolute(line.value("console-socket"));
  options.noPivot = line.has("no-pivot");
  options.noNewKeyring = line.has("no-new-keyring");
  if (line.has("preserve-fds")) options.preserveFds = preservedFds(line);
  return options;
}

int dispatch(const std::vector<std::string>& args, char** argv) {
  size_t next = 1;
  ParsedCommandLine global =
      parseCommandLine(args, 1, kGlobalFlags, "monocri-runtime", 0, true, &next);
  if (global.has("version")) {
    fputs("monocri-runtime version 0.1.0\nspec: 1.1.0\n", stdout);
    return 0;
  }
  if (global.has("help") || next >= args.size()) {
    fputs(kUsage, global.has("help") ? stdout : stderr);
    return global.has("help") ? 0 : 1;
  }
  std::string logFormat = global.value("log-format", "text");
  if (logFormat != "text" && logFormat != "json")
    fail("--log-format {:?}: must be text or json", logFormat);
  RuntimeLog::open(global.value("log"), logFormat == "json" ? LogFormat::kJson : LogFormat::kText);
  if (global.has("systemd-cgroup"))
    fail("--systemd-cgroup: monocri-runtime manages cgroups with the cgroupfs driver only");
  GlobalOptions options;
  options.root = absolute(global.value("root", options.root));

  const std::string command = args[next];
  const size_t from = next + 1;
  auto parse = [&](const std::vector<FlagSpec>& flags, size_t stopAfter = 0) {
    return parseCommandLine(args, from, flags, command.c_str(), stopAfter);
  };
  if (command == "create" || command == "run") {
    ParsedCommandLine line = parse(kCreateFlags);
    ensureSealedSelf(argv);
    if (command == "create") {
      createContainer(options, createOptions(line, command));
      return 0;
    }
    return runContainer(options, createOptions(line, command), line.has("detach"));
  }
  if (command == "exec") {
    ParsedCommandLine line = parse(kExecFlags, 1);
    ExecOptions exec;
    exec.id = onlyId(line, command, SIZE_MAX);
    exec.args.assign(line.positionals.begin() + 1, line.positionals.end());
    exec.processFile = line.value("process");
    exec.pidFile = line.value("pid-file");
    exec.consoleSocket = line.value("console-socket");
    exec.detach = line.has("detach");
    exec.tty = line.has("tty");
    exec.cwd = line.value("cwd");
    exec.env = line.all("env");
    exec.user = line.value("user");
    if (line.has("preserve-fds")) exec.preserveFds = preservedFds(line);
    ensureSealedSelf(argv);
    return execInContainer(options, exec);
  }
  if (command == "start" || command == "state" || command == "pause" || command == "resume") {
    std::string id = onlyId(parse({}), command);
    if (command == "start") startContainer(options, id);
    if (command == "state") printState(options, id);
    if (command == "pause" || command == "resume") pauseContainer(options, id, command == "pause");
    return 0;
  }
  if (command == "kill") {
    ParsedCommandLine line = parse({{"all", 'a', false}});
    std::string id = onlyId(line, command, 2);
    killContainer(options, id, line.positionals.size() > 1 ? line.positionals[1] : "SIGTERM",
                  line.has("all"));
    return 0;
  }
  if (command == "delete") {
    ParsedCommandLine line = parse({{"force", 'f', false}});
    deleteContainer(options, onlyId(line, command), line.has("force"));
    return 0;
  }
  if (command == "list") {
    ParsedCommandLine line = parse({{"format", 'f', true}, {"quiet", 'q', false}});
    if (!line.positionals.empty()) fail("list: too many arguments");
    listContainers(options, line.value("format", "table"), line.has("quiet"));
    return 0;
  }
  if (command == "ps") {
    ParsedCommandLine line = parse({{"format", 'f', true}}, 1);
    printProcesses(options, onlyId(line, command, SIZE_MAX), line.value("format", "table"));
    return 0;
  }
  if (command == "update") {
    ParsedCommandLine line = parse(kUpdateFlags);
    nlohmann::json overrides = nlohmann::json::object();
    const std::pair<const char*, std::pair<const char*, const char*>> numeric[] = {
        {"memory", {"memory", "limit"}},
        {"memory-swap", {"memory", "swap"}},
        {"memory-reservation", {"memory", "reservation"}},
        {"cpu-share", {"cpu", "shares"}},
        {"cpu-quota", {"cpu", "quota"}},
        {"cpu-period", {"cpu", "period"}},
        {"pids-limit", {"pids", "limit"}},
    };
    for (const auto& [flag, field] : numeric)
      if (line.has(flag)) overrides[field.first][field.second] = integerFlag(line, flag);
    if (line.has("cpuset-cpus")) overrides["cpu"]["cpus"] = line.value("cpuset-cpus");
    if (line.has("cpuset-mems")) overrides["cpu"]["mems"] = line.value("cpuset-mems");
    updateContainer(options, onlyId(line, command), line.value("resources"),
                    overrides.empty() ? "" : overrides.dump());
    return 0;
  }
  if (command == "features") {
    if (!parse({}).positionals.empty()) fail("features: too many arguments");
    printFeatures();
    return 0;
  }
  if (command == "spec") {
    ParsedCommandLine line = parse({{"bundle", 'b', true}, {"rootless", 0, false}});
    writeDefaultSpec(line.value("bundle", "."), line.has("rootless"));
    return 0;
  }
  fail("no such command {:?} (monocri-runtime --help lists them)", command);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  try {
    int code = dispatch(args, argv);
    fflush(stdout);
    return code;
  } catch (const std::exception& e) {
    // runc writes the error to stderr as well as to its log; callers read either.
    RuntimeLog::error(e.what());
    if (RuntimeLog::fd() != STDERR_FILENO) fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
