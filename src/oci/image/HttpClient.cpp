#include "oci/image/HttpClient.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

namespace monocri::oci {

namespace {

// Connections kept per host: registries serve layers in parallel, a pull needs a few.
constexpr long kMaxConnectionsPerHost = 8;
// How often transfers are checked for a stall.
constexpr uint64_t kStallCheckMs = 250;

void initCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      spdlog::critical("curl_global_init failed");
      std::abort();
    }
  });
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' ||
                           text.back() == '\n')) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  const std::string key = lowercase(name);
  for (const auto& [k, v] : headers) {
    if (k == key) return v;
  }
  return {};
}

struct HttpClient::Transfer {
  HttpClient* client = nullptr;
  uint64_t id = 0;
  CURL* easy = nullptr;
  curl_slist* headerList = nullptr;
  HttpRequest request;
  ResponseCallback onResponse;
  DataCallback onData;
  DoneCallback onDone;
  HttpResponse response;
  bool inFinalResponse = false;  // its headers are complete and delivered
  bool abortedByCaller = false;
  uint64_t lastActivityMs = 0;  // loop time of the last byte (or of the start)
  char errorBuffer[CURL_ERROR_SIZE] = {};

  ~Transfer() {
    if (headerList) curl_slist_free_all(headerList);
    if (easy) curl_easy_cleanup(easy);
  }
};

HttpClient::HttpClient(loop::Loop& loop, std::string userAgent)
    : loop_(loop), userAgent_(std::move(userAgent)) {
  initCurlOnce();
  multi_ = curl_multi_init();
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, onSocket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, onTimer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, kMaxConnectionsPerHost);
  timer_ = loop::Timer::create(loop_, "http timer");
  stallTimer_ = loop::Timer::create(loop_, "http stall check");
}

HttpClient::~HttpClient() {
  for (auto& [id, transfer] : transfers_)
    curl_multi_remove_handle(multi_, transfer->easy);
  transfers_.clear();
  curl_multi_cleanup(multi_);  // may still report sockets to remove: polls_ is alive
  polls_.clear();
}

uint64_t HttpClient::start(HttpRequest request, ResponseCallback onResponse, DataCallback onData,
                           DoneCallback onDone) {
  auto transfer = std::make_unique<Transfer>();
  transfer->client = this;
  transfer->id = nextId_++;
  transfer->request = std::move(request);
  transfer->onResponse = std::move(onResponse);
  transfer->onData = std::move(onData);
  transfer->onDone = std::move(onDone);
  CURL* easy = curl_easy_init();
  transfer->easy = easy;
  const HttpRequest& r = transfer->request;

  curl_easy_setopt(easy, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer.get());
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->errorBuffer);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, userAgent_.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, r.followRedirects ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connectTimeoutMs));
  // The stall timeout is watched by checkStalls(): curl's own low-speed check averages over
  // about five seconds, and in multi-socket mode nothing of curl runs while a socket is quiet.
  transfer->lastActivityMs = loop_.nowMs();
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, r.verifyTls ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, r.verifyTls ? 2L : 0L);
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");  // what the server compresses, we inflate
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, onHeaderLine);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer.get());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, onBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get());
  if (r.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (r.method == "POST") {
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r.body.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(r.body.size()));
  } else if (r.method != "GET") {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }
  if (r.resumeFrom != 0) {
    curl_easy_setopt(easy, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(r.resumeFrom));
  }
  for (const auto& header : r.headers) {
    transfer->headerList = curl_slist_append(transfer->headerList, header.c_str());
  }
  if (transfer->headerList) curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headerList);

  const uint64_t id = transfer->id;
  transfers_.emplace(id, std::move(transfer));
  curl_multi_add_handle(multi_, easy);
  if (!stallTimer_->active()) {
    stallTimer_->start(kStallCheckMs, kStallCheckMs, [this] { checkStalls(); });
  }
  return id;
}

void HttpClient::checkStalls() {
  const uint64_t now = loop_.nowMs();
  std::vector<uint64_t> stalled;
  for (const auto& [id, transfer] : transfers_) {
    if (now - transfer->lastActivityMs >= transfer->request.stallTimeoutMs) stalled.push_back(id);
  }
  for (uint64_t id : stalled) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) continue;  // a done callback ended it meanwhile
    std::unique_ptr<Transfer> transfer = std::move(it->second);
    transfers_.erase(it);
    curl_multi_remove_handle(multi_, transfer->easy);
    HttpResponse response = std::move(transfer->response);
    if (!transfer->inFinalResponse) {
      response.headers.clear();
      response.status = 0;
    }
    response.timedOut = true;
    response.transportError = fmt::format("no data for {} ms", transfer->request.stallTimeoutMs);
    if (transfer->onDone) transfer->onDone(std::move(response));
  }
  if (transfers_.empty()) stallTimer_->stop();
}

void HttpClient::cancel(uint64_t id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  curl_multi_remove_handle(multi_, it->second->easy);
  transfers_.erase(it);
}

uint64_t HttpClient::fetch(HttpRequest request, size_t maxBytes, BufferedCallback done) {
  struct State {
    std::string body;
    bool tooLarge = false;
  };
  auto state = std::make_shared<State>();
  return start(
      std::move(request), [](const HttpResponse&) { return true; },
      [state, maxBytes](std::string_view data) {
        if (state->body.size() + data.size() > maxBytes) {
          state->tooLarge = true;
          return false;
        }
        state->body.append(data);
        return true;
      },
      [state, done = std::move(done)](HttpResponse response) {
        done(std::move(response), std::move(state->body), state->tooLarge);
      });
}

size_t HttpClient::onHeaderLine(char* data, size_t size, size_t count, void* opaque) {
  auto* transfer = static_cast<Transfer*>(opaque);
  const size_t length = size * count;
  transfer->lastActivityMs = transfer->client->loop_.nowMs();
  std::string_view line(data, length);
  if (line.starts_with("HTTP/")) {  // a new response (after a redirect or 100 Continue)
    transfer->response.headers.clear();
    const size_t space = line.find(' ');
    transfer->response.status =
        space == std::string_view::npos ? 0 : std::strtol(data + space + 1, nullptr, 10);
    return length;
  }
  if (trim(line).empty()) {  // end of this response's headers
    const long status = transfer->response.status;
    const bool redirect = transfer->request.followRedirects && status >= 300 && status < 400 &&
                          !transfer->response.header("location").empty();
    if (status >= 200 && !redirect) {
      transfer->inFinalResponse = true;
      if (transfer->onResponse && !transfer->onResponse(transfer->response)) {
        transfer->abortedByCaller = true;
        return 0;  // aborts the transfer
      }
    }
    return length;
  }
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    transfer->response.headers.emplace_back(lowercase(trim(line.substr(0, colon))),
                                            std::string(trim(line.substr(colon + 1))));
  }
  return length;
}

size_t HttpClient::onBody(char* data, size_t size, size_t count, void* opaque) {
  auto* transfer = static_cast<Transfer*>(opaque);
  const size_t length = size * count;
  transfer->lastActivityMs = transfer->client->loop_.nowMs();
  if (!transfer->inFinalResponse) return length;  // a redirect's body
  if (transfer->onData && !transfer->onData(std::string_view(data, length))) {
    transfer->abortedByCaller = true;
    return CURL_WRITEFUNC_ERROR;
  }
  return length;
}

int HttpClient::onSocket(CURL*, curl_socket_t socket, int what, void* opaque, void*) {
  auto* self = static_cast<HttpClient*>(opaque);
  if (what == CURL_POLL_REMOVE) {
    self->polls_.erase(socket);  // stops watching before libcurl closes the descriptor
    return 0;
  }
  auto& poll = self->polls_[socket];
  if (!poll) {
    poll = loop::Poll::create(self->loop_, socket);
    if (!poll) return -1;
  }
  int events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= UV_WRITABLE;
  poll->start(events, [self, socket](int status, int ready) {
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (ready & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (ready & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    self->act(socket, flags);
  });
  return 0;
}

int HttpClient::onTimer(CURLM*, long timeoutMs, void* opaque) {
  auto* self = static_cast<HttpClient*>(opaque);
  if (timeoutMs < 0) {
    self->timer_->stop();
    return 0;
  }
  // libcurl must not be called from inside this callback: act on the next loop turn at least.
  self->timer_->start(static_cast<uint64_t>(timeoutMs), 0,
                      [self] { self->act(CURL_SOCKET_TIMEOUT, 0); });
  return 0;
}

void HttpClient::act(curl_socket_t socket, int flags) {
  int running = 0;
  curl_multi_socket_action(multi_, socket, flags, &running);
  collectFinished();
}

void HttpClient::collectFinished() {
  int pending = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_, &pending)) {
    if (message->msg != CURLMSG_DONE) continue;
    Transfer* raw = nullptr;
    curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &raw);
    const CURLcode result = message->data.result;
    curl_multi_remove_handle(multi_, message->easy_handle);
    auto it = transfers_.find(raw->id);
    std::unique_ptr<Transfer> transfer = std::move(it->second);
    transfers_.erase(it);

    HttpResponse response = std::move(transfer->response);
    if (!transfer->inFinalResponse) response.headers.clear();
    if (transfer->abortedByCaller) {
      response.aborted = true;
    } else if (result != CURLE_OK) {
      response.transportError =
          transfer->errorBuffer[0] != '\0' ? transfer->errorBuffer : curl_easy_strerror(result);
      response.timedOut = result == CURLE_OPERATION_TIMEDOUT;
      response.tlsFailed = result == CURLE_SSL_CONNECT_ERROR ||
                           result == CURLE_PEER_FAILED_VERIFICATION ||
                           result == CURLE_SSL_CACERT_BADFILE;
      if (!transfer->inFinalResponse) response.status = 0;
    }
    if (transfer->onDone) transfer->onDone(std::move(response));
  }
}

}  // namespace monocri::oci
