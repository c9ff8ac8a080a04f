// The container's process: its command line (kubelet's command/args merged with the image's
// Entrypoint/Cmd), environment and working directory, as containerd and Docker merge them.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api.pb.h"
#include "cri-bridge/grpc/GrpcStatus.h"

namespace monocri::oci {

// PATH when neither the image nor kubelet sets one.
inline constexpr const char* kDefaultPathEnv =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// config.command non-empty: command + args. Otherwise the image's Entrypoint (unless it is the
// single empty string, Docker's "no entrypoint") followed by config.args, or the image's Cmd when
// args is empty. Nothing at all: INVALID_ARGUMENT "no command specified".
grpc::Status buildProcessArgs(const runtime::v1::ContainerConfig& config,
                              const nlohmann::json& imageConfig, std::vector<std::string>& args);

// PATH (default), TERM=xterm with a tty, HOSTNAME, then the image's Env, then kubelet's envs;
// a later value replaces an earlier one with the same key in place, and an image entry without
// '=' unsets the key. PATH is set to the default if the result has none.
grpc::Status buildEnv(const runtime::v1::ContainerConfig& config, const nlohmann::json& imageConfig,
                      const std::string& hostname, std::vector<std::string>& env);

// working_dir, else the image's WorkingDir, else "/"; it must be absolute.
grpc::Status resolveWorkingDir(const runtime::v1::ContainerConfig& config,
                               const nlohmann::json& imageConfig, std::string& cwd);

// An optional array-of-strings member of the image config: absent or null is empty; any other
// type is an INVALID_ARGUMENT naming the member.
grpc::Status imageStringList(const nlohmann::json& imageConfig, const char* key,
                             std::vector<std::string>& out);
// An optional string member of the image config, with the same rules.
grpc::Status imageString(const nlohmann::json& imageConfig, const char* key, std::string& out);

}  // namespace monocri::oci
