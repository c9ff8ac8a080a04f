#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>

#include "api.pb.h"
#include "monocri.pb.h"
#include "monoctl/Commands.h"

namespace monocri::monoctl {

namespace v1 = runtime::v1;
using Json = nlohmann::ordered_json;

namespace {

constexpr std::string_view kImageService = "/runtime.v1.ImageService/";
// Pulls, removals and imports take as long as they take; one call may not wait forever.
constexpr std::chrono::hours kLongCall{1};

std::string shortId(const std::string& id) {
  const std::string_view hex = std::string_view(id).substr(id.find(':') + 1);
  return std::string(hex.substr(0, 13));
}

// "registry/name:tag" -> {"registry/name", "tag"}; the last ':' after the last '/'.
std::pair<std::string, std::string> splitTag(const std::string& reference) {
  const size_t slash = reference.rfind('/');
  const size_t colon = reference.rfind(':');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) {
    return {reference, "<none>"};
  }
  return {reference.substr(0, colon), reference.substr(colon + 1)};
}

// Live progress on a terminal: one line per layer and a total, redrawn in place.
class ProgressDisplay {
 public:
  void draw(const monocri::v1::PullProgress& progress) {
    std::string out;
    if (lines_ > 0) out += fmt::format("\033[{}A", lines_);  // back to the first line
    int64_t total = 0, done = 0;
    for (const auto& layer : progress.layers()) {
      total += layer.size();
      done += std::min(layer.downloaded(), layer.size());
      static constexpr const char* kStates[] = {"waiting", "downloading", "unpacking", "done",
                                                "already present"};
      const auto state = static_cast<size_t>(layer.state());
      const int width = 30;
      const int filled =
          layer.size() > 0 ? static_cast<int>(width * layer.downloaded() / layer.size()) : width;
      out += fmt::format("\033[2K{}  [{}{}] {:>8}/{:<8} {}\n", shortId(layer.digest()),
                         std::string(static_cast<size_t>(filled), '='),
                         std::string(static_cast<size_t>(width - filled), ' '),
                         humanSize(static_cast<uint64_t>(layer.downloaded())),
                         humanSize(static_cast<uint64_t>(layer.size())),
                         state < std::size(kStates) ? kStates[state] : "");
    }
    out += fmt::format("\033[2KTotal {} of {}\n", humanSize(static_cast<uint64_t>(done)),
                       humanSize(static_cast<uint64_t>(total)));
    lines_ = progress.layers_size() + 1;
    std::cout << out << std::flush;
  }

 private:
  int lines_ = 0;
};

}  // namespace

int runPull(const Options& options, const PullOptions& pull) {
  v1::PullImageRequest request;
  request.mutable_image()->set_image(pull.image);
  auto* auth = request.mutable_auth();
  if (!pull.creds.empty()) {
    const size_t colon = pull.creds.find(':');
    auth->set_username(pull.creds.substr(0, colon));
    if (colon != std::string::npos) auth->set_password(pull.creds.substr(colon + 1));
  }
  auth->set_auth(pull.auth);
  auth->set_identity_token(pull.identityToken);
  auth->set_registry_token(pull.registryToken);
  auth->set_server_address(pull.serverAddress);

  const bool tty = isatty(STDOUT_FILENO) == 1;
  ProgressDisplay display;
  std::string imageRef;
  const grpc::Status status =
      streamRuntime(options, "/monocri.v1.Images/PullWithProgress", request.SerializeAsString(),
                    [&](std::string_view bytes) {
                      monocri::v1::PullProgress progress;
                      if (!progress.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
                        return;
                      if (tty) display.draw(progress);
                      if (!progress.image_ref().empty()) imageRef = progress.image_ref();
                    });
  if (!status.isOk()) return fail(options, "pull", status);
  std::cout << "Image is up to date for " << imageRef << "\n";
  return 0;
}

int runImages(const Options& options, const std::string& filter, bool quiet, bool digests) {
  v1::ListImagesRequest request;
  if (!filter.empty()) request.mutable_filter()->mutable_image()->set_image(filter);
  v1::ListImagesResponse response;
  if (grpc::Status s =
          callRuntime(options, std::string(kImageService) + "ListImages", request, response);
      !s.isOk()) {
    return fail(options, "images", s);
  }
  const OutputFormat format = options.format(OutputFormat::kTable);
  if (format != OutputFormat::kTable) {
    print(format, messageToJson(response));
    return 0;
  }
  if (quiet) {
    for (const auto& image : response.images())
      std::cout << image.id() << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back(digests ? std::vector<std::string>{"IMAGE", "TAG", "DIGEST", "IMAGE ID", "SIZE"}
                         : std::vector<std::string>{"IMAGE", "TAG", "IMAGE ID", "SIZE"});
  for (const auto& image : response.images()) {
    std::string digest = "<none>";
    if (!image.repo_digests().empty()) {
      const std::string& first = image.repo_digests(0);
      digest = shortId(first.substr(first.find('@') + 1));
    }
    std::vector<std::pair<std::string, std::string>> names;
    for (const auto& tag : image.repo_tags())
      names.push_back(splitTag(tag));
    if (names.empty()) {
      const std::string repo =
          image.repo_digests().empty()
              ? "<none>"
              : image.repo_digests(0).substr(0, image.repo_digests(0).find('@'));
      names.emplace_back(repo, "<none>");
    }
    for (const auto& [name, tag] : names) {
      std::vector<std::string> row = {name, tag};
      if (digests) row.push_back(digest);
      row.push_back(shortId(image.id()));
      row.push_back(humanSize(image.size()));
      rows.push_back(row);
    }
  }
  std::cout << formatTable(rows);
  return 0;
}

int runInspectImages(const Options& options, const std::vector<std::string>& images) {
  const OutputFormat format = options.format(OutputFormat::kJson);
  int exitCode = 0;
  for (const auto& image : images) {
    v1::ImageStatusRequest request;
    request.mutable_image()->set_image(image);
    request.set_verbose(true);
    v1::ImageStatusResponse response;
    if (grpc::Status s =
            callRuntime(options, std::string(kImageService) + "ImageStatus", request, response);
        !s.isOk()) {
      exitCode = fail(options, "inspecti", s);
      continue;
    }
    if (!response.has_image()) {
      std::cerr << "monoctl: inspecti: no image " << image << " on this node\n";
      exitCode = 1;
      continue;
    }
    Json out;
    out["status"] = messageToJson(response.image());
    if (auto info = response.info().find("info"); info != response.info().end()) {
      Json parsed = Json::parse(info->second, nullptr, false);
      out["info"] = parsed.is_discarded() ? Json(info->second) : parsed;
    }
    print(format, out);
  }
  return exitCode;
}

int runRemoveImages(const Options& options, std::vector<std::string> images, bool all) {
  if (all) {
    v1::ListImagesResponse listed;
    if (grpc::Status s = callRuntime(options, std::string(kImageService) + "ListImages",
                                     v1::ListImagesRequest(), listed);
        !s.isOk()) {
      return fail(options, "rmi", s);
    }
    for (const auto& image : listed.images())
      images.push_back(image.id());
  }
  if (images.empty()) {
    std::cerr << "monoctl: rmi: name at least one image, or -a\n";
    return 2;
  }
  int exitCode = 0;
  for (const auto& image : images) {
    v1::RemoveImageRequest request;
    request.mutable_image()->set_image(image);
    v1::RemoveImageResponse response;
    if (grpc::Status s = callRuntime(options, std::string(kImageService) + "RemoveImage", request,
                                     response, kLongCall);
        !s.isOk()) {
      exitCode = fail(options, "rmi " + image, s);
      continue;
    }
    std::cout << "Deleted: " << image << "\n";
  }
  return exitCode;
}

int runImageFsInfo(const Options& options) {
  v1::ImageFsInfoResponse response;
  if (grpc::Status s = callRuntime(options, std::string(kImageService) + "ImageFsInfo",
                                   v1::ImageFsInfoRequest(), response);
      !s.isOk()) {
    return fail(options, "imagefsinfo", s);
  }
  print(options.format(OutputFormat::kJson), messageToJson(response));
  return 0;
}

int runImport(const Options& options, const std::string& path, const std::string& name) {
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(path, ec).string();
  monocri::v1::ImportRequest request;
  request.set_path(ec ? path : absolute);
  request.set_name(name);
  monocri::v1::ImportResponse response;
  if (grpc::Status s =
          callRuntime(options, "/monocri.v1.Images/Import", request, response, kLongCall);
      !s.isOk()) {
    return fail(options, "image import", s);
  }
  const OutputFormat format = options.format(OutputFormat::kTable);
  if (format != OutputFormat::kTable) {
    print(format, messageToJson(response));
    return 0;
  }
  for (const auto& image : response.images()) {
    std::cout << "Imported " << image.id();
    for (const auto& tag : image.repo_tags())
      std::cout << " " << tag;
    std::cout << "\n";
  }
  return 0;
}

}  // namespace monocri::monoctl
