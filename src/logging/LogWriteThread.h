// The thread that writes container log records to their files, so that a slow disk never
// stalls the loop: under dirty-page throttling one writev(2) of 64 KiB can take tens of
// milliseconds, a full or failing disk (or NFS) longer, and every RPC and every other
// container's output would wait behind it.
//
// Batches are written in the order they were submitted, all files together: the records of one
// file land in order, and a writer that submits a barrier (a job without a batch) learns when
// everything it submitted before is in its file. Results come back to the loop, which owns
// every writer; the thread touches nothing but the batch and the file descriptor a job holds.
// Queued writes keep the loop running, like any outstanding request; an idle thread does not.
// Memory is bounded by the writers, which stop reading their container while their own
// queued bytes are above a mark (LogWriter::backlogged()).
//
// The thread runs on the CPUs that share the loop's L2 cache (CacheSharingCpus.h), following
// the loop when it moves: a batch's bytes were just read by the loop, and copying them into the
// page cache from another core's cache cost 10-20 % more CPU per byte than the copy from the
// same core (README). The loop itself is never pinned; the thread's affinity is set again before
// the first batch submitted from another CPU, within the mask it was started with.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "logging/CacheSharingCpus.h"
#include "logging/LogJournal.h"
#include "logging/RecordBatch.h"
#include "loop/AsyncSignal.h"
#include "loop/Loop.h"
#include "state/UniqueFd.h"

namespace monocri::logging {

// The state to commit to a journal once a batch is written (LogJournal::commit).
struct JournalCommit {
  std::shared_ptr<LogJournal> journal;
  std::array<uint64_t, 2> offsets{};
  std::array<bool, 2> continued{};
};

class LogWriteThread {
 public:
  // Runs on the loop with the write's result: the bytes written, or -errno (the batch was
  // undone); 0 for a barrier.
  using Done = std::function<void(ssize_t result)>;

  // Null with `error` set if the thread or its wake-up handle cannot be made.
  static std::unique_ptr<LogWriteThread> start(loop::Loop& loop, std::string& error);
  // Writes every batch still queued (the last records of containers whose writers are gone),
  // then joins the thread; results not delivered yet are dropped.
  ~LogWriteThread();
  LogWriteThread(const LogWriteThread&) = delete;
  LogWriteThread& operator=(const LogWriteThread&) = delete;

  // Loop thread only. Queues `batch` for `file`, then `commit` if it names a journal; a job
  // with neither is a barrier.
  void submit(std::shared_ptr<const state::UniqueFd> file, std::unique_ptr<RecordBatch> batch,
              Done done, JournalCommit commit = {});
  // An empty batch to build records in, from the pool of returned ones.
  std::unique_ptr<RecordBatch> takeBatch();
  void giveBack(std::unique_ptr<RecordBatch> batch);

  struct Stats {
    uint64_t batchesWritten = 0;
    uint64_t bytesWritten = 0;
    uint64_t queuedBatches = 0;  // submitted, result not back yet
    uint64_t longestWriteNs = 0;
    uint64_t cpuMoves = 0;  // times the thread followed the loop to other CPUs
  };
  // Loop thread only.
  Stats stats() const;

 private:
  struct Job {
    std::shared_ptr<const state::UniqueFd> file;
    std::unique_ptr<RecordBatch> batch;
    Done done;
    JournalCommit commit;
    ssize_t result = 0;
    uint64_t elapsedNs = 0;
  };

  explicit LogWriteThread(loop::Loop& loop) : loop_(loop) {}
  void run();
  // Thread: moves to the CPUs that share the loop's L2 cache, if the loop moved.
  void followLoop();
  void deliverResults();

  loop::Loop& loop_;
  loop::HandlePtr<loop::AsyncSignal> resultsReady_;
  std::thread thread_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queued_;     // guarded by mutex_
  std::vector<Job> finished_;  // guarded by mutex_
  bool stopping_ = false;      // guarded by mutex_

  // The CPU the loop submitted its last batch on, -1 if unknown; the loop stores it.
  std::atomic<int> loopCpu_{-1};
  std::atomic<uint64_t> cpuMoves_{0};
  // The thread's.
  CacheSharingCpus caches_;
  cpu_set_t startMask_{};  // the affinity it was started with: it never leaves it
  int followedCpu_ = -1;

  // Loop thread only.
  std::vector<std::unique_ptr<RecordBatch>> pool_;
  std::vector<Job> delivering_;
  Stats stats_;
};

}  // namespace monocri::logging
