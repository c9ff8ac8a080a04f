// Root filesystems of containers, made from an image's layers:
//
//   overlay: <run_root>/containers/<id>/rootfs is an overlayfs with the layers as lower dirs and
//            <root>/containers/<id>/{upper,work} as the container's writable part;
//   copy:    where overlayfs cannot be used, <root>/containers/<id>/snapshot is a copy of the
//            layers applied in order (whiteouts and opaque dirs honoured) and is the rootfs.
//
// <root>/containers/<id>/rootfs.json records the image, so that after a restart the daemon
// still knows which images containers use.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cri-bridge/grpc/GrpcStatus.h"
#include "loop/Loop.h"
#include "oci/image/ImageStore.h"

namespace monocri::oci {

enum class RootfsMode { kAuto, kOverlay, kCopy };

class ContainerRootfs {
 public:
  ContainerRootfs(loop::Loop& loop, ImageStore& store, std::string stateRoot, std::string runRoot,
                  RootfsMode mode = RootfsMode::kAuto);

  // Reads the records of existing container rootfs.
  std::string load(std::vector<std::string>& notes);

  // Prepares container `id`'s rootfs from image `imageId`; `done` gets the path to use as the
  // container's root. The copy fallback works on the worker pool.
  void create(const std::string& id, const Digest& imageId,
              std::function<void(grpc::Status, std::string path)> done);
  // Unmounts (the writable part stays, for a restart of the container).
  grpc::Status unmount(const std::string& id);
  // Mounts again what create() made (after a daemon or node restart).
  grpc::Status mount(const std::string& id, std::string& path);
  // Unmounts and deletes everything of the container's rootfs.
  void remove(const std::string& id, std::function<void(grpc::Status)> done);

  // The containers whose rootfs comes from `imageId`.
  std::vector<std::string> containersUsing(const Digest& imageId) const;
  std::string rootfsPath(const std::string& id) const;
  RootfsMode modeOf(const std::string& id) const;

 private:
  struct Record {
    Digest imageId = Digest::ofBytes("");
    RootfsMode mode = RootfsMode::kOverlay;
  };
  grpc::Status mountOverlay(const std::string& id, const ImageRecord& image);
  std::string stateDir(const std::string& id) const;
  grpc::Status writeRecord(const std::string& id, const Record& record);

  loop::Loop& loop_;
  ImageStore& store_;
  std::string stateRoot_;
  std::string runRoot_;
  RootfsMode mode_;
  std::map<std::string, Record> records_;
};

// Checks a container id before it becomes a directory name.
bool isValidContainerId(const std::string& id);

}  // namespace monocri::oci
