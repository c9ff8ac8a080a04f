#include "oci/image/LayerInstall.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "loop/WorkQueue.h"
#include "state/StateFiles.h"

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;

void installLayer(ImageWorkerClient& worker, ImageStore& store, const std::string& blobPath,
                  const Descriptor& blob, const Digest& diffId, std::function<void(Status)> done) {
  const std::string target = store.unpackingPath(diffId);
  // Left over only by a crash, and removed at start: normally absent, so this is cheap.
  if (std::string error = state::removeTree(target); !error.empty()) {
    done(Status(StatusCode::kInternal, error));
    return;
  }
  if (mkdir(target.c_str(), 0755) != 0) {
    done(Status(StatusCode::kInternal, fmt::format("mkdir {}: {}", target, std::strerror(errno))));
    return;
  }
  worker.unpackLayer(
      blobPath, target,
      [&worker, &store, blob, diffId, target, done = std::move(done)](LayerUnpackResult result) {
        Status status = result.status;
        if (status.isOk() && result.diffId != diffId) {
          status = Status(StatusCode::kDataLoss,
                          fmt::format("layer {} unpacks to {}, not the {} its image config says",
                                      blob.digest.str(), result.diffId.str(), diffId.str()));
        }
        for (const auto& warning : result.warnings) {
          spdlog::warn("layer {}: {}", blob.digest.str(), warning);
        }
        if (status.isOk()) {
          const std::string to = store.layerPath(diffId);
          if (rename(target.c_str(), to.c_str()) != 0) {
            status = Status(StatusCode::kInternal,
                            fmt::format("rename {}: {}", target, std::strerror(errno)));
          }
        }
        if (status.isOk()) {
          LayerRecord record{diffId,    blob.digest,  blob.mediaType,
                             blob.size, result.bytes, result.inodes};
          if (std::string error = store.commitLayer(record); !error.empty()) {
            status = Status(StatusCode::kInternal, error);
          }
        }
        if (!status.isOk()) {
          // What a failed unpack left may be large: deleted off the loop.
          loop::queueWork(
              worker.loop(), "failed layer removed", [target] { state::removeTree(target); },
              nullptr);
        }
        done(status);
      });
}

}  // namespace monocri::oci
