// How monoctl prints answers: JSON as crictl does (protobuf JSON names), YAML, or a table.
#pragma once

#include <google/protobuf/message.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace monocri::monoctl {

enum class OutputFormat { kJson, kYaml, kTable };

// The message as JSON, field names in lowerCamelCase, unset scalars included.
nlohmann::ordered_json messageToJson(const google::protobuf::Message& message);

std::string toYaml(const nlohmann::ordered_json& value);
std::string toPrettyJson(const nlohmann::ordered_json& value);

// Rows of equal-width columns; the first row is the header.
std::string formatTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace monocri::monoctl
