// Makes a layer blob on disk into a trusted layer of the store: unpacked by the image worker,
// checked to be the diffID the image config names, moved into place, recorded. Shared by
// pulls and imports.
#pragma once

#include <functional>
#include <string>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "oci/image/ImageManifest.h"
#include "oci/image/ImageStore.h"
#include "oci/image/ImageWorkerClient.h"

namespace monocri::oci {

// `done` runs on the loop. `blobPath` is left in place; `store` must outlive the call.
void installLayer(ImageWorkerClient& worker, ImageStore& store, const std::string& blobPath,
                  const Descriptor& blob, const Digest& diffId,
                  std::function<void(grpc::Status)> done);

}  // namespace monocri::oci
