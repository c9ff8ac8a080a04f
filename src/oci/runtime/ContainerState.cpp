#include "oci/runtime/ContainerState.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "oci/runtime/ContainerCgroup.h"
#include "oci/runtime/RuntimeError.h"
#include "state/UniqueFd.h"

namespace monocri::runtime {

std::string readWholeFile(const std::string& path, bool* missing) {
  state::UniqueFd fd(path == "-" ? dup(STDIN_FILENO) : open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (missing && errno == ENOENT) {
      *missing = true;
      return {};
    }
    throwErrno(fmt::format("opening {}", path));
  }
  std::string content;
  char buffer[16384];
  for (;;) {
    ssize_t n = read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno(fmt::format("reading {}", path));
    if (n == 0) return content;
    content.append(buffer, static_cast<size_t>(n));
  }
}

uint64_t processStartTime(pid_t pid, bool* zombie) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buffer[1024];
  ssize_t n = read(fd, buffer, sizeof buffer - 1);
  close(fd);
  if (n <= 0) return 0;
  buffer[n] = '\0';
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  char* end = strrchr(buffer, ')');
  if (!end || end[1] != ' ') return 0;
  char state = end[2];
  if (zombie) *zombie = state == 'Z' || state == 'X';
  char* field = end + 2;  // field 3 (state)
  for (int i = 3; i < 22; ++i) {
    field = strchr(field, ' ');
    if (!field) return 0;
    ++field;
  }
  return strtoull(field, nullptr, 10);
}

std::string nowRfc3339() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  char seconds[32];
  strftime(seconds, sizeof seconds, "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:09}Z", seconds, now.tv_nsec);
}

bool isValidContainerId(const std::string& id) {
  if (id.empty() || id.size() > 1024 || id == "." || id == "..") return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '+' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool ContainerState::processAlive() const {
  if (pid <= 0) return false;
  bool zombie = false;
  uint64_t started = processStartTime(pid, &zombie);
  return started != 0 && started == pidStartTime && !zombie;
}

std::string ContainerState::status() const {
  if (!processAlive()) return "stopped";
  if (!cgroup.is_null() && ContainerCgroup::fromJson(cgroup).frozen()) return "paused";
  struct stat st {};
  if (stat((dir + "/" + kExecFifo).c_str(), &st) == 0) return "created";
  return "running";
}

nlohmann::json ContainerState::ociState(const std::string& status) const {
  std::string version = spec.is_object() ? spec.value("ociVersion", "1.0.2") : "1.0.2";
  nlohmann::json state{{"ociVersion", version}, {"id", id},
                       {"status", status},      {"pid", status == "stopped" ? 0 : pid},
                       {"bundle", bundle},      {"rootfs", rootfs},
                       {"created", created},    {"owner", ""}};
  if (spec.is_object() && spec.contains("annotations") && spec["annotations"].is_object())
    state["annotations"] = spec["annotations"];
  return state;
}

void ContainerState::save() const {
  nlohmann::json saved{{"id", id},         {"pid", pid},       {"pidStartTime", pidStartTime},
                       {"bundle", bundle}, {"rootfs", rootfs}, {"created", created},
                       {"config", spec},   {"cgroup", cgroup}};
  std::string text = saved.dump();
  std::string temp = dir + "/.state.json.tmp";
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throwErrno(fmt::format("creating {}", temp));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      close(fd);
      throwErrno(fmt::format("writing {}", temp), error);
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  if (rename(temp.c_str(), (dir + "/" + kStateFile).c_str()) < 0)
    throwErrno(fmt::format("renaming {} to {}", temp, kStateFile));
}

ContainerState ContainerState::load(const std::string& root, const std::string& id) {
  if (!isValidContainerId(id)) fail("invalid container id {:?}", id);
  ContainerState state;
  state.id = id;
  state.dir = root + "/" + id;
  bool missing = false;
  std::string text = readWholeFile(state.dir + "/" + kStateFile, &missing);
  if (missing) fail("container {} does not exist", id);
  try {
    auto saved = nlohmann::json::parse(text);
    state.pid = saved.at("pid").get<pid_t>();
    state.pidStartTime = saved.at("pidStartTime").get<uint64_t>();
    state.bundle = saved.at("bundle").get<std::string>();
    state.rootfs = saved.at("rootfs").get<std::string>();
    state.created = saved.at("created").get<std::string>();
    state.spec = std::move(saved.at("config"));
    state.cgroup = std::move(saved.at("cgroup"));
  } catch (const nlohmann::json::exception& e) {
    fail("container {}: {}/{} is damaged: {}", id, state.dir, kStateFile, e.what());
  }
  return state;
}

}  // namespace monocri::runtime
