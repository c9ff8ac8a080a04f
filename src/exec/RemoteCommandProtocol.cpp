#include "exec/RemoteCommandProtocol.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace monocri::exec {

std::optional<CommandProtocol> commandProtocol(std::string_view name, bool websocket) {
  if (name == "channel.k8s.io") return CommandProtocol{1, false};
  if (name == "v2.channel.k8s.io") return CommandProtocol{2, false};
  if (name == "v3.channel.k8s.io") return CommandProtocol{3, false};
  if (name == "v4.channel.k8s.io") return CommandProtocol{4, false};
  if (name == "v5.channel.k8s.io") return CommandProtocol{5, false};
  if (websocket && name == "base64.channel.k8s.io") return CommandProtocol{1, true};
  if (websocket && name == "v4.base64.channel.k8s.io") return CommandProtocol{4, true};
  return std::nullopt;
}

std::string errorStreamMessage(const CommandOutcome& outcome, int version) {
  if (version < 4) {
    if (!outcome.status.isOk()) return outcome.status.message();
    if (outcome.exitCode == 0) return {};
    return fmt::format("command terminated with non-zero exit code: exit status {}",
                       outcome.exitCode);
  }
  nlohmann::ordered_json status{{"metadata", nlohmann::json::object()}};
  if (!outcome.status.isOk()) {
    const std::string message = "Internal error occurred: " + outcome.status.message();
    status["status"] = "Failure";
    status["message"] = message;
    status["reason"] = "InternalError";
    status["details"] = {{"causes", {{{"message", outcome.status.message()}}}}};
    status["code"] = 500;
  } else if (outcome.exitCode == 0) {
    status["status"] = "Success";
  } else {
    status["status"] = "Failure";
    status["message"] =
        fmt::format("command terminated with non-zero exit code: exit status {}", outcome.exitCode);
    status["reason"] = "NonZeroExitCode";
    status["details"] = {
        {"causes", {{{"reason", "ExitCode"}, {"message", std::to_string(outcome.exitCode)}}}}};
  }
  return status.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool ResizeDecoder::decodeLine(std::string_view line, const Resize& resize) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
    line.remove_suffix(1);
  if (line.empty()) return true;
  const nlohmann::json event = nlohmann::json::parse(line, nullptr, false);
  if (event.is_discarded() || !event.is_object()) return false;
  auto dimension = [&event](const char* name) -> std::optional<uint16_t> {
    auto it = event.find(name);
    if (it == event.end()) return uint16_t{0};
    if (!it->is_number_unsigned() || it->get<uint64_t>() > 0xffff) return std::nullopt;
    return static_cast<uint16_t>(it->get<uint64_t>());
  };
  const auto width = dimension("Width"), height = dimension("Height");
  if (!width || !height) return false;
  resize(*width, *height);
  return true;
}

bool ResizeDecoder::feed(std::string_view bytes, const Resize& resize) {
  constexpr size_t kMaxLine = 4096;
  for (;;) {
    const size_t newline = bytes.find('\n');
    if (newline == std::string_view::npos) break;
    partial_.append(bytes.substr(0, newline));
    bytes.remove_prefix(newline + 1);
    const std::string line = std::move(partial_);
    partial_.clear();
    if (line.size() > kMaxLine || !decodeLine(line, resize)) return false;
  }
  partial_.append(bytes);
  return partial_.size() <= kMaxLine;
}

bool ResizeDecoder::feedMessage(std::string_view message, const Resize& resize) {
  if (!feed(message, resize)) return false;
  const std::string rest = std::move(partial_);
  partial_.clear();
  return decodeLine(rest, resize);
}

}  // namespace monocri::exec
