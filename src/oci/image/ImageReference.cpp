#include "oci/image/ImageReference.h"

#include <fmt/format.h>

namespace monocri::oci {

namespace {

// Limits of the reference grammar (distribution/reference).
constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxTagLength = 128;

bool isLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | "__" | "-"+
bool isPathComponent(std::string_view s) {
  if (s.empty() || !isLowerAlnum(s.front()) || !isLowerAlnum(s.back())) return false;
  for (size_t i = 0; i < s.size();) {
    if (isLowerAlnum(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && !isLowerAlnum(s[j]))
      ++j;
    const std::string_view separator = s.substr(i, j - i);
    const bool ok = separator == "." || separator == "_" || separator == "__" ||
                    separator.find_first_not_of('-') == std::string_view::npos;
    if (!ok) return false;
    i = j;
  }
  return true;
}

// domain := host (":" port)?; host: DNS labels of [A-Za-z0-9-], or an IPv6 literal in [].
bool isDomain(std::string_view s) {
  if (s.empty()) return false;
  std::string_view host = s;
  if (s.front() == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos) return false;
    host = s.substr(1, close - 1);
    if (host.empty() ||
        host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) {
      return false;
    }
    s = s.substr(close + 1);
    if (s.empty()) return true;
    if (s.front() != ':') return false;
  } else if (const size_t colon = s.find(':'); colon != std::string_view::npos) {
    host = s.substr(0, colon);
    s = s.substr(colon);
  } else {
    s = {};
  }
  if (!s.empty()) {  // ":port"
    const std::string_view port = s.substr(1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos) {
      return false;
    }
  }
  if (host.empty()) return false;
  if (host.front() == '-' || host.back() == '-' || host.front() == '.' || host.back() == '.') {
    return false;
  }
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == ':';
    if (!ok) return false;
  }
  return host.find("..") == std::string_view::npos;
}

bool isTag(std::string_view s) {
  if (s.empty() || s.size() > kMaxTagLength) return false;
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (!word(s.front())) return false;
  for (char c : s) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

}  // namespace

std::string ImageReference::name() const {
  return domain + "/" + path;
}

std::string ImageReference::string() const {
  std::string out = name();
  if (!tag.empty()) out += ":" + tag;
  if (digest) out += "@" + digest->str();
  return out;
}

std::string ImageReference::manifestReference() const {
  return digest ? digest->str() : tag;
}

ImageReference ImageReference::at(std::string newDomain, std::string newPath) const {
  ImageReference moved = *this;
  moved.domain = std::move(newDomain);
  moved.path = std::move(newPath);
  moved.shortName = false;
  moved.shortPath.clear();
  return moved;
}

std::optional<ImageReference> parseImageReference(std::string_view text, std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<ImageReference> {
    if (why) *why = fmt::format("invalid image reference '{}': {}", text.substr(0, 300), reason);
    return std::nullopt;
  };
  if (text.empty()) return fail("it is empty");
  ImageReference ref;
  std::string_view rest = text;

  if (const size_t at = rest.find('@'); at != std::string_view::npos) {
    std::string digestWhy;
    ref.digest = Digest::parse(rest.substr(at + 1), &digestWhy);
    if (!ref.digest) return fail(digestWhy);
    rest = rest.substr(0, at);
  }
  // A tag follows the last ':' after the last '/' (a ':' before it belongs to a port).
  const size_t slash = rest.rfind('/');
  const size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    ref.tag = rest.substr(colon + 1);
    if (!isTag(ref.tag))
      return fail(fmt::format("'{}' is not a valid tag", ref.tag.substr(0, 130)));
    rest = rest.substr(0, colon);
  }
  // Bounds the work below; the normalized name is checked at the end.
  if (rest.size() > kMaxNameLength) return fail("the name is longer than 255 characters");

  // The first component is a registry if it looks like a host: a '.', a ':' or "localhost".
  const size_t firstSlash = rest.find('/');
  std::string_view first = rest.substr(0, firstSlash);
  if (firstSlash != std::string_view::npos &&
      (first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
       first.front() == '[')) {
    if (!isDomain(first)) return fail(fmt::format("'{}' is not a valid registry host", first));
    ref.domain = first;
    rest = rest.substr(firstSlash + 1);
  } else {
    ref.domain = kDockerHub;
    ref.shortName = true;
  }
  if (ref.domain == "index.docker.io" || ref.domain == "registry-1.docker.io") {
    ref.domain = kDockerHub;
  }
  size_t start = 0;
  while (start <= rest.size()) {
    const size_t end = rest.find('/', start);
    const std::string_view component =
        rest.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (!isPathComponent(component)) {
      return fail(
          fmt::format("'{}' is not a valid name component (lowercase letters, digits "
                      "and . _ - separators)",
                      component.substr(0, 100)));
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  ref.path = rest;
  if (ref.shortName) ref.shortPath = ref.path;
  if (ref.domain == kDockerHub && ref.path.find('/') == std::string::npos) {
    ref.path = "library/" + ref.path;
  }
  // As docker's reference library counts: the whole normalized name, "docker.io/library/x".
  if (ref.domain.size() + 1 + ref.path.size() > kMaxNameLength) {
    return fail("the name, with its registry, is longer than 255 characters");
  }
  if (ref.tag.empty() && !ref.digest) ref.tag = "latest";
  return ref;
}

}  // namespace monocri::oci
