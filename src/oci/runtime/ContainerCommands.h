// The verbs of runc's command line, each a function of the parsed flags. They throw
// RuntimeError; main writes it to the --log file and exits 1.
#pragma once

#include <string>
#include <vector>

namespace monocri::runtime {

struct GlobalOptions {
  std::string root = "/run/monocri-runtime";
};

struct CreateOptions {
  std::string id;
  std::string bundle = ".";
  std::string pidFile;
  std::string consoleSocket;
  bool noPivot = false;
  bool noNewKeyring = false;  // accepted for runc's callers; no keyring is made
  int preserveFds = 0;
};

struct ExecOptions {
  std::string id;
  std::string processFile;  // "-" is stdin
  std::string pidFile;
  std::string consoleSocket;
  bool detach = false;
  bool tty = false;
  std::string cwd;
  std::vector<std::string> env;
  std::string user;               // "uid[:gid]"
  std::vector<std::string> args;  // without --process
  int preserveFds = 0;
};

void createContainer(const GlobalOptions& global, const CreateOptions& options);
void startContainer(const GlobalOptions& global, const std::string& id);
// Returns the exit code for `run` (the container's, or 128 + signal).
int runContainer(const GlobalOptions& global, const CreateOptions& options, bool detach);
void printState(const GlobalOptions& global, const std::string& id);
void killContainer(const GlobalOptions& global, const std::string& id, const std::string& signal,
                   bool all);
void deleteContainer(const GlobalOptions& global, const std::string& id, bool force);
// Returns the process's exit code when not detached, else 0.
int execInContainer(const GlobalOptions& global, const ExecOptions& options);
void listContainers(const GlobalOptions& global, const std::string& format, bool quiet);
void printProcesses(const GlobalOptions& global, const std::string& id, const std::string& format);
void pauseContainer(const GlobalOptions& global, const std::string& id, bool paused);
// `resources`: a file holding linux.resources JSON, or "-" for stdin; `overrides` from flags.
void updateContainer(const GlobalOptions& global, const std::string& id,
                     const std::string& resources, const std::string& overridesJson);
void printFeatures();
void writeDefaultSpec(const std::string& bundle, bool rootless);

// A signal as runc takes it: "9", "KILL", "SIGKILL". Throws when unknown.
int parseSignal(const std::string& text);

}  // namespace monocri::runtime
