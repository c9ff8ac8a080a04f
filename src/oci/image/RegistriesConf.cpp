#include "oci/image/RegistriesConf.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "config/TomlReader.h"
#include "state/StateFiles.h"

namespace monocri::oci {

namespace {

using config::TomlValue;

constexpr size_t kMaxFileBytes = 1 << 20;

struct Reader {
  const std::string& source;
  std::vector<std::string>& warnings;

  std::string at(const TomlValue& value) const { return fmt::format("{}:{}", source, value.line); }

  std::string string(const TomlValue& value, std::string_view key, std::string& out) const {
    if (value.kind != TomlValue::Kind::kString) {
      return fmt::format("{}: '{}' must be a string, not a {}", at(value), key, value.kindName());
    }
    out = value.text;
    return {};
  }
  std::string boolean(const TomlValue& value, std::string_view key, bool& out) const {
    if (value.kind != TomlValue::Kind::kBoolean) {
      return fmt::format("{}: '{}' must be true or false, not a {}", at(value), key,
                         value.kindName());
    }
    out = value.boolean;
    return {};
  }
  std::string pullFrom(const TomlValue& value, RegistryLocation::PullFrom& out) const {
    std::string text;
    if (std::string error = string(value, "pull-from-mirror", text); !error.empty()) return error;
    if (text == "all") {
      out = RegistryLocation::PullFrom::kAll;
    } else if (text == "digest-only") {
      out = RegistryLocation::PullFrom::kDigestOnly;
    } else if (text == "tag-only") {
      out = RegistryLocation::PullFrom::kTagOnly;
    } else {
      return fmt::format("{}: 'pull-from-mirror' must be all, digest-only or tag-only, not '{}'",
                         at(value), text);
    }
    return {};
  }
  void ignored(const TomlValue& value, std::string_view where, std::string_view key) const {
    warnings.push_back(
        fmt::format("{}: '{}' in {} is not used by monocri; ignored", at(value), key, where));
  }
};

// A location or prefix written as a reference prefix: a host, maybe a path, no tag or digest.
bool isValidLocation(const std::string& text) {
  if (text.empty()) return false;
  auto ref = parseImageReference(text + "/x");
  return ref && !ref->shortName && ref->tag == "latest" && !ref->digest;
}

std::string readLocation(const Reader& reader, const TomlValue& table, std::string_view where,
                         RegistryLocation& out, bool& hasPullFrom) {
  hasPullFrom = false;
  for (const auto& [key, value] : table.members) {
    std::string error;
    if (key == "location") {
      error = reader.string(value, key, out.location);
    } else if (key == "insecure") {
      error = reader.boolean(value, key, out.insecure);
    } else if (key == "pull-from-mirror") {
      error = reader.pullFrom(value, out.pullFrom);
      hasPullFrom = true;
    } else if (key != "prefix" && key != "blocked" && key != "mirror" &&
               key != "mirror-by-digest-only") {
      reader.ignored(value, where, key);
    }
    if (!error.empty()) return error;
  }
  return {};
}

// Does `name` (domain/path) start with `prefix` at a component boundary?
size_t prefixMatchLength(const RegistryEntry& entry, const ImageReference& ref) {
  const std::string name = ref.name();
  if (entry.prefix.starts_with("*.")) {
    const std::string suffix = entry.prefix.substr(1);  // ".example.com"
    const std::string host = ref.domain.substr(0, ref.domain.find(':'));
    return host.size() > suffix.size() && host.ends_with(suffix) ? 1 : 0;  // least specific
  }
  if (name == entry.prefix) return entry.prefix.size() + 1;
  if (name.size() > entry.prefix.size() && name.starts_with(entry.prefix) &&
      name[entry.prefix.size()] == '/') {
    return entry.prefix.size() + 1;
  }
  return 0;
}

// The image's name at `location`: the matched prefix replaced.
std::optional<ImageReference> rewrite(const ImageReference& ref, const RegistryEntry& entry,
                                      const std::string& location) {
  std::string name = ref.name();
  if (entry.prefix.starts_with("*.")) {
    name = location.empty() ? name : location + name.substr(ref.domain.size());
  } else {
    name = location + name.substr(entry.prefix.size());
  }
  auto moved = parseImageReference(name + ":x");
  if (!moved) return std::nullopt;
  // Keep the path as the rewrite made it: "library/" is Docker Hub's default, not a mirror's.
  const size_t slash = name.find('/');
  return ref.at(moved->domain, name.substr(slash + 1));
}

}  // namespace

std::string RegistriesConf::load(const std::string& path, RegistriesConf& out,
                                 std::vector<std::string>& warnings) {
  out = RegistriesConf{};
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return fmt::format("cannot read {}: {}", path, std::strerror(errno));
  }
  std::string text;
  if (std::string error = state::readFile(path, kMaxFileBytes, text); !error.empty()) {
    return error;
  }
  return parse(text, path, out, warnings);
}

std::string RegistriesConf::parse(const std::string& text, const std::string& source,
                                  RegistriesConf& out, std::vector<std::string>& warnings) {
  out = RegistriesConf{};
  TomlValue root;
  if (std::string error = config::parseToml(text, source, root); !error.empty()) return error;
  Reader reader{source, warnings};

  for (const auto& [key, value] : root.members) {
    if (key == "unqualified-search-registries") {
      if (value.kind != TomlValue::Kind::kArray) {
        return fmt::format("{}: '{}' must be an array of strings", reader.at(value), key);
      }
      for (const auto& item : value.items) {
        if (item.kind != TomlValue::Kind::kString || !isValidLocation(item.text) ||
            item.text.find('/') != std::string::npos) {
          return fmt::format("{}: '{}' entries must be registry hosts", reader.at(item), key);
        }
        out.searchRegistries_.push_back(item.text);
      }
    } else if (key == "registry") {
      if (value.kind != TomlValue::Kind::kArray) {
        return fmt::format("{}: 'registry' must be written [[registry]]", reader.at(value));
      }
      for (const auto& table : value.items) {
        if (table.kind != TomlValue::Kind::kTable) {
          return fmt::format("{}: 'registry' must be written [[registry]]", reader.at(table));
        }
        RegistryEntry entry;
        bool hasPullFrom = false;
        if (std::string error =
                readLocation(reader, table, "[[registry]]", entry.primary, hasPullFrom);
            !error.empty()) {
          return error;
        }
        if (hasPullFrom) {
          return fmt::format("{}: 'pull-from-mirror' belongs in [[registry.mirror]]",
                             reader.at(table));
        }
        bool digestOnly = false;
        for (const auto& [field, fieldValue] : table.members) {
          std::string error;
          if (field == "prefix") {
            error = reader.string(fieldValue, field, entry.prefix);
          } else if (field == "blocked") {
            error = reader.boolean(fieldValue, field, entry.blocked);
          } else if (field == "mirror-by-digest-only") {
            error = reader.boolean(fieldValue, field, digestOnly);
          } else if (field == "mirror") {
            if (fieldValue.kind != TomlValue::Kind::kArray) {
              error = fmt::format("{}: 'mirror' must be written [[registry.mirror]]",
                                  reader.at(fieldValue));
            }
            for (const auto& mirrorTable : fieldValue.items) {
              if (!error.empty()) break;
              if (mirrorTable.kind != TomlValue::Kind::kTable) {
                error = fmt::format("{}: 'mirror' must be written [[registry.mirror]]",
                                    reader.at(mirrorTable));
                break;
              }
              RegistryLocation mirror;
              bool mirrorPullFrom = false;
              error =
                  readLocation(reader, mirrorTable, "[[registry.mirror]]", mirror, mirrorPullFrom);
              if (error.empty() && !isValidLocation(mirror.location)) {
                error = fmt::format("{}: mirror location '{}' is not a registry host[/path]",
                                    reader.at(mirrorTable), mirror.location);
              }
              entry.mirrors.push_back(mirror);
            }
          }
          if (!error.empty()) return error;
        }
        if (digestOnly) {
          for (auto& mirror : entry.mirrors) {
            mirror.pullFrom = RegistryLocation::PullFrom::kDigestOnly;
          }
        }
        if (entry.prefix.empty()) entry.prefix = entry.primary.location;
        const bool wildcard = entry.prefix.starts_with("*.");
        if (entry.prefix.empty()) {
          return fmt::format("{}: a [[registry]] needs a prefix or a location", reader.at(table));
        }
        if (wildcard ? !isValidLocation(entry.prefix.substr(2)) : !isValidLocation(entry.prefix)) {
          return fmt::format("{}: prefix '{}' is not host[/path] or *.domain", reader.at(table),
                             entry.prefix);
        }
        if (!entry.primary.location.empty() && !isValidLocation(entry.primary.location)) {
          return fmt::format("{}: location '{}' is not a registry host[/path]", reader.at(table),
                             entry.primary.location);
        }
        if (wildcard && !entry.primary.location.empty()) {
          return fmt::format("{}: a wildcard prefix '{}' cannot have a location", reader.at(table),
                             entry.prefix);
        }
        if (entry.primary.location.empty() && !wildcard) entry.primary.location = entry.prefix;
        out.registries_.push_back(std::move(entry));
      }
    } else if (key == "aliases") {
      if (value.kind != TomlValue::Kind::kTable) {
        return fmt::format("{}: 'aliases' must be a table", reader.at(value));
      }
      for (const auto& [alias, target] : value.members) {
        std::string full;
        if (std::string error = reader.string(target, alias, full); !error.empty()) return error;
        auto ref = parseImageReference(full);
        if (!ref || ref->shortName) {
          return fmt::format("{}: alias '{}' must name a fully qualified image", reader.at(target),
                             alias);
        }
        out.aliases_[alias] = full;
      }
    } else if (key == "registries") {
      return fmt::format(
          "{}: the v1 format ([registries.search], [registries.insecure], "
          "[registries.block]) is not supported; write [[registry]] tables "
          "(containers-registries.conf(5), version 2)",
          reader.at(value));
    } else {
      reader.ignored(value, "registries.conf", key);
    }
  }
  return {};
}

std::vector<ImageReference> RegistriesConf::qualify(const ImageReference& ref) const {
  if (!ref.shortName) return {ref};
  if (auto alias = aliases_.find(ref.shortPath); alias != aliases_.end()) {
    auto target = parseImageReference(alias->second);
    ImageReference resolved = ref.at(target->domain, target->path);
    return {resolved};
  }
  if (searchRegistries_.empty()) return {ref.at(std::string(kDockerHub), ref.path)};
  std::vector<ImageReference> candidates;
  for (const auto& registry : searchRegistries_) {
    const bool hub = registry == kDockerHub;
    candidates.push_back(ref.at(registry, hub ? ref.path : ref.shortPath));
  }
  return candidates;
}

const RegistryEntry* RegistriesConf::match(const ImageReference& ref) const {
  const RegistryEntry* best = nullptr;
  size_t bestLength = 0;
  for (const auto& entry : registries_) {
    const size_t length = prefixMatchLength(entry, ref);
    if (length > bestLength) {
      best = &entry;
      bestLength = length;
    }
  }
  return best;
}

std::string RegistriesConf::sources(const ImageReference& ref, std::vector<PullSource>& out) const {
  out.clear();
  const RegistryEntry* entry = match(ref);
  if (entry == nullptr) {
    out.push_back(PullSource{ref, false, false});
    return {};
  }
  if (entry->blocked) {
    return fmt::format("pulling from {} is blocked by registries.conf (prefix '{}')", ref.domain,
                       entry->prefix);
  }
  for (const auto& mirror : entry->mirrors) {
    const bool byDigest = ref.digest.has_value();
    if ((mirror.pullFrom == RegistryLocation::PullFrom::kDigestOnly && !byDigest) ||
        (mirror.pullFrom == RegistryLocation::PullFrom::kTagOnly && byDigest)) {
      continue;
    }
    if (auto moved = rewrite(ref, *entry, mirror.location)) {
      out.push_back(PullSource{*moved, mirror.insecure, true});
    }
  }
  if (auto moved = rewrite(ref, *entry, entry->primary.location)) {
    out.push_back(PullSource{*moved, entry->primary.insecure, false});
  }
  return {};
}

}  // namespace monocri::oci
