#include "monoctl/ConfigFile.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace monocri::monoctl {

namespace {

constexpr size_t kMaxConfigBytes = 4 << 20;

// YAML scalars stay strings unless they read as numbers or booleans, as crictl's YAML loader does.
nlohmann::json yamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& item : node)
        out[item.first.as<std::string>()] = yamlToJson(item.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node)
        out.push_back(yamlToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string text = node.Scalar();
      if (node.Tag() == "!") return text;  // quoted
      if (text == "true" || text == "false") return text == "true";
      char* end = nullptr;
      errno = 0;
      const long long number = std::strtoll(text.c_str(), &end, 10);
      if (!text.empty() && *end == '\0' && errno == 0) return number;
      return text;
    }
    default:
      return nullptr;
  }
}

}  // namespace

std::string readConfigFile(const std::string& path, google::protobuf::Message& message) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return fmt::format("cannot read {}", path);
  std::ostringstream contents;
  contents << file.rdbuf();
  std::string text = contents.str();
  if (text.size() > kMaxConfigBytes) return fmt::format("{} is larger than 4 MiB", path);

  const size_t first = text.find_first_not_of(" \t\r\n");
  const bool json = first != std::string::npos && text[first] == '{';
  if (!json) {
    try {
      text = yamlToJson(YAML::Load(text)).dump();
    } catch (const YAML::Exception& error) {
      return fmt::format("{}: not JSON, and not YAML either: {}", path, error.what());
    }
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(text, &message, options);
  if (!status.ok()) return fmt::format("{}: {}", path, status.message().as_string());
  return {};
}

}  // namespace monocri::monoctl
