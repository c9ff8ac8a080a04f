#include "loop/Loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

namespace monocri::loop {

namespace {

void defaultStallReporter(const StallReport& report) {
  spdlog::warn("loop stall: a turn spent {:.1f} ms in {} callback(s); slowest {:.1f} ms in '{}'",
               static_cast<double>(report.turnBusyNs) / 1e6, report.callbacks,
               static_cast<double>(report.longestNs) / 1e6, report.longestLabel);
}

}  // namespace

Loop::Loop() : stallReporter_(defaultStallReporter) {
  if (int rc = uv_loop_init(&loop_); rc != 0) {
    spdlog::critical("uv_loop_init: {}", uv_strerror(rc));
    std::abort();
  }
  loop_.data = this;
  // Not value-initialized: its pages are touched only by reads.
  readBuffer_.reset(new char[kReadBufferBytes]);

  uv_prepare_init(&loop_, &turnEnd_);
  turnEnd_.data = this;
  uv_prepare_start(&turnEnd_, onPrepare);
  uv_unref(reinterpret_cast<uv_handle_t*>(&turnEnd_));

  uv_idle_init(&loop_, &deferWake_);
  deferWake_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&deferWake_));
}

Loop::~Loop() {
  uv_close(reinterpret_cast<uv_handle_t*>(&turnEnd_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&deferWake_), nullptr);
  // Let every handle still closing reach its close callback, which frees it.
  runDeferred();
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (int rc = uv_loop_close(&loop_); rc != 0) {
    spdlog::error("event loop closed with handles still open: {}", uv_strerror(rc));
  }
}

void Loop::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
}

void Loop::defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&deferWake_))) {
    uv_idle_start(&deferWake_, onIdle);
    uv_ref(reinterpret_cast<uv_handle_t*>(&deferWake_));
  }
}

void Loop::onIdle(uv_idle_t* handle) {
  auto* self = static_cast<Loop*>(handle->data);
  Activity activity(*self, "deferred work");
  self->runDeferred();
}

void Loop::runDeferred() {
  // Work deferred by deferred work runs in the same pass; each item runs exactly once.
  while (!deferred_.empty()) {
    auto fn = std::move(deferred_.front());
    deferred_.pop_front();
    fn();
  }
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&deferWake_))) {
    uv_idle_stop(&deferWake_);
    uv_unref(reinterpret_cast<uv_handle_t*>(&deferWake_));
  }
}

uv_buf_t Loop::readBuffer() {
  return uv_buf_init(readBuffer_.get(), kReadBufferBytes);
}

std::unique_ptr<char[]> Loop::takeReadBuffer() {
  std::unique_ptr<char[]> next;
  if (!spareReadBuffers_.empty()) {
    next = std::move(spareReadBuffers_.back());
    spareReadBuffers_.pop_back();
  } else {
    next.reset(new char[kReadBufferBytes]);
  }
  std::swap(next, readBuffer_);
  return next;
}

void Loop::giveBackReadBuffer(std::unique_ptr<char[]> buffer) {
  // Enough for the batches of a flooding container in flight; more is freed, so that a burst
  // of many does not stay in the daemon's memory.
  constexpr size_t kSpareReadBuffers = 2;
  if (buffer && spareReadBuffers_.size() < kSpareReadBuffers) {
    spareReadBuffers_.push_back(std::move(buffer));
  }
}

void Loop::onPrepare(uv_prepare_t* handle) {
  static_cast<Loop*>(handle->data)->endTurn();
}

void Loop::endTurn() {
  ++turnNumber_;
  if (turnBusyNs_ > stallThresholdNs_) {
    ++stallsReported_;
    if (stallReporter_) {
      stallReporter_(
          StallReport{turnBusyNs_, turnCallbacks_, turnLongestNs_,
                      std::string_view(turnLongestLabel_.data(), turnLongestLabelSize_)});
    }
  }
  turnBusyNs_ = 0;
  turnCallbacks_ = 0;
  turnLongestNs_ = 0;
  turnLongestLabelSize_ = 0;
}

Loop::Activity::Activity(Loop& loop, std::string_view label) : loop_(loop) {
  loop_.currentLabel_ = label;
  if (loop_.activityDepth_++ == 0) startNs_ = uv_hrtime();
}

Loop::Activity::~Activity() {
  if (--loop_.activityDepth_ != 0) return;
  const uint64_t elapsed = uv_hrtime() - startNs_;
  loop_.turnBusyNs_ += elapsed;
  ++loop_.turnCallbacks_;
  if (elapsed >= loop_.turnLongestNs_) {
    loop_.turnLongestNs_ = elapsed;
    const std::string_view label = loop_.currentLabel_;
    loop_.turnLongestLabelSize_ = std::min(label.size(), loop_.turnLongestLabel_.size());
    std::copy_n(label.data(), loop_.turnLongestLabelSize_, loop_.turnLongestLabel_.data());
  }
}

}  // namespace monocri::loop
