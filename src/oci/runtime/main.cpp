// monocri-runtime: the OCI runtime bundled with monocri, with runc's command line.
#include <unistd.h>

#include <cstdio>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "oci/runtime/ContainerCommands.h"
#include "oci/runtime/RuntimeError.h"
#include "oci/runtime/RuntimeLog.h"
#include "oci/runtime/SelfExe.h"

using namespace monocri::runtime;

namespace {

void addCreateFlags(CLI::App* command, CreateOptions& options) {
  command->add_option("-b,--bundle", options.bundle, "path to the bundle (holds config.json)");
  command->add_option("--console-socket", options.consoleSocket,
                      "unix socket that receives the pty master of a terminal container");
  command->add_option("--pid-file", options.pidFile, "file to write the init's pid to");
  command->add_flag("--no-pivot", options.noPivot, "MS_MOVE the rootfs instead of pivot_root");
  command->add_flag("--no-new-keyring", options.noNewKeyring, "accepted; no keyring is made");
  command->add_option("--preserve-fds", options.preserveFds, "extra fds passed from 3 on");
  command->add_option("id", options.id, "container id")->required();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"monocri-runtime: the OCI runtime bundled with monocri (runc's command line)"};
  app.require_subcommand(1);
  GlobalOptions global;
  std::string logPath, logFormat = "text";
  bool systemdCgroup = false, debug = false;
  app.add_option("--root", global.root, "state directory of the containers");
  app.add_option("--log", logPath, "log file (default: stderr)");
  app.add_option("--log-format", logFormat, "text or json")->check(CLI::IsMember({"text", "json"}));
  app.add_flag("--systemd-cgroup", systemdCgroup, "refused: cgroupfs is the only driver");
  app.add_flag("--debug", debug, "accepted");
  std::string criu, rootlessGlobal;
  app.add_option("--criu", criu, "accepted; checkpointing is not supported");
  app.add_option("--rootless", rootlessGlobal, "accepted");
  app.set_version_flag("-v,--version", "monocri-runtime 0.1.0\nspec: 1.1.0");

  CreateOptions create;
  auto* createCommand = app.add_subcommand("create", "create a container");
  addCreateFlags(createCommand, create);
  auto* runCommand = app.add_subcommand("run", "create, start and wait for a container");
  CreateOptions run;
  bool runDetach = false;
  addCreateFlags(runCommand, run);
  runCommand->add_flag("-d,--detach", runDetach, "do not wait for the container");
  bool keep = false;
  runCommand->add_flag("--keep", keep, "accepted");

  std::string id, signal = "SIGTERM", format = "table";
  bool all = false, force = false, quiet = false;
  auto* startCommand = app.add_subcommand("start", "run the user process of a created container");
  startCommand->add_option("id", id)->required();
  auto* stateCommand = app.add_subcommand("state", "print the container's OCI state");
  stateCommand->add_option("id", id)->required();
  auto* killCommand = app.add_subcommand("kill", "signal the container's init");
  killCommand->add_flag("-a,--all", all, "signal every process of the container");
  killCommand->add_option("id", id)->required();
  killCommand->add_option("signal", signal);
  auto* deleteCommand = app.add_subcommand("delete", "delete a stopped container");
  deleteCommand->add_flag("-f,--force", force, "kill a running container first");
  deleteCommand->add_option("id", id)->required();

  ExecOptions exec;
  auto* execCommand = app.add_subcommand("exec", "run a process in a running container");
  execCommand->add_option("-p,--process", exec.processFile, "process.json");
  execCommand->add_option("--console-socket", exec.consoleSocket);
  execCommand->add_option("--pid-file", exec.pidFile);
  execCommand->add_flag("-d,--detach", exec.detach);
  execCommand->add_flag("-t,--tty", exec.tty);
  execCommand->add_option("--cwd", exec.cwd);
  execCommand->add_option("-e,--env", exec.env);
  execCommand->add_option("-u,--user", exec.user);
  execCommand->add_option("--preserve-fds", exec.preserveFds);
  execCommand->add_option("id", exec.id)->required();
  execCommand->prefix_command();

  auto* listCommand = app.add_subcommand("list", "list containers");
  listCommand->add_option("-f,--format", format);
  listCommand->add_flag("-q,--quiet", quiet);
  auto* psCommand = app.add_subcommand("ps", "list a container's processes");
  psCommand->add_option("-f,--format", format);
  psCommand->add_option("id", id)->required();
  psCommand->allow_extras();
  auto* pauseCommand = app.add_subcommand("pause", "freeze a container's processes");
  pauseCommand->add_option("id", id)->required();
  auto* resumeCommand = app.add_subcommand("resume", "thaw a paused container");
  resumeCommand->add_option("id", id)->required();

  auto* updateCommand = app.add_subcommand("update", "change a container's resources");
  std::string resources;
  std::optional<int64_t> memory, memorySwap, memoryReservation, cpuShares, cpuQuota, cpuPeriod,
      pidsLimit;
  std::optional<std::string> cpusetCpus, cpusetMems;
  updateCommand->add_option("-r,--resources", resources, "linux.resources JSON file, - for stdin");
  updateCommand->add_option("--memory", memory);
  updateCommand->add_option("--memory-swap", memorySwap);
  updateCommand->add_option("--memory-reservation", memoryReservation);
  updateCommand->add_option("--cpu-share", cpuShares);
  updateCommand->add_option("--cpu-quota", cpuQuota);
  updateCommand->add_option("--cpu-period", cpuPeriod);
  updateCommand->add_option("--pids-limit", pidsLimit);
  updateCommand->add_option("--cpuset-cpus", cpusetCpus);
  updateCommand->add_option("--cpuset-mems", cpusetMems);
  updateCommand->add_option("id", id)->required();

  auto* featuresCommand = app.add_subcommand("features", "print what this runtime supports");
  std::string specBundle = ".";
  bool rootless = false;
  auto* specCommand = app.add_subcommand("spec", "write a default config.json");
  specCommand->add_option("-b,--bundle", specBundle);
  specCommand->add_flag("--rootless", rootless);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    RuntimeLog::open(logPath, logFormat == "json" ? LogFormat::kJson : LogFormat::kText);
    if (systemdCgroup)
      fail("--systemd-cgroup: monocri-runtime manages cgroups with the cgroupfs driver only");
    if (*createCommand || *runCommand || *execCommand) ensureSealedSelf(argv);

    if (*createCommand) {
      createContainer(global, create);
    } else if (*runCommand) {
      return runContainer(global, run, runDetach);
    } else if (*startCommand) {
      startContainer(global, id);
    } else if (*stateCommand) {
      printState(global, id);
    } else if (*killCommand) {
      killContainer(global, id, signal, all);
    } else if (*deleteCommand) {
      deleteContainer(global, id, force);
    } else if (*execCommand) {
      exec.args = execCommand->remaining();
      return execInContainer(global, exec);
    } else if (*listCommand) {
      listContainers(global, format, quiet);
    } else if (*psCommand) {
      printProcesses(global, id, format);
    } else if (*pauseCommand) {
      pauseContainer(global, id, true);
    } else if (*resumeCommand) {
      pauseContainer(global, id, false);
    } else if (*updateCommand) {
      nlohmann::json overrides = nlohmann::json::object();
      if (memory) overrides["memory"]["limit"] = *memory;
      if (memorySwap) overrides["memory"]["swap"] = *memorySwap;
      if (memoryReservation) overrides["memory"]["reservation"] = *memoryReservation;
      if (cpuShares) overrides["cpu"]["shares"] = *cpuShares;
      if (cpuQuota) overrides["cpu"]["quota"] = *cpuQuota;
      if (cpuPeriod) overrides["cpu"]["period"] = *cpuPeriod;
      if (cpusetCpus) overrides["cpu"]["cpus"] = *cpusetCpus;
      if (cpusetMems) overrides["cpu"]["mems"] = *cpusetMems;
      if (pidsLimit) overrides["pids"]["limit"] = *pidsLimit;
      updateContainer(global, id, resources, overrides.empty() ? "" : overrides.dump());
    } else if (*featuresCommand) {
      printFeatures();
    } else if (*specCommand) {
      writeDefaultSpec(specBundle, rootless);
    }
    fflush(stdout);
    return 0;
  } catch (const std::exception& e) {
    // runc writes the error to stderr as well as to its log; callers read either.
    RuntimeLog::error(e.what());
    if (RuntimeLog::fd() != STDERR_FILENO) fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
