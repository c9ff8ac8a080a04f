// Helpers shared by the spec generation tests: temporary trees, files, and lookups in the JSON
// the generator produces.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace monocri::oci::testing {

// A directory under /tmp, removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/monocri-spec-XXXXXX";
    const char* made = mkdtemp(tmpl);
    EXPECT_NE(made, nullptr);
    path_ = made != nullptr ? made : "/nonexistent";
  }
  ~TempDir() {
    std::error_code error;
    std::filesystem::remove_all(path_, error);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& relative) const { return path_ + "/" + relative; }

 private:
  std::string path_;
};

inline void writeFile(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << content;
  ASSERT_TRUE(file.good()) << path;
}

inline std::string readFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

inline std::vector<std::string> strings(const nlohmann::json& array) {
  std::vector<std::string> out;
  if (!array.is_array()) return out;
  for (const auto& item : array)
    out.push_back(item.is_string() ? item.get<std::string>() : item.dump());
  return out;
}

inline bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// The mount entry with this destination, or null.
inline nlohmann::json mountAt(const nlohmann::json& mounts, const std::string& destination) {
  for (const auto& mount : mounts) {
    if (mount.value("destination", "") == destination) return mount;
  }
  return nullptr;
}

inline std::vector<std::string> destinations(const nlohmann::json& mounts) {
  std::vector<std::string> out;
  for (const auto& mount : mounts)
    out.push_back(mount.value("destination", ""));
  return out;
}

}  // namespace monocri::oci::testing
