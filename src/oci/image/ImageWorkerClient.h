// The daemon's side of monocri-image-worker: the process that talks to registries (libcurl,
// TLS) and unpacks layers (libarchive, gzip, zstd). Started on first use, over a socketpair
// carrying gRPC; let go after a while without work, so that its memory - and the parsers of
// hostile remote bytes - never live in the daemon that supervises every container. If it
// dies, the calls in flight fail and the next call starts a new one.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cri-bridge/grpc/GrpcClient.h"
#include "cri-bridge/grpc/GrpcStatus.h"
#include "loop/ChildProcess.h"
#include "loop/Loop.h"
#include "loop/Timer.h"
#include "oci/image/Credentials.h"
#include "oci/image/ImageManifest.h"
#include "oci/image/LayerUnpacker.h"
#include "oci/image/RegistriesConf.h"

namespace monocri::oci {

struct ImageWorkerOptions {
  std::string executable;    // monocri-image-worker
  uint64_t idleMs = 30'000;  // let go this long after the last call
  uint64_t connectTimeoutMs = 30'000;
  uint64_t stallTimeoutMs = 60'000;
  std::string userAgent = "monocri";
  std::string logLevel = "info";
};

class ImageWorkerClient {
 public:
  ImageWorkerClient(loop::Loop& loop, ImageWorkerOptions options);
  ~ImageWorkerClient();

  void getManifest(const PullSource& source, const Credentials& credentials,
                   const std::string& reference,
                   std::function<void(grpc::Status, std::string body, std::string type)> done);
  void getSmallBlob(const PullSource& source, const Credentials& credentials, const Digest& digest,
                    size_t maxBytes, std::function<void(grpc::Status, std::string body)> done);
  void downloadBlob(const PullSource& source, const Credentials& credentials,
                    const Descriptor& blob, const std::string& path,
                    std::function<void(int64_t downloaded)> progress,
                    std::function<void(grpc::Status)> done);
  void unpackLayer(const std::string& blobPath, const std::string& directory,
                   std::function<void(LayerUnpackResult)> done);
  void readImport(const std::string& path, const std::string& name, const Platform& platform,
                  const std::string& scratch,
                  std::function<void(grpc::Status, std::string plan)> done);

  // Daemon shutdown: the worker is let go now (calls in flight fail); its exit is still reaped.
  void shutdown();

  bool running() const { return process_ != nullptr; }
  loop::Loop& loop() { return loop_; }
  pid_t pid() const { return process_ ? process_->pid() : 0; }
  uint64_t starts() const { return starts_; }

 private:
  // The connection to a running worker (started if needed), or null with `error`.
  grpc::GrpcClient* connection(grpc::Status& error);
  void callStarted();
  void callEnded();
  void letGo();

  loop::Loop& loop_;
  ImageWorkerOptions options_;
  std::unique_ptr<loop::ChildProcess> process_;
  std::unique_ptr<grpc::GrpcClient> client_;
  loop::HandlePtr<loop::Timer> idleTimer_;
  size_t callsInFlight_ = 0;
  uint64_t starts_ = 0;
  loop::LifetimeGuard lifetime_;
};

}  // namespace monocri::oci
