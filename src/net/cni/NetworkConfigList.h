// CNI network configurations as the spec defines them: a list (*.conflist) of plugin configs
// run in order, or a single plugin's config (*.conf, *.json) taken as a list of one. Only the
// versions whose result format the daemon reads are accepted (0.3.0 and later).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace monocri::net::cni {

struct NetworkConfigList {
  std::string cniVersion;  // "1.0.0", "0.4.0", "0.3.1" or "0.3.0"
  std::string name;        // the network's name: host-local's data dir, cache keys
  bool disableCheck = false;
  // Each an object with a non-empty string "type" (a plugin binary's file name, no '/').
  std::vector<nlohmann::json> plugins;
  std::string path;    // the file it came from ("" when parsed from bytes alone)
  nlohmann::json raw;  // the file's JSON as read: cached with a pod's result, so that DEL runs
                       // with the config ADD ran with even after the file changed
};

// Parses one file's bytes: a list when `isList` (.conflist), else one plugin's config. Returns
// "" or an error a user can act on, naming `path` (e.g. "/etc/cni/net.d/10-a.conflist: plugin
// 2 has no \"type\"").
std::string parseNetworkConfig(std::string_view bytes, const std::string& path, bool isList,
                               NetworkConfigList& out);

// A list rebuilt from NetworkConfigList::raw (a cache record's copy). Same checks.
std::string networkConfigFromJson(const nlohmann::json& raw, bool isList, NetworkConfigList& out);

struct ConfigDirScan {
  std::optional<NetworkConfigList> chosen;  // the first valid file in lexical order of name
  std::vector<std::string> rejected;        // "path: why", for each invalid file before it
  std::string error;                        // the directory itself cannot be read ("" if fine)
};

// *.conflist, *.conf and *.json files of `dir` (regular files, at most 1 MiB each; others are
// ignored), in lexical order of their names, as libcni and kubelet's dockershim chose. With
// `pluginDirs`, a list naming a plugin that none of them holds is passed over too (as CRI-O's
// ocicni validates a network before using it).
ConfigDirScan scanConfigDir(const std::string& dir,
                            const std::vector<std::string>* pluginDirs = nullptr);

// CHECK exists from 0.4.0 on.
bool versionHasCheck(const std::string& cniVersion);

// Where plugin `type` is: the first of `dirs` holding an executable regular file of that name.
// "" when none does, or when `type` is not a plain file name.
std::string findPlugin(const std::string& type, const std::vector<std::string>& dirs);

}  // namespace monocri::net::cni
