#include "net/cni/CniResult.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>

#include "net/cni/JsonInput.h"

namespace monocri::net::cni {

namespace {

using Json = nlohmann::json;
using detail::shown;
using detail::typeName;

// A result or an error object is a few hundred bytes; a megabyte leaves room for plugins that
// add keys of their own, and bounds what a runaway plugin makes the daemon hold.
constexpr size_t kMaxOutputBytes = 1 << 20;
constexpr size_t kMaxInterfaces = 1024;
constexpr size_t kMaxIps = 1024;
constexpr size_t kMaxRoutes = 1024;
constexpr size_t kMaxInterfaceNameBytes = 256;  // IFNAMSIZ is 16; room for other platforms
constexpr size_t kMaxMacBytes = 128;            // InfiniBand's 20 bytes as text is 59
constexpr size_t kMaxSandboxBytes = 4096;       // PATH_MAX
constexpr size_t kMaxDescribedBytes = 4096;     // of msg and of details, in describe()

// An optional member: absent and null are the same, as for Go's decoder in libcni.
const Json* member(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

// An optional string member of at most `max` bytes. Returns "" or what is wrong.
std::string optionalString(const Json& object, const char* key, const std::string& where,
                           size_t max, std::string& out) {
  out.clear();
  const Json* value = member(object, key);
  if (value == nullptr) return "";
  if (!value->is_string()) {
    return fmt::format("{}.{} is {}, not a string", where, key, typeName(*value));
  }
  const auto& text = value->get_ref<const std::string&>();
  if (text.size() > max) {
    return fmt::format("{}.{} is longer than {} bytes", where, key, max);
  }
  out = text;
  return "";
}

// An optional array member of at most `max` elements; nullptr when absent.
std::string optionalArray(const Json& object, const char* key, size_t max, const Json*& out) {
  out = member(object, key);
  if (out == nullptr) return "";
  if (!out->is_array()) return fmt::format("\"{}\" is {}, not an array", key, typeName(*out));
  if (out->size() > max) {
    return fmt::format("\"{}\" has {} entries, more than the {} accepted", key, out->size(), max);
  }
  return "";
}

std::string checkStringArray(const Json& object, const char* key, const std::string& where) {
  const Json* value = member(object, key);
  if (value == nullptr) return "";
  if (!value->is_array()) {
    return fmt::format("{}.{} is {}, not an array", where, key, typeName(*value));
  }
  for (size_t i = 0; i < value->size(); ++i) {
    if (!(*value)[i].is_string()) {
      return fmt::format("{}.{}[{}] is {}, not a string", where, key, i, typeName((*value)[i]));
    }
  }
  return "";
}

std::string parseInterfaces(const Json& raw, std::vector<ResultInterface>& out) {
  const Json* interfaces = nullptr;
  if (auto error = optionalArray(raw, "interfaces", kMaxInterfaces, interfaces); !error.empty()) {
    return error;
  }
  if (interfaces == nullptr) return "";
  for (size_t i = 0; i < interfaces->size(); ++i) {
    const Json& entry = (*interfaces)[i];
    const std::string where = fmt::format("interfaces[{}]", i);
    if (!entry.is_object()) return fmt::format("{} is {}, not an object", where, typeName(entry));
    ResultInterface interface;
    for (auto error :
         {optionalString(entry, "name", where, kMaxInterfaceNameBytes, interface.name),
          optionalString(entry, "mac", where, kMaxMacBytes, interface.mac),
          optionalString(entry, "sandbox", where, kMaxSandboxBytes, interface.sandbox)}) {
      if (!error.empty()) return error;
    }
    out.push_back(std::move(interface));
  }
  return "";
}

std::string parseIps(const Json& raw, size_t interfaceCount, std::vector<ResultIp>& out) {
  const Json* ips = nullptr;
  if (auto error = optionalArray(raw, "ips", kMaxIps, ips); !error.empty()) return error;
  if (ips == nullptr) return "";
  for (size_t i = 0; i < ips->size(); ++i) {
    const Json& entry = (*ips)[i];
    const std::string where = fmt::format("ips[{}]", i);
    if (!entry.is_object()) return fmt::format("{} is {}, not an object", where, typeName(entry));
    ResultIp ip;
    // 0.3.x results carry "version": "4" or "6" as well; the address says the same.
    const Json* address = member(entry, "address");
    if (address == nullptr) return fmt::format("{} has no \"address\"", where);
    if (!address->is_string()) {
      return fmt::format("{}.address is {}, not a string", where, typeName(*address));
    }
    ip.address = address->get<std::string>();
    if (!detail::isCidr(ip.address)) {
      return fmt::format("{}.address {} is not a CIDR (address/prefix length)", where,
                         shown(ip.address));
    }
    if (auto error = optionalString(entry, "gateway", where, 64, ip.gateway); !error.empty()) {
      return error;
    }
    if (!ip.gateway.empty() && !detail::isIpAddress(ip.gateway)) {
      return fmt::format("{}.gateway {} is not an IP address", where, shown(ip.gateway));
    }
    if (const Json* index = member(entry, "interface"); index != nullptr) {
      if (!index->is_number_integer()) {
        return fmt::format("{}.interface is {}, not an index", where, typeName(*index));
      }
      if (index->is_number_unsigned()) {
        const auto value = index->get<uint64_t>();
        if (value >= interfaceCount) {
          return fmt::format("{}.interface {} is out of range: the result has {} interface(s)",
                             where, value, interfaceCount);
        }
        ip.interface = static_cast<int>(value);
      } else {
        return fmt::format("{}.interface {} is out of range: the result has {} interface(s)", where,
                           index->get<int64_t>(), interfaceCount);
      }
    }
    out.push_back(std::move(ip));
  }
  return "";
}

std::string checkRoutes(const Json& raw) {
  const Json* routes = nullptr;
  if (auto error = optionalArray(raw, "routes", kMaxRoutes, routes); !error.empty()) return error;
  if (routes == nullptr) return "";
  for (size_t i = 0; i < routes->size(); ++i) {
    const Json& entry = (*routes)[i];
    const std::string where = fmt::format("routes[{}]", i);
    if (!entry.is_object()) return fmt::format("{} is {}, not an object", where, typeName(entry));
    std::string dst, gw;
    if (auto error = optionalString(entry, "dst", where, 64, dst); !error.empty()) return error;
    if (dst.empty()) return fmt::format("{} has no \"dst\"", where);
    if (!detail::isCidr(dst)) return fmt::format("{}.dst {} is not a CIDR", where, shown(dst));
    if (auto error = optionalString(entry, "gw", where, 64, gw); !error.empty()) return error;
    if (!gw.empty() && !detail::isIpAddress(gw)) {
      return fmt::format("{}.gw {} is not an IP address", where, shown(gw));
    }
  }
  return "";
}

std::string checkDns(const Json& raw) {
  const Json* dns = member(raw, "dns");
  if (dns == nullptr) return "";
  if (!dns->is_object()) return fmt::format("\"dns\" is {}, not an object", typeName(*dns));
  std::string domain;
  if (auto error = optionalString(*dns, "domain", "dns", 1024, domain); !error.empty()) {
    return error;
  }
  for (const char* key : {"nameservers", "search", "options"}) {
    if (auto error = checkStringArray(*dns, key, "dns"); !error.empty()) return error;
  }
  return "";
}

std::string_view codeName(unsigned code) {
  switch (code) {
    case 1:
      return "incompatible CNI version";
    case 2:
      return "unsupported field in network configuration";
    case 3:
      return "container unknown or does not exist";
    case 4:
      return "invalid necessary environment variables";
    case 5:
      return "I/O failure";
    case 6:
      return "failed to decode content";
    case 7:
      return "invalid network config";
    case 11:
      return "try again later";
    case 50:
      return "the plugin is not available";
    case 51:
      return "the plugin is not available, existing containers may have limited connectivity";
    default:
      return "";
  }
}

std::string cut(const std::string& text) {
  if (text.size() <= kMaxDescribedBytes) return text;
  return text.substr(0, kMaxDescribedBytes) + "...";
}

}  // namespace

std::vector<std::string> Result::podIps(const std::string& ifName) const {
  std::vector<std::string> v4, v6;
  for (const auto& ip : ips) {
    if (ip.interface >= 0) {
      if (static_cast<size_t>(ip.interface) >= interfaces.size()) continue;
      const auto& interface = interfaces[static_cast<size_t>(ip.interface)];
      if (interface.name != ifName || interface.sandbox.empty()) continue;
    }
    std::string address = ip.address.substr(0, ip.address.find('/'));
    if (!detail::isIpAddress(address)) continue;
    auto& family = detail::isIpv4Address(address) ? v4 : v6;
    if (std::find(family.begin(), family.end(), address) == family.end()) {
      family.push_back(std::move(address));
    }
  }
  v4.insert(v4.end(), std::make_move_iterator(v6.begin()), std::make_move_iterator(v6.end()));
  return v4;
}

std::string parseResult(std::string_view bytes, Result& out) {
  Json raw;
  if (auto error =
          detail::parseJson(bytes, kMaxOutputBytes, detail::kMaxJsonDepth, "the result", raw);
      !error.empty()) {
    out = Result{};
    return error;
  }
  return resultFromJson(raw, out);
}

std::string resultFromJson(const nlohmann::json& raw, Result& out) {
  out = Result{};
  if (!raw.is_object()) return fmt::format("the result is {}, not a JSON object", typeName(raw));
  if (detail::valueDepth(raw, detail::kMaxJsonDepth) > detail::kMaxJsonDepth) {
    return fmt::format("the result is nested deeper than {} levels", detail::kMaxJsonDepth);
  }
  Result result;
  const Json* version = member(raw, "cniVersion");
  if (version == nullptr) return "the result has no \"cniVersion\"";
  if (!version->is_string()) {
    return fmt::format("the result's \"cniVersion\" is {}, not a string", typeName(*version));
  }
  result.cniVersion = version->get<std::string>();
  if (!detail::supportedVersion(result.cniVersion)) {
    return fmt::format("the result's cniVersion {} is not supported (supported: {})",
                       shown(result.cniVersion), fmt::join(detail::kSupportedVersions, ", "));
  }
  if (auto error = parseInterfaces(raw, result.interfaces); !error.empty()) return error;
  if (auto error = parseIps(raw, result.interfaces.size(), result.ips); !error.empty()) {
    return error;
  }
  if (auto error = checkRoutes(raw); !error.empty()) return error;
  if (auto error = checkDns(raw); !error.empty()) return error;
  result.raw = raw;
  out = std::move(result);
  return "";
}

std::string PluginError::describe() const {
  std::string text = fmt::format("code {}", code);
  if (const auto name = codeName(code); !name.empty()) text += fmt::format(" ({})", name);
  text += ": ";
  text += msg.empty() ? std::string("(no message)") : cut(msg);
  if (!details.empty()) text += "; " + cut(details);
  return text;
}

bool parsePluginError(std::string_view bytes, PluginError& out) {
  out = PluginError{};
  Json raw;
  if (!detail::parseJson(bytes, kMaxOutputBytes, detail::kMaxJsonDepth, "", raw).empty()) {
    return false;
  }
  if (!raw.is_object()) return false;
  const Json* code = member(raw, "code");
  const Json* msg = member(raw, "msg");
  if (code == nullptr || msg == nullptr || !msg->is_string()) return false;
  // Go's types.Error has an unsigned code: a negative or fractional one does not decode.
  if (!code->is_number_unsigned() || code->get<uint64_t>() > UINT_MAX) return false;
  PluginError error;
  error.code = static_cast<unsigned>(code->get<uint64_t>());
  error.msg = msg->get<std::string>();
  if (const Json* details = member(raw, "details"); details != nullptr) {
    // A plugin that puts something else than a string here still said something: keep it, as
    // JSON text.
    error.details = details->is_string()
                        ? details->get<std::string>()
                        : details->dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  if (const Json* version = member(raw, "cniVersion"); version != nullptr && version->is_string()) {
    error.cniVersion = version->get<std::string>();
  }
  out = std::move(error);
  return true;
}

}  // namespace monocri::net::cni
