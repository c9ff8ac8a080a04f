#include "net/cni/NetworkConfigList.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "net/cni/JsonInput.h"

namespace monocri::net::cni {

namespace {

using Json = nlohmann::json;
using detail::kSupportedVersions;
using detail::shown;
using detail::supportedVersion;
using detail::typeName;

constexpr size_t kMaxConfigFileBytes = 1 << 20;
// The name becomes part of file names (host-local's data dir, the result cache's
// "<network>-<containerId>-<ifName>"), which must fit in NAME_MAX (255) with a 64-character id.
constexpr size_t kMaxNetworkNameBytes = 128;
constexpr size_t kMaxPlugins = 64;
constexpr size_t kMaxPluginTypeBytes = 255;  // NAME_MAX

// The spec's rule for network names: ^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$
bool validNetworkName(std::string_view name) {
  if (name.empty() || !std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

bool validPluginType(std::string_view type) {
  return !type.empty() && type.size() <= kMaxPluginTypeBytes && type != "." && type != ".." &&
         type.find('/') == std::string_view::npos && type.find('\0') == std::string_view::npos;
}

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// One plugin's config: an object with a plugin file name in "type", and, where present, the
// fields libcni decodes into its NetConf ("capabilities" of booleans, "ipam" with a string
// "type"). `which` is "plugin 2" (1-based) in a list, "the config" for a .conf file.
std::string checkPlugin(const Json& plugin, const std::string& where, const std::string& which) {
  if (!plugin.is_object()) {
    return fmt::format("{}: {} is {}, not an object", where, which, typeName(plugin));
  }
  const auto type = plugin.find("type");
  if (type == plugin.end()) return fmt::format("{}: {} has no \"type\"", where, which);
  if (!type->is_string()) {
    return fmt::format("{}: {} has a \"type\" that is {}, not a string", where, which,
                       typeName(*type));
  }
  const auto& name = type->get_ref<const std::string&>();
  if (!validPluginType(name)) {
    return fmt::format(
        "{}: {} has \"type\" {}, which is not a plugin's file name (non-empty, no '/', not "
        "\".\" or \"..\")",
        where, which, shown(name));
  }
  if (const auto caps = plugin.find("capabilities"); caps != plugin.end() && !caps->is_null()) {
    if (!caps->is_object()) {
      return fmt::format("{}: {} has \"capabilities\" that is {}, not an object", where, which,
                         typeName(*caps));
    }
    for (const auto& [key, value] : caps->items()) {
      if (!value.is_boolean()) {
        return fmt::format("{}: {} has capability {} set to {}, not true or false", where, which,
                           shown(key), typeName(value));
      }
    }
  }
  if (const auto ipam = plugin.find("ipam"); ipam != plugin.end() && !ipam->is_null()) {
    if (!ipam->is_object()) {
      return fmt::format("{}: {} has \"ipam\" that is {}, not an object", where, which,
                         typeName(*ipam));
    }
    if (const auto ipamType = ipam->find("type");
        ipamType != ipam->end() && !ipamType->is_string()) {
      return fmt::format("{}: {} has an \"ipam\" \"type\" that is {}, not a string", where, which,
                         typeName(*ipamType));
    }
  }
  return "";
}

std::string fromJson(const Json& raw, bool isList, const std::string& path,
                     NetworkConfigList& out) {
  const std::string where = path.empty() ? std::string("network config") : path;
  if (!raw.is_object()) return fmt::format("{}: {}, not a JSON object", where, typeName(raw));
  if (detail::valueDepth(raw, detail::kMaxJsonDepth) > detail::kMaxJsonDepth) {
    return fmt::format("{}: JSON nested deeper than {} levels", where, detail::kMaxJsonDepth);
  }

  NetworkConfigList list;
  const auto version = raw.find("cniVersion");
  if (version == raw.end()) return fmt::format("{}: no \"cniVersion\"", where);
  if (!version->is_string()) {
    return fmt::format("{}: \"cniVersion\" is {}, not a string", where, typeName(*version));
  }
  list.cniVersion = version->get<std::string>();
  if (!supportedVersion(list.cniVersion)) {
    return fmt::format("{}: cniVersion {} is not supported (supported: {})", where,
                       shown(list.cniVersion), fmt::join(kSupportedVersions, ", "));
  }

  const auto name = raw.find("name");
  if (name == raw.end()) return fmt::format("{}: no \"name\"", where);
  if (!name->is_string()) {
    return fmt::format("{}: \"name\" is {}, not a string", where, typeName(*name));
  }
  list.name = name->get<std::string>();
  if (!validNetworkName(list.name)) {
    return fmt::format(
        "{}: network name {} is not valid: it must start with a letter or a digit and hold only "
        "letters, digits, '_', '.' and '-'",
        where, shown(list.name));
  }
  if (list.name.size() > kMaxNetworkNameBytes) {
    return fmt::format("{}: network name {} is longer than {} characters", where, shown(list.name),
                       kMaxNetworkNameBytes);
  }

  if (isList) {
    // libcni takes a boolean, or the strings "true" and "false" in any case.
    if (const auto disable = raw.find("disableCheck"); disable != raw.end()) {
      if (disable->is_boolean()) {
        list.disableCheck = disable->get<bool>();
      } else if (disable->is_string() &&
                 equalsIgnoringCase(disable->get_ref<const std::string&>(), "true")) {
        list.disableCheck = true;
      } else if (disable->is_string() &&
                 equalsIgnoringCase(disable->get_ref<const std::string&>(), "false")) {
        list.disableCheck = false;
      } else {
        return fmt::format("{}: \"disableCheck\" is {}, not true or false", where,
                           disable->is_string() ? shown(disable->get_ref<const std::string&>())
                                                : std::string(typeName(*disable)));
      }
    }
    const auto plugins = raw.find("plugins");
    if (plugins == raw.end()) return fmt::format("{}: no \"plugins\" array", where);
    if (!plugins->is_array()) {
      return fmt::format("{}: \"plugins\" is {}, not an array", where, typeName(*plugins));
    }
    if (plugins->empty()) return fmt::format("{}: \"plugins\" is empty", where);
    if (plugins->size() > kMaxPlugins) {
      return fmt::format("{}: {} plugins, more than the {} accepted", where, plugins->size(),
                         kMaxPlugins);
    }
    for (size_t i = 0; i < plugins->size(); ++i) {
      const std::string error = checkPlugin((*plugins)[i], where, fmt::format("plugin {}", i + 1));
      if (!error.empty()) return error;
    }
    list.plugins.assign(plugins->begin(), plugins->end());
  } else {
    // A single plugin's config is a list of one: the whole object is the plugin's config.
    const std::string error = checkPlugin(raw, where, "the config");
    if (!error.empty()) return error;
    list.plugins.push_back(raw);
  }
  list.path = path;
  list.raw = raw;
  out = std::move(list);
  return "";
}

bool hasConfigExtension(std::string_view name) {
  for (std::string_view ext : {".conflist", ".conf", ".json"}) {
    if (name.size() > ext.size() && name.substr(name.size() - ext.size()) == ext) return true;
  }
  return false;
}

// Reads a regular file of at most `max` bytes. Returns "" or why not; sets `skip` for a file
// that is not regular (a directory, a FIFO: ignored rather than rejected).
std::string readConfigFile(const std::string& path, size_t max, std::string& bytes, bool& skip) {
  skip = false;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return fmt::format("cannot stat: {}", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    skip = true;
    return "not a regular file";
  }
  if (static_cast<uint64_t>(st.st_size) > max) {
    return fmt::format("{} bytes, more than the {} accepted", st.st_size, max);
  }
  // O_NONBLOCK: should the file be swapped for a FIFO after the stat, open does not wait.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return fmt::format("cannot open: {}", std::strerror(errno));
  std::string error;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    skip = true;
    error = "not a regular file";
  } else {
    bytes.clear();
    char buffer[65536];
    while (error.empty()) {
      const ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error = fmt::format("cannot read: {}", std::strerror(errno));
      } else if (n == 0) {
        break;
      } else if (bytes.size() + static_cast<size_t>(n) > max) {
        error = fmt::format("more than the {} bytes accepted", max);
      } else {
        bytes.append(buffer, static_cast<size_t>(n));
      }
    }
  }
  close(fd);
  return error;
}

}  // namespace

std::string parseNetworkConfig(std::string_view bytes, const std::string& path, bool isList,
                               NetworkConfigList& out) {
  Json raw;
  const std::string where = path.empty() ? std::string("network config") : path;
  std::string error =
      detail::parseJson(bytes, kMaxConfigFileBytes, detail::kMaxJsonDepth, where, raw);
  if (!error.empty()) return error;
  return fromJson(raw, isList, path, out);
}

std::string networkConfigFromJson(const nlohmann::json& raw, bool isList, NetworkConfigList& out) {
  return fromJson(raw, isList, "", out);
}

ConfigDirScan scanConfigDir(const std::string& dir, const std::vector<std::string>* pluginDirs) {
  ConfigDirScan scan;
  DIR* handle = opendir(dir.c_str());
  if (handle == nullptr) {
    scan.error = fmt::format("cannot read {}: {}", dir, std::strerror(errno));
    return scan;
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = readdir(handle)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != ".." && hasConfigExtension(name)) names.emplace_back(name);
    errno = 0;
  }
  const int readError = errno;
  closedir(handle);
  if (readError != 0) {
    scan.error = fmt::format("cannot read {}: {}", dir, std::strerror(readError));
    return scan;
  }
  std::sort(names.begin(), names.end());  // byte order, as Go's sort.Strings in libcni

  const std::string prefix = !dir.empty() && dir.back() == '/' ? dir : dir + "/";
  for (const auto& name : names) {
    const std::string path = prefix + name;
    std::string bytes;
    bool skip = false;
    const std::string readError = readConfigFile(path, kMaxConfigFileBytes, bytes, skip);
    if (skip) continue;
    if (!readError.empty()) {
      scan.rejected.push_back(fmt::format("{}: {}", path, readError));
      continue;
    }
    const bool isList = name.size() > 9 && name.substr(name.size() - 9) == ".conflist";
    NetworkConfigList list;
    const std::string error = parseNetworkConfig(bytes, path, isList, list);
    if (!error.empty()) {
      scan.rejected.push_back(error);  // already "path: why"
      continue;
    }
    std::string missing;
    for (size_t i = 0; pluginDirs != nullptr && i < list.plugins.size() && missing.empty(); ++i) {
      const std::string type = list.plugins[i].value("type", "");
      if (findPlugin(type, *pluginDirs).empty()) missing = type;
    }
    if (!missing.empty()) {
      std::string dirs;
      for (const auto& pluginDir : *pluginDirs)
        dirs += (dirs.empty() ? "" : ", ") + pluginDir;
      scan.rejected.push_back(fmt::format("{}: plugin '{}' is not in the plugin directories ({})",
                                          path, missing, dirs));
      continue;
    }
    scan.chosen = std::move(list);
    break;
  }
  return scan;
}

bool versionHasCheck(const std::string& cniVersion) {
  unsigned parts[3] = {0, 0, 0};
  size_t part = 0;
  bool digit = false;
  for (char c : cniVersion) {
    if (c >= '0' && c <= '9' && part < 3) {
      if (parts[part] > 1000) return false;
      parts[part] = parts[part] * 10 + static_cast<unsigned>(c - '0');
      digit = true;
    } else if (c == '.' && digit && part < 2) {
      ++part;
      digit = false;
    } else {
      return false;
    }
  }
  if (part != 2 || !digit) return false;
  return parts[0] > 0 || parts[1] >= 4;
}

std::string findPlugin(const std::string& type, const std::vector<std::string>& dirs) {
  if (!validPluginType(type)) return "";
  for (const auto& dir : dirs) {
    if (dir.empty()) continue;
    const std::string path = dir.back() == '/' ? dir + type : dir + "/" + type;
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0) {
      return path;
    }
  }
  return "";
}

}  // namespace monocri::net::cni
