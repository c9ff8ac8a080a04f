#include "oci/spec/ProcessArgs.h"

#include <fmt/format.h>

#include <string_view>
#include <unordered_map>

#include "oci/spec/Quoted.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;

namespace {

Status invalid(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}

bool hasNul(std::string_view text) {
  return text.find('\0') != std::string_view::npos;
}

std::string_view keyOf(std::string_view entry) {
  return entry.substr(0, entry.find('='));
}

// Sets or replaces (in place) each entry's key; "KEY" without '=' removes KEY.
void mergeEnv(std::vector<std::string>& env, const std::vector<std::string>& overrides) {
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < env.size(); ++i)
    index.emplace(std::string(keyOf(env[i])), i);
  std::vector<bool> removed(env.size(), false);
  for (const auto& entry : overrides) {
    const std::string key(keyOf(entry));
    const bool unset = entry.find('=') == std::string::npos;
    const auto it = index.find(key);
    if (it != index.end()) {
      if (unset) {
        removed[it->second] = true;
      } else {
        env[it->second] = entry;
        removed[it->second] = false;
      }
    } else if (!unset) {
      index.emplace(key, env.size());
      env.push_back(entry);
      removed.push_back(false);
    }
  }
  std::vector<std::string> kept;
  kept.reserve(env.size());
  for (size_t i = 0; i < env.size(); ++i) {
    if (!removed[i]) kept.push_back(std::move(env[i]));
  }
  env = std::move(kept);
}

}  // namespace

Status imageStringList(const Json& imageConfig, const char* key, std::vector<std::string>& out) {
  out.clear();
  if (!imageConfig.is_object()) return Status::ok();
  const auto it = imageConfig.find(key);
  if (it == imageConfig.end() || it->is_null()) return Status::ok();
  if (!it->is_array())
    return invalid(fmt::format("image config {} is not an array of strings", key));
  for (const auto& item : *it) {
    if (!item.is_string()) {
      return invalid(fmt::format("image config {} is not an array of strings", key));
    }
    out.push_back(item.get<std::string>());
    if (hasNul(out.back())) return invalid(fmt::format("image config {} holds a NUL byte", key));
  }
  return Status::ok();
}

Status imageString(const Json& imageConfig, const char* key, std::string& out) {
  out.clear();
  if (!imageConfig.is_object()) return Status::ok();
  const auto it = imageConfig.find(key);
  if (it == imageConfig.end() || it->is_null()) return Status::ok();
  if (!it->is_string()) return invalid(fmt::format("image config {} is not a string", key));
  out = it->get<std::string>();
  if (hasNul(out)) return invalid(fmt::format("image config {} holds a NUL byte", key));
  return Status::ok();
}

Status buildProcessArgs(const runtime::v1::ContainerConfig& config, const Json& imageConfig,
                        std::vector<std::string>& args) {
  args.clear();
  std::vector<std::string> command(config.command().begin(), config.command().end());
  std::vector<std::string> extra(config.args().begin(), config.args().end());
  if (command.empty()) {
    std::vector<std::string> entrypoint;
    if (auto status = imageStringList(imageConfig, "Entrypoint", entrypoint); !status.isOk()) {
      return status;
    }
    if (!(entrypoint.size() == 1 && entrypoint[0].empty())) command = std::move(entrypoint);
    if (extra.empty()) {
      if (auto status = imageStringList(imageConfig, "Cmd", extra); !status.isOk()) return status;
    }
  }
  if (command.empty() && extra.empty()) {
    return invalid(
        "no command specified: the container config has no command or args and the "
        "image no Entrypoint or Cmd");
  }
  args = std::move(command);
  args.insert(args.end(), extra.begin(), extra.end());
  for (const auto& arg : args) {
    if (hasNul(arg)) return invalid("a command argument holds a NUL byte");
  }
  return Status::ok();
}

Status buildEnv(const runtime::v1::ContainerConfig& config, const Json& imageConfig,
                const std::string& hostname, std::vector<std::string>& env) {
  env.clear();
  env.push_back(kDefaultPathEnv);
  if (config.tty()) env.push_back("TERM=xterm");
  env.push_back("HOSTNAME=" + hostname);

  std::vector<std::string> imageEnv;
  if (auto status = imageStringList(imageConfig, "Env", imageEnv); !status.isOk()) return status;
  std::vector<std::string> imageEntries;
  for (auto& entry : imageEnv) {
    // An empty key ("=x" or "") names nothing; Docker would not have built such an image.
    if (!keyOf(entry).empty()) imageEntries.push_back(std::move(entry));
  }
  mergeEnv(env, imageEntries);

  std::vector<std::string> criEntries;
  for (const auto& kv : config.envs()) {
    if (kv.key().empty()) return invalid("an environment variable has an empty name");
    if (kv.key().find('=') != std::string::npos || hasNul(kv.key())) {
      return invalid(fmt::format("environment variable name {} holds '=' or a NUL byte",
                                 quotedValue(kv.key())));
    }
    if (hasNul(kv.value())) {
      return invalid(
          fmt::format("environment variable {} holds a NUL byte", quotedValue(kv.key())));
    }
    criEntries.push_back(kv.key() + "=" + kv.value());
  }
  mergeEnv(env, criEntries);

  bool hasPath = false;
  for (const auto& entry : env)
    hasPath = hasPath || keyOf(entry) == "PATH";
  if (!hasPath) env.insert(env.begin(), kDefaultPathEnv);
  return Status::ok();
}

Status resolveWorkingDir(const runtime::v1::ContainerConfig& config, const Json& imageConfig,
                         std::string& cwd) {
  if (!config.working_dir().empty()) {
    cwd = config.working_dir();
    if (!cwd.starts_with('/') || hasNul(cwd)) {
      return invalid(fmt::format("working_dir {} is not an absolute path", quotedValue(cwd)));
    }
    return Status::ok();
  }
  if (auto status = imageString(imageConfig, "WorkingDir", cwd); !status.isOk()) return status;
  if (cwd.empty()) {
    cwd.assign(1, '/');  // not = "/": GCC 12 warns falsely (-Wrestrict, bug 105329)
  } else if (!cwd.starts_with('/')) {
    return invalid(
        fmt::format("the image's WorkingDir {} is not an absolute path", quotedValue(cwd)));
  }
  return Status::ok();
}

}  // namespace monocri::oci
