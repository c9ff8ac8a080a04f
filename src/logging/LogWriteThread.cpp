#include "logging/LogWriteThread.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <system_error>
#include <utility>

namespace monocri::logging {

namespace {

// Batches kept for reuse, and the largest one kept: a batch is at most one read's records
// (plus a flush's), so a few cover every container flooding at once.
constexpr size_t kPooledBatches = 16;
constexpr size_t kPooledBatchCapacity = 512 * 1024;

uint64_t monotonicNs() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(now.tv_nsec);
}

}  // namespace

std::unique_ptr<LogWriteThread> LogWriteThread::start(loop::Loop& loop, std::string& error) {
  std::unique_ptr<LogWriteThread> self(new LogWriteThread(loop));
  int rc = 0;
  self->resultsReady_ = loop::AsyncSignal::create(
      loop, "container log writes done", [raw = self.get()] { raw->deliverResults(); }, &rc);
  if (!self->resultsReady_) {
    error = std::string("the container log write thread's wake-up handle: ") + uv_strerror(rc);
    return nullptr;
  }
  // Only queued writes keep the loop running (submit() and deliverResults()).
  self->resultsReady_->unref();
  // Signals are the loop's business: the thread starts with all of them blocked.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  try {
    self->thread_ = std::thread([raw = self.get()] { raw->run(); });
  } catch (const std::system_error& e) {
    error = std::string("starting the container log write thread: ") + e.what();
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (!self->thread_.joinable()) return nullptr;
  pthread_setname_np(self->thread_.native_handle(), "monocri-logs");
  return self;
}

LogWriteThread::~LogWriteThread() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void LogWriteThread::submit(std::shared_ptr<const state::UniqueFd> file,
                            std::unique_ptr<RecordBatch> batch, Done done, JournalCommit commit) {
  if (stats_.queuedBatches++ == 0) resultsReady_->ref();
  if (batch) loopCpu_.store(::sched_getcpu(), std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    queued_.push_back(Job{std::move(file), std::move(batch), std::move(done), std::move(commit)});
  }
  wake_.notify_one();
}

std::unique_ptr<RecordBatch> LogWriteThread::takeBatch() {
  if (pool_.empty()) return std::make_unique<RecordBatch>();
  std::unique_ptr<RecordBatch> batch = std::move(pool_.back());
  pool_.pop_back();
  return batch;
}

void LogWriteThread::giveBack(std::unique_ptr<RecordBatch> batch) {
  if (!batch) return;
  if (batch->hasInput()) loop_.giveBackReadBuffer(batch->releaseInput());
  if (pool_.size() >= kPooledBatches || batch->capacityBytes() > kPooledBatchCapacity) return;
  batch->clear();
  pool_.push_back(std::move(batch));
}

LogWriteThread::Stats LogWriteThread::stats() const {
  Stats stats = stats_;
  stats.cpuMoves = cpuMoves_.load(std::memory_order_relaxed);
  return stats;
}

void LogWriteThread::followLoop() {
  const int cpu = loopCpu_.load(std::memory_order_relaxed);
  if (cpu < 0 || cpu >= CPU_SETSIZE || cpu == followedCpu_) return;
  // Tried once per move, whatever comes of it: a CPU it may not use is not asked for again.
  followedCpu_ = cpu;
  cpu_set_t target;
  CPU_AND(&target, &caches_.l2Of(cpu), &startMask_);
  if (CPU_COUNT(&target) == 0) return;
  if (::sched_setaffinity(0, sizeof target, &target) == 0) {
    cpuMoves_.fetch_add(1, std::memory_order_relaxed);
  }
}

void LogWriteThread::run() {
  if (::sched_getaffinity(0, sizeof startMask_, &startMask_) != 0) {
    // Unknown: it follows nobody and runs wherever the scheduler puts it.
    CPU_ZERO(&startMask_);
  }
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !queued_.empty(); });
    if (queued_.empty()) return;  // stopping, and everything is written
    Job job = std::move(queued_.front());
    queued_.pop_front();
    lock.unlock();
    if (job.batch) {
      followLoop();
      const uint64_t started = monotonicNs();
      job.result = job.batch->writeTo(job.file->get());
      job.elapsedNs = monotonicNs() - started;
    }
    // After the records: a state never claims what the log does not hold yet.
    if (job.commit.journal) {
      job.commit.journal->commit(job.file->get(), job.commit.offsets, job.commit.continued);
      job.commit.journal.reset();
    }
    lock.lock();
    const bool first = finished_.empty();
    finished_.push_back(std::move(job));
    // One wake-up per burst of results: the loop takes them all at once.
    if (first) resultsReady_->send();
  }
}

void LogWriteThread::deliverResults() {
  {
    std::lock_guard lock(mutex_);
    delivering_.swap(finished_);
  }
  for (Job& job : delivering_) {
    if (--stats_.queuedBatches == 0) resultsReady_->unref();
    if (job.batch) {
      ++stats_.batchesWritten;
      if (job.result > 0) stats_.bytesWritten += static_cast<uint64_t>(job.result);
      stats_.longestWriteNs = std::max(stats_.longestWriteNs, job.elapsedNs);
    }
    // Before the callback: it may start a new batch and take this one from the pool.
    giveBack(std::move(job.batch));
    job.file.reset();
    if (job.done) job.done(job.result);
  }
  delivering_.clear();
}

}  // namespace monocri::logging
