#include "oci/runtime-client/RuntimeLogScanner.h"

#include <nlohmann/json.hpp>

namespace monocri::oci {

namespace {

// Length of the valid UTF-8 sequence starting at `text[i]`, or 0 if it is not one.
size_t utf8SequenceLength(std::string_view text, size_t i) {
  const auto byte = static_cast<unsigned char>(text[i]);
  size_t length = 0;
  uint32_t codePoint = 0;
  if (byte < 0x80) return 1;
  if ((byte & 0xE0) == 0xC0) {
    length = 2;
    codePoint = byte & 0x1F;
  } else if ((byte & 0xF0) == 0xE0) {
    length = 3;
    codePoint = byte & 0x0F;
  } else if ((byte & 0xF8) == 0xF0) {
    length = 4;
    codePoint = byte & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    const auto next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xC0) != 0x80) return 0;
    codePoint = (codePoint << 6) | (next & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  static constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (codePoint < kSmallest[length] || codePoint > 0x10FFFF ||
      (codePoint >= 0xD800 && codePoint <= 0xDFFF)) {
    return 0;
  }
  return length;
}

// Drops the last character of valid UTF-8 text: its continuation bytes, then its lead byte.
void popCharacter(std::string& text) {
  while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80)
    text.pop_back();
  if (!text.empty()) text.pop_back();
}

bool isErrorLevel(std::string_view level) {
  return level == "error" || level == "fatal" || level == "panic";
}

}  // namespace

void RuntimeLogScanner::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    const size_t newline = bytes.find('\n');
    const std::string_view piece = bytes.substr(0, newline);
    if (!skippingLongLine_) {
      if (partial_.size() + piece.size() > kMaxRuntimeLogLineBytes) {
        skippingLongLine_ = true;
        partial_.clear();
      } else {
        partial_.append(piece);
      }
    }
    if (newline == std::string_view::npos) return;
    if (!skippingLongLine_) scanLine(partial_);
    partial_.clear();
    skippingLongLine_ = false;
    bytes.remove_prefix(newline + 1);
  }
}

void RuntimeLogScanner::finish() {
  if (!skippingLongLine_ && !partial_.empty()) scanLine(partial_);
  partial_.clear();
  skippingLongLine_ = false;
}

void RuntimeLogScanner::scanLine(std::string_view line) {
  // Cheap test first: a log object starts with '{' (after blanks).
  const size_t start = line.find_first_not_of(" \t\r");
  if (start == std::string_view::npos || line[start] != '{') return;
  const auto json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return;
  const auto level = json.find("level");
  const auto message = json.find("msg");
  if (level == json.end() || message == json.end() || !level->is_string() ||
      !message->is_string()) {
    return;
  }
  if (!isErrorLevel(level->get_ref<const std::string&>())) return;
  std::string cleaned = cleanRuntimeText(message->get_ref<const std::string&>());
  if (!cleaned.empty()) lastError_ = std::move(cleaned);
}

std::string cleanRuntimeText(std::string_view text, size_t maxBytes) {
  static constexpr std::string_view kCut = "...";
  std::string out;
  out.reserve(std::min(text.size(), maxBytes));
  bool pendingSpace = false;
  for (size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x20 || byte == 0x7F || byte == ' ') {
      pendingSpace = !out.empty();
      ++i;
      continue;
    }
    size_t length = utf8SequenceLength(text, i);
    std::string_view character = length == 0 ? std::string_view("?") : text.substr(i, length);
    i += length == 0 ? 1 : length;
    const size_t needed = (pendingSpace ? 1 : 0) + character.size();
    if (out.size() + needed > maxBytes) {
      // Make room for the mark, dropping whole characters.
      while (!out.empty() && out.size() + kCut.size() > maxBytes)
        popCharacter(out);
      while (!out.empty() && out.back() == ' ')
        out.pop_back();
      if (out.size() + kCut.size() <= maxBytes) out.append(kCut);
      return out;
    }
    if (pendingSpace) out.push_back(' ');
    pendingSpace = false;
    out.append(character);
  }
  return out;
}

}  // namespace monocri::oci
