// Containers of pods: created through the OCI runtime from kubelet's config, started, stopped,
// removed, reported. Their output goes through monitor::ContainerIo to the CRI log, their exits
// come from the monitor. State persists under <root>/containers/<id>/ (container.json,
// config.pb); the bundle (config.json) is under <run_root>/containers/<id>/.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcStatus.h"
#include "exec/ExecSyncCall.h"
#include "loop/Loop.h"
#include "loop/Timer.h"
#include "monitor/ContainerIo.h"
#include "monitor/ExitMonitor.h"
#include "monitor/MemoryCgroup.h"
#include "oci/image/ContainerRootfs.h"
#include "oci/image/ImageManager.h"
#include "oci/runtime-client/ConsoleSocket.h"
#include "oci/runtime-client/OciRuntimeClient.h"
#include "oci/spec/ContainerSpec.h"
#include "pods/PodManager.h"

namespace monocri::pods {

enum class ContainerState { kCreating, kCreated, kRunning, kExited };

struct Container {
  std::string id, podId;
  runtime::v1::ContainerConfig config;
  std::string image;     // as kubelet named it (config.image.image)
  std::string imageId;   // sha256:... of the image config
  std::string imageRef;  // a repo digest if the image has one, else the id
  ContainerState state = ContainerState::kCreating;
  int64_t createdAtNs = 0, startedAtNs = 0, finishedAtNs = 0;
  pid_t pid = 0;
  int exitCode = 0;
  std::string reason, message;
  std::string logPath;
  std::string stopSignal = "SIGTERM";
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> additionalGids;
  std::string username;
  bool recovered = false;              // loaded after a daemon restart
  monitor::MemoryCgroup memoryCgroup;  // where its OOM kills are counted

  // Live parts.
  std::unique_ptr<monitor::ContainerIo> io;
  std::unique_ptr<oci::ConsoleSocket> console;  // a tty container's, until its terminal came
  loop::HandlePtr<loop::Timer> consoleTimer;
  std::string terminalError;     // the console socket failed before the runtime answered
  bool tracked = false;          // its pid is with the exit monitor
  bool configPersisted = false;  // config.pb holds `config` as it is
  std::vector<std::function<void(grpc::Status)>> stopWaiters;  // StopContainer calls waiting
  loop::HandlePtr<loop::Timer> killTimer;                      // SIGKILL after the timeout

  std::string key() const;  // pod/name/attempt: a CreateContainer retry is the same container
};

struct ContainerManagerOptions {
  std::string stateRoot, runRoot;
  logging::LogWriterOptions log;
  // Logs of new non-tty containers go through a journal (LogJournal.h); a journal made before
  // is taken up after a restart either way.
  bool logJournal = true;
  oci::HostLimits host;
  std::vector<std::pair<int, std::pair<uint64_t, uint64_t>>> defaultRlimits;
  std::string seccompProfileRoot;
};

class ContainerManager {
 public:
  ContainerManager(loop::Loop& loop, ContainerManagerOptions options, PodManager& pods,
                   oci::ImageManager& images, oci::ContainerRootfs& rootfs,
                   oci::OciRuntimeClient& runtime, monitor::ExitMonitor& exits);
  ~ContainerManager();

  // Reads the persisted containers after a restart. Those that were created or running are
  // checked with the OCI runtime; their exits and (with a keeper) their stdio come back through
  // the monitor. Half-created ones are removed.
  std::string load(std::vector<std::string>& notes);
  // The keeper's READY: the stdio read ends it held for containers.
  void adoptHeld(std::vector<std::pair<std::string, std::pair<uint32_t, int>>> held);

  using CreateDone = std::function<void(grpc::Status, const std::string& id)>;
  void create(const std::string& podId, const runtime::v1::ContainerConfig& config,
              const runtime::v1::PodSandboxConfig& podConfig, CreateDone done);
  void start(const std::string& id, std::function<void(grpc::Status)> done);
  // Signal (the image's StopSignal, else SIGTERM), then SIGKILL after `timeoutSeconds`; answers
  // once the container has exited. Stopping what is not running, or is gone, is success.
  void stop(const std::string& id, int64_t timeoutSeconds, std::function<void(grpc::Status)> done);
  void remove(const std::string& id, std::function<void(grpc::Status)> done);
  // ReopenContainerLog: answers once the records accepted before it are in the renamed file.
  void reopenLog(const std::string& id, std::function<void(grpc::Status)> done);
  // New cgroup limits for a created or running container (`runtime update`), kept for its
  // status and for a restart of the daemon. Fields left unset keep their values.
  void updateResources(const std::string& id, const runtime::v1::LinuxContainerResources& resources,
                       std::function<void(grpc::Status)> done);

  const Container* find(const std::string& id) const;
  std::vector<const Container*> list(const runtime::v1::ContainerFilter& filter) const;
  std::vector<const Container*> ofPod(const std::string& podId) const;
  nlohmann::json verboseInfo(const Container& container) const;

  // ExecSync: `cmd` run to its end in the running container `id`, with the container's process
  // settings (env, user, cwd, capabilities...), no terminal (see exec::ExecSyncCall).
  void execSync(const std::string& id, std::vector<std::string> cmd, int64_t timeoutSeconds,
                std::function<void(grpc::Status, exec::ExecSyncResult)> done);

  // What the runtime's exec needs for `cmd` in the running container `id`: the process file (the
  // container's process settings, args replaced, a terminal if `tty`), the pid file and their
  // removal, the exit monitor's name and, with a tty, the console socket's path.
  grpc::Status prepareExec(const std::string& id, std::vector<std::string> cmd, bool tty,
                           exec::ExecProcessRequest& out);

  // stdin_once after an attacher's end of input: the container's stdin closes once what was
  // queued is written, the keeper's copy with it.
  void closeStdin(const std::string& id);

  // For the pod manager: every container of a pod stopped (or removed).
  void stopAllOf(const std::string& podId, std::function<void(grpc::Status)> done);
  void removeAllOf(const std::string& podId, std::function<void(grpc::Status)> done);

 private:
  void finishCreate(const std::string& key, grpc::Status status, const std::string& id);
  void failCreate(const std::string& id, grpc::Status status);
  // The image's config ("config" of its config blob; {} if it has none), parsed once per image.
  grpc::Status imageConfigOf(const oci::ImageRecord& image, nlohmann::json& config);
  void runtimeCreated(const std::string& id);
  void exited(const std::string& id, const monitor::ExitInfo& exit);
  void exitNotSeen(const std::string& id);
  void reconcile(const std::string& id);
  void startIo(Container& container);
  // The daemon's log options with the pod's own limits (its annotations) applied.
  grpc::Status logOptionsFor(const std::string& podId, logging::LogWriterOptions& out) const;
  grpc::Status persist(Container& container);
  grpc::Status persistConfig(Container& container);  // config.pb, once
  // The container's log writer and pipes (ContainerIo).
  grpc::Status openIo(Container& container);
  void answerStops(Container& container, grpc::Status status);
  std::string bundleDir(const std::string& id) const;
  std::string stateDir(const std::string& id) const;
  // The container's log journal (its state): under the run root, as its pipes are.
  std::string logJournalDir(const std::string& id) const;
  // Reconciles the journal of a container whose output is taken up after a restart with its
  // pipes (`fds`, as the keeper gave them back) and attaches it to `writer`.
  void recoverLogJournal(const std::string& id, const std::string& logPath,
                         logging::LogWriter& writer, monitor::ContainerIoFds& fds);

  loop::Loop& loop_;
  ContainerManagerOptions options_;
  PodManager& pods_;
  oci::ImageManager& images_;
  oci::ContainerRootfs& rootfs_;
  oci::OciRuntimeClient& runtime_;
  monitor::ExitMonitor& exits_;
  std::map<std::string, std::unique_ptr<Container>> containers_;
  std::map<std::string, std::vector<CreateDone>> pendingCreates_;  // by key
  std::map<std::string, nlohmann::json> imageConfigs_;  // parsed image configs, by image id
  std::map<uint64_t, std::unique_ptr<exec::ExecSyncCall>> execSyncs_;
  uint64_t nextExecSync_ = 0;
  loop::LifetimeGuard lifetime_;
};

// A container name kubelet may send: not empty, no path separators, no "." or "..".
grpc::Status checkContainerName(const std::string& name);
// The log file inside the pod's log directory; an escape from it is an error.
grpc::Status containerLogPath(const std::string& logDirectory, const std::string& logPath,
                              std::string& out);

}  // namespace monocri::pods
