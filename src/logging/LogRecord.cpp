#include "logging/LogRecord.h"

#include <chrono>
#include <cstdint>
#include <cstring>

namespace monocri::logging {

namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr int64_t kSecondsPerDay = 86'400;

// The timestamp field is at most "YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+hh:mm".
constexpr size_t kMaxTimestampBytes = 35;

void writeDigits(char* out, unsigned value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

// Digits at text[pos, pos + width) as a number, or -1.
int readDigits(std::string_view text, size_t pos, size_t width) {
  if (pos + width > text.size()) return -1;
  int value = 0;
  for (size_t i = pos; i < pos + width; ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return -1;
    value = value * 10 + (c - '0');
  }
  return value;
}

bool fail(std::string* why, const char* reason) {
  if (why != nullptr) *why = reason;
  return false;
}

}  // namespace

void formatLogTimestamp(int64_t timeNs, char* out) {
  // Floor division: a time before 1970 still has a non-negative fraction.
  int64_t seconds = timeNs / kNsPerSecond;
  int64_t fraction = timeNs % kNsPerSecond;
  if (fraction < 0) {
    fraction += kNsPerSecond;
    --seconds;
  }
  // The calendar part changes once a second: it is formatted once per second per thread.
  thread_local int64_t cachedSecond = INT64_MIN;
  thread_local char cachedPrefix[20];  // "2026-11-21T23:41:00."
  if (seconds != cachedSecond) {
    int64_t days = seconds / kSecondsPerDay;
    int64_t secondOfDay = seconds % kSecondsPerDay;
    if (secondOfDay < 0) {
      secondOfDay += kSecondsPerDay;
      --days;
    }
    const std::chrono::year_month_day date{
        std::chrono::sys_days{std::chrono::days{static_cast<int>(days)}}};
    writeDigits(cachedPrefix, static_cast<unsigned>(static_cast<int>(date.year())), 4);
    cachedPrefix[4] = '-';
    writeDigits(cachedPrefix + 5, static_cast<unsigned>(date.month()), 2);
    cachedPrefix[7] = '-';
    writeDigits(cachedPrefix + 8, static_cast<unsigned>(date.day()), 2);
    cachedPrefix[10] = 'T';
    writeDigits(cachedPrefix + 11, static_cast<unsigned>(secondOfDay / 3600), 2);
    cachedPrefix[13] = ':';
    writeDigits(cachedPrefix + 14, static_cast<unsigned>(secondOfDay / 60 % 60), 2);
    cachedPrefix[16] = ':';
    writeDigits(cachedPrefix + 17, static_cast<unsigned>(secondOfDay % 60), 2);
    cachedPrefix[19] = '.';
    cachedSecond = seconds;
  }
  std::memcpy(out, cachedPrefix, sizeof cachedPrefix);
  writeDigits(out + 20, static_cast<unsigned>(fraction), 9);
  out[29] = 'Z';
}

std::string formatLogTimestamp(int64_t timeNs) {
  std::string text(kLogTimestampBytes, '\0');
  formatLogTimestamp(timeNs, text.data());
  return text;
}

std::optional<int64_t> parseLogTimestamp(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS, then an optional fraction, then Z or ±hh:mm, nothing after.
  if (text.size() < 20 || text.size() > kMaxTimestampBytes) return std::nullopt;
  const int year = readDigits(text, 0, 4);
  const int month = readDigits(text, 5, 2);
  const int day = readDigits(text, 8, 2);
  const int hour = readDigits(text, 11, 2);
  const int minute = readDigits(text, 14, 2);
  const int second = readDigits(text, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) {
    return std::nullopt;
  }
  if (text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  if (hour > 23 || minute > 59 || second > 59) return std::nullopt;  // no leap second, as Go
  const std::chrono::year_month_day date{std::chrono::year{year},
                                         std::chrono::month{static_cast<unsigned>(month)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;

  size_t pos = 19;
  int64_t fraction = 0;
  if (text[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (++digits > 9) return std::nullopt;
      fraction = fraction * 10 + (text[pos] - '0');
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (size_t i = digits; i < 9; ++i)
      fraction *= 10;
  }
  if (pos >= text.size()) return std::nullopt;
  int64_t offsetSeconds = 0;
  if (text[pos] == 'Z') {
    ++pos;
  } else if (text[pos] == '+' || text[pos] == '-') {
    const int offsetHours = readDigits(text, pos + 1, 2);
    const int offsetMinutes = readDigits(text, pos + 4, 2);
    if (offsetHours < 0 || offsetMinutes < 0 || text[pos + 3] != ':') return std::nullopt;
    if (offsetHours > 23 || offsetMinutes > 59) return std::nullopt;
    offsetSeconds = (offsetHours * 3600 + offsetMinutes * 60) * (text[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;

  const int64_t days = std::chrono::sys_days{date}.time_since_epoch().count();
  const int64_t seconds =
      days * kSecondsPerDay + hour * 3600 + minute * 60 + second - offsetSeconds;
  int64_t ns = 0;
  if (__builtin_mul_overflow(seconds, kNsPerSecond, &ns) ||
      __builtin_add_overflow(ns, fraction, &ns)) {
    return std::nullopt;
  }
  return ns;
}

bool parseLogRecord(std::string_view line, LogRecordView& out, std::string* why) {
  // Every search is bounded by its field's longest form, so that the verdict depends on the
  // first kMaxLogHeaderBytes bytes only (the reader's backward scan relies on it).
  const size_t timestampEnd = line.substr(0, kMaxTimestampBytes + 1).find(' ');
  if (timestampEnd == std::string_view::npos) return fail(why, "no timestamp field");
  const auto timeNs = parseLogTimestamp(line.substr(0, timestampEnd));
  if (!timeNs) return fail(why, "malformed RFC 3339 timestamp");

  std::string_view rest = line.substr(timestampEnd + 1);
  if (rest.starts_with("stdout ")) {
    out.stream = LogStream::kStdout;
  } else if (rest.starts_with("stderr ")) {
    out.stream = LogStream::kStderr;
  } else {
    return fail(why, "stream is neither stdout nor stderr");
  }
  rest.remove_prefix(7);

  const size_t tagEnd = rest.substr(0, kMaxLogTagBytes + 1).find(' ');
  if (tagEnd == std::string_view::npos) return fail(why, "no tag field (or a tag over 32 bytes)");
  const std::string_view tag = rest.substr(0, tagEnd);
  const std::string_view firstTag = tag.substr(0, tag.find(':'));
  if (firstTag == "F") {
    out.partial = false;
  } else if (firstTag == "P") {
    out.partial = true;
  } else {
    return fail(why, "tag is neither F nor P");
  }
  out.timeNs = *timeNs;
  out.content = rest.substr(tagEnd + 1);
  return true;
}

bool parseLogRecord(std::string_view line, LogRecord& out, std::string* why) {
  LogRecordView view;
  if (!parseLogRecord(line, view, why)) return false;
  out.timeNs = view.timeNs;
  out.stream = view.stream;
  out.partial = view.partial;
  out.content.assign(view.content);
  return true;
}

}  // namespace monocri::logging
