// OCI hooks: each runs with the container's state JSON on stdin, its own args and env, and an
// optional timeout after which it is killed. A failing hook's error names the stage, the path,
// the exit status and the first bytes of its stderr.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace monocri::runtime {

// Runs the hooks of `stage` ("prestart", "createRuntime", "createContainer", "startContainer",
// "poststart", "poststop") from the spec's `hooks` object, in order. Throws on the first one
// that fails or times out.
void runHooks(const nlohmann::json& hooks, const std::string& stage, const std::string& stateJson);

}  // namespace monocri::runtime
