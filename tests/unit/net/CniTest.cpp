// The CNI library: config lists and the config directory, plugin lookup, the plugin's stdin and
// CNI_ARGS, bandwidth annotations, plugin results and errors, and the ADD cache record.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "net/cni/CniResult.h"
#include "net/cni/NetworkConfigList.h"
#include "net/cni/PluginInput.h"

namespace monocri::net::cni {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// What Debian's bridge plugin (containernetworking-plugins 1.1.1) printed for an ADD with
// host-local and two ranges, run in a private network namespace.
const char* const kBridgeResult =
    R"({"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"5e:ca:71:14:96:22"},)"
    R"({"name":"veth5bcfdb4b","mac":"62:c0:39:c6:9f:45"},{"name":"eth0","mac":"c2:99:b2:6a:7c:9f",)"
    R"("sandbox":"/tmp/cni-cap/mnt/ns"}],"ips":[{"interface":2,"address":"10.88.0.2/16",)"
    R"("gateway":"10.88.0.1"},{"interface":2,"address":"fd00:88::2/64","gateway":"fd00:88::1"}],)"
    R"("routes":[{"dst":"0.0.0.0/0"}],"dns":{}})";

// The same plugin with a 0.3.1 config: each address carries "version".
const char* const kBridgeResult031 =
    R"({"cniVersion":"0.3.1","interfaces":[{"name":"cni1","mac":"2a:1b:3e:95:a5:0a"},)"
    R"({"name":"veth2c7462f7","mac":"12:c0:aa:b7:ca:a0"},{"name":"eth0","mac":"3e:27:fc:3f:b4:5b",)"
    R"("sandbox":"/tmp/cni-cap/mnt/ns"}],"ips":[{"version":"4","interface":2,)"
    R"("address":"10.99.0.2/24","gateway":"10.99.0.1"}],"dns":{}})";

// Its error objects: a version it does not speak, and a config without ranges.
const char* const kVersionError =
    R"({"code":1,"msg":"incompatible CNI versions","details":"config is \"9.9.9\", plugin )"
    R"(supports [\"0.1.0\" \"0.2.0\" \"0.3.0\" \"0.3.1\" \"0.4.0\" \"1.0.0\"]"})";
const char* const kPluginError = R"({"code":999,"msg":"no IP ranges specified"})";

const char* const kConflist = R"({
  "cniVersion": "1.0.0",
  "name": "monocri-net",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "bandwidth", "name": "slow", "capabilities": {"bandwidth": true,
     "portMappings": false}}
  ]
})";

const char* const kSingleConf = R"({"cniVersion": "0.4.0", "name": "single", "type": "bridge",
  "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}})";

std::string parseListError(const std::string& text, bool isList = true) {
  NetworkConfigList list;
  return parseNetworkConfig(text, "/etc/cni/net.d/10-test.conflist", isList, list);
}

// A directory under the test's temp dir, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "cni-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content, mode_t mode = 0644) {
    const std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    chmod(file.c_str(), mode);
    return file;
  }

 private:
  std::string path_;
};

// ---- config lists ----

TEST(CniConfig, ParsesAConflist) {
  NetworkConfigList list;
  ASSERT_EQ(parseNetworkConfig(kConflist, "/etc/cni/net.d/10-a.conflist", true, list), "");
  EXPECT_EQ(list.cniVersion, "1.0.0");
  EXPECT_EQ(list.name, "monocri-net");
  EXPECT_FALSE(list.disableCheck);
  ASSERT_EQ(list.plugins.size(), 3u);
  EXPECT_EQ(list.plugins[0]["type"], "bridge");
  EXPECT_EQ(list.plugins[1]["type"], "portmap");
  EXPECT_EQ(list.plugins[2]["name"], "slow");
  EXPECT_EQ(list.path, "/etc/cni/net.d/10-a.conflist");
  EXPECT_EQ(list.raw, Json::parse(kConflist));
}

TEST(CniConfig, ParsesASingleConfAsAListOfOne) {
  NetworkConfigList list;
  ASSERT_EQ(parseNetworkConfig(kSingleConf, "/etc/cni/net.d/10-b.conf", false, list), "");
  EXPECT_EQ(list.cniVersion, "0.4.0");
  EXPECT_EQ(list.name, "single");
  ASSERT_EQ(list.plugins.size(), 1u);
  EXPECT_EQ(list.plugins[0], Json::parse(kSingleConf));  // the whole object is the plugin's
  EXPECT_EQ(list.raw, Json::parse(kSingleConf));

  // A conflist read as a single config has no "type".
  const std::string error = parseListError(kConflist, false);
  EXPECT_EQ(error, "/etc/cni/net.d/10-test.conflist: the config has no \"type\"");
}

TEST(CniConfig, NetworkConfigFromJsonChecksTheSame) {
  NetworkConfigList list;
  ASSERT_EQ(networkConfigFromJson(Json::parse(kConflist), true, list), "");
  EXPECT_EQ(list.plugins.size(), 3u);
  EXPECT_EQ(list.path, "");
  Json bad = Json::parse(kConflist);
  bad["plugins"][1].erase("type");
  EXPECT_EQ(networkConfigFromJson(bad, true, list), "network config: plugin 2 has no \"type\"");
}

TEST(CniConfig, EachErrorNamesTheFileAndTheProblem) {
  const std::string path = "/etc/cni/net.d/10-test.conflist: ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", path + "not valid JSON"},
      {"[1, 2]", path + "an array, not a JSON object"},
      {R"({"name": "n", "plugins": [{"type": "bridge"}]})", path + "no \"cniVersion\""},
      {R"({"cniVersion": 1, "name": "n", "plugins": [{"type": "bridge"}]})",
       path + "\"cniVersion\" is a number, not a string"},
      {R"({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]})", path + "no \"name\""},
      {R"({"cniVersion": "1.0.0", "name": ["n"], "plugins": [{"type": "bridge"}]})",
       path + "\"name\" is an array, not a string"},
      {R"({"cniVersion": "1.0.0", "name": "n"})", path + "no \"plugins\" array"},
      {R"({"cniVersion": "1.0.0", "name": "n", "plugins": {"type": "bridge"}})",
       path + "\"plugins\" is an object, not an array"},
      {R"({"cniVersion": "1.0.0", "name": "n", "plugins": []})", path + "\"plugins\" is empty"},
      {R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, "portmap"]})",
       path + "plugin 2 is a string, not an object"},
      {R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, {"a": 1}]})",
       path + "plugin 2 has no \"type\""},
      {R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": 5}]})",
       path + "plugin 1 has a \"type\" that is a number, not a string"},
      {R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge",
          "capabilities": {"portMappings": "yes"}}]})",
       path + "plugin 1 has capability \"portMappings\" set to a string, not true or false"},
      {R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge", "ipam": 3}]})",
       path + "plugin 1 has \"ipam\" that is a number, not an object"},
  };
  for (const auto& [text, expected] : cases)
    EXPECT_EQ(parseListError(text), expected) << text;
}

TEST(CniConfig, RejectsNamesAndTypesThatAreNotSafe) {
  for (const std::string name : {"", "-net", ".net", "a b", "net/1", "ne\nt", "réseau"}) {
    const Json conf = {{"cniVersion", "1.0.0"}, {"name", name}, {"type", "bridge"}};
    const std::string error = parseListError(conf.dump(), false);
    EXPECT_TRUE(contains(error, "is not valid: it must start with a letter or a digit")) << error;
  }
  for (const std::string type : {"", ".", "..", "../bin/sh", "/usr/bin/bridge", "a/b"}) {
    const Json conf = {{"cniVersion", "1.0.0"}, {"name", "n"}, {"type", type}};
    const std::string error = parseListError(conf.dump(), false);
    EXPECT_TRUE(contains(error, "which is not a plugin's file name")) << error;
    EXPECT_TRUE(contains(error, Json(type).dump())) << error;
  }
  const Json ok = {{"cniVersion", "1.0.0"}, {"name", "My_net-1.2"}, {"type", "bridge"}};
  EXPECT_EQ(parseListError(ok.dump(), false), "");
}

TEST(CniConfig, AcceptsOnlyTheVersionsWithTheCurrentResultFormat) {
  for (const std::string version : {"0.3.0", "0.3.1", "0.4.0", "1.0.0"}) {
    const Json conf = {{"cniVersion", version}, {"name", "n"}, {"type", "bridge"}};
    EXPECT_EQ(parseListError(conf.dump(), false), "") << version;
  }
  for (const std::string version : {"0.1.0", "0.2.0", "1.1.0", "2.0.0", ""}) {
    const Json conf = {{"cniVersion", version}, {"name", "n"}, {"type", "bridge"}};
    EXPECT_EQ(parseListError(conf.dump(), false),
              "/etc/cni/net.d/10-test.conflist: cniVersion \"" + version +
                  "\" is not supported (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0)");
  }
}

TEST(CniConfig, DisableCheckAsBooleanOrString) {
  const auto withDisable = [](const Json& value) {
    Json conf = Json::parse(kConflist);
    conf["disableCheck"] = value;
    return conf.dump();
  };
  const std::vector<std::pair<Json, bool>> accepted = {{true, true},     {false, false},
                                                       {"true", true},   {"TRUE", true},
                                                       {"false", false}, {"False", false}};
  for (const auto& [value, expected] : accepted) {
    NetworkConfigList list;
    ASSERT_EQ(parseNetworkConfig(withDisable(value), "x.conflist", true, list), "") << value;
    EXPECT_EQ(list.disableCheck, expected) << value;
  }
  NetworkConfigList list;
  EXPECT_EQ(parseNetworkConfig(withDisable("yes"), "x.conflist", true, list),
            "x.conflist: \"disableCheck\" is \"yes\", not true or false");
  EXPECT_EQ(parseNetworkConfig(withDisable(1), "x.conflist", true, list),
            "x.conflist: \"disableCheck\" is a number, not true or false");
}

TEST(CniConfig, VersionHasCheck) {
  EXPECT_FALSE(versionHasCheck("0.3.0"));
  EXPECT_FALSE(versionHasCheck("0.3.1"));
  EXPECT_TRUE(versionHasCheck("0.4.0"));
  EXPECT_TRUE(versionHasCheck("1.0.0"));
  EXPECT_TRUE(versionHasCheck("1.1.0"));
  EXPECT_FALSE(versionHasCheck(""));
  EXPECT_FALSE(versionHasCheck("1.0"));
  EXPECT_FALSE(versionHasCheck("one"));
}

TEST(CniConfig, DeepNestingIsRejectedBeforeParsing) {
  std::string deep = R"({"cniVersion": "1.0.0", "name": "n", "type": "bridge", "x": )";
  deep += std::string(100, '[') + std::string(100, ']') + "}";
  NetworkConfigList list;
  EXPECT_EQ(parseNetworkConfig(deep, "deep.conf", false, list),
            "deep.conf: JSON nested deeper than 64 levels");
  // Brackets inside strings do not count.
  Json shallow = {{"cniVersion", "1.0.0"},
                  {"name", "n"},
                  {"type", "bridge"},
                  {"x", std::string(1000, '[') + "\"\\"}};
  EXPECT_EQ(parseNetworkConfig(shallow.dump(), "shallow.conf", false, list), "");
  // Nor does a parsed value escape the bound.
  Json nested = 1;
  for (int i = 0; i < 100; ++i)
    nested = Json::array({nested});
  shallow["x"] = nested;
  EXPECT_EQ(networkConfigFromJson(shallow, false, list),
            "network config: JSON nested deeper than 64 levels");
}

// ---- the config directory ----

TEST(CniConfigDir, FirstValidFileInLexicalOrder) {
  TempDir dir;
  const std::string valid = Json::parse(kConflist).dump();
  dir.write("00-broken.conflist", "{\"cniVersion\": \"1.0.0\"");
  dir.write("01-old.conf", R"({"cniVersion": "0.2.0", "name": "old", "type": "bridge"})");
  fs::create_directory(dir.path() + "/02-dir.conf");
  ASSERT_EQ(mkfifo((dir.path() + "/03-fifo.conf").c_str(), 0644), 0);  // must not block
  dir.write("04-big.conflist", std::string((1 << 20) + 1, ' '));
  dir.write("05-notes.txt", "not a config");
  dir.write("README", "not a config");
  dir.write("20-later.conf", kSingleConf);
  dir.write("10-chosen.conflist", valid);

  const ConfigDirScan scan = scanConfigDir(dir.path());
  EXPECT_EQ(scan.error, "");
  ASSERT_TRUE(scan.chosen.has_value());
  EXPECT_EQ(scan.chosen->path, dir.path() + "/10-chosen.conflist");
  EXPECT_EQ(scan.chosen->name, "monocri-net");
  ASSERT_EQ(scan.rejected.size(), 3u);
  EXPECT_EQ(scan.rejected[0], dir.path() + "/00-broken.conflist: not valid JSON");
  EXPECT_EQ(scan.rejected[1], dir.path() +
                                  "/01-old.conf: cniVersion \"0.2.0\" is not supported (supported: "
                                  "0.3.0, 0.3.1, 0.4.0, 1.0.0)");
  EXPECT_EQ(scan.rejected[2],
            dir.path() + "/04-big.conflist: 1048577 bytes, more than the 1048576 accepted");
}

TEST(CniConfigDir, SymlinksToRegularFilesAreFollowedAndJsonIsASingleConf) {
  TempDir dir, elsewhere;
  const std::string target = elsewhere.write("net.conf", kSingleConf);
  fs::create_symlink(target, dir.path() + "/50-link.json");
  fs::create_symlink(dir.path() + "/missing", dir.path() + "/40-dangling.conf");
  const ConfigDirScan scan = scanConfigDir(dir.path());
  EXPECT_EQ(scan.error, "");
  ASSERT_TRUE(scan.chosen.has_value());
  EXPECT_EQ(scan.chosen->path, dir.path() + "/50-link.json");
  EXPECT_EQ(scan.chosen->name, "single");
  ASSERT_EQ(scan.rejected.size(), 1u);
  EXPECT_EQ(scan.rejected[0],
            dir.path() + "/40-dangling.conf: cannot stat: No such file or directory");
}

TEST(CniConfigDir, EmptyAndMissingDirectories) {
  TempDir dir;
  ConfigDirScan scan = scanConfigDir(dir.path());
  EXPECT_FALSE(scan.chosen.has_value());
  EXPECT_TRUE(scan.rejected.empty());
  EXPECT_EQ(scan.error, "");

  scan = scanConfigDir(dir.path() + "/absent");
  EXPECT_FALSE(scan.chosen.has_value());
  EXPECT_EQ(scan.error, "cannot read " + dir.path() + "/absent: No such file or directory");

  dir.write("only.conflist", "{}");
  scan = scanConfigDir(dir.path());
  EXPECT_FALSE(scan.chosen.has_value());
  EXPECT_EQ(scan.error, "");
  ASSERT_EQ(scan.rejected.size(), 1u);
  EXPECT_EQ(scan.rejected[0], dir.path() + "/only.conflist: no \"cniVersion\"");
}

TEST(CniConfigDir, WithPluginDirsAListNamingAMissingPluginIsPassedOver) {
  TempDir dir, bin;
  bin.write("bridge", "#!/bin/sh\n", 0755);
  dir.write("10-needs-tuning.conflist",
            R"({"cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "bridge"},
                {"type": "tuning"}]})");
  dir.write("20-bridge.conflist",
            R"({"cniVersion": "1.0.0", "name": "b", "plugins": [{"type": "bridge"}]})");
  const std::vector<std::string> pluginDirs = {bin.path()};
  ConfigDirScan scan = scanConfigDir(dir.path(), &pluginDirs);
  ASSERT_TRUE(scan.chosen.has_value());
  EXPECT_EQ(scan.chosen->name, "b");
  ASSERT_EQ(scan.rejected.size(), 1u);
  EXPECT_EQ(scan.rejected[0], dir.path() +
                                  "/10-needs-tuning.conflist: plugin 'tuning' is not in "
                                  "the plugin directories (" +
                                  bin.path() + ")");
  scan = scanConfigDir(dir.path());  // without plugin dirs: the first list, unchecked
  ASSERT_TRUE(scan.chosen.has_value());
  EXPECT_EQ(scan.chosen->name, "a");
}

// ---- plugin lookup ----

TEST(CniFindPlugin, FirstDirectoryWithAnExecutableRegularFile) {
  TempDir first, second;
  first.write("bridge", "#!/bin/sh\n", 0644);  // not executable
  const std::string executable = second.write("bridge", "#!/bin/sh\n", 0755);
  const std::string loopback = first.write("loopback", "#!/bin/sh\n", 0755);
  second.write("loopback", "#!/bin/sh\n", 0755);
  fs::create_directory(first.path() + "/portmap");  // a directory is not a plugin
  chmod((first.path() + "/portmap").c_str(), 0755);
  fs::create_symlink(executable, first.path() + "/linked");

  const std::vector<std::string> dirs = {"", first.path(), second.path() + "/"};
  EXPECT_EQ(findPlugin("bridge", dirs), executable);
  EXPECT_EQ(findPlugin("loopback", dirs), loopback);
  EXPECT_EQ(findPlugin("linked", dirs), first.path() + "/linked");
  EXPECT_EQ(findPlugin("portmap", dirs), "");
  EXPECT_EQ(findPlugin("absent", dirs), "");
  for (const std::string type : {"", ".", "..", "../bridge", "x/bridge", "/bin/sh"})
    EXPECT_EQ(findPlugin(type, dirs), "") << type;
}

// ---- the plugin's stdin ----

NetworkConfigList conflist() {
  NetworkConfigList list;
  EXPECT_EQ(parseNetworkConfig(kConflist, "10.conflist", true, list), "");
  return list;
}

RuntimeConfig fullRuntimeConfig() {
  RuntimeConfig config;
  config.portMappings = {{8080, 80, "tcp", ""}, {5353, 53, "udp", "127.0.0.1"}};
  config.bandwidth = Bandwidth{1000000, 4294967295u, 0, 0};
  config.ips = {"10.88.0.9/16"};
  config.mac = "c2:11:22:33:44:55";
  config.podCidrs = {"10.88.0.0/16", "fd00:88::/64"};
  return config;
}

TEST(CniPluginInput, OnlyTheCapabilitiesThePluginDeclares) {
  const NetworkConfigList list = conflist();
  const RuntimeConfig config = fullRuntimeConfig();
  const Json prev = Json::parse(kBridgeResult);

  const Json bridge = pluginInput(list, 0, config, nullptr);
  EXPECT_EQ(bridge["name"], "monocri-net");
  EXPECT_EQ(bridge["cniVersion"], "1.0.0");
  EXPECT_EQ(bridge["bridge"], "cni0");
  EXPECT_FALSE(bridge.contains("runtimeConfig"));
  EXPECT_FALSE(bridge.contains("prevResult"));

  const Json portmap = pluginInput(list, 1, config, &prev);
  EXPECT_EQ(portmap["prevResult"], prev);
  EXPECT_EQ(portmap["runtimeConfig"], Json::parse(R"({"portMappings": [
      {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
      {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]})"));

  const Json bandwidth = pluginInput(list, 2, config, &prev);
  EXPECT_EQ(bandwidth["name"], "monocri-net");  // the list's name replaces the plugin's
  EXPECT_EQ(bandwidth["runtimeConfig"], Json::parse(R"({"bandwidth": {"ingressRate": 1000000,
      "ingressBurst": 4294967295, "egressRate": 0, "egressBurst": 0}})"));

  const Json null = nullptr;
  EXPECT_FALSE(pluginInput(list, 1, config, &null).contains("prevResult"));
  EXPECT_TRUE(pluginInput(list, 3, config, nullptr).is_null());
}

TEST(CniPluginInput, NoRuntimeConfigWhenTheDeclaredCapabilitiesHaveNoValue) {
  const NetworkConfigList list = conflist();
  const Json portmap = pluginInput(list, 1, RuntimeConfig{}, nullptr);
  EXPECT_FALSE(portmap.contains("runtimeConfig"));
  EXPECT_EQ(portmap["capabilities"], Json::parse(R"({"portMappings": true})"));
}

TEST(CniPluginInput, IpsMacAndIpRanges) {
  NetworkConfigList list;
  ASSERT_EQ(parseNetworkConfig(R"({"cniVersion": "0.4.0", "name": "n", "type": "x",
      "capabilities": {"ips": true, "mac": true, "ipRanges": true, "portMappings": false,
      "infinibandGUID": true}})",
                               "x.conf", false, list),
            "");
  const Json input = pluginInput(list, 0, fullRuntimeConfig(), nullptr);
  EXPECT_EQ(input["runtimeConfig"], Json::parse(R"({"ips": ["10.88.0.9/16"],
      "mac": "c2:11:22:33:44:55",
      "ipRanges": [[{"subnet": "10.88.0.0/16"}], [{"subnet": "fd00:88::/64"}]]})"));
}

TEST(CniPluginInput, RuntimeConfigRoundTripsThroughJson) {
  const RuntimeConfig config = fullRuntimeConfig();
  const Json json = config.toJson();
  EXPECT_EQ(json.size(), 5u);
  const RuntimeConfig back = runtimeConfigFromJson(json);
  EXPECT_EQ(back.toJson(), json);
  ASSERT_EQ(back.portMappings.size(), 2u);
  EXPECT_EQ(back.portMappings[1].hostIP, "127.0.0.1");
  EXPECT_EQ(back.bandwidth->ingressBurst, 4294967295u);
  EXPECT_EQ(back.podCidrs, config.podCidrs);
  EXPECT_EQ(RuntimeConfig{}.toJson(), Json::object());

  // Lenient: malformed entries are skipped, the rest kept.
  const RuntimeConfig lenient = runtimeConfigFromJson(Json::parse(R"({
      "portMappings": [5, {"hostPort": "80", "containerPort": 80, "protocol": "tcp"},
                       {"hostPort": 70000, "containerPort": 80, "protocol": "tcp"},
                       {"hostPort": 81, "containerPort": 80, "protocol": "tcp", "hostIP": 1}],
      "bandwidth": {"ingressRate": -1, "egressRate": 5000},
      "ips": ["10.0.0.1", 7], "mac": 3, "ipRanges": [5, [{"subnet": 1}, {"subnet": "10.0.0.0/8"}]]
  })"));
  ASSERT_EQ(lenient.portMappings.size(), 1u);
  EXPECT_EQ(lenient.portMappings[0].hostPort, 81);
  EXPECT_EQ(lenient.portMappings[0].hostIP, "");
  EXPECT_EQ(lenient.bandwidth->ingressRate, 0u);
  EXPECT_EQ(lenient.bandwidth->egressRate, 5000u);
  EXPECT_EQ(lenient.ips, std::vector<std::string>{"10.0.0.1"});
  EXPECT_EQ(lenient.mac, "");
  EXPECT_EQ(lenient.podCidrs, std::vector<std::string>{"10.0.0.0/8"});
  EXPECT_TRUE(runtimeConfigFromJson(Json::array()).toJson().empty());
}

// ---- CNI_ARGS ----

TEST(CniArgs, InOrderAfterIgnoreUnknown) {
  std::string error;
  EXPECT_EQ(cniArgs({{"K8S_POD_NAMESPACE", "default"},
                     {"K8S_POD_NAME", "web-0"},
                     {"K8S_POD_INFRA_CONTAINER_ID", "abc"},
                     {"K8S_POD_UID", ""}},
                    error),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"
            "K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=");
  EXPECT_EQ(error, "");
  EXPECT_EQ(cniArgs({}, error), "IgnoreUnknown=1");
}

TEST(CniArgs, RefusesSeparatorsInKeysAndValues) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"K8S_POD_NAME", "a;IgnoreUnknown=0"},
      {"K=X", "v"},
      {"K", "a=b"},
      {"", "value"},
      {"K;X", "v"},
      {"K", std::string("a\0b", 3)},
  };
  for (const auto& pair : bad) {
    std::string error;
    EXPECT_EQ(cniArgs({{"OK", "1"}, pair}, error), "") << pair.first;
    EXPECT_TRUE(contains(error, "cannot be passed")) << error;
  }
}

// ---- bandwidth annotations ----

TEST(CniBandwidth, KubernetesQuantitiesAsContainerdSendsThem) {
  const std::vector<std::pair<std::string, uint64_t>> cases = {
      {"10M", 10000000},        {"1Gi", 1073741824},
      {"500k", 500000},         {"1.5M", 1500000},
      {"1e6", 1000000},         {"2E3", 2000},
      {"1000", 1000},           {"999.5", 1000},
      {"2000000m", 2000},       {"+5k", 5000},
      {"1P", 1000000000000000}, {"1.5Ki", 1536},
      {".5M", 500000},          {"1000000000000u", 1000000},
      {"100Mi", 104857600},
  };
  for (const auto& [quantity, expected] : cases) {
    std::string error;
    const auto bandwidth =
        bandwidthFromAnnotations({{"kubernetes.io/ingress-bandwidth", quantity}}, error);
    ASSERT_TRUE(bandwidth.has_value()) << quantity << ": " << error;
    EXPECT_EQ(error, "");
    EXPECT_EQ(bandwidth->ingressRate, expected) << quantity;
    EXPECT_EQ(bandwidth->ingressBurst, 4294967295u);  // math.MaxUint32, as containerd
    EXPECT_EQ(bandwidth->egressRate, 0u);
    EXPECT_EQ(bandwidth->egressBurst, 0u);
  }
  std::string error;
  const auto egress =
      bandwidthFromAnnotations({{"kubernetes.io/egress-bandwidth", "1G"}, {"other", "x"}}, error);
  ASSERT_TRUE(egress.has_value());
  EXPECT_EQ(egress->egressRate, 1000000000u);
  EXPECT_EQ(egress->egressBurst, 4294967295u);
  EXPECT_EQ(egress->ingressRate, 0u);

  EXPECT_FALSE(bandwidthFromAnnotations({{"other", "10M"}}, error).has_value());
  EXPECT_EQ(error, "");
}

TEST(CniBandwidth, OutOfRangeAndGarbage) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"999", "is unreasonably small (below 1k bits per second)"},
      {"0", "is unreasonably small"},
      {"1.000001P", "is unreasonably large (above 1P bits per second)"},
      {"1Pi", "is unreasonably large"},
      {"1Ei", "is unreasonably large"},
      {"99999999999999999999999999999999999999999E", "is unreasonably large"},
      {"1e100000", "is unreasonably large"},
      {"1e-100000", "is unreasonably small"},
      {"1e99999999999999999999999", "is unreasonably large"},
      {"5E-99999999999999999999999", "is unreasonably small"},
      {"-10M", "is not a Kubernetes quantity such as \"10M\" or \"1Gi\": negative"},
      {"", "empty"},
      {"10X", "unknown suffix \"X\""},
      {"10 M", "unknown suffix \" M\""},
      {"10mb", "unknown suffix \"mb\""},
      {"1K", "unknown suffix \"K\""},
      {"abc", "not a number"},
      {".", "not a number"},
      {"1..5", "unknown suffix \".5\""},
      {"1e", "unknown suffix \"e\""},
      {"1e+", "unknown suffix \"e+\""},
      {"1e--3", "unknown suffix \"e--3\""},
      {std::string(200, '1'), "too long to be a quantity"},
  };
  for (const auto& [quantity, expected] : cases) {
    std::string error;
    EXPECT_FALSE(
        bandwidthFromAnnotations({{"kubernetes.io/egress-bandwidth", quantity}}, error).has_value())
        << quantity;
    EXPECT_TRUE(contains(error, "annotation kubernetes.io/egress-bandwidth")) << error;
    EXPECT_TRUE(contains(error, expected)) << quantity << " -> " << error;
  }
}

// ---- plugin results ----

TEST(CniResult, ARealBridgeResult) {
  Result result;
  ASSERT_EQ(parseResult(kBridgeResult, result), "");
  EXPECT_EQ(result.cniVersion, "1.0.0");
  ASSERT_EQ(result.interfaces.size(), 3u);
  EXPECT_EQ(result.interfaces[0].name, "cni0");
  EXPECT_EQ(result.interfaces[0].sandbox, "");
  EXPECT_EQ(result.interfaces[2].name, "eth0");
  EXPECT_EQ(result.interfaces[2].mac, "c2:99:b2:6a:7c:9f");
  EXPECT_EQ(result.interfaces[2].sandbox, "/tmp/cni-cap/mnt/ns");
  ASSERT_EQ(result.ips.size(), 2u);
  EXPECT_EQ(result.ips[0].address, "10.88.0.2/16");
  EXPECT_EQ(result.ips[0].gateway, "10.88.0.1");
  EXPECT_EQ(result.ips[0].interface, 2);
  EXPECT_EQ(result.ips[1].address, "fd00:88::2/64");
  EXPECT_EQ(result.raw, Json::parse(kBridgeResult));
  EXPECT_EQ(result.podIps("eth0"), (std::vector<std::string>{"10.88.0.2", "fd00:88::2"}));
  EXPECT_TRUE(result.podIps("eth1").empty());

  Result again;
  ASSERT_EQ(resultFromJson(result.raw, again), "");
  EXPECT_EQ(again.podIps("eth0"), result.podIps("eth0"));
}

TEST(CniResult, A031ResultWithVersionFields) {
  Result result;
  ASSERT_EQ(parseResult(kBridgeResult031, result), "");
  EXPECT_EQ(result.cniVersion, "0.3.1");
  ASSERT_EQ(result.ips.size(), 1u);
  EXPECT_EQ(result.ips[0].address, "10.99.0.2/24");
  EXPECT_EQ(result.podIps("eth0"), std::vector<std::string>{"10.99.0.2"});
}

TEST(CniResult, MinimalAndUnknownKeysKept) {
  Result result;
  ASSERT_EQ(parseResult(R"({"cniVersion": "0.4.0", "custom": {"a": 1}, "ips": null})", result), "");
  EXPECT_TRUE(result.interfaces.empty());
  EXPECT_TRUE(result.ips.empty());
  EXPECT_EQ(result.raw["custom"]["a"], 1);
}

TEST(CniResult, BadFieldsAreNamed) {
  const auto withIp = [](const std::string& ip) {
    return R"({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/n"}],
        "ips": [)" +
           ip + "]}";
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {withIp(R"({"address": "10.0.0.300/8"})"),
       "ips[0].address \"10.0.0.300/8\" is not a CIDR (address/prefix length)"},
      {withIp(R"({"address": "10.0.0.1"})"),
       "ips[0].address \"10.0.0.1\" is not a CIDR (address/prefix length)"},
      {withIp(R"({"address": "10.0.0.1/33"})"),
       "ips[0].address \"10.0.0.1/33\" is not a CIDR (address/prefix length)"},
      {withIp(R"({"address": "fd00::1/129"})"),
       "ips[0].address \"fd00::1/129\" is not a CIDR (address/prefix length)"},
      {withIp(R"({"address": "10.0.0.1/"})"),
       "ips[0].address \"10.0.0.1/\" is not a CIDR (address/prefix length)"},
      {withIp(R"({"address": "10.0.0.1/8", "interface": 1})"),
       "ips[0].interface 1 is out of range: the result has 1 interface(s)"},
      {withIp(R"({"address": "10.0.0.1/8", "interface": -1})"),
       "ips[0].interface -1 is out of range: the result has 1 interface(s)"},
      {withIp(R"({"address": "10.0.0.1/8", "interface": "0"})"),
       "ips[0].interface is a string, not an index"},
      {withIp(R"({"address": "10.0.0.1/8", "interface": 0.5})"),
       "ips[0].interface is a number, not an index"},
      {withIp(R"({"address": "10.0.0.1/8", "gateway": "10.0.0"})"),
       "ips[0].gateway \"10.0.0\" is not an IP address"},
      {withIp(R"({"address": 5})"), "ips[0].address is a number, not a string"},
      {withIp(R"({"gateway": "10.0.0.1"})"), "ips[0] has no \"address\""},
      {withIp("7"), "ips[0] is a number, not an object"},
      {R"({"cniVersion": "1.0.0", "ips": 5})", "\"ips\" is a number, not an array"},
      {R"({"cniVersion": "1.0.0", "interfaces": {"name": "eth0"}})",
       "\"interfaces\" is an object, not an array"},
      {R"({"cniVersion": "1.0.0", "interfaces": [{"name": ["eth0"]}]})",
       "interfaces[0].name is an array, not a string"},
      {R"({"cniVersion": "1.0.0", "routes": [{"dst": "default"}]})",
       "routes[0].dst \"default\" is not a CIDR"},
      {R"({"cniVersion": "1.0.0", "routes": [{"dst": "0.0.0.0/0", "gw": 1}]})",
       "routes[0].gw is a number, not a string"},
      {R"({"cniVersion": "1.0.0", "dns": {"nameservers": [1]}})",
       "dns.nameservers[0] is a number, not a string"},
      {R"({"cniVersion": "1.0.0", "dns": []})", "\"dns\" is an array, not an object"},
      {R"({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}})",
       "the result's cniVersion \"0.2.0\" is not supported (supported: 0.3.0, 0.3.1, 0.4.0, "
       "1.0.0)"},
      {R"({"ips": []})", "the result has no \"cniVersion\""},
      {"[]", "the result is an array, not a JSON object"},
      {"", "the result: not valid JSON"},
      {R"({"cniVersion": "1.0.0"} trailing)", "the result: not valid JSON"},
  };
  for (const auto& [text, expected] : cases) {
    Result result;
    EXPECT_EQ(parseResult(text, result), expected) << text;
    EXPECT_TRUE(result.ips.empty());
    EXPECT_TRUE(result.raw.is_null());
  }
}

TEST(CniResult, SizesAreBounded) {
  Json many = {{"cniVersion", "1.0.0"}, {"interfaces", Json::array()}};
  for (int i = 0; i < 1025; ++i)
    many["interfaces"].push_back({{"name", "x"}});
  Result result;
  EXPECT_EQ(parseResult(many.dump(), result),
            "\"interfaces\" has 1025 entries, more than the 1024 accepted");
  EXPECT_EQ(parseResult(std::string(2 << 20, ' '), result),
            "the result: 2097152 bytes, more than the 1048576 accepted");
}

TEST(CniResult, PodIpsIpv4FirstOnlyTheSandboxInterfaceNoDuplicates) {
  Result result;
  ASSERT_EQ(parseResult(R"({"cniVersion": "1.0.0",
      "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/run/netns/p"},
                     {"name": "eth0"}, {"name": "net1", "sandbox": "/run/netns/p"}],
      "ips": [{"address": "fd00::2/64", "interface": 1},
              {"address": "10.0.0.1/24", "interface": 0},
              {"address": "10.1.0.2/24", "interface": 1},
              {"address": "10.1.0.2/16", "interface": 1},
              {"address": "10.3.0.3/24", "interface": 2},
              {"address": "10.2.0.9/24"},
              {"address": "fd01::9/64", "interface": 3},
              {"address": "fd00::3/64", "interface": 1}]})",
                        result),
            "");
  EXPECT_EQ(result.podIps("eth0"),
            (std::vector<std::string>{"10.1.0.2", "10.2.0.9", "fd00::2", "fd00::3"}));
  EXPECT_EQ(result.podIps("net1"), (std::vector<std::string>{"10.2.0.9", "fd01::9"}));
}

// ---- plugin errors ----

TEST(CniPluginError, RealErrorObjects) {
  PluginError error;
  ASSERT_TRUE(parsePluginError(kVersionError, error));
  EXPECT_EQ(error.code, 1u);
  EXPECT_EQ(error.msg, "incompatible CNI versions");
  EXPECT_EQ(error.describe(),
            "code 1 (incompatible CNI version): incompatible CNI versions; config is \"9.9.9\", "
            "plugin supports [\"0.1.0\" \"0.2.0\" \"0.3.0\" \"0.3.1\" \"0.4.0\" \"1.0.0\"]");

  ASSERT_TRUE(parsePluginError(kPluginError, error));
  EXPECT_EQ(error.code, 999u);
  EXPECT_EQ(error.details, "");
  EXPECT_EQ(error.describe(), "code 999: no IP ranges specified");

  ASSERT_TRUE(parsePluginError(
      R"({"cniVersion": "1.0.0", "code": 7, "msg": "bad", "details": {"why": 1}})", error));
  EXPECT_EQ(error.cniVersion, "1.0.0");
  EXPECT_EQ(error.describe(), "code 7 (invalid network config): bad; {\"why\":1}");
  ASSERT_TRUE(parsePluginError(R"({"code": 11, "msg": "busy"})", error));
  EXPECT_EQ(error.describe(), "code 11 (try again later): busy");
}

TEST(CniPluginError, NonErrors) {
  for (const std::string& text :
       {std::string(kBridgeResult), std::string(R"({"code": "7", "msg": "x"})"),
        std::string(R"({"code": -1, "msg": "x"})"), std::string(R"({"code": 7.5, "msg": "x"})"),
        std::string(R"({"code": 4294967296, "msg": "x"})"), std::string(R"({"code": 7})"),
        std::string(R"({"code": 7, "msg": 7})"), std::string(R"([{"code": 7, "msg": "x"}])"),
        std::string("not json"), std::string(""), std::string("null")}) {
    PluginError error;
    EXPECT_FALSE(parsePluginError(text, error)) << text;
    EXPECT_EQ(error.code, 0u);
    EXPECT_EQ(error.msg, "");
  }
}

TEST(CniPluginOutput, DeepNestingIsRejected) {
  const std::string deep = R"({"cniVersion": "1.0.0", "code": 7, "msg": "x", "a": )" +
                           std::string(10000, '[') + std::string(10000, ']') + "}";
  Result result;
  EXPECT_EQ(parseResult(deep, result), "the result: JSON nested deeper than 64 levels");
  PluginError error;
  EXPECT_FALSE(parsePluginError(deep, error));
  CacheRecord record;
  EXPECT_EQ(decodeCacheRecord(deep, record), "CNI cache record: JSON nested deeper than 65 levels");
  // 64 levels are fine.
  const std::string ok =
      R"({"cniVersion": "1.0.0", "a": )" + std::string(63, '[') + std::string(63, ']') + "}";
  EXPECT_EQ(parseResult(ok, result), "");
}

// ---- cache records ----

CacheRecord sampleRecord() {
  CacheRecord record;
  record.containerId = "4f1c0b2a";
  record.ifName = "eth0";
  record.networkName = "monocri-net";
  record.config = Json::parse(kConflist);
  record.configIsList = true;
  record.cniArgs = {{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "web-0"}};
  record.runtimeConfig = fullRuntimeConfig().toJson();
  record.result = Json::parse(kBridgeResult);
  return record;
}

TEST(CniCache, RoundTrip) {
  const CacheRecord record = sampleRecord();
  const std::string bytes = encodeCacheRecord(record);
  EXPECT_EQ(Json::parse(bytes)["kind"], "monocriCniCacheV1");
  CacheRecord back;
  ASSERT_EQ(decodeCacheRecord(bytes, back), "");
  EXPECT_EQ(back.containerId, record.containerId);
  EXPECT_EQ(back.ifName, record.ifName);
  EXPECT_EQ(back.networkName, record.networkName);
  EXPECT_EQ(back.config, record.config);
  EXPECT_TRUE(back.configIsList);
  EXPECT_EQ(back.cniArgs, record.cniArgs);
  EXPECT_EQ(back.runtimeConfig, record.runtimeConfig);
  EXPECT_EQ(back.result, record.result);
  EXPECT_EQ(runtimeConfigFromJson(back.runtimeConfig).toJson(), record.runtimeConfig);

  NetworkConfigList list;
  ASSERT_EQ(networkConfigFromJson(back.config, back.configIsList, list), "");
  EXPECT_EQ(list.plugins.size(), 3u);

  // A single config, no result, no runtime config.
  CacheRecord single = record;
  single.config = Json::parse(kSingleConf);
  single.configIsList = false;
  single.networkName = "single";
  single.result = nullptr;
  single.runtimeConfig = nullptr;
  ASSERT_EQ(decodeCacheRecord(encodeCacheRecord(single), back), "");
  EXPECT_FALSE(back.configIsList);
  EXPECT_TRUE(back.result.is_null());
  EXPECT_TRUE(back.runtimeConfig.is_null());
}

TEST(CniCache, CorruptedRecordsAreRejected) {
  const Json good = Json::parse(encodeCacheRecord(sampleRecord()));
  const auto changed = [&](const std::function<void(Json&)>& change) {
    Json copy = good;
    change(copy);
    return copy.dump();
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {good.dump().substr(0, 100), "CNI cache record: not valid JSON"},
      {"[]", "CNI cache record: an array, not an object"},
      {changed([](Json& j) { j["kind"] = "monocriCniCacheV2"; }),
       "CNI cache record: \"kind\" is not \"monocriCniCacheV1\""},
      {changed([](Json& j) { j.erase("containerId"); }), "CNI cache record: no \"containerId\""},
      {changed([](Json& j) { j["containerId"] = 5; }),
       "CNI cache record: \"containerId\" is a number, not a string"},
      {changed([](Json& j) { j["ifName"] = ""; }),
       "CNI cache record: \"ifName\" is empty or longer than 64 bytes"},
      {changed([](Json& j) { j["ifName"] = "../eth0"; }),
       "CNI cache record: \"ifName\" \"../eth0\" is not an interface name"},
      {changed([](Json& j) { j["configIsList"] = "true"; }),
       "CNI cache record: \"configIsList\" is missing or not true or false"},
      {changed([](Json& j) { j["config"]["cniVersion"] = "0.1.0"; }),
       "CNI cache record: network config: cniVersion \"0.1.0\" is not supported (supported: "
       "0.3.0, 0.3.1, 0.4.0, 1.0.0)"},
      {changed([](Json& j) { j["configIsList"] = false; }),
       "CNI cache record: network config: the config has no \"type\""},
      {changed([](Json& j) { j["networkName"] = "other"; }),
       "CNI cache record: \"networkName\" \"other\" is not the config's name \"monocri-net\""},
      {changed([](Json& j) { j["cniArgs"] = Json::array({Json::array({"K"})}); }),
       "CNI cache record: cniArgs[0] is not a [key, value] pair of strings"},
      {changed([](Json& j) {
         j["cniArgs"] = Json::array({Json::array({"K", 1})});
       }),
       "CNI cache record: cniArgs[0] is not a [key, value] pair of strings"},
      {changed([](Json& j) { j["cniArgs"] = "K=V"; }),
       "CNI cache record: \"cniArgs\" is not an array"},
      {changed([](Json& j) {
         j["cniArgs"] = Json::array({Json::array({"K", "a;b=c"})});
       }),
       "CNI cache record: CNI argument \"K\"=\"a;b=c\" cannot be passed: keys must be "
       "non-empty, and neither keys nor values may hold ';', '=' or NUL"},
      {changed([](Json& j) { j["runtimeConfig"] = "x"; }),
       "CNI cache record: \"runtimeConfig\" is a string, not an object"},
      {changed([](Json& j) { j["result"]["ips"][0]["address"] = "10.88.0.2"; }),
       "CNI cache record: \"result\": ips[0].address \"10.88.0.2\" is not a CIDR (address/prefix "
       "length)"},
      {changed([](Json& j) { j["result"] = 5; }),
       "CNI cache record: \"result\": the result is a number, not a JSON object"},
      {std::string(4 << 20, ' ') + "{}",
       "CNI cache record: 4194306 bytes, more than the 4194304 accepted"},
  };
  for (const auto& [text, expected] : cases) {
    CacheRecord record;
    EXPECT_EQ(decodeCacheRecord(text, record), expected) << text.substr(0, 200);
    EXPECT_EQ(record.containerId, "");
  }
}

TEST(CniCache, InvalidUtf8InStringsDoesNotThrow) {
  CacheRecord record = sampleRecord();
  record.containerId = "id\xff\xfe";
  const std::string bytes = encodeCacheRecord(record);
  CacheRecord back;
  ASSERT_EQ(decodeCacheRecord(bytes, back), "");
  EXPECT_EQ(back.containerId, "id\xEF\xBF\xBD\xEF\xBF\xBD");  // U+FFFD twice
}

}  // namespace
}  // namespace monocri::net::cni
