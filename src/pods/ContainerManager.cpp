#include "pods/ContainerManager.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <filesystem>

#include "exec/StreamRequestCache.h"
#include "loop/WorkQueue.h"
#include "oci/spec/SpecResources.h"
#include "state/StateFiles.h"

namespace monocri::pods {

namespace v1 = runtime::v1;
using grpc::Status;
using grpc::StatusCode;

namespace {

constexpr size_t kMaxImageConfigBytes = 8 << 20;
constexpr size_t kImageConfigsKept = 64;
// After `runtime create` succeeded, the terminal it sent is read on the next loop turns.
constexpr uint64_t kTerminalWaitMs = 5000;
// After SIGKILL, how long a stop waits for the exit before asking the runtime what became of it.
constexpr uint64_t kExitAfterKillWaitMs = 10000;

// A pod's own, lower, flood-control limit for its containers' logs.
constexpr const char* kLogRateAnnotation = "io.monocri.log-rate-limit";

// "1048576", "512Ki", "2Mi", "1M"... as bytes; false for anything else.
bool parseByteCount(std::string_view text, uint64_t& out) {
  static const std::pair<std::string_view, uint64_t> kUnits[] = {
      {"Ki", 1ull << 10}, {"Mi", 1ull << 20}, {"Gi", 1ull << 30},
      {"k", 1000},        {"M", 1000000},     {"G", 1000000000}};
  uint64_t unit = 1;
  for (const auto& [suffix, factor] : kUnits) {
    if (text.size() > suffix.size() && text.ends_with(suffix)) {
      text.remove_suffix(suffix.size());
      unit = factor;
      break;
    }
  }
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return false;
  if (value > (uint64_t{1} << 40) / unit) return false;
  out = value * unit;
  return true;
}

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "SIGTERM", "TERM" or "15" as images write StopSignal.
int signalNumber(const std::string& name) {
  static const std::map<std::string, int> kSignals = {
      {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"WINCH", SIGWINCH},
      {"PWR", SIGPWR},   {"STOP", SIGSTOP}, {"CONT", SIGCONT}, {"ALRM", SIGALRM}};
  std::string text = name;
  if (text.starts_with("SIG")) text = text.substr(3);
  if (auto it = kSignals.find(text); it != kSignals.end()) return it->second;
  if (!text.empty() && text.size() < 3 &&
      text.find_first_not_of("0123456789") == std::string::npos) {
    const int number = std::stoi(text);
    if (number >= 1 && number <= 64) return number;
  }
  return SIGTERM;
}

const char* stateName(ContainerState state) {
  switch (state) {
    case ContainerState::kCreating:
      return "creating";
    case ContainerState::kCreated:
      return "created";
    case ContainerState::kRunning:
      return "running";
    case ContainerState::kExited:
      return "exited";
  }
  return "?";
}

v1::ContainerState criState(ContainerState state) {
  switch (state) {
    case ContainerState::kCreated:
      return v1::CONTAINER_CREATED;
    case ContainerState::kRunning:
      return v1::CONTAINER_RUNNING;
    case ContainerState::kExited:
      return v1::CONTAINER_EXITED;
    default:
      return v1::CONTAINER_UNKNOWN;
  }
}

}  // namespace

std::string Container::key() const {
  return fmt::format("{}/{}/{}", podId, config.metadata().name(), config.metadata().attempt());
}

Status checkContainerName(const std::string& name) {
  if (name.empty()) {
    return Status(StatusCode::kInvalidArgument, "container metadata: name is required");
  }
  if (name.find('/') != std::string::npos || name == "." || name == ".." ||
      name.find('\0') != std::string::npos || name.size() > 253) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("container name '{}' may not hold '/', be '.' or '..', or exceed "
                              "253 characters",
                              name.substr(0, 100)));
  }
  return Status::ok();
}

Status containerLogPath(const std::string& logDirectory, const std::string& logPath,
                        std::string& out) {
  out.clear();
  if (logPath.empty() || logDirectory.empty()) return Status::ok();  // no log asked
  const std::filesystem::path relative(logPath);
  bool escapes = relative.is_absolute();
  for (const auto& part : relative)
    if (part == "..") escapes = true;
  if (escapes) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("log_path '{}' must stay inside the pod's log directory {}",
                              logPath.substr(0, 200), logDirectory));
  }
  out = (std::filesystem::path(logDirectory) / relative).lexically_normal().string();
  return Status::ok();
}

ContainerManager::ContainerManager(loop::Loop& loop, ContainerManagerOptions options,
                                   PodManager& pods, oci::ImageManager& images,
                                   oci::ContainerRootfs& rootfs, oci::OciRuntimeClient& runtime,
                                   monitor::ExitMonitor& exits)
    : loop_(loop),
      options_(std::move(options)),
      pods_(pods),
      images_(images),
      rootfs_(rootfs),
      runtime_(runtime),
      exits_(exits) {
  pods_.stopContainersOf = [this](const std::string& podId, std::function<void(Status)> done) {
    stopAllOf(podId, std::move(done));
  };
  pods_.removeContainersOf = [this](const std::string& podId, std::function<void(Status)> done) {
    removeAllOf(podId, std::move(done));
  };
}

ContainerManager::~ContainerManager() {
  pods_.stopContainersOf = nullptr;
  pods_.removeContainersOf = nullptr;
}

Status ContainerManager::prepareExec(const std::string& id, std::vector<std::string> cmd, bool tty,
                                     exec::ExecProcessRequest& out) {
  if (cmd.empty()) return Status(StatusCode::kInvalidArgument, "an exec needs a cmd");
  const Container* c = find(id);
  if (c == nullptr) return Status(StatusCode::kNotFound, fmt::format("container {} not found", id));
  if (c->state != ContainerState::kRunning) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("container {} is not running: nothing to exec in", id));
  }
  // The container's own process settings, with the command in place of its args.
  const std::string bundle = bundleDir(id);
  std::string text;
  if (std::string error = state::readFile(bundle + "/config.json", 4 << 20, text); !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  nlohmann::json process = nlohmann::json::parse(text, nullptr, false);
  if (process.is_discarded() || !process.is_object() || !process.contains("process") ||
      !process["process"].is_object()) {
    return Status(StatusCode::kInternal,
                  fmt::format("{}/config.json has no process object", bundle));
  }
  process = std::move(process["process"]);
  process["args"] = std::move(cmd);
  process["terminal"] = tty;
  process.erase("consoleSize");
  // Unique across daemon restarts too (the counter is not): the pid files and the exit
  // monitor's names must not meet an exec of an earlier daemon.
  const std::string n = fmt::format("{}-{}", exec::newStreamToken().substr(0, 8), nextExecSync_++);
  out.processFile = fmt::format("{}/exec-{}.json", bundle, n);
  out.pidFile = fmt::format("{}/exec-{}.pid", bundle, n);
  out.owner = fmt::format("exec-{}-{}", id.substr(0, 32), n);  // the keeper takes 64 bytes
  out.containerId = id;
  out.tty = tty;
  if (tty) {
    // Short on purpose: a unix socket path holds at most 107 bytes.
    const std::string dir = options_.runRoot + "/cs";
    if (std::string e = state::makeDirectories(dir, 0700); !e.empty()) {
      return Status(StatusCode::kInternal, e);
    }
    out.consoleSocket = dir + "/e" + n;
  }
  // The run root is a tmpfs; a crash loses the call anyway.
  if (std::string error = state::writeFileAtomically(out.processFile, process.dump(), 0600,
                                                     state::Durability::kProcessCrash);
      !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  out.removeFiles = [files = std::pair{out.processFile, out.pidFile}] {
    unlink(files.first.c_str());
    unlink(files.second.c_str());
  };
  return Status::ok();
}

void ContainerManager::execSync(const std::string& id, std::vector<std::string> cmd,
                                int64_t timeoutSeconds,
                                std::function<void(Status, exec::ExecSyncResult)> done) {
  auto fail = [this, &done](Status status) {
    loop_.defer(lifetime_.watch(), [done, status] { done(status, {}); });
  };
  if (cmd.empty()) return fail(Status(StatusCode::kInvalidArgument, "ExecSync needs a cmd"));
  if (timeoutSeconds < 0) {
    return fail(Status(StatusCode::kInvalidArgument,
                       fmt::format("ExecSync timeout {} is negative", timeoutSeconds)));
  }
  exec::ExecSyncRequest request;
  if (Status status = prepareExec(id, std::move(cmd), false, request.process); !status.isOk()) {
    return fail(status);
  }
  request.timeoutSeconds = timeoutSeconds;
  const uint64_t n = nextExecSync_++;
  execSyncs_.emplace(
      n, exec::ExecSyncCall::start(
             loop_, runtime_, exits_, std::move(request),
             [this, n, done = std::move(done)](Status status, exec::ExecSyncResult result) {
               // The call is on the stack: freed after.
               loop_.defer(lifetime_.watch(), [this, n] { execSyncs_.erase(n); });
               done(std::move(status), std::move(result));
             }));
}

void ContainerManager::closeStdin(const std::string& id) {
  auto it = containers_.find(id);
  if (it == containers_.end() || !it->second->io) return;
  it->second->io->closeStdin();
  if (!it->second->config.tty()) {
    exits_.release(id, static_cast<uint32_t>(monitor::HeldStream::kStdin));
  }
}

std::string ContainerManager::bundleDir(const std::string& id) const {
  return options_.runRoot + "/containers/" + id;
}
std::string ContainerManager::logJournalDir(const std::string& id) const {
  return bundleDir(id) + "/log";
}

void ContainerManager::recoverLogJournal(const std::string& id, const std::string& logPath,
                                         logging::LogWriter& writer, monitor::ContainerIoFds& fds) {
  const std::string dir = logJournalDir(id);
  if (!std::filesystem::exists(dir)) return;  // made by a daemon without journals
  logging::LogJournalRecovery found;
  std::string error;
  auto journal =
      logging::LogJournal::recover(dir, logPath, {fds.stdoutRead.get(), fds.stderrRead.get()},
                                   std::move(fds.journalHeld), found, error);
  if (!journal) {
    spdlog::warn("container {}: {}; its log goes on without a journal", id, error);
    return;
  }
  spdlog::info(
      "container {}: log journal taken up: {} record(s) of the last batches were in the log, {} "
      "byte(s) of a torn record cut off{}{}",
      id, found.recordsAfterCommit, found.tornBytesCut,
      found.stepFinished ? "; a consumption of logged output was finished" : "",
      found.logReplaced ? "; the log file was replaced meanwhile" : "");
  writer.attachJournal(std::move(journal), found.state);
}

std::string ContainerManager::stateDir(const std::string& id) const {
  return options_.stateRoot + "/containers/" + id;
}

Status ContainerManager::persistConfig(Container& c) {
  // Rewritten only when it changed (created, resources updated).
  if (c.configPersisted) return Status::ok();
  const std::string dir = stateDir(c.id);
  if (std::string error = state::makeDirectories(dir, 0700); !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  std::string config;
  c.config.SerializeToString(&config);
  if (std::string error = state::writeFileAtomically(dir + "/config.pb", config, 0600,
                                                     state::Durability::kProcessCrash);
      !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  c.configPersisted = true;
  return Status::ok();
}

Status ContainerManager::persist(Container& c) {
  if (Status s = persistConfig(c); !s.isOk()) return s;
  const std::string dir = stateDir(c.id);
  const nlohmann::json record = {{"id", c.id},
                                 {"pod_id", c.podId},
                                 {"image", c.image},
                                 {"image_id", c.imageId},
                                 {"image_ref", c.imageRef},
                                 {"state", stateName(c.state)},
                                 {"created_at", c.createdAtNs},
                                 {"started_at", c.startedAtNs},
                                 {"finished_at", c.finishedAtNs},
                                 {"pid", c.pid},
                                 {"exit_code", c.exitCode},
                                 {"reason", c.reason},
                                 {"message", c.message},
                                 {"log_path", c.logPath},
                                 {"stop_signal", c.stopSignal},
                                 {"uid", c.uid},
                                 {"gid", c.gid},
                                 {"additional_gids", c.additionalGids},
                                 {"username", c.username},
                                 {"oom_counter", c.memoryCgroup.oomCounterPath}};
  if (std::string error = state::writeFileAtomically(dir + "/container.json", record.dump(), 0600,
                                                     state::Durability::kProcessCrash);
      !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  return Status::ok();
}

Status ContainerManager::imageConfigOf(const oci::ImageRecord& image, nlohmann::json& config) {
  const std::string key = image.id.str();
  if (auto it = imageConfigs_.find(key); it != imageConfigs_.end()) {
    config = it->second;
    return Status::ok();
  }
  std::string bytes;
  if (std::string error = images_.store().readBlob(image.id, kMaxImageConfigBytes, bytes);
      !error.empty()) {
    return Status(StatusCode::kInternal, error);
  }
  config = nlohmann::json::object();
  const auto document = nlohmann::json::parse(bytes, nullptr, false);
  if (document.is_object() && document.contains("config") && document["config"].is_object()) {
    config = document["config"];
  }
  // A blob named by its digest never changes: the parse is kept, for a node's few images.
  if (imageConfigs_.size() >= kImageConfigsKept) imageConfigs_.clear();
  imageConfigs_.emplace(key, config);
  return Status::ok();
}

void ContainerManager::create(const std::string& podId, const v1::ContainerConfig& config,
                              const v1::PodSandboxConfig& /*podConfig*/, CreateDone done) {
  // The pod's config as RunPodSandbox stored it is the one used, not kubelet's copy.
  const PodSandbox* pod = pods_.find(podId);
  if (pod == nullptr) {
    return done(Status(StatusCode::kNotFound, fmt::format("pod sandbox {} not found", podId)), "");
  }
  if (pod->state != PodState::kReady) {
    return done(Status(StatusCode::kFailedPrecondition,
                       fmt::format("pod sandbox {} is not ready ({})", podId, pod->stopReason)),
                "");
  }
  if (Status s = checkContainerName(config.metadata().name()); !s.isOk()) return done(s, "");
  if (config.image().image().empty()) {
    return done(Status(StatusCode::kInvalidArgument, "container config: image is required"), "");
  }
  std::string logPath;
  if (Status s = containerLogPath(pod->config.log_directory(), config.log_path(), logPath);
      !s.isOk()) {
    return done(s, "");
  }

  auto container = std::make_unique<Container>();
  container->podId = podId;
  container->config = config;
  const std::string key = container->key();
  if (auto waiting = pendingCreates_.find(key); waiting != pendingCreates_.end()) {
    waiting->second.push_back(std::move(done));
    return;
  }
  for (const auto& [id, existing] : containers_) {
    // kubelet's retry (same pod, name and attempt): the same container. A restarted
    // container comes with the next attempt number, so a name is never taken twice.
    if (existing->key() == key) return done(Status::ok(), id);
  }

  const oci::ImageRecord* image = images_.resolve(config.image().image());
  if (image == nullptr) {
    return done(Status(StatusCode::kNotFound,
                       fmt::format("image '{}' is not present on this node: pull it first",
                                   config.image().image().substr(0, 300))),
                "");
  }
  nlohmann::json imageConfig;
  if (Status s = imageConfigOf(*image, imageConfig); !s.isOk()) return done(s, "");

  container->id = newPodOrContainerId();
  container->image = config.image().image();
  container->imageId = image->id.str();
  container->imageRef = image->repoDigests.empty() ? image->id.str() : image->repoDigests.front();
  container->createdAtNs = nowNs();
  container->logPath = logPath;
  const std::string id = container->id;
  containers_[id] = std::move(container);
  pendingCreates_[key].push_back(std::move(done));

  // The spec needs the mounted rootfs (the image's /etc/passwd): rootfs first.
  oci::PodSpecContext context;
  context.podId = pod->id;
  context.netnsPath = pod->netnsPath();
  context.ipcnsPath = pod->ipcnsPath();
  context.utsnsPath = pod->utsnsPath();
  context.hostNetwork = pod->networkMode == v1::NODE;
  context.hostIpc = pod->ipcMode == v1::NODE;
  context.hostPid = pod->pidMode == v1::NODE;
  context.pidnsPath = pod->pidMode == v1::POD ? pod->pidnsPath() : std::string();
  context.hostname = pod->config.hostname();
  context.hostnamePath = pod->hostnamePath();
  context.hostsPath = pod->hostsPath();
  context.resolvConfPath = pod->resolvConfPath();
  context.shmPath = pod->shmPath();
  context.cgroupParent = pod->config.linux().cgroup_parent();
  // The container's own pid namespace mode may differ from the pod's (kubelet sends it).
  const auto pidMode = config.linux().security_context().namespace_options().pid();
  if (pidMode == v1::CONTAINER) context.pidnsPath.clear();

  struct Job {
    oci::ContainerSpecInputs inputs;
    v1::ContainerConfig config;
    v1::PodSandboxConfig podConfig;
    oci::ContainerSpec spec;
    Status status;
    Status ioStatus;  // the loop's part, done meanwhile
    std::string bundle;
  };
  auto job = std::make_shared<Job>();
  job->config = config;
  job->podConfig = pod->config;
  job->inputs.containerId = id;
  job->inputs.imageConfig = imageConfig;
  job->inputs.imageName = image->repoTags.empty() ? config.image().image() : image->repoTags[0];
  job->inputs.imageRef = containers_[id]->imageRef;
  job->inputs.pod = context;
  job->inputs.host = options_.host;
  job->inputs.defaultRlimits = options_.defaultRlimits;
  job->inputs.seccompProfileRoot = options_.seccompProfileRoot;
  job->bundle = bundleDir(id);

  rootfs_.create(
      id, image->id, [this, id, job, alive = lifetime_.watch()](Status status, std::string rootfs) {
        if (alive.expired()) return;
        if (!status.isOk()) return failCreate(id, status);
        job->inputs.rootfsPath = rootfs;
        job->inputs.config = &job->config;
        job->inputs.podConfig = &job->podConfig;
        loop::queueWork(
            loop_, "container spec",
            [job] {
              job->status = oci::buildContainerSpec(job->inputs, job->spec);
              if (!job->status.isOk()) return;
              if (std::string error = state::makeDirectories(job->bundle, 0700); !error.empty()) {
                job->status = Status(StatusCode::kInternal, error);
                return;
              }
              if (std::string error = state::writeFileAtomically(job->bundle + "/config.json",
                                                                 job->spec.config.dump(), 0600,
                                                                 state::Durability::kProcessCrash);
                  !error.empty()) {
                job->status = Status(StatusCode::kInternal, error);
              }
            },
            [this, id, job, alive = lifetime_.watch()] {
              if (alive.expired()) return;
              auto it = containers_.find(id);
              if (it == containers_.end()) return;
              if (!job->status.isOk()) return failCreate(id, job->status);
              if (!job->ioStatus.isOk()) return failCreate(id, job->ioStatus);
              Container& c = *it->second;
              for (const auto& warning : job->spec.warnings)
                spdlog::warn("container {}: {}", id, warning);
              c.stopSignal = job->spec.stopSignal.empty() ? "SIGTERM" : job->spec.stopSignal;
              c.uid = job->spec.uid;
              c.gid = job->spec.gid;
              c.additionalGids = job->spec.additionalGids;
              c.username = job->spec.username;

              std::string error;
              oci::RuntimeCreateOptions create;
              create.id = id;
              create.bundle = job->bundle;
              create.pidFile = job->bundle + "/pid";
              create.stdinFd = c.io->stdinReadFd();
              create.stdoutFd = c.io->stdoutWriteFd();
              create.stderrFd = c.io->stderrWriteFd();
              if (c.config.tty()) {
                // Short on purpose: a unix socket path holds at most 107 bytes.
                const std::string dir = options_.runRoot + "/cs";
                if (std::string e = state::makeDirectories(dir, 0700); !e.empty()) {
                  return failCreate(id, Status(StatusCode::kInternal, e));
                }
                c.console = oci::ConsoleSocket::listen(loop_, dir + "/" + id.substr(0, 16), error);
                if (!c.console) {
                  return failCreate(
                      id, Status(StatusCode::kInternal, "the terminal's console socket: " + error));
                }
                create.consoleSocket = c.console->path();
                c.console->receive([this, id](state::UniqueFd master, std::string error) {
                  auto it = containers_.find(id);
                  if (it == containers_.end()) return;
                  Container& c = *it->second;
                  c.console.reset();
                  if (!master.valid() || !c.io->attachTerminal(std::move(master), error).isOk()) {
                    // The runtime may still be creating: its answer fails the create then.
                    c.terminalError = "the container's terminal: " + error;
                    if (c.pid > 0) failCreate(id, Status(StatusCode::kInternal, c.terminalError));
                    return;
                  }
                  runtimeCreated(id);
                });
              }
              runtime_.create(
                  create, [this, id, alive = lifetime_.watch()](Status status, pid_t pid) {
                    if (alive.expired()) return;
                    auto it = containers_.find(id);
                    if (it == containers_.end()) return;
                    if (!status.isOk()) return failCreate(id, status);
                    Container& c = *it->second;
                    c.pid = pid;
                    c.io->closeContainerEnds();
                    if (!c.terminalError.empty()) {
                      return failCreate(id, Status(StatusCode::kInternal, c.terminalError));
                    }
                    if (c.console) {
                      // The runtime sent the terminal before it exited: it is on its way.
                      c.consoleTimer = loop::Timer::create(loop_, "terminal wait");
                      c.consoleTimer->start(kTerminalWaitMs, 0, [this, id] {
                        failCreate(id, Status(StatusCode::kInternal,
                                              "the OCI runtime created a tty container but sent "
                                              "no terminal to its console socket"));
                      });
                    }
                    runtimeCreated(id);
                  });
              // The runtime takes milliseconds: kubelet's config is written meanwhile. A
              // failure comes back from persist() once the runtime has answered.
              (void)persistConfig(c);
            });
        // While a worker builds the spec: the log file and the container's pipes. A failure
        // waits for the worker (it writes into the bundle that failCreate removes).
        if (auto it = containers_.find(id); it != containers_.end()) {
          job->ioStatus = openIo(*it->second);
        }
      });
}

Status ContainerManager::openIo(Container& c) {
  std::unique_ptr<logging::LogWriter> writer;
  std::string error;
  if (!c.logPath.empty()) {
    logging::LogWriterOptions logOptions;
    if (Status s = logOptionsFor(c.podId, logOptions); !s.isOk()) return s;
    std::filesystem::create_directories(std::filesystem::path(c.logPath).parent_path());
    writer = logging::LogWriter::open(loop_, c.logPath, logOptions, error);
    if (!writer) return Status(StatusCode::kInternal, error);
    if (options_.logJournal && !c.config.tty()) {
      // A pty cannot be teed: a tty container's log has no journal.
      auto journal = logging::LogJournal::create(logJournalDir(c.id), c.logPath, error);
      if (!journal) return Status(StatusCode::kInternal, error);
      writer->attachJournal(std::move(journal), {});
    }
  }
  c.io = monitor::ContainerIo::create(loop_, std::move(writer), {c.config.tty(), c.config.stdin()},
                                      error);
  if (!c.io) return Status(StatusCode::kInternal, error);
  return Status::ok();
}

// Both halves of a create are done: the runtime's (pid known) and, for a tty container, the
// terminal's. From here the container is supervised: held by the keeper, tracked, read.
void ContainerManager::runtimeCreated(const std::string& id) {
  auto it = containers_.find(id);
  if (it == containers_.end()) return;
  Container& c = *it->second;
  if (c.pid <= 0 || c.console || c.state != ContainerState::kCreating) return;
  c.consoleTimer.reset();
  for (const auto& [tag, fd] : c.io->heldFds())
    exits_.hold(id, static_cast<uint32_t>(tag), fd);
  std::string error;
  c.memoryCgroup = monitor::memoryCgroupOf(c.pid, error);
  if (c.memoryCgroup.empty()) {
    spdlog::warn("container {}: OOM kills cannot be told from other kills: {}", id, error);
  }
  c.tracked = true;
  exits_.track(id, c.pid, [this, id](const monitor::ExitInfo& exit) { exited(id, exit); });
  startIo(c);
  c.state = ContainerState::kCreated;
  if (Status s = persist(c); !s.isOk()) return failCreate(id, s);
  spdlog::info("container {} ({}) created in pod {}", id, c.config.metadata().name(), c.podId);
  finishCreate(c.key(), Status::ok(), id);
}

Status ContainerManager::logOptionsFor(const std::string& podId,
                                       logging::LogWriterOptions& out) const {
  out = options_.log;
  const PodSandbox* pod = pods_.find(podId);
  if (pod == nullptr) return Status::ok();
  const auto& annotations = pod->config.annotations();
  const auto it = annotations.find(kLogRateAnnotation);
  if (it == annotations.end()) return Status::ok();
  uint64_t rate = 0;
  if (!parseByteCount(it->second, rate) || rate == 0) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("pod annotation {}: '{}' is not a positive byte rate (e.g. "
                              "1048576, 512Ki, 2Mi)",
                              kLogRateAnnotation, it->second.substr(0, 64)));
  }
  // The node's limit is a ceiling a pod may lower, never raise.
  if (out.rateBytesPerSecond == 0 || rate < out.rateBytesPerSecond) {
    out.rateBytesPerSecond = rate;
    if (out.rateBurstBytes > rate) out.rateBurstBytes = rate;
  }
  return Status::ok();
}

void ContainerManager::startIo(Container& c) {
  c.io->start([this, id = c.id] {
    auto it = containers_.find(id);
    if (it != containers_.end() && it->second->io && it->second->io->writer()) {
      it->second->io->writer()->finish();
    }
  });
}

namespace {

ContainerState stateFromName(const std::string& name) {
  if (name == "created") return ContainerState::kCreated;
  if (name == "running") return ContainerState::kRunning;
  if (name == "exited") return ContainerState::kExited;
  return ContainerState::kCreating;
}

}  // namespace

std::string ContainerManager::load(std::vector<std::string>& notes) {
  const std::string root = options_.stateRoot + "/containers";
  if (std::string error = state::makeDirectories(root, 0700); !error.empty()) return error;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    const std::string id = entry.path().filename();
    std::string text, configBytes;
    auto c = std::make_unique<Container>();
    bool ok = oci::isValidContainerId(id) &&
              state::readFile(entry.path().string() + "/container.json", 1 << 20, text).empty() &&
              state::readFile(entry.path().string() + "/config.pb", 4 << 20, configBytes).empty() &&
              c->config.ParseFromString(configBytes);
    if (ok) {
      try {
        const auto r = nlohmann::json::parse(text);
        c->id = r.at("id").get<std::string>();
        c->podId = r.at("pod_id").get<std::string>();
        c->image = r.at("image").get<std::string>();
        c->imageId = r.at("image_id").get<std::string>();
        c->imageRef = r.at("image_ref").get<std::string>();
        c->state = stateFromName(r.at("state").get<std::string>());
        c->createdAtNs = r.at("created_at").get<int64_t>();
        c->startedAtNs = r.at("started_at").get<int64_t>();
        c->finishedAtNs = r.at("finished_at").get<int64_t>();
        c->pid = r.at("pid").get<pid_t>();
        c->exitCode = r.at("exit_code").get<int>();
        c->reason = r.at("reason").get<std::string>();
        c->message = r.at("message").get<std::string>();
        c->logPath = r.at("log_path").get<std::string>();
        c->stopSignal = r.at("stop_signal").get<std::string>();
        c->uid = r.at("uid").get<uint32_t>();
        c->gid = r.value("gid", 0u);
        c->additionalGids = r.value("additional_gids", std::vector<uint32_t>());
        c->username = r.at("username").get<std::string>();
        c->memoryCgroup.oomCounterPath = r.value("oom_counter", "");
        ok = c->id == id && c->state != ContainerState::kCreating && pods_.find(c->podId);
      } catch (const nlohmann::json::exception&) {
        ok = false;
      }
    }
    if (!ok) {
      // Never finished, damaged, or its pod is gone: nothing of it may stay.
      notes.push_back(fmt::format("container {}: unfinished or orphaned record, removed", id));
      runtime_.remove(id, true, [](Status) {});
      rootfs_.remove(id, [](Status) {});
      state::removeTree(bundleDir(id));
      state::removeTree(entry.path());
      continue;
    }
    c->recovered = true;
    c->configPersisted = true;
    const bool live = c->state == ContainerState::kCreated || c->state == ContainerState::kRunning;
    containers_[id] = std::move(c);
    if (live) reconcile(id);
  }
  return ec ? fmt::format("read {}: {}", root, ec.message()) : std::string();
}

// A container that was created or running when the previous daemon stopped: its exit comes from
// the keeper (at READY or later); the runtime says whether it still exists at all.
void ContainerManager::reconcile(const std::string& id) {
  Container& c = *containers_[id];
  exits_.expect(id, c.pid, [this, id](const monitor::ExitInfo& exit) { exited(id, exit); });
  runtime_.state(id, [this, id, alive = lifetime_.watch()](Status status, oci::OciState state) {
    if (alive.expired()) return;
    auto it = containers_.find(id);
    if (it == containers_.end() || it->second->state == ContainerState::kExited) return;
    Container& c = *it->second;
    if (status.isOk() &&
        (state.status == "running" || state.status == "created" || state.status == "paused")) {
      if (!c.io) c.message = "running since before the daemon restarted";
      return;
    }
    if (status.isOk() && state.status == "stopped" && exits_.hasKeeper()) {
      return;  // the keeper has its exit status and reports it
    }
    // Gone with a node restart (the runtime's state is under /run), or stopped with nobody to
    // have recorded how: say so rather than invent an exit code.
    c.state = ContainerState::kExited;
    c.finishedAtNs = nowNs();
    c.exitCode = 255;
    c.reason = "Unknown";
    c.message = status.isOk()
                    ? "the container stopped while no keeper recorded its exit: exit code unknown"
                    : "the container is gone (node or daemon restart): exit code unknown";
    if (Status s = persist(c); !s.isOk()) spdlog::error("container {}: {}", id, s.message());
    answerStops(c, Status::ok());
  });
}

void ContainerManager::adoptHeld(
    std::vector<std::pair<std::string, std::pair<uint32_t, int>>> held) {
  std::map<std::string, monitor::ContainerIoFds> byOwner;
  for (auto& [owner, tagFd] : held) {
    auto& [tag, fd] = tagFd;
    monitor::ContainerIoFds& fds = byOwner[owner];
    switch (static_cast<monitor::HeldStream>(tag)) {
      case monitor::HeldStream::kStdout:
        fds.stdoutRead.reset(fd);
        break;
      case monitor::HeldStream::kStderr:
        fds.stderrRead.reset(fd);
        break;
      case monitor::HeldStream::kStdin:
        fds.stdinWrite.reset(fd);
        break;
      case monitor::HeldStream::kTerminal:
        fds.terminal.reset(fd);
        break;
      case monitor::HeldStream::kStdoutJournal:
        fds.journalHeld[0].reset(fd);
        break;
      case monitor::HeldStream::kStderrJournal:
        fds.journalHeld[1].reset(fd);
        break;
      default:
        ::close(fd);
    }
  }
  for (auto& [owner, fds] : byOwner) {
    auto it = containers_.find(owner);
    if (it == containers_.end() || it->second->io) {
      spdlog::warn("the keeper held stdio of {}, which this daemon does not know: closed", owner);
      exits_.release(owner);
      continue;
    }
    Container& c = *it->second;
    std::unique_ptr<logging::LogWriter> writer;
    std::string error;
    if (!c.logPath.empty()) {
      logging::LogWriterOptions logOptions;
      if (Status s = logOptionsFor(c.podId, logOptions); !s.isOk()) {
        spdlog::warn("container {}: {}; its log is written without that limit", owner, s.message());
      }
      writer = logging::LogWriter::open(loop_, c.logPath, logOptions, error);
      if (!writer) spdlog::warn("container {}: log {}: {}", owner, c.logPath, error);
    }
    if (writer && !fds.terminal.valid() && fds.stdoutRead.valid() && fds.stderrRead.valid()) {
      recoverLogJournal(owner, c.logPath, *writer, fds);
    }
    c.io = monitor::ContainerIo::adopt(loop_, std::move(writer), std::move(fds), error);
    if (!c.io) {
      spdlog::warn("container {}: cannot read its output again: {}", owner, error);
      continue;
    }
    // The keeper keeps its copies: hold() is not needed again.
    c.message.clear();
    startIo(c);
    spdlog::info("container {}: output reconnected after the restart", owner);
  }
}

void ContainerManager::failCreate(const std::string& id, Status status) {
  auto it = containers_.find(id);
  if (it == containers_.end()) return;
  const std::string key = it->second->key();
  spdlog::warn("container {}: create failed: {}", id, status.message());
  Container& c = *it->second;
  if (c.pid > 0 && !c.tracked) {
    // The runtime made it: its process is reaped when the forced delete below kills it.
    exits_.track(id, c.pid, [this, id](const monitor::ExitInfo& exit) { exited(id, exit); });
  }
  containers_.erase(it);
  exits_.release(id);
  // Nothing half-made stays: the runtime's container (if any), the rootfs, the dirs.
  runtime_.remove(id, true, [this, id, key, status, alive = lifetime_.watch()](Status) {
    if (alive.expired()) return;
    rootfs_.remove(id, [this, id, key, status, alive = lifetime_.watch()](Status) {
      if (alive.expired()) return;
      state::removeTree(bundleDir(id));
      state::removeTree(stateDir(id));
      finishCreate(key, status, "");
    });
  });
}

void ContainerManager::finishCreate(const std::string& key, Status status, const std::string& id) {
  auto it = pendingCreates_.find(key);
  if (it == pendingCreates_.end()) return;
  auto waiters = std::move(it->second);
  pendingCreates_.erase(it);
  for (auto& waiter : waiters)
    waiter(status, id);
}

void ContainerManager::start(const std::string& id, std::function<void(Status)> done) {
  auto it = containers_.find(id);
  if (it == containers_.end() || it->second->state == ContainerState::kCreating) {
    return done(Status(StatusCode::kNotFound, fmt::format("container {} not found", id)));
  }
  Container& c = *it->second;
  if (c.state != ContainerState::kCreated) {
    return done(Status(StatusCode::kFailedPrecondition,
                       fmt::format("container {} is {}, not created", id, stateName(c.state))));
  }
  runtime_.start(id, [this, id, done = std::move(done), alive = lifetime_.watch()](Status status) {
    if (alive.expired()) return;
    auto it = containers_.find(id);
    if (it == containers_.end()) return done(Status(StatusCode::kNotFound, "container removed"));
    if (!status.isOk()) return done(status);
    Container& c = *it->second;
    if (c.state == ContainerState::kCreated) {
      c.state = ContainerState::kRunning;
      c.startedAtNs = nowNs();
      if (Status s = persist(c); !s.isOk()) return done(s);
    }
    spdlog::info("container {} started", id);
    done(Status::ok());
  });
}

void ContainerManager::exited(const std::string& id, const monitor::ExitInfo& exit) {
  auto it = containers_.find(id);
  if (it == containers_.end()) {
    exits_.acknowledge(id, exit.pid);
    return;
  }
  Container& c = *it->second;
  if (c.startedAtNs == 0) c.startedAtNs = exit.timeNs;  // ran without StartContainer's answer
  c.state = ContainerState::kExited;
  c.finishedAtNs = exit.timeNs;
  c.exitCode = exit.exitCode();
  // The cgroup is still there: only the runtime's delete (RemoveContainer) removes it.
  const std::optional<uint64_t> oomKills = monitor::readOomKillCount(c.memoryCgroup);
  if (oomKills.value_or(0) > 0) {
    c.reason = "OOMKilled";
    c.message = fmt::format(
        "the kernel's OOM killer ended {} process{} of the container at its "
        "memory limit",
        *oomKills, *oomKills == 1 ? "" : "es");
  } else {
    c.reason = c.exitCode == 0 ? "Completed" : "Error";
  }
  c.killTimer.reset();
  if (Status s = persist(c); !s.isOk()) {
    spdlog::error("container {}: cannot record its exit: {}", id, s.message());
  } else {
    exits_.acknowledge(id, exit.pid);
  }
  spdlog::info("container {} exited with code {}", id, c.exitCode);
  answerStops(c, Status::ok());
}

void ContainerManager::answerStops(Container& c, Status status) {
  auto waiters = std::move(c.stopWaiters);
  c.stopWaiters.clear();
  for (auto& waiter : waiters)
    waiter(status);
}

void ContainerManager::stop(const std::string& id, int64_t timeoutSeconds,
                            std::function<void(Status)> done) {
  auto it = containers_.find(id);
  if (it == containers_.end()) return done(Status::ok());  // gone: stopped, as the CRI asks
  Container& c = *it->second;
  if (c.state == ContainerState::kExited || c.state == ContainerState::kCreating) {
    return done(Status::ok());
  }
  c.stopWaiters.push_back(std::move(done));
  if (c.stopWaiters.size() > 1) {
    // A stop is under way; a shorter timeout still applies.
    if (timeoutSeconds <= 0) runtime_.kill(id, SIGKILL, true, [](Status) {});
    return;
  }
  auto kill = [this, id] {
    runtime_.kill(id, SIGKILL, true, [this, id](Status status) {
      auto it = containers_.find(id);
      if (it == containers_.end() || it->second->state == ContainerState::kExited) return;
      if (!status.isOk() && status.code() != StatusCode::kNotFound) {
        return answerStops(*it->second, status);
      }
      // Its exit should come at once; a stop never waits for it without bound.
      it->second->killTimer = loop::Timer::create(loop_, "container exit after SIGKILL");
      it->second->killTimer->start(kExitAfterKillWaitMs, 0, [this, id] { exitNotSeen(id); });
    });
  };
  if (timeoutSeconds <= 0) return kill();
  runtime_.kill(id, signalNumber(c.stopSignal), false,
                [this, id, timeoutSeconds, kill, alive = lifetime_.watch()](Status) {
                  if (alive.expired()) return;
                  auto it = containers_.find(id);
                  if (it == containers_.end() || it->second->state == ContainerState::kExited) {
                    return;
                  }
                  it->second->killTimer = loop::Timer::create(loop_, "container stop timeout");
                  it->second->killTimer->start(static_cast<uint64_t>(timeoutSeconds) * 1000, 0,
                                               kill);
                });
}

// SIGKILL was sent a while ago and no exit came: the runtime says whether it is still there.
void ContainerManager::exitNotSeen(const std::string& id) {
  runtime_.state(id, [this, id, alive = lifetime_.watch()](Status status, oci::OciState state) {
    if (alive.expired()) return;
    auto it = containers_.find(id);
    if (it == containers_.end() || it->second->state == ContainerState::kExited) return;
    Container& c = *it->second;
    if (status.isOk() && state.status != "stopped") {
      return answerStops(
          c, Status(StatusCode::kDeadlineExceeded,
                    fmt::format("container {} is still {} {} s after SIGKILL (a process stuck in "
                                "the kernel?)",
                                id, state.status, kExitAfterKillWaitMs / 1000)));
    }
    // Gone, and its exit lost (the pid reaped by someone else): say so rather than wait.
    spdlog::warn("container {}: killed, but its exit was never reported: status unknown", id);
    monitor::ExitInfo exit;
    exit.pid = c.pid;
    exit.waitStatus = 255 << 8;
    exit.timeNs = nowNs();
    exited(id, exit);
    c.reason = "Unknown";
    c.message = "killed; its exit status was never reported to monocri";
    if (Status s = persist(c); !s.isOk()) spdlog::error("container {}: {}", id, s.message());
  });
}

void ContainerManager::remove(const std::string& id, std::function<void(Status)> done) {
  auto it = containers_.find(id);
  if (it == containers_.end() || it->second->state == ContainerState::kCreating) {
    return done(Status::ok());
  }
  stop(id, 0, [this, id, done = std::move(done), alive = lifetime_.watch()](Status status) {
    if (alive.expired()) return;
    if (!status.isOk()) return done(status);
    runtime_.remove(id, true, [this, id, done, alive = lifetime_.watch()](Status status) {
      if (alive.expired()) return;
      if (!status.isOk()) return done(status);
      rootfs_.remove(id, [this, id, done, alive = lifetime_.watch()](Status status) {
        if (alive.expired()) return;
        if (!status.isOk()) return done(status);
        exits_.release(id);
        state::removeTree(bundleDir(id));
        state::removeTree(stateDir(id));
        containers_.erase(id);
        spdlog::info("container {} removed", id);
        done(Status::ok());
      });
    });
  });
}

void ContainerManager::reopenLog(const std::string& id, std::function<void(Status)> done) {
  const Container* c = find(id);
  if (c == nullptr) {
    return done(Status(StatusCode::kNotFound, fmt::format("container {} not found", id)));
  }
  if (c->state != ContainerState::kRunning) {
    return done(
        Status(StatusCode::kFailedPrecondition, fmt::format("container {} is not running", id)));
  }
  if (!c->io || !c->io->writer()) return done(Status::ok());
  logging::LogWriter& writer = *c->io->writer();
  if (Status s = writer.reopen(); !s.isOk()) return done(s);
  // kubelet may compress the renamed file once we answer: the records queued for it go first.
  writer.whenWritten([done = std::move(done)] { done(Status::ok()); });
}

void ContainerManager::updateResources(const std::string& id,
                                       const v1::LinuxContainerResources& requested,
                                       std::function<void(Status)> done) {
  auto it = containers_.find(id);
  if (it == containers_.end() || it->second->state == ContainerState::kCreating) {
    return done(Status(StatusCode::kNotFound, fmt::format("container {} not found", id)));
  }
  if (it->second->state == ContainerState::kExited) {
    return done(Status(StatusCode::kFailedPrecondition,
                       fmt::format("container {} has exited: its resources cannot change", id)));
  }
  // Unset (zero) fields keep their values, as in containerd: crictl sends only what changes.
  v1::LinuxContainerResources merged = it->second->config.linux().resources();
  if (requested.hugepage_limits_size() > 0) merged.clear_hugepage_limits();
  merged.MergeFrom(requested);
  nlohmann::json linuxResources;
  std::vector<std::string> warnings;
  if (Status s = oci::buildResources(merged, options_.host, linuxResources, warnings); !s.isOk()) {
    return done(s);
  }
  for (const auto& warning : warnings)
    spdlog::warn("container {}: update: {}", id, warning);
  // oom_score_adj is the process's, not the cgroup's: the runtime cannot change it afterwards.
  runtime_.update(
      id, linuxResources,
      [this, id, merged, done = std::move(done), alive = lifetime_.watch()](Status status) {
        if (alive.expired()) return;
        if (!status.isOk()) return done(status);
        auto it = containers_.find(id);
        if (it == containers_.end()) return done(Status::ok());
        Container& c = *it->second;
        *c.config.mutable_linux()->mutable_resources() = merged;
        c.configPersisted = false;
        spdlog::info("container {}: resources updated", id);
        done(persist(c));
      });
}

const Container* ContainerManager::find(const std::string& id) const {
  auto it = containers_.find(id);
  return it == containers_.end() || it->second->state == ContainerState::kCreating
             ? nullptr
             : it->second.get();
}

std::vector<const Container*> ContainerManager::list(const v1::ContainerFilter& filter) const {
  std::vector<const Container*> out;
  for (const auto& [id, c] : containers_) {
    if (c->state == ContainerState::kCreating) continue;
    if (!filter.id().empty() && !id.starts_with(filter.id())) continue;
    if (!filter.pod_sandbox_id().empty() && !c->podId.starts_with(filter.pod_sandbox_id())) {
      continue;
    }
    if (filter.has_state() && filter.state().state() != criState(c->state)) continue;
    bool match = true;
    for (const auto& [label, value] : filter.label_selector()) {
      auto found = c->config.labels().find(label);
      if (found == c->config.labels().end() || found->second != value) match = false;
    }
    if (match) out.push_back(c.get());
  }
  return out;
}

std::vector<const Container*> ContainerManager::ofPod(const std::string& podId) const {
  std::vector<const Container*> out;
  for (const auto& [id, c] : containers_)
    if (c->podId == podId) out.push_back(c.get());
  return out;
}

nlohmann::json ContainerManager::verboseInfo(const Container& c) const {
  nlohmann::json info = {{"id", c.id},
                         {"sandboxID", c.podId},
                         {"pid", c.pid},
                         {"state", stateName(c.state)},
                         {"bundle", bundleDir(c.id)},
                         {"rootfs", rootfs_.rootfsPath(c.id)},
                         {"stopSignal", c.stopSignal},
                         {"runtimeSpec", bundleDir(c.id) + "/config.json"}};
  if (c.io && c.io->writer()) {
    const auto& stats = c.io->writer()->stats();
    info["log"] = {{"path", c.logPath},
                   {"bytesIn", stats.bytesIn},
                   {"recordsWritten", stats.recordsWritten},
                   {"writeErrors", stats.writeErrors},
                   {"bytesDropped", stats.bytesDropped},
                   {"bytesDroppedBySizeLimit", stats.bytesDroppedBySizeLimit},
                   {"bytesDroppedByRateLimit", stats.bytesDroppedByRateLimit},
                   {"lastError", stats.lastError}};
  }
  return info;
}

void ContainerManager::stopAllOf(const std::string& podId, std::function<void(Status)> done) {
  std::vector<std::string> ids;
  for (const auto* c : ofPod(podId))
    if (c->state == ContainerState::kCreated || c->state == ContainerState::kRunning) {
      ids.push_back(c->id);
    }
  if (ids.empty()) return done(Status::ok());
  auto remaining = std::make_shared<size_t>(ids.size());
  auto firstError = std::make_shared<Status>();
  for (const auto& id : ids) {
    stop(id, 0, [remaining, firstError, done](Status status) {
      if (!status.isOk() && firstError->isOk()) *firstError = status;
      if (--*remaining == 0) done(*firstError);
    });
  }
}

void ContainerManager::removeAllOf(const std::string& podId, std::function<void(Status)> done) {
  std::vector<std::string> ids;
  for (const auto* c : ofPod(podId))
    ids.push_back(c->id);
  if (ids.empty()) return done(Status::ok());
  auto remaining = std::make_shared<size_t>(ids.size());
  auto firstError = std::make_shared<Status>();
  for (const auto& id : ids) {
    remove(id, [remaining, firstError, done](Status status) {
      if (!status.isOk() && firstError->isOk()) *firstError = status;
      if (--*remaining == 0) done(*firstError);
    });
  }
}

}  // namespace monocri::pods
