#include "exec/TlsConnection.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <deque>

#include "exec/OpenSslErrors.h"

namespace monocri::exec {

namespace {

// Memory BIOs keep their largest size for the connection's life: plaintext is encrypted, and
// received records are fed to OpenSSL, this much at a time so that neither grows past about it.
constexpr size_t kEncryptChunkBytes = 64 * 1024;
constexpr size_t kFeedChunkBytes = 32 * 1024;

// Decrypted bytes go here on their way to the owner (one record at most, 16 KiB): one buffer for
// every connection, as the loop's read buffer is (the cipher bytes being fed may still be in
// that one).
char plaintextBuffer[16 * 1024];

class TlsConnection final : public ClientConnection {
 public:
  TlsConnection(loop::Loop& loop, loop::HandlePtr<loop::PipeStream> socket, SSL* ssl, BIO* in,
                BIO* out)
      : loop_(loop), socket_(std::move(socket)), ssl_(ssl), in_(in), out_(out) {}
  ~TlsConnection() override { SSL_free(ssl_); }  // and its BIOs

  int startReading(DataCallback onData, EndCallback onEnd) override {
    onData_ = std::move(onData);
    onEnd_ = std::move(onEnd);
    return resumeReading();
  }

  void stopReading() override {
    reading_ = false;
    socket_->stopReading();
  }

  int resumeReading() override {
    if (reading_ || ended_) return 0;
    const int rc = socketStarted_
                       ? socket_->resumeReading()
                       : socket_->startReading([this](std::string_view bytes) { onCipher(bytes); },
                                               [this](int status) { onSocketEnd(status); });
    if (rc != 0) return rc;
    socketStarted_ = true;
    reading_ = true;
    // Records already received, or plaintext already decrypted, wait for no new bytes: they
    // are delivered from a clean stack (the caller may be inside its own data callback).
    if (!pumpScheduled_ && (BIO_ctrl_pending(in_) > 0 || SSL_pending(ssl_) > 0)) {
      pumpScheduled_ = true;
      loop_.defer(lifetime_.watch(), [this] {
        pumpScheduled_ = false;
        pump();
      });
    }
    return 0;
  }

  bool reading() const override { return reading_; }

  int write(std::string data, std::function<void(int)> done) override {
    if (broken_) return UV_EPIPE;
    if (!SSL_is_init_finished(ssl_)) {
      // Nothing is written before the client's request, so this is rare: kept until the
      // handshake is through.
      earlyBytes_ += data.size();
      early_.push_back(EarlyWrite{std::move(data), std::move(done)});
      return 0;
    }
    return encrypt(data, std::move(done));
  }

  size_t writeQueueBytes() const override { return socket_->writeQueueBytes() + earlyBytes_; }

  int shutdown(std::function<void(int)> done) override {
    if (!broken_ && SSL_is_init_finished(ssl_)) {
      ERR_clear_error();
      SSL_shutdown(ssl_);  // queues close_notify; the client's is not waited for
      flushRecords(nullptr);
    }
    return socket_->shutdown(std::move(done));
  }

  void setLabel(std::string_view label) override { socket_->setLabel(label); }

 private:
  struct EarlyWrite {
    std::string data;
    std::function<void(int)> done;
  };

  void onCipher(std::string_view bytes) {
    while (!bytes.empty() && !ended_) {
      // Fed in pieces, each taken out by the pump before the next; once the owner stopped
      // reading, what is left of this read waits in the BIO.
      const size_t piece = reading_ ? std::min(bytes.size(), kFeedChunkBytes) : bytes.size();
      if (BIO_write(in_, bytes.data(), static_cast<int>(piece)) != static_cast<int>(piece)) {
        return fail("buffering a record");
      }
      bytes.remove_prefix(piece);
      pump();
    }
  }

  void onSocketEnd(int status) { endWith(status); }

  // Runs the handshake, then hands decrypted bytes to the owner while it reads.
  void pump() {
    while (!ended_) {
      ERR_clear_error();
      if (!SSL_is_init_finished(ssl_)) {
        const int rc = SSL_do_handshake(ssl_);
        flushRecords(nullptr);
        if (rc != 1) {
          if (SSL_get_error(ssl_, rc) == SSL_ERROR_WANT_READ) return;
          return fail("handshake");
        }
        for (EarlyWrite& early : std::exchange(early_, {}))
          encrypt(early.data, std::move(early.done));
        earlyBytes_ = 0;
        continue;
      }
      if (!reading_) return;
      const int n = SSL_read(ssl_, plaintextBuffer, sizeof plaintextBuffer);
      if (n > 0) {
        onData_(std::string_view(plaintextBuffer, static_cast<size_t>(n)));
        continue;
      }
      const int error = SSL_get_error(ssl_, n);
      flushRecords(nullptr);  // a post-handshake message may want an answer
      if (error == SSL_ERROR_WANT_READ) return;
      if (error == SSL_ERROR_ZERO_RETURN) return endWith(UV_EOF);  // the client's close_notify
      return fail("read");
    }
  }

  int encrypt(std::string_view data, std::function<void(int)> done) {
    if (broken_) return UV_EPIPE;
    std::string records;
    while (!data.empty()) {
      const size_t chunk = std::min(data.size(), kEncryptChunkBytes);
      size_t written = 0;
      ERR_clear_error();
      if (SSL_write_ex(ssl_, data.data(), chunk, &written) != 1) {
        broken_ = true;
        spdlog::info("streaming server: TLS write failed: {}", openSslErrors());
        // The owner may not be reading: it learns of the end all the same.
        loop_.defer(lifetime_.watch(), [this] { endWith(UV_EPROTO); });
        return UV_EPROTO;
      }
      data.remove_prefix(written);
      takeRecords(records);
    }
    return socket_->write(std::move(records), std::move(done));
  }

  // Moves what OpenSSL wrote to the client (records, alerts) onto the socket.
  void flushRecords(std::function<void(int)> done) {
    std::string records;
    takeRecords(records);
    if (!records.empty() || done) socket_->write(std::move(records), std::move(done));
  }

  void takeRecords(std::string& out) {
    const size_t pending = BIO_ctrl_pending(out_);
    if (pending == 0) return;
    const size_t at = out.size();
    out.resize(at + pending);
    const int n = BIO_read(out_, out.data() + at, static_cast<int>(pending));
    out.resize(at + static_cast<size_t>(std::max(n, 0)));
  }

  void fail(const char* what) {
    const unsigned long first = ERR_peek_error();
    const bool plainHttp =
        ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_HTTP_REQUEST;
    spdlog::info("streaming server: TLS {} failed: {}", what, openSslErrors());
    broken_ = true;
    if (plainHttp) {
      // What an https server answers a client that forgot it (Go's words, for kubectl users).
      socket_->write(
          "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
          "Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n");
    } else {
      flushRecords(nullptr);  // the alert saying why, if OpenSSL made one
    }
    endWith(UV_EPROTO);
  }

  void endWith(int status) {
    if (ended_) return;
    ended_ = true;
    reading_ = false;
    socket_->stopReading();
    if (onEnd_) onEnd_(status);
  }

  loop::Loop& loop_;
  loop::HandlePtr<loop::PipeStream> socket_;
  SSL* ssl_;
  BIO* in_;   // records from the client, owned by ssl_
  BIO* out_;  // records to the client, owned by ssl_
  DataCallback onData_;
  EndCallback onEnd_;
  std::deque<EarlyWrite> early_;
  size_t earlyBytes_ = 0;
  bool socketStarted_ = false;
  bool reading_ = false;
  bool ended_ = false;
  bool broken_ = false;
  bool pumpScheduled_ = false;
  loop::LifetimeGuard lifetime_;
};

}  // namespace

std::string TlsServerContext::build(const TlsFiles& files, CtxPtr& out) {
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return "cannot make a TLS context: " + openSslErrors();
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(),
                      SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  // Each session is one connection: no resumption, and idle connections give back their
  // record buffers.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), files.certFile.c_str()) != 1) {
    return fmt::format("stream_tls_cert {}: {}", files.certFile, openSslErrors());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), files.keyFile.c_str(), SSL_FILETYPE_PEM) != 1 &&
      ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
    return fmt::format("stream_tls_key {}: {}", files.keyFile, openSslErrors());
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return fmt::format("stream_tls_key {} is not the key of stream_tls_cert {}: {}", files.keyFile,
                       files.certFile, openSslErrors());
  }
  if (!files.caFile.empty()) {
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.caFile.c_str());
    if (names == nullptr ||
        SSL_CTX_load_verify_locations(ctx.get(), files.caFile.c_str(), nullptr) != 1) {
      if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
      return fmt::format("stream_tls_ca {}: {}", files.caFile,
                         ERR_peek_error() != 0 ? openSslErrors() : "no certificate in it");
    }
    SSL_CTX_set_client_CA_list(ctx.get(), names);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  out = std::move(ctx);
  return {};
}

TlsServerContext::Stamps TlsServerContext::stamps() const {
  Stamps out{};
  const std::string* paths[] = {&files_.certFile, &files_.keyFile, &files_.caFile};
  for (size_t i = 0; i < out.size(); ++i) {
    struct stat st {};
    if (paths[i]->empty() || ::stat(paths[i]->c_str(), &st) != 0) continue;
    out[i] = FileStamp{st.st_dev, st.st_ino,
                       int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec, st.st_size};
  }
  return out;
}

std::string TlsServerContext::load(const TlsFiles& files) {
  files_ = files;
  stamps_ = stamps();
  return build(files_, ctx_);
}

SSL_CTX* TlsServerContext::current(uint64_t nowMs) {
  if (nowMs - checkedMs_ < kRecheckMs) return ctx_.get();
  checkedMs_ = nowMs;
  const Stamps now = stamps();
  if (now == stamps_ || now == failedStamps_) return ctx_.get();
  CtxPtr fresh;
  if (std::string error = build(files_, fresh); !error.empty()) {
    // Often a rotation caught between writing the certificate and the key: tried again when
    // a file changes once more.
    spdlog::warn(
        "streaming server: the TLS files changed but do not load ({}); still serving "
        "the certificate loaded before",
        error);
    failedStamps_ = now;
    return ctx_.get();
  }
  spdlog::info("streaming server: TLS certificate reloaded from {}", files_.certFile);
  ctx_ = std::move(fresh);
  stamps_ = now;
  ++reloads_;
  return ctx_.get();
}

std::unique_ptr<ClientConnection> tlsConnection(loop::Loop& loop,
                                                loop::HandlePtr<loop::PipeStream> socket,
                                                SSL_CTX* ctx, std::string& error) {
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (ssl == nullptr || in == nullptr || out == nullptr) {
    error = "cannot make a TLS connection: " + openSslErrors();
    BIO_free(in);
    BIO_free(out);
    SSL_free(ssl);
    return nullptr;
  }
  BIO_set_mem_eof_return(in, -1);  // no bytes yet means "wait", not the end
  SSL_set_bio(ssl, in, out);
  SSL_set_accept_state(ssl);
  return std::make_unique<TlsConnection>(loop, std::move(socket), ssl, in, out);
}

}  // namespace monocri::exec
