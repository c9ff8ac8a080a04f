#include "config/TomlReader.h"

#include <fmt/format.h>

#include <sstream>
#include <stdexcept>

namespace monocri::config {
struct TomlInvariantBroken : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace monocri::config

// toml++ 3.3 (Debian 12) is not safe on hostile input as it is. Found by tests/fuzz/fuzz_config:
//  - it asserts, and in NDEBUG builds tells the optimizer to assume, that a table header's key
//    starts with a key character; "[=" or "[[[a]]]" break that (fixed upstream in
//    tomlplusplus#301);
//  - its generated Unicode tables reach __builtin_unreachable() for some non-ASCII characters
//    where it looks for whitespace (U+00E9 among them).
// So parseToml() hands it printable ASCII only, and its internal checks and "unreachable"
// points are compiled as exceptions in every build, reported as parse errors. (Inside its
// noexcept functions such a throw terminates: deterministic, never undefined.) This file is the
// only one that includes toml++.
#pragma push_macro("NDEBUG")
#undef NDEBUG
#define TOML_ASSERT(expr) \
  ((expr) ? static_cast<void>(0) : throw ::monocri::config::TomlInvariantBroken(#expr))
#pragma GCC diagnostic push
#ifdef __clang__
#pragma GCC diagnostic ignored "-Wexceptions"
#else
#pragma GCC diagnostic ignored "-Wterminate"
#endif
#include <toml++/impl/preprocessor.h>  // #pragma once: the definitions below then stay
#undef TOML_UNREACHABLE
#define TOML_UNREACHABLE throw ::monocri::config::TomlInvariantBroken("unreachable code reached")
#undef TOML_ASSUME
#define TOML_ASSUME(...) TOML_ASSERT(__VA_ARGS__)
#include <toml++/toml.h>
#pragma GCC diagnostic pop
#pragma pop_macro("NDEBUG")

namespace monocri::config {

namespace {

TomlValue convert(const toml::node& node) {
  TomlValue value;
  value.line = static_cast<int>(node.source().begin.line);
  if (const auto* table = node.as_table()) {
    value.kind = TomlValue::Kind::kTable;
    for (auto&& [key, child] : *table)
      value.members.push_back(TomlMember{std::string(key.str()), convert(child)});
  } else if (const auto* array = node.as_array()) {
    value.kind = TomlValue::Kind::kArray;
    for (const auto& child : *array)
      value.items.push_back(convert(child));
  } else if (const auto* string = node.as_string()) {
    value.kind = TomlValue::Kind::kString;
    value.text = string->get();
  } else if (const auto* integer = node.as_integer()) {
    value.kind = TomlValue::Kind::kInteger;
    value.integer = integer->get();
  } else if (const auto* number = node.as_floating_point()) {
    value.kind = TomlValue::Kind::kFloat;
    value.number = number->get();
  } else if (const auto* boolean = node.as_boolean()) {
    value.kind = TomlValue::Kind::kBoolean;
    value.boolean = boolean->get();
  } else {
    value.kind = TomlValue::Kind::kDateTime;
    std::stringstream text;
    node.visit([&text](const auto& n) { text << n; });
    value.text = text.str();
  }
  return value;
}

}  // namespace

const TomlValue* TomlValue::find(std::string_view key) const {
  for (const auto& [name, value] : members) {
    if (name == key) return &value;
  }
  return nullptr;
}

std::string_view TomlValue::kindName() const {
  switch (kind) {
    case Kind::kTable:
      return "table";
    case Kind::kArray:
      return "array";
    case Kind::kString:
      return "string";
    case Kind::kInteger:
      return "integer";
    case Kind::kFloat:
      return "float";
    case Kind::kBoolean:
      return "boolean";
    case Kind::kDateTime:
      return "date-time";
  }
  return "value";
}

std::string parseToml(std::string_view text, const std::string& source, TomlValue& root) {
  root = TomlValue{};
  size_t line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const bool lineEnd = c == '\n' || (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n');
    if (c == '\n') {
      ++line;
    } else if (c >= 0x80) {
      return fmt::format(
          "{}:{}: byte 0x{:02x} is not ASCII; write non-ASCII characters in strings as \\uXXXX",
          source, line, c);
    } else if ((c < 0x20 && c != '\t' && !lineEnd) || c == 0x7f) {
      return fmt::format("{}:{}: control character 0x{:02x} is not allowed in TOML", source, line,
                         c);
    }
  }
  try {
    toml::table table = toml::parse(text, source);
    root = convert(table);
    root.line = 1;
  } catch (const toml::parse_error& error) {
    return fmt::format("{}:{}:{}: {}", source, error.source().begin.line,
                       error.source().begin.column, error.description());
  } catch (const TomlInvariantBroken& error) {
    return fmt::format("{}: not valid TOML (the parser's check '{}' failed)", source, error.what());
  }
  return {};
}

std::string tomlQuote(std::string_view value) {
  std::stringstream out;
  out << toml::value<std::string>(std::string(value));
  return out.str();
}

}  // namespace monocri::config
