// HTTP(S) on libcurl's multi interface, driven by the loop: libcurl says which sockets to watch
// (loop::Poll) and when to wake it (loop::Timer), so a transfer never blocks the loop. Bodies
// stream to the caller as they arrive. Proxies come from the usual environment variables.
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "loop/Poll.h"
#include "loop/Timer.h"

namespace monocri::oci {

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, POST
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // for POST
  bool verifyTls = true;
  uint64_t resumeFrom = 0;  // asks for bytes from here on (Range), if not 0
  uint64_t connectTimeoutMs = 30'000;
  uint64_t stallTimeoutMs = 60'000;  // fail when no byte arrives for this long
  bool followRedirects = true;       // registries redirect blobs to storage backends
};

struct HttpResponse {
  long status = 0;                                           // 0: no response (see transportError)
  std::vector<std::pair<std::string, std::string>> headers;  // final response; names lowercase
  std::string transportError;  // connection refused, TLS failure, timeout...: curl's words
  bool timedOut = false;
  bool tlsFailed = false;  // the server did not speak TLS, or its certificate was refused
  bool aborted = false;    // the caller's callback stopped the transfer

  std::string header(std::string_view name) const;  // "" if absent
  bool ok() const { return status >= 200 && status < 300; }
};

class HttpClient {
 public:
  explicit HttpClient(loop::Loop& loop, std::string userAgent);
  ~HttpClient();  // ends every transfer; their callbacks do not run
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Called once the final response's headers are in (after redirects); false aborts.
  using ResponseCallback = std::function<bool(const HttpResponse&)>;
  // Called with each piece of the final response's body; false aborts.
  using DataCallback = std::function<bool(std::string_view)>;
  // Called once, with the outcome.
  using DoneCallback = std::function<void(HttpResponse)>;

  // Starts a transfer; the id cancels it. Callbacks must not destroy this client.
  uint64_t start(HttpRequest request, ResponseCallback onResponse, DataCallback onData,
                 DoneCallback onDone);
  // Ends a transfer at once; its done callback does not run. Not from inside this transfer's
  // response or data callback (return false there instead).
  void cancel(uint64_t id);

  // Convenience: the whole body, refused (aborted, `tooLarge`) past `maxBytes`.
  using BufferedCallback =
      std::function<void(HttpResponse response, std::string body, bool tooLarge)>;
  uint64_t fetch(HttpRequest request, size_t maxBytes, BufferedCallback done);

  size_t activeTransfers() const { return transfers_.size(); }

 private:
  struct Transfer;
  static int onSocket(CURL* easy, curl_socket_t socket, int what, void* self, void* socketData);
  static int onTimer(CURLM* multi, long timeoutMs, void* self);
  static size_t onHeaderLine(char* data, size_t size, size_t count, void* transfer);
  static size_t onBody(char* data, size_t size, size_t count, void* transfer);
  void act(curl_socket_t socket, int flags);
  void collectFinished();
  void checkStalls();

  loop::Loop& loop_;
  std::string userAgent_;
  CURLM* multi_ = nullptr;
  loop::HandlePtr<loop::Timer> timer_;
  loop::HandlePtr<loop::Timer> stallTimer_;
  std::unordered_map<curl_socket_t, loop::HandlePtr<loop::Poll>> polls_;
  std::map<uint64_t, std::unique_ptr<Transfer>> transfers_;
  uint64_t nextId_ = 1;
};

}  // namespace monocri::oci
