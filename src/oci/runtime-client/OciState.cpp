#include "oci/runtime-client/OciState.h"

#include <fmt/format.h>

#include <array>

namespace monocri::oci {

namespace {

using grpc::Status;
using grpc::StatusCode;
using Json = nlohmann::json;

// The id runc accepts is shorter than this; anything longer is not a container id.
constexpr size_t kMaxIdBytes = 1024;
constexpr size_t kMaxBundleBytes = 4096;

constexpr std::array<std::string_view, 5> kStatuses = {"creating", "created", "running", "stopped",
                                                       "paused"};

Status unusable(std::string_view why) {
  return Status(StatusCode::kInternal, fmt::format("unusable state document: {}", why));
}

}  // namespace

Status parseOciState(std::string_view bytes, OciState& out) {
  if (bytes.size() > kMaxOciStateBytes) {
    return unusable(
        fmt::format("{} bytes, more than the {} accepted", bytes.size(), kMaxOciStateBytes));
  }
  const Json json = Json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return unusable("not JSON");
  if (!json.is_object()) return unusable("not a JSON object");

  OciState state;
  const auto id = json.find("id");
  if (id == json.end() || !id->is_string()) return unusable("\"id\" is missing or not a string");
  state.id = id->get<std::string>();
  if (state.id.empty() || state.id.size() > kMaxIdBytes) {
    return unusable("\"id\" is empty or too long");
  }

  const auto status = json.find("status");
  if (status == json.end() || !status->is_string()) {
    return unusable("\"status\" is missing or not a string");
  }
  state.status = status->get<std::string>();
  bool known = false;
  for (std::string_view candidate : kStatuses)
    known = known || state.status == candidate;
  if (!known) {
    return unusable(fmt::format("unknown status \"{}\"",
                                state.status.substr(0, std::min<size_t>(state.status.size(), 32))));
  }

  if (const auto pid = json.find("pid"); pid != json.end()) {
    if (!pid->is_number_integer()) return unusable("\"pid\" is not an integer");
    const auto value = pid->get<int64_t>();
    if (value < 0 || value > kMaxPid) return unusable(fmt::format("pid {} is out of range", value));
    state.pid = static_cast<pid_t>(value);
  }
  if ((state.status == "created" || state.status == "running") && state.pid == 0) {
    return unusable(fmt::format("a {} container without a pid", state.status));
  }

  if (const auto bundle = json.find("bundle"); bundle != json.end()) {
    if (!bundle->is_string()) return unusable("\"bundle\" is not a string");
    state.bundle = bundle->get<std::string>();
    if (state.bundle.size() > kMaxBundleBytes) return unusable("\"bundle\" is too long");
  }

  if (const auto annotations = json.find("annotations");
      annotations != json.end() && !annotations->is_null()) {
    if (!annotations->is_object()) return unusable("\"annotations\" is not an object");
    for (const auto& [key, value] : annotations->items()) {
      if (!value.is_string()) {
        return unusable(fmt::format("annotation \"{}\" is not a string",
                                    key.substr(0, std::min<size_t>(key.size(), 64))));
      }
    }
    state.annotations = *annotations;  // flat by now: copying it cannot recurse deeply
  }
  out = std::move(state);
  return Status::ok();
}

}  // namespace monocri::oci
