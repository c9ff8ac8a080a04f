#include "monoctl/OutputFormat.h"

#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>

namespace monocri::monoctl {

nlohmann::ordered_json messageToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string text;
  auto status = google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) return nlohmann::ordered_json{{"error", std::string(status.message())}};
  return nlohmann::ordered_json::parse(text);
}

namespace {

YAML::Node toYamlNode(const nlohmann::ordered_json& value) {
  YAML::Node node;
  switch (value.type()) {
    case nlohmann::ordered_json::value_t::object:
      node = YAML::Node(YAML::NodeType::Map);
      for (auto& [key, item] : value.items())
        node[key] = toYamlNode(item);
      break;
    case nlohmann::ordered_json::value_t::array:
      node = YAML::Node(YAML::NodeType::Sequence);
      for (auto& item : value)
        node.push_back(toYamlNode(item));
      break;
    case nlohmann::ordered_json::value_t::string:
      node = value.get<std::string>();
      break;
    case nlohmann::ordered_json::value_t::boolean:
      node = value.get<bool>();
      break;
    case nlohmann::ordered_json::value_t::number_integer:
      node = value.get<int64_t>();
      break;
    case nlohmann::ordered_json::value_t::number_unsigned:
      node = value.get<uint64_t>();
      break;
    case nlohmann::ordered_json::value_t::number_float:
      node = value.get<double>();
      break;
    default:
      node = YAML::Node(YAML::NodeType::Null);
  }
  return node;
}

}  // namespace

std::string toYaml(const nlohmann::ordered_json& value) {
  YAML::Emitter out;
  out << toYamlNode(value);
  return std::string(out.c_str()) + "\n";
}

std::string toPrettyJson(const nlohmann::ordered_json& value) {
  return value.dump(2) + "\n";
}

std::string formatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 3, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace monocri::monoctl
