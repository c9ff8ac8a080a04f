// Air-gapped import: the images of an OCI image layout (a directory or a tar of one) or of a
// docker-archive tar (`docker save`), read from the node's filesystem into the store. The
// image worker reads the source (see ImportReader); here its images are recorded. Every blob
// is checked against its digest, every layer against the diffID its config names.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "oci/image/ImageManifest.h"
#include "oci/image/ImageStore.h"
#include "oci/image/ImageWorkerClient.h"

namespace monocri::oci {

// `name` ("registry/repo") names images that an OCI layout tags only as "latest" or the like.
// `done` gets the ids of the images imported.
void importImages(ImageWorkerClient& worker, ImageStore& store, const std::string& path,
                  const std::string& name, const Platform& platform,
                  std::function<void(grpc::Status, std::vector<Digest>)> done);

}  // namespace monocri::oci
