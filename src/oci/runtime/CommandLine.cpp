#include "oci/runtime/CommandLine.h"

#include "oci/runtime/RuntimeError.h"

namespace monocri::runtime {

std::string ParsedCommandLine::value(const std::string& name, const std::string& fallback) const {
  auto found = values.find(name);
  return found == values.end() || found->second.empty() ? fallback : found->second.back();
}

std::vector<std::string> ParsedCommandLine::all(const std::string& name) const {
  auto found = values.find(name);
  return found == values.end() ? std::vector<std::string>{} : found->second;
}

ParsedCommandLine parseCommandLine(const std::vector<std::string>& args, size_t from,
                                   const std::vector<FlagSpec>& flags, const char* command,
                                   size_t stopAfterPositionals, bool stopAtFirstPositional,
                                   size_t* next) {
  ParsedCommandLine parsed;
  bool flagsEnded = false;
  size_t i = from;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    bool verbatim = flagsEnded ||
                    (stopAfterPositionals > 0 && parsed.positionals.size() >= stopAfterPositionals);
    if (verbatim || arg.size() < 2 || arg[0] != '-') {
      if (stopAtFirstPositional && !verbatim) break;
      parsed.positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flagsEnded = true;
      continue;
    }
    std::string name, value;
    bool hasValue = false;
    const FlagSpec* spec = nullptr;
    if (arg[1] == '-') {
      name = arg.substr(2);
      size_t equals = name.find('=');
      if (equals != std::string::npos) {
        value = name.substr(equals + 1);
        name.resize(equals);
        hasValue = true;
      }
      for (const auto& flag : flags)
        if (name == flag.name) spec = &flag;
    } else {
      // runc takes single-dash long flags too (-bundle); one letter is the short form.
      std::string body = arg.substr(1);
      size_t equals = body.find('=');
      if (equals != std::string::npos) {
        value = body.substr(equals + 1);
        body.resize(equals);
        hasValue = true;
      }
      for (const auto& flag : flags)
        if ((body.size() == 1 && body[0] == flag.shortName) || body == flag.name) spec = &flag;
    }
    if (!spec) fail("{}: flag provided but not defined: {}", command, arg);
    if (spec->takesValue) {
      if (!hasValue) {
        if (i + 1 >= args.size()) fail("{}: flag needs an argument: {}", command, arg);
        value = args[++i];
      }
      parsed.values[spec->name].push_back(value);
    } else {
      if (hasValue && value != "true" && value != "false")
        fail("{}: invalid boolean value {:?} for {}", command, value, arg);
      if (!hasValue || value == "true") parsed.values[spec->name].push_back("true");
    }
  }
  if (next) *next = i;
  return parsed;
}

}  // namespace monocri::runtime
