#include "oci/spec/StopSignal.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <charconv>
#include <utility>

#include "oci/spec/Quoted.h"

namespace monocri::oci {

namespace {

constexpr int kRtMin = 34;  // glibc keeps 32 and 33 for itself
constexpr int kRtMax = 64;

// Linux numbering of the classic signals (x86, arm, most others).
constexpr std::array<std::pair<std::string_view, int>, 34> kSignals = {{
    {"HUP", 1},   {"INT", 2},   {"QUIT", 3},  {"ILL", 4},     {"TRAP", 5},    {"ABRT", 6},
    {"IOT", 6},   {"BUS", 7},   {"FPE", 8},   {"KILL", 9},    {"USR1", 10},   {"SEGV", 11},
    {"USR2", 12}, {"PIPE", 13}, {"ALRM", 14}, {"TERM", 15},   {"STKFLT", 16}, {"CHLD", 17},
    {"CLD", 17},  {"CONT", 18}, {"STOP", 19}, {"TSTP", 20},   {"TTIN", 21},   {"TTOU", 22},
    {"URG", 23},  {"XCPU", 24}, {"XFSZ", 25}, {"VTALRM", 26}, {"PROF", 27},   {"WINCH", 28},
    {"IO", 29},   {"POLL", 29}, {"PWR", 30},  {"SYS", 31},
}};

std::optional<int> parseNumber(std::string_view text) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::string nameOfNumber(int number) {
  // The first name in the table is the usual one (ABRT before IOT, CHLD before CLD).
  for (const auto& [name, value] : kSignals) {
    if (value == number) return fmt::format("SIG{}", name);
  }
  if (number == kRtMin) return "SIGRTMIN";
  if (number == kRtMax) return "SIGRTMAX";
  if (number > kRtMin && number <= kRtMin + 15) return fmt::format("SIGRTMIN+{}", number - kRtMin);
  if (number > kRtMin + 15 && number < kRtMax) return fmt::format("SIGRTMAX-{}", kRtMax - number);
  return "";
}

// "RTMIN+3" / "RTMAX-2" / "RTMIN" -> number.
std::optional<int> realtimeNumber(std::string_view name) {
  int base = 0;
  if (name.starts_with("RTMIN")) {
    base = kRtMin;
  } else if (name.starts_with("RTMAX")) {
    base = kRtMax;
  } else {
    return std::nullopt;
  }
  const std::string_view rest = name.substr(5);
  if (rest.empty()) return base;
  const char sign = rest[0];
  const auto offset = parseNumber(rest.substr(1));
  if (!offset || (sign != '+' && sign != '-')) return std::nullopt;
  const int number = sign == '+' ? base + *offset : base - *offset;
  if (number < kRtMin || number > kRtMax) return std::nullopt;
  return number;
}

}  // namespace

std::optional<int> signalNumber(std::string_view text) {
  if (text.empty() || text.size() > 16) return std::nullopt;
  if (const auto number = parseNumber(text)) {
    if (nameOfNumber(*number).empty()) return std::nullopt;
    return number;
  }
  std::string upper;
  for (char c : text)
    upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  std::string_view name = upper;
  if (name.starts_with("SIG")) name.remove_prefix(3);
  for (const auto& [known, value] : kSignals) {
    if (known == name) return value;
  }
  return realtimeNumber(name);
}

std::optional<std::string> canonicalSignalName(std::string_view text) {
  const auto number = signalNumber(text);
  if (!number) return std::nullopt;
  return nameOfNumber(*number);
}

std::string criSignalName(runtime::v1::Signal signal) {
  if (signal == runtime::v1::SIGNAL_RUNTIME_DEFAULT || !runtime::v1::Signal_IsValid(signal)) {
    return "";
  }
  // SIGNAL_SIGRTMINPLUS3 -> SIGRTMIN+3, SIGNAL_SIGRTMAXMINUS2 -> SIGRTMAX-2.
  std::string name = runtime::v1::Signal_Name(signal);
  if (name.starts_with("SIGNAL_")) name.erase(0, 7);
  if (auto at = name.find("PLUS"); at != std::string::npos) name.replace(at, 4, "+");
  if (auto at = name.find("MINUS"); at != std::string::npos) name.replace(at, 5, "-");
  // Aliases (SIGCLD, SIGIOT, SIGPOLL) are kept as sent: kill(1) and runc know them.
  return signalNumber(name) ? name : "";
}

std::string resolveStopSignal(runtime::v1::Signal criSignal, const nlohmann::json& imageConfig,
                              std::vector<std::string>& warnings) {
  if (std::string name = criSignalName(criSignal); !name.empty()) return name;
  if (!imageConfig.is_object()) return "SIGTERM";
  const auto it = imageConfig.find("StopSignal");
  if (it == imageConfig.end() || it->is_null()) return "SIGTERM";
  if (it->is_string()) {
    if (auto name = canonicalSignalName(it->get<std::string>())) return *name;
    warnings.push_back(fmt::format("the image's StopSignal {} names no signal: SIGTERM is used",
                                   quotedValue(it->get<std::string>())));
  } else {
    warnings.push_back("the image's StopSignal is not a string: SIGTERM is used");
  }
  return "SIGTERM";
}

}  // namespace monocri::oci
