// TLS for the streaming server (OpenSSL, memory BIOs): the loop moves the ciphertext, OpenSSL
// never touches the socket, so a TLS connection pauses, resumes and back-pressures exactly as a
// plain one does.
#pragma once

#include <openssl/ssl.h>
#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "exec/ClientConnection.h"
#include "loop/Loop.h"

namespace monocri::exec {

// The certificate chain and key the server presents (PEM), and optionally the CA bundle client
// certificates must chain to (then a client without one is refused).
struct TlsFiles {
  std::string certFile, keyFile, caFile;
  bool enabled() const { return !certFile.empty(); }
};

// The SSL_CTX connections are made from. Certificates are rotated on disk (cert-manager,
// kubeadm): when a file changed, the next connection gets a context loaded from the new files,
// and connections already open keep theirs. A rotation that fails to load keeps the old context
// and says why.
class TlsServerContext {
 public:
  // How often the files are looked at, at most.
  static constexpr uint64_t kRecheckMs = 1000;

  // "" or what is wrong, naming the file and OpenSSL's reason.
  std::string load(const TlsFiles& files);
  // For a new connection; never null once load() succeeded.
  SSL_CTX* current(uint64_t nowMs);
  uint64_t reloads() const { return reloads_; }

 private:
  struct CtxFree {
    void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
  };
  using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;
  // What says a file changed: a rename in place gives another inode, an edit another mtime.
  struct FileStamp {
    dev_t dev = 0;
    ino_t ino = 0;
    int64_t mtimeNs = 0;
    off_t size = 0;
    bool operator==(const FileStamp&) const = default;
  };
  using Stamps = std::array<FileStamp, 3>;

  static std::string build(const TlsFiles& files, CtxPtr& out);
  Stamps stamps() const;

  TlsFiles files_;
  CtxPtr ctx_;
  Stamps stamps_{};
  Stamps failedStamps_{};  // a rotation that did not load: not tried again until it changes
  uint64_t checkedMs_ = 0;
  uint64_t reloads_ = 0;
};

// The server side of TLS over `socket` with `ctx`; null with `error` set if OpenSSL cannot make
// the connection's state.
std::unique_ptr<ClientConnection> tlsConnection(loop::Loop& loop,
                                                loop::HandlePtr<loop::PipeStream> socket,
                                                SSL_CTX* ctx, std::string& error);

}  // namespace monocri::exec
