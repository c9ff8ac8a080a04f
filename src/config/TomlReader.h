// The one place TOML is parsed: toml++ behind a small tree of plain values, so that every
// configuration file (monocri.toml, registries.conf) gets the same hardened reader.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace monocri::config {

struct TomlMember;

struct TomlValue {
  enum class Kind { kTable, kArray, kString, kInteger, kFloat, kBoolean, kDateTime };

  Kind kind = Kind::kTable;
  int line = 0;      // where it is written, for error messages
  std::string text;  // kString; kDateTime in its TOML form
  int64_t integer = 0;
  double number = 0;
  bool boolean = false;
  std::vector<TomlMember> members;  // kTable, in document order
  std::vector<TomlValue> items;     // kArray

  const TomlValue* find(std::string_view key) const;
  std::string_view kindName() const;  // "string", "table"... for messages
};

// A key of a table and its value. (Not std::pair: a pair of the incomplete TomlValue inside
// TomlValue is refused by clang with libstdc++.)
struct TomlMember {
  std::string key;
  TomlValue value;
};

// Parses a TOML document into `root` (a table). Returns "" or an error "source:line: why".
// Only printable ASCII, tabs and line ends are accepted: non-ASCII characters can be written
// \uXXXX in strings. (toml++ 3.3 is not safe on other input, see TomlReader.cpp.)
std::string parseToml(std::string_view text, const std::string& source, TomlValue& root);

// `value` as a TOML basic string, quoted and escaped.
std::string tomlQuote(std::string_view value);

}  // namespace monocri::config
