// runc's command line parsed without iostreams: CLI11 (the daemon's parser) brings in
// std::ios_base::Init, whose locale set-up alone is ~700 KiB of resident pages in a static
// binary, a third of this runtime's memory at each of a node's thousands of calls. The grammar is
// runc's (urfave/cli): global flags, a command, its flags and positionals, `--flag value` or
// `--flag=value`, short `-x`, `--` ending the flags.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace monocri::runtime {

struct FlagSpec {
  const char* name;  // "bundle"
  char shortName;    // 'b', or 0
  bool takesValue;
};

struct ParsedCommandLine {
  std::map<std::string, std::vector<std::string>> values;  // by long name; flags get "true"
  std::vector<std::string> positionals;

  bool has(const std::string& name) const { return values.count(name) != 0; }
  // The last value given, or `fallback`.
  std::string value(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> all(const std::string& name) const;
};

// Parses args[from..] against `flags`; `command` names the command in errors. Once
// `stopAfterPositionals` (> 0) positionals are in, the rest are positionals verbatim (exec ID CMD
// ARGS...). With `stopAtFirstPositional` parsing ends before the first positional and `next`
// gets its index (the global flags end at the command's name). Throws RuntimeError for an
// unknown flag or a missing value.
ParsedCommandLine parseCommandLine(const std::vector<std::string>& args, size_t from,
                                   const std::vector<FlagSpec>& flags, const char* command,
                                   size_t stopAfterPositionals = 0,
                                   bool stopAtFirstPositional = false, size_t* next = nullptr);

}  // namespace monocri::runtime
