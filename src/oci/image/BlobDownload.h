// A blob downloaded into a file while its sha256 is computed: transient registry errors
// (connection reset, 5xx, a stall) are retried with backoff, resuming with Range where the
// registry allows; the result must match the digest and the size its descriptor gives.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "loop/Loop.h"
#include "oci/image/ImageManifest.h"
#include "oci/image/RegistryClient.h"

namespace monocri::oci {

class BlobDownload {
 public:
  using Progress = std::function<void(int64_t downloaded)>;
  using Done = std::function<void(grpc::Status)>;
  // Starts at once. `onDone` runs exactly once unless the download is dropped first.
  static std::shared_ptr<BlobDownload> start(loop::Loop& loop, RegistryClient& registry,
                                             PullSource source, Credentials credentials,
                                             Descriptor blob, std::string path, Progress onProgress,
                                             Done onDone);
  // No more callbacks; the file is left as it is.
  void drop();
  ~BlobDownload();

 private:
  BlobDownload() = default;
  void attempt();
  void finish(grpc::Status status);
  bool flush();

  loop::Loop* loop_ = nullptr;
  RegistryClient* registry_ = nullptr;
  PullSource source_;
  Credentials credentials_;
  Descriptor blob_;
  std::string path_;
  Progress onProgress_;
  Done onDone_;
  int fd_ = -1;
  int attempts_ = 0;
  int64_t downloaded_ = 0;
  std::unique_ptr<Sha256> hasher_;
  std::string buffer_;
  grpc::Status writeError_;
  loop::HandlePtr<loop::Timer> retryTimer_;
  std::weak_ptr<BlobDownload> self_;
};

}  // namespace monocri::oci
