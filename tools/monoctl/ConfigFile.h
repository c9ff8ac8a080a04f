// Pod and container configs given to monoctl as files, shaped like crictl's: JSON or YAML with
// the CRI's field names (snake_case as in the .proto, or lowerCamelCase), enums by name or number.
#pragma once

#include <google/protobuf/message.h>

#include <string>

namespace monocri::monoctl {

// Reads `path` (JSON, or YAML by its extension or its content) into `message`. Returns "" or an
// error naming the file and what is wrong.
std::string readConfigFile(const std::string& path, google::protobuf::Message& message);

}  // namespace monocri::monoctl
