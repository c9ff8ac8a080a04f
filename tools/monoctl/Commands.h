// monoctl's image, pod, container and streaming verbs (the runtime verbs live in main.cpp).
#pragma once

#include <string>
#include <vector>

#include "monoctl/Runtime.h"

namespace monocri::monoctl {

struct PullOptions {
  std::string image;
  std::string creds;  // "user:password"
  std::string auth;   // base64 "user:password"
  std::string identityToken;
  std::string registryToken;
  std::string serverAddress;
};

int runPull(const Options& options, const PullOptions& pull);
int runImages(const Options& options, const std::string& filter, bool quiet, bool digests);
int runInspectImages(const Options& options, const std::vector<std::string>& images);
int runRemoveImages(const Options& options, std::vector<std::string> images, bool all);
int runImageFsInfo(const Options& options);
int runImport(const Options& options, const std::string& path, const std::string& name);

struct PodListOptions {
  std::string id, state, name, ns;
  std::vector<std::string> labels;  // key=value
  bool quiet = false;
};

int runRunPod(const Options& options, const std::string& configPath,
              const std::string& runtimeHandler);
int runStopOrRemovePods(const Options& options, const std::vector<std::string>& prefixes,
                        bool remove, bool all);
int runPods(const Options& options, const PodListOptions& list);
int runInspectPods(const Options& options, const std::vector<std::string>& prefixes);

struct PsOptions {
  std::string id, pod, state, name;
  std::vector<std::string> labels;
  bool all = false, quiet = false;
};
struct LogsOptions {
  std::string container;
  bool follow = false, timestamps = false;
  int64_t tail = -1;
  std::string since;  // RFC 3339
};

// create POD CONTAINER.json [POD.json]; `run` is create then start.
int runCreateContainer(const Options& options, const std::string& podPrefix,
                       const std::string& containerConfig, const std::string& podConfig,
                       bool startToo);
// start, stop (with the timeout), rm.
int runContainerVerb(const Options& options, const std::string& verb,
                     const std::vector<std::string>& prefixes, int64_t timeoutSeconds);
int runPs(const Options& options, const PsOptions& ps);
int runInspectContainers(const Options& options, const std::vector<std::string>& prefixes);
int runLogs(const Options& options, const LogsOptions& logs);
// update: new cgroup limits (only those given change), as crictl's flags.
struct UpdateOptions {
  std::vector<std::string> containers;
  int64_t cpuShares = 0, cpuQuota = 0, cpuPeriod = 0, memory = 0;
  std::string cpusetCpus, cpusetMems;
};
int runUpdateContainers(const Options& options, const UpdateOptions& update);

// The streaming verbs (StreamCommands.cpp), over the streaming server's SPDY/3.1.
struct ExecOptions {
  std::string container;
  std::vector<std::string> command;
  bool stdin = false, tty = false;
  bool sync = false;           // ExecSync instead of a session
  int64_t timeoutSeconds = 0;  // --sync: the command's limit (0: none)
};
// exec: the command's exit code is monoctl's.
int runExec(const Options& options, const ExecOptions& exec);
struct AttachOptions {
  std::string container;
  bool stdin = false, tty = false;
};
int runAttach(const Options& options, const AttachOptions& attach);
// port-forward POD [LOCAL:]REMOTE...: until SIGINT/SIGTERM (exit 0).
int runPortForward(const Options& options, const std::string& podPrefix,
                   const std::vector<std::string>& specs);

}  // namespace monocri::monoctl
