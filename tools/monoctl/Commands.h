// monoctl's image verbs (the runtime verbs live in main.cpp).
#pragma once

#include <string>
#include <vector>

#include "monoctl/Runtime.h"

namespace monocri::monoctl {

struct PullOptions {
  std::string image;
  std::string creds;  // "user:password"
  std::string auth;   // base64 "user:password"
  std::string identityToken;
  std::string registryToken;
  std::string serverAddress;
};

int runPull(const Options& options, const PullOptions& pull);
int runImages(const Options& options, const std::string& filter, bool quiet, bool digests);
int runInspectImages(const Options& options, const std::vector<std::string>& images);
int runRemoveImages(const Options& options, std::vector<std::string> images, bool all);
int runImageFsInfo(const Options& options);
int runImport(const Options& options, const std::string& path, const std::string& name);

}  // namespace monocri::monoctl
