// The byte stream under monoctl's SpdyClient: the TCP socket to the streaming server, or TLS
// over it when the URL is https (OpenSSL on the non-blocking socket, driven by the same poll
// loop). send() and recv() behave as send(2) and recv(2) do on a non-blocking socket.
#pragma once

#include <openssl/ssl.h>
#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "state/UniqueFd.h"

namespace monocri::monoctl {

// How monoctl checks an https streaming server. By default its certificate must chain to a CA
// the system trusts or to `caFile`, and name the URL's host; a server that asks for a client
// certificate gets `certFile` and `keyFile`.
struct TlsClientOptions {
  std::string caFile;
  std::string certFile, keyFile;
  bool insecureSkipVerify = false;
};

class StreamTransport {
 public:
  using Clock = std::chrono::steady_clock;

  static std::unique_ptr<StreamTransport> plain(state::UniqueFd fd);
  // Runs the TLS handshake on the connected `fd` by `deadline`; null with `error` saying what
  // failed (the certificate check and how to fix it, a refusal, the timeout).
  static std::unique_ptr<StreamTransport> tls(state::UniqueFd fd, const std::string& host,
                                              const TlsClientOptions& options,
                                              Clock::time_point deadline, std::string& error);
  ~StreamTransport();
  StreamTransport(const StreamTransport&) = delete;
  StreamTransport& operator=(const StreamTransport&) = delete;

  int fd() const { return fd_.get(); }
  // Bytes moved; 0 at the end (recv); -1 with errno: EAGAIN (then wait for waitEvents()),
  // EPROTO for a TLS failure (error() says which), or the socket's error.
  ssize_t send(const char* data, size_t size);
  ssize_t recv(char* data, size_t size);
  // What the last EAGAIN waits for (TLS may need to read to write, or the other way round).
  short waitEvents(short fallback) const { return waitEvents_ != 0 ? waitEvents_ : fallback; }
  // Bytes decrypted and not yet taken: poll(2) does not see them.
  size_t pending() const { return ssl_ != nullptr ? static_cast<size_t>(SSL_pending(ssl_)) : 0; }
  const std::string& error() const { return error_; }

 private:
  explicit StreamTransport(state::UniqueFd fd) : fd_(std::move(fd)) {}
  ssize_t tlsResult(int rc, size_t moved);

  state::UniqueFd fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  short waitEvents_ = 0;
  std::string error_;
};

}  // namespace monocri::monoctl
