// The read end of a container's stdout or stderr pipe, on the loop. With a log journal
// (LogJournal.h) output is only peeked at (tee(2)): it stays in the pipe, held by the keeper
// too, until the journal consumes it once it is in the log, so that a daemon killed at any
// moment loses none of it. Readiness is then edge-triggered (an epoll set of its own): bytes
// seen and not consumed yet, an unfinished line say, keep the pipe readable and must not wake
// the loop again and again. Without a journal (no log file) output is read(2) into the loop's
// shared buffer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "logging/LogJournal.h"
#include "loop/Loop.h"
#include "loop/Poll.h"
#include "state/UniqueFd.h"

namespace monocri::monitor {

class OutputPipe {
 public:
  // Bytes as they came from the pipe, only valid during the call.
  using DataCallback = std::function<void(std::string_view)>;
  // Every writer closed its end and the pipe holds nothing new (or it failed).
  using EndCallback = std::function<void()>;

  // With a `journal`, the pipe goes to it (it consumes from it) and reading starts after the
  // stream's first `seen` bytes (where the journal stands). Null with `error` if the loop cannot
  // watch the pipe.
  static std::unique_ptr<OutputPipe> open(loop::Loop& loop, state::UniqueFd pipe,
                                          std::shared_ptr<logging::LogJournal> journal,
                                          logging::LogStream stream, uint64_t seen,
                                          std::string& error);
  ~OutputPipe();
  OutputPipe(const OutputPipe&) = delete;
  OutputPipe& operator=(const OutputPipe&) = delete;

  int fd() const;
  // Starts reading; at most one chunk (the loop's read buffer) per loop turn, so that the
  // caller can bound its work per turn.
  void start(DataCallback onData, EndCallback onEnd);
  void pause();
  void resume();
  bool ended() const { return ended_; }

 private:
  OutputPipe(loop::Loop& loop, state::UniqueFd pipe, std::shared_ptr<logging::LogJournal> journal,
             logging::LogStream stream, uint64_t seen);
  void onReadable();
  // With a journal: takes the epoll set's events, then reads if not paused.
  void onEdge();
  // With a journal: one chunk of new bytes, then again on the next turn while there are more.
  void peekChunk();
  void schedulePeek();
  // Without a journal: read(2); the bytes read, 0 at the end, -1 when the pipe is empty.
  ssize_t readChunk(char* buffer, size_t size);
  void end();

  loop::Loop& loop_;
  state::UniqueFd pipe_;  // without a journal
  std::shared_ptr<logging::LogJournal> journal_;
  logging::LogStream stream_;
  uint64_t seen_;          // stream bytes handed to onData_ (with a journal)
  state::UniqueFd edges_;  // the epoll set (with a journal)
  bool hangUp_ = false;    // every writer is gone (with a journal)
  bool peekScheduled_ = false;
  DataCallback onData_;
  EndCallback onEnd_;
  bool started_ = false;
  bool paused_ = false;
  bool ended_ = false;
  loop::LifetimeGuard lifetime_;
  // Declared last: closed before the descriptor it watches.
  loop::HandlePtr<loop::Poll> poll_;
};

}  // namespace monocri::monitor
