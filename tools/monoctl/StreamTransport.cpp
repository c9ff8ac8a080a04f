#include "monoctl/StreamTransport.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "exec/OpenSslErrors.h"

namespace monocri::monoctl {

using exec::openSslErrors;

namespace {

bool isIpAddress(const std::string& host) {
  return host.find(':') != std::string::npos ||
         host.find_first_not_of("0123456789.") == std::string::npos;
}

}  // namespace

std::unique_ptr<StreamTransport> StreamTransport::plain(state::UniqueFd fd) {
  return std::unique_ptr<StreamTransport>(new StreamTransport(std::move(fd)));
}

std::unique_ptr<StreamTransport> StreamTransport::tls(state::UniqueFd fd, const std::string& host,
                                                      const TlsClientOptions& options,
                                                      Clock::time_point deadline,
                                                      std::string& error) {
  std::unique_ptr<StreamTransport> transport(new StreamTransport(std::move(fd)));
  ERR_clear_error();
  transport->ctx_ = SSL_CTX_new(TLS_client_method());
  if (transport->ctx_ == nullptr) {
    error = "cannot make a TLS context: " + openSslErrors();
    return nullptr;
  }
  SSL_CTX* ctx = transport->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // A TCP close is the end of the stream, as over plain http (the server's close_notify is not
  // waited for when it drops a session).
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (!options.insecureSkipVerify) {
    SSL_CTX_set_default_verify_paths(ctx);
    if (!options.caFile.empty() &&
        SSL_CTX_load_verify_locations(ctx, options.caFile.c_str(), nullptr) != 1) {
      error = fmt::format("--stream-ca {}: {}", options.caFile, openSslErrors());
      return nullptr;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  if (!options.certFile.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, options.certFile.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, options.keyFile.c_str(), SSL_FILETYPE_PEM) != 1) {
      error = fmt::format("--stream-cert {} / --stream-key {}: {}", options.certFile,
                          options.keyFile, openSslErrors());
      return nullptr;
    }
  }
  transport->ssl_ = SSL_new(ctx);
  SSL* ssl = transport->ssl_;
  if (ssl == nullptr || SSL_set_fd(ssl, transport->fd()) != 1) {
    error = "cannot make a TLS connection: " + openSslErrors();
    return nullptr;
  }
  if (isIpAddress(host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host.c_str());
    SSL_set1_host(ssl, host.c_str());
  }
  for (;;) {
    ERR_clear_error();
    const int rc = SSL_connect(ssl);
    if (rc == 1) return transport;
    const int why = SSL_get_error(ssl, rc);
    if (why == SSL_ERROR_WANT_READ || why == SSL_ERROR_WANT_WRITE) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{transport->fd(), static_cast<short>(why == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT),
               0};
      if (left > 0 && poll(&p, 1, static_cast<int>(left)) > 0) continue;
      if (left > 0 && errno == EINTR) continue;
      error = "TLS handshake with the streaming server: timed out";
      return nullptr;
    }
    const long verified = SSL_get_verify_result(ssl);
    if (verified != X509_V_OK) {
      error = fmt::format(
          "the streaming server's certificate is not trusted: {} (give its CA with --stream-ca, "
          "or skip the check with --stream-insecure-skip-verify)",
          X509_verify_cert_error_string(verified));
    } else {
      std::string reason = openSslErrors("");
      if (reason.empty()) reason = why == SSL_ERROR_SYSCALL ? std::strerror(errno) : "refused";
      error = "TLS handshake with the streaming server failed: " + reason;
    }
    return nullptr;
  }
}

StreamTransport::~StreamTransport() {
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
}

ssize_t StreamTransport::send(const char* data, size_t size) {
  waitEvents_ = 0;
  if (ssl_ == nullptr) return ::send(fd_.get(), data, size, MSG_NOSIGNAL);
  ERR_clear_error();
  size_t written = 0;
  const int rc = SSL_write_ex(ssl_, data, size, &written);
  return tlsResult(rc, written);
}

ssize_t StreamTransport::recv(char* data, size_t size) {
  waitEvents_ = 0;
  if (ssl_ == nullptr) return ::recv(fd_.get(), data, size, 0);
  ERR_clear_error();
  size_t read = 0;
  const int rc = SSL_read_ex(ssl_, data, size, &read);
  return tlsResult(rc, read);
}

ssize_t StreamTransport::tlsResult(int rc, size_t moved) {
  if (rc == 1) return static_cast<ssize_t>(moved);
  switch (SSL_get_error(ssl_, rc)) {
    case SSL_ERROR_WANT_READ:
      waitEvents_ = POLLIN;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      waitEvents_ = POLLOUT;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      if (errno == 0) errno = EPIPE;
      return -1;
    default:
      error_ = "TLS: " + openSslErrors();
      errno = EPROTO;
      return -1;
  }
}

}  // namespace monocri::monoctl
