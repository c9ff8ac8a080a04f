// The read end of a container's stdout or stderr pipe, on the loop. With a spool (the log
// journal's, LogJournal.h) output is moved into it with splice(2) and handed over from there:
// consumed from the pipe and stored in one system call, so a daemon killed at any moment loses
// none of it. Without one (no log file) it is read(2) into the loop's shared buffer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "loop/Loop.h"
#include "loop/Poll.h"
#include "state/UniqueFd.h"

namespace monocri::monitor {

class OutputPipe {
 public:
  // Bytes as they left the pipe, only valid during the call.
  using DataCallback = std::function<void(std::string_view)>;
  // Every writer closed its end and the pipe is empty (or it failed).
  using EndCallback = std::function<void()>;

  // `spoolFd` (not owned) < 0 reads without a spool; else output is appended to it from
  // `spoolEnd` on. Null with `error` if the loop cannot watch the pipe.
  static std::unique_ptr<OutputPipe> open(loop::Loop& loop, state::UniqueFd pipe, int spoolFd,
                                          uint64_t spoolEnd, std::string_view label,
                                          std::string& error);
  ~OutputPipe();
  OutputPipe(const OutputPipe&) = delete;
  OutputPipe& operator=(const OutputPipe&) = delete;

  int fd() const { return pipe_.get(); }
  // Starts reading; at most one chunk (the loop's read buffer) per readiness, so that the caller
  // can bound its work per loop turn.
  void start(DataCallback onData, EndCallback onEnd);
  void pause();
  void resume();
  bool ended() const { return ended_; }

 private:
  OutputPipe(loop::Loop& loop, state::UniqueFd pipe, int spoolFd, uint64_t spoolEnd,
             std::string_view label)
      : loop_(loop),
        pipe_(std::move(pipe)),
        spoolFd_(spoolFd),
        spoolEnd_(spoolEnd),
        label_(label) {}
  void onReadable();
  // Moves what the pipe holds into the spool and reads it back; the bytes read, 0 at the end,
  // -1 when the pipe is empty for now.
  ssize_t spliceChunk(char* buffer, size_t size);
  // The same with read(2), without a spool.
  ssize_t readChunk(char* buffer, size_t size);
  void end();

  loop::Loop& loop_;
  state::UniqueFd pipe_;
  int spoolFd_;
  uint64_t spoolEnd_;
  std::string_view label_;
  DataCallback onData_;
  EndCallback onEnd_;
  bool paused_ = false;
  bool ended_ = false;
  // Declared last: closed before the descriptor it watches.
  loop::HandlePtr<loop::Poll> poll_;
};

}  // namespace monocri::monitor
