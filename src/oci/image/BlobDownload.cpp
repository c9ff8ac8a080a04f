#include "oci/image/BlobDownload.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace monocri::oci {

using grpc::Status;
using grpc::StatusCode;

namespace {
// Attempts per download, with the waits between them.
constexpr int kAttempts = 4;
constexpr uint64_t kRetryDelaysMs[] = {500, 1000, 2000};
// Bytes are written in pieces of this size (fewer system calls).
constexpr size_t kWriteBufferBytes = 1024 * 1024;
}  // namespace

std::shared_ptr<BlobDownload> BlobDownload::start(loop::Loop& loop, RegistryClient& registry,
                                                  PullSource source, Credentials credentials,
                                                  Descriptor blob, std::string path,
                                                  Progress onProgress, Done onDone) {
  std::shared_ptr<BlobDownload> download(new BlobDownload());
  download->self_ = download;
  download->loop_ = &loop;
  download->registry_ = &registry;
  download->source_ = std::move(source);
  download->credentials_ = std::move(credentials);
  download->blob_ = std::move(blob);
  download->path_ = std::move(path);
  download->onProgress_ = std::move(onProgress);
  download->onDone_ = std::move(onDone);
  download->fd_ =
      ::open(download->path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (download->fd_ < 0) {
    download->finish(Status(StatusCode::kInternal,
                            fmt::format("create {}: {}", download->path_, std::strerror(errno))));
    return download;
  }
  download->hasher_ = std::make_unique<Sha256>();
  download->attempt();
  return download;
}

BlobDownload::~BlobDownload() {
  if (fd_ >= 0) ::close(fd_);
}

void BlobDownload::drop() {
  onProgress_ = nullptr;
  onDone_ = nullptr;
  retryTimer_.reset();
}

bool BlobDownload::flush() {
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      writeError_ = Status(errno == ENOSPC ? StatusCode::kResourceExhausted : StatusCode::kInternal,
                           fmt::format("writing {}: {}", path_, std::strerror(errno)));
      return false;
    }
    done += static_cast<size_t>(n);
  }
  buffer_.clear();
  return true;
}

void BlobDownload::attempt() {
  ++attempts_;
  std::weak_ptr<BlobDownload> weak = self_;
  RegistryClient::BlobStream stream;
  stream.onStart = [weak](bool resumed) {
    auto self = weak.lock();
    if (!self || resumed || self->downloaded_ == 0) return;
    // The registry ignored the Range: start the file and the digest again.
    self->buffer_.clear();
    if (ftruncate(self->fd_, 0) != 0 || lseek(self->fd_, 0, SEEK_SET) != 0) {
      self->writeError_ = Status(StatusCode::kInternal, "cannot restart a download file");
    }
    self->hasher_ = std::make_unique<Sha256>();
    self->downloaded_ = 0;
  };
  stream.onData = [weak](std::string_view data) {
    auto self = weak.lock();
    if (!self || !self->writeError_.isOk()) return false;
    if (self->downloaded_ + static_cast<int64_t>(data.size()) > self->blob_.size) {
      self->writeError_ =
          Status(StatusCode::kDataLoss, fmt::format("blob {} is larger than the {} bytes its "
                                                    "manifest says",
                                                    self->blob_.digest.str(), self->blob_.size));
      return false;
    }
    self->hasher_->update(data);
    self->buffer_.append(data);
    self->downloaded_ += static_cast<int64_t>(data.size());
    if (self->onProgress_) self->onProgress_(self->downloaded_);
    return self->buffer_.size() < kWriteBufferBytes || self->flush();
  };
  stream.onDone = [weak](Status status) {
    auto self = weak.lock();
    if (!self) return;
    if (!self->writeError_.isOk()) status = self->writeError_;
    if (!self->flush() && status.isOk()) status = self->writeError_;
    const bool transient = status.code() == StatusCode::kUnavailable;
    if (status.isOk() || !transient || self->attempts_ >= kAttempts) {
      self->finish(status);
      return;
    }
    const uint64_t delay = kRetryDelaysMs[std::min<size_t>(self->attempts_ - 1, 2)];
    spdlog::info("blob {}: {}; retrying in {} ms from byte {}", self->blob_.digest.str(),
                 status.toString(), delay, self->downloaded_);
    self->retryTimer_ = loop::Timer::create(*self->loop_, "blob download retry");
    self->retryTimer_->start(delay, 0, [weak] {
      if (auto again = weak.lock()) again->attempt();
    });
  };
  registry_->streamBlob(source_, credentials_, blob_.digest, static_cast<uint64_t>(downloaded_),
                        std::move(stream));
}

void BlobDownload::finish(Status status) {
  if (status.isOk()) {
    if (downloaded_ != blob_.size) {
      status =
          Status(StatusCode::kDataLoss, fmt::format("blob {} ended after {} of its {} bytes",
                                                    blob_.digest.str(), downloaded_, blob_.size));
    } else if (Digest got = hasher_->finish(); got != blob_.digest) {
      status = Status(StatusCode::kDataLoss,
                      fmt::format("blob {} from {} does not match its digest (got {})",
                                  blob_.digest.str(), source_.ref.domain, got.str()));
    }
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  auto done = std::move(onDone_);
  onDone_ = nullptr;
  onProgress_ = nullptr;
  if (done) done(status);
}

}  // namespace monocri::oci
