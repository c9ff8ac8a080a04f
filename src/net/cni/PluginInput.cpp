#include "net/cni/PluginInput.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>

#include "net/cni/CniResult.h"
#include "net/cni/JsonInput.h"

namespace monocri::net::cni {

namespace {

using Json = nlohmann::json;
using detail::shown;
using detail::typeName;

constexpr std::string_view kCacheKind = "monocriCniCacheV1";
constexpr size_t kMaxCacheBytes = 4 << 20;
constexpr size_t kMaxContainerIdBytes = 1024;
constexpr size_t kMaxIfNameBytes = 64;
constexpr size_t kMaxCniArgs = 256;
constexpr size_t kMaxCniArgBytes = 4096;
constexpr size_t kMaxQuantityBytes = 128;

constexpr std::string_view kIngressAnnotation = "kubernetes.io/ingress-bandwidth";
constexpr std::string_view kEgressAnnotation = "kubernetes.io/egress-bandwidth";
// Kubernetes' pkg/util/bandwidth: anything outside 1k .. 1P (bits per second) is unreasonable.
constexpr uint64_t kMinBandwidth = 1000;
constexpr uint64_t kMaxBandwidth = 1000000000000000;

// The capability values, in the shapes of the CNI conventions (camelCase keys: containerd's
// go-cni sends Go's field names, "HostPort", which Go plugins accept case-insensitively; the
// conventions' spelling works for every plugin).
Json portMappingsJson(const std::vector<PortMapping>& mappings) {
  Json list = Json::array();
  for (const auto& mapping : mappings) {
    Json entry = {{"hostPort", mapping.hostPort},
                  {"containerPort", mapping.containerPort},
                  {"protocol", mapping.protocol}};
    if (!mapping.hostIP.empty()) entry["hostIP"] = mapping.hostIP;
    list.push_back(std::move(entry));
  }
  return list;
}

// All four values, as containerd sends them: a direction without a limit is 0/0, which the
// bandwidth plugin reads as "no limit".
Json bandwidthJson(const Bandwidth& bandwidth) {
  return {{"ingressRate", bandwidth.ingressRate},
          {"ingressBurst", bandwidth.ingressBurst},
          {"egressRate", bandwidth.egressRate},
          {"egressBurst", bandwidth.egressBurst}};
}

// One range set per CIDR (one per address family in a dual-stack cluster), each of one range.
Json ipRangesJson(const std::vector<std::string>& cidrs) {
  Json sets = Json::array();
  for (const auto& cidr : cidrs)
    sets.push_back(Json::array({Json{{"subnet", cidr}}}));
  return sets;
}

// Each capability with a value: an empty list, an unset bandwidth or an empty MAC is left out,
// as containerd leaves out what it has nothing for (libcni passes on whatever it is given).
Json capabilityValues(const RuntimeConfig& config) {
  Json values = Json::object();
  if (!config.portMappings.empty()) values["portMappings"] = portMappingsJson(config.portMappings);
  if (config.bandwidth) values["bandwidth"] = bandwidthJson(*config.bandwidth);
  if (!config.ips.empty()) values["ips"] = config.ips;
  if (!config.mac.empty()) values["mac"] = config.mac;
  if (!config.podCidrs.empty()) values["ipRanges"] = ipRangesJson(config.podCidrs);
  return values;
}

bool validCniArgPart(std::string_view text) {
  return text.find_first_of(std::string_view(";=\0", 3)) == std::string_view::npos;
}

// A Kubernetes quantity (k8s.io/apimachinery resource.ParseQuantity) as the integer
// Quantity.Value() gives: rounded up. Decimal in full (a digit string and a power of ten), so
// that no input overflows and rounding is exact.
struct Decimal {
  std::string digits;  // no leading zeros; "" is zero
  int64_t exponent = 0;
};

void multiplyBy(std::string& digits, unsigned factor) {
  unsigned carry = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    const unsigned value = static_cast<unsigned>(*it - '0') * factor + carry;
    *it = static_cast<char>('0' + value % 10);
    carry = value / 10;
  }
  while (carry > 0) {
    digits.insert(digits.begin(), static_cast<char>('0' + carry % 10));
    carry /= 10;
  }
}

// Returns "" or what is wrong; `value` is the quantity rounded up to an integer, or
// UINT64_MAX when it is larger than kMaxBandwidth (the caller only compares).
std::string parseQuantity(std::string_view text, uint64_t& value) {
  if (text.empty()) return "empty";
  if (text.size() > kMaxQuantityBytes) return "too long to be a quantity";
  size_t i = 0;
  if (text[0] == '+' || text[0] == '-') {
    if (text[0] == '-') return "negative";
    ++i;
  }
  std::string intPart, fracPart;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9')
    intPart += text[i++];
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9')
      fracPart += text[i++];
  }
  if (intPart.empty() && fracPart.empty()) return "not a number";

  const std::string_view suffix = text.substr(i);
  int64_t exponent10 = 0;
  unsigned binaryPowers = 0;  // of 1024
  static constexpr std::pair<std::string_view, int> kDecimal[] = {
      {"", 0},  {"n", -9}, {"u", -6}, {"m", -3}, {"k", 3},
      {"M", 6}, {"G", 9},  {"T", 12}, {"P", 15}, {"E", 18}};
  static constexpr std::pair<std::string_view, unsigned> kBinary[] = {
      {"Ki", 1}, {"Mi", 2}, {"Gi", 3}, {"Ti", 4}, {"Pi", 5}, {"Ei", 6}};
  bool known = false;
  for (const auto& [name, power] : kDecimal) {
    if (suffix == name) {
      exponent10 = power;
      known = true;
    }
  }
  for (const auto& [name, power] : kBinary) {
    if (suffix == name) {
      binaryPowers = power;
      known = true;
    }
  }
  if (!known && suffix.size() >= 2 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    // A decimal exponent: "1e3", "5E-2".
    std::string_view number = suffix.substr(1);
    bool negative = false;
    if (number[0] == '+' || number[0] == '-') {
      negative = number[0] == '-';
      number.remove_prefix(1);
    }
    if (!number.empty() &&
        std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      // Any exponent past 100000 decides as 100000 does: far out of range either way.
      int64_t parsed = 0;
      const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), parsed);
      if (ec != std::errc() || parsed > 100000) parsed = 100000;
      exponent10 = negative ? -parsed : parsed;
      known = true;
    }
  }
  if (!known) return fmt::format("unknown suffix {}", shown(suffix));

  Decimal number;
  number.digits = intPart + fracPart;
  number.exponent = exponent10 - static_cast<int64_t>(fracPart.size());
  for (unsigned p = 0; p < binaryPowers; ++p)
    multiplyBy(number.digits, 1024);
  number.digits.erase(0, std::min(number.digits.find_first_not_of('0'), number.digits.size()));
  if (number.digits.empty()) {
    value = 0;
    return "";
  }
  // The integer part has digits.size() + exponent digits; more than 16 is above 1e15.
  const int64_t integerDigits = static_cast<int64_t>(number.digits.size()) + number.exponent;
  if (integerDigits > 16) {
    value = std::numeric_limits<uint64_t>::max();
    return "";
  }
  uint64_t integer = 0;
  bool fraction = false;
  for (int64_t d = 0; d < integerDigits; ++d) {
    const char c = d < static_cast<int64_t>(number.digits.size())
                       ? number.digits[static_cast<size_t>(d)]
                       : '0';
    integer = integer * 10 + static_cast<uint64_t>(c - '0');
  }
  const size_t fractionStart = static_cast<size_t>(std::max<int64_t>(integerDigits, 0));
  if (fractionStart < number.digits.size()) {
    fraction = number.digits.find_first_not_of('0', fractionStart) != std::string::npos;
  }
  value = integer + (fraction ? 1 : 0);
  return "";
}

std::string bandwidthValue(const std::map<std::string, std::string>& annotations,
                           std::string_view key, std::optional<uint64_t>& out) {
  const auto it = annotations.find(std::string(key));
  if (it == annotations.end()) return "";
  uint64_t value = 0;
  if (const auto why = parseQuantity(it->second, value); !why.empty()) {
    return fmt::format(
        "annotation {} {} is not a Kubernetes quantity such as \"10M\" or \"1Gi\": {}", key,
        shown(it->second), why);
  }
  if (value < kMinBandwidth) {
    return fmt::format("annotation {} {} is unreasonably small (below 1k bits per second)", key,
                       shown(it->second));
  }
  if (value > kMaxBandwidth) {
    return fmt::format("annotation {} {} is unreasonably large (above 1P bits per second)", key,
                       shown(it->second));
  }
  out = value;
  return "";
}

bool portInRange(const Json& value) {
  return value.is_number_integer() && value.get<int64_t>() >= 0 && value.get<int64_t>() <= 65535;
}

std::string cacheError(std::string_view why) {
  return fmt::format("CNI cache record: {}", why);
}

// A required string member of `object` of 1..max bytes.
std::string requiredString(const Json& object, const char* key, size_t max, std::string& out) {
  const auto it = object.find(key);
  if (it == object.end()) return cacheError(fmt::format("no \"{}\"", key));
  if (!it->is_string()) {
    return cacheError(fmt::format("\"{}\" is {}, not a string", key, typeName(*it)));
  }
  const auto& text = it->get_ref<const std::string&>();
  if (text.empty() || text.size() > max) {
    return cacheError(fmt::format("\"{}\" is empty or longer than {} bytes", key, max));
  }
  out = text;
  return "";
}

}  // namespace

nlohmann::json RuntimeConfig::toJson() const {
  return capabilityValues(*this);
}

nlohmann::json pluginInput(const NetworkConfigList& list, size_t index,
                           const RuntimeConfig& runtimeConfig, const nlohmann::json* prevResult) {
  if (index >= list.plugins.size() || !list.plugins[index].is_object()) return nullptr;
  Json input = list.plugins[index];
  input["name"] = list.name;
  input["cniVersion"] = list.cniVersion;
  if (prevResult != nullptr && !prevResult->is_null()) input["prevResult"] = *prevResult;

  // As libcni's injectRuntimeConfig: the capabilities the plugin declares true that have a
  // value; "runtimeConfig" is set only when one does (a config file's own is then left as it
  // is, as libcni leaves it).
  const Json values = capabilityValues(runtimeConfig);
  Json selected = Json::object();
  if (const auto caps = input.find("capabilities"); caps != input.end() && caps->is_object()) {
    for (const auto& [capability, supported] : caps->items()) {
      if (!supported.is_boolean() || !supported.get<bool>()) continue;
      if (const auto value = values.find(capability); value != values.end()) {
        selected[capability] = *value;
      }
    }
  }
  if (!selected.empty()) input["runtimeConfig"] = std::move(selected);
  return input;
}

std::string cniArgs(const std::vector<std::pair<std::string, std::string>>& args,
                    std::string& error) {
  error.clear();
  std::string text = "IgnoreUnknown=1";
  for (const auto& [key, value] : args) {
    if (key.empty() || !validCniArgPart(key) || !validCniArgPart(value)) {
      error = fmt::format(
          "CNI argument {}={} cannot be passed: keys must be non-empty, and neither keys nor "
          "values may hold ';', '=' or NUL",
          shown(key), shown(value));
      return "";
    }
    text += fmt::format(";{}={}", key, value);
  }
  return text;
}

std::optional<Bandwidth> bandwidthFromAnnotations(
    const std::map<std::string, std::string>& annotations, std::string& error) {
  error.clear();
  std::optional<uint64_t> ingress, egress;
  if (error = bandwidthValue(annotations, kIngressAnnotation, ingress); !error.empty()) {
    return std::nullopt;
  }
  if (error = bandwidthValue(annotations, kEgressAnnotation, egress); !error.empty()) {
    return std::nullopt;
  }
  if (!ingress && !egress) return std::nullopt;
  // containerd's toCNIBandWidth: the rate from the annotation, the burst as large as the
  // bandwidth plugin allows (math.MaxUint32 bits), so that only the rate limits.
  Bandwidth bandwidth;
  if (ingress) {
    bandwidth.ingressRate = *ingress;
    bandwidth.ingressBurst = std::numeric_limits<uint32_t>::max();
  }
  if (egress) {
    bandwidth.egressRate = *egress;
    bandwidth.egressBurst = std::numeric_limits<uint32_t>::max();
  }
  return bandwidth;
}

RuntimeConfig runtimeConfigFromJson(const nlohmann::json& json) {
  RuntimeConfig config;
  if (!json.is_object()) return config;
  if (const auto mappings = json.find("portMappings");
      mappings != json.end() && mappings->is_array()) {
    for (const auto& entry : *mappings) {
      if (!entry.is_object()) continue;
      const auto host = entry.find("hostPort"), container = entry.find("containerPort"),
                 protocol = entry.find("protocol"), hostIP = entry.find("hostIP");
      if (host == entry.end() || container == entry.end() || protocol == entry.end() ||
          !portInRange(*host) || !portInRange(*container) || !protocol->is_string()) {
        continue;
      }
      PortMapping mapping;
      mapping.hostPort = static_cast<int>(host->get<int64_t>());
      mapping.containerPort = static_cast<int>(container->get<int64_t>());
      mapping.protocol = protocol->get<std::string>();
      if (hostIP != entry.end() && hostIP->is_string()) mapping.hostIP = hostIP->get<std::string>();
      config.portMappings.push_back(std::move(mapping));
    }
  }
  if (const auto bandwidth = json.find("bandwidth");
      bandwidth != json.end() && bandwidth->is_object()) {
    Bandwidth value;
    const auto read = [&](const char* key, uint64_t& out) {
      if (const auto it = bandwidth->find(key);
          it != bandwidth->end() && it->is_number_unsigned()) {
        out = it->get<uint64_t>();
      }
    };
    read("ingressRate", value.ingressRate);
    read("ingressBurst", value.ingressBurst);
    read("egressRate", value.egressRate);
    read("egressBurst", value.egressBurst);
    config.bandwidth = value;
  }
  if (const auto ips = json.find("ips"); ips != json.end() && ips->is_array()) {
    for (const auto& ip : *ips) {
      if (ip.is_string()) config.ips.push_back(ip.get<std::string>());
    }
  }
  if (const auto mac = json.find("mac"); mac != json.end() && mac->is_string()) {
    config.mac = mac->get<std::string>();
  }
  if (const auto sets = json.find("ipRanges"); sets != json.end() && sets->is_array()) {
    for (const auto& set : *sets) {
      if (!set.is_array()) continue;
      for (const auto& range : set) {
        if (!range.is_object()) continue;
        if (const auto subnet = range.find("subnet");
            subnet != range.end() && subnet->is_string()) {
          config.podCidrs.push_back(subnet->get<std::string>());
        }
      }
    }
  }
  return config;
}

std::string encodeCacheRecord(const CacheRecord& record) {
  Json args = Json::array();
  for (const auto& [key, value] : record.cniArgs)
    args.push_back(Json::array({key, value}));
  const Json json = {{"kind", std::string(kCacheKind)}, {"containerId", record.containerId},
                     {"ifName", record.ifName},         {"networkName", record.networkName},
                     {"config", record.config},         {"configIsList", record.configIsList},
                     {"cniArgs", std::move(args)},      {"runtimeConfig", record.runtimeConfig},
                     {"result", record.result}};
  // Strings from kubelet (ids, argument values) may hold invalid UTF-8: replaced, not thrown.
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string decodeCacheRecord(std::string_view bytes, CacheRecord& out) {
  out = CacheRecord{};
  Json json;
  // The config and the result are each bounded to kMaxJsonDepth; the record holds them one
  // level down.
  if (auto error = detail::parseJson(bytes, kMaxCacheBytes, detail::kMaxJsonDepth + 1,
                                     "CNI cache record", json);
      !error.empty()) {
    return error;
  }
  if (!json.is_object()) return cacheError(fmt::format("{}, not an object", typeName(json)));
  const auto kind = json.find("kind");
  if (kind == json.end() || !kind->is_string() ||
      kind->get_ref<const std::string&>() != kCacheKind) {
    return cacheError(fmt::format("\"kind\" is not \"{}\"", kCacheKind));
  }
  CacheRecord record;
  if (auto error = requiredString(json, "containerId", kMaxContainerIdBytes, record.containerId);
      !error.empty()) {
    return error;
  }
  if (auto error = requiredString(json, "ifName", kMaxIfNameBytes, record.ifName); !error.empty()) {
    return error;
  }
  if (record.ifName.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
    return cacheError(fmt::format("\"ifName\" {} is not an interface name", shown(record.ifName)));
  }
  if (auto error = requiredString(json, "networkName", 1024, record.networkName); !error.empty()) {
    return error;
  }

  const auto isList = json.find("configIsList");
  if (isList == json.end() || !isList->is_boolean()) {
    return cacheError("\"configIsList\" is missing or not true or false");
  }
  record.configIsList = isList->get<bool>();
  const auto config = json.find("config");
  if (config == json.end()) return cacheError("no \"config\"");
  NetworkConfigList list;
  if (auto error = networkConfigFromJson(*config, record.configIsList, list); !error.empty()) {
    return cacheError(error);
  }
  if (list.name != record.networkName) {
    return cacheError(fmt::format("\"networkName\" {} is not the config's name {}",
                                  shown(record.networkName), shown(list.name)));
  }
  record.config = *config;

  const auto args = json.find("cniArgs");
  if (args == json.end() || !args->is_array()) return cacheError("\"cniArgs\" is not an array");
  if (args->size() > kMaxCniArgs) {
    return cacheError(fmt::format("more than {} \"cniArgs\"", kMaxCniArgs));
  }
  for (size_t i = 0; i < args->size(); ++i) {
    const Json& pair = (*args)[i];
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
      return cacheError(fmt::format("cniArgs[{}] is not a [key, value] pair of strings", i));
    }
    const auto &key = pair[0].get_ref<const std::string&>(),
               &value = pair[1].get_ref<const std::string&>();
    if (key.size() > kMaxCniArgBytes || value.size() > kMaxCniArgBytes) {
      return cacheError(fmt::format("cniArgs[{}] is longer than {} bytes", i, kMaxCniArgBytes));
    }
    record.cniArgs.emplace_back(key, value);
  }
  std::string argsError;
  cniArgs(record.cniArgs, argsError);
  if (!argsError.empty()) return cacheError(argsError);

  if (const auto runtime = json.find("runtimeConfig");
      runtime != json.end() && !runtime->is_null()) {
    if (!runtime->is_object()) {
      return cacheError(fmt::format("\"runtimeConfig\" is {}, not an object", typeName(*runtime)));
    }
    record.runtimeConfig = *runtime;
  }
  // No result is a record of an ADD whose result was not kept: DEL runs without prevResult.
  if (const auto result = json.find("result"); result != json.end() && !result->is_null()) {
    Result parsed;
    if (auto error = resultFromJson(*result, parsed); !error.empty()) {
      return cacheError(fmt::format("\"result\": {}", error));
    }
    record.result = *result;
  }
  out = std::move(record);
  return "";
}

}  // namespace monocri::net::cni
