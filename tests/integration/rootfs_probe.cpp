// rootfs-probe: drives ContainerRootfs on a state dir the real daemon filled (with the daemon
// stopped), for tests/integration/test_images.py: mount a container's rootfs (overlayfs or the
// copy fallback), unmount it, remove it. Until the CRI container calls exist, this is how the
// tests reach the rootfs API.
//
//   rootfs-probe ROOT RUN_ROOT mount ID IMAGE [--copy]   prints the rootfs path
//   rootfs-probe ROOT RUN_ROOT unmount ID
//   rootfs-probe ROOT RUN_ROOT remove ID
#include <spdlog/spdlog.h>

#include <cstdio>
#include <string>
#include <vector>

#include "loop/Loop.h"
#include "oci/image/ContainerRootfs.h"
#include "oci/image/ImageStore.h"

using namespace monocri;

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: rootfs-probe ROOT RUN_ROOT mount|unmount|remove ID [IMAGE] [--copy]\n");
    return 2;
  }
  const std::string root = argv[1], runRoot = argv[2], verb = argv[3], id = argv[4];
  const bool copy = argc > 6 && std::string(argv[6]) == "--copy";
  loop::Loop loop;
  oci::ImageStore store(root);
  std::vector<std::string> notes;
  if (std::string error = store.load(notes); !error.empty()) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  oci::ContainerRootfs rootfs(loop, store, root, runRoot,
                              copy ? oci::RootfsMode::kCopy : oci::RootfsMode::kOverlay);
  if (std::string error = rootfs.load(notes); !error.empty()) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  int exitCode = 0;
  auto report = [&](const grpc::Status& status) {
    if (!status.isOk()) {
      std::fprintf(stderr, "%s\n", status.toString().c_str());
      exitCode = 1;
    }
  };
  if (verb == "mount") {
    if (argc < 6) return 2;
    const oci::ImageRecord* image = store.find(argv[5]);
    if (image == nullptr) {
      std::fprintf(stderr, "no image %s\n", argv[5]);
      return 1;
    }
    rootfs.create(id, image->id, [&](grpc::Status status, std::string path) {
      report(status);
      if (status.isOk()) std::printf("%s\n", path.c_str());
    });
  } else if (verb == "unmount") {
    report(rootfs.unmount(id));
  } else if (verb == "remove") {
    rootfs.remove(id, report);
  } else {
    return 2;
  }
  loop.run();
  return exitCode;
}
