// A container's stdio: the pipes (or, for a tty container, the pty master the OCI runtime sends
// over its console socket) the loop reads into the container's CRI log writer, and the write
// end of its stdin when it has one. The daemon's ends are duplicated in the keeper, so that a
// daemon restart never leaves the container writing into a pipe without a reader, nor sees its
// stdin closed under it. When the writer has a journal, output is only peeked at and stays in
// the pipes until it is in the log (OutputPipe, LogJournal), so that not even the output the
// daemon was holding is lost when it dies; a terminal is read directly (a pty cannot be teed).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "logging/LogWriter.h"
#include "loop/Loop.h"
#include "loop/PipeStream.h"
#include "monitor/OutputPipe.h"
#include "state/UniqueFd.h"

namespace monocri::monitor {

// What the keeper holds for a container, by tag (the tag travels in the keeper protocol).
enum class HeldStream : uint32_t {
  kStdout = 1,
  kStderr = 2,
  kStdin = 3,
  kTerminal = 4,
  kStdoutJournal = 5,  // the log journal's held pipes (LogJournal.h)
  kStderrJournal = 6,
};

struct ContainerIoMode {
  bool tty = false;    // output and input through a pty (stdout only, as the CRI log has it)
  bool stdin = false;  // the container's stdin stays open for attach; else /dev/null
};

// The daemon's ends, as the keeper gives them back after a restart.
struct ContainerIoFds {
  state::UniqueFd stdoutRead, stderrRead, stdinWrite, terminal;
  std::array<state::UniqueFd, 2> journalHeld;  // by logging::LogStream
};

class ContainerIo {
 public:
  // What one container's output may cost the loop per turn: a container flooding its stdout
  // gets this much handled, then waits for the next turn, behind RPCs and other containers.
  static constexpr size_t kMaxBytesPerTurn = 256 * 1024;

  // Pipes for a container about to be created (for a tty: only the mode; the terminal comes
  // with attachTerminal()). `writer` may be null (no log path).
  static std::unique_ptr<ContainerIo> create(loop::Loop& loop,
                                             std::unique_ptr<logging::LogWriter> writer,
                                             ContainerIoMode mode, std::string& error);
  // The daemon's ends of an existing container (given back by the keeper after a restart).
  // Either a terminal or both output pipes are required. With a journal (recovered from
  // them), reading takes up where it stands.
  static std::unique_ptr<ContainerIo> adopt(loop::Loop& loop,
                                            std::unique_ptr<logging::LogWriter> writer,
                                            ContainerIoFds fds, std::string& error);
  ~ContainerIo();
  ContainerIo(const ContainerIo&) = delete;
  ContainerIo& operator=(const ContainerIo&) = delete;

  const ContainerIoMode& mode() const { return mode_; }

  // For the runtime's create: the container's ends (-1 where it has none: /dev/null, or the pty
  // for a tty container). Closed by closeContainerEnds() once the runtime has them, so that the
  // container's exit ends the pipes.
  int stdoutWriteFd() const { return stdoutWrite_.get(); }
  int stderrWriteFd() const { return stderrWrite_.get(); }
  int stdinReadFd() const { return stdinRead_.get(); }
  void closeContainerEnds();
  // A tty container's pty master, received from the runtime's console socket.
  grpc::Status attachTerminal(state::UniqueFd master, std::string& error);

  // Our ends, for the keeper to duplicate and hold.
  std::vector<std::pair<HeldStream, int>> heldFds() const;

  // Starts reading. `drained` runs once the output reached its end (every writer, the
  // container and whatever it left behind holding it, is gone).
  void start(std::function<void()> drained);
  bool drained() const { return openStreams_ == 0; }

  // Where input for the container goes (the stdin pipe or the terminal); -1 without stdin.
  int stdinFd() const;
  // stdin_once: the container sees end of input once the input queued before is written (the
  // keeper's copy must be released too).
  void closeStdin();
  // Input from attachers, through one stream of the daemon's shared by all of them (the pipe or
  // the terminal). `written` runs once this piece went out (or could not). Nothing happens
  // without stdin or after closeStdin().
  void writeStdin(std::string bytes, std::function<void()> written);
  size_t stdinQueuedBytes() const;

  logging::LogWriter* writer() { return writer_.get(); }

  // Attachers (kubectl attach): each tap sees the output as it is read, right after the log
  // writer has it, and `onEnd` once the output reached its end (at once if it already had). A
  // tap never slows the container or its log: what a slow attacher cannot take is its own
  // connection's to drop. Taps may be removed from within their callbacks.
  using TapData = std::function<void(logging::LogStream, std::string_view)>;
  uint64_t addTap(TapData onData, std::function<void()> onEnd);
  void removeTap(uint64_t id);

 private:
  ContainerIo(loop::Loop& loop, std::unique_ptr<logging::LogWriter> writer, ContainerIoMode mode)
      : loop_(loop), writer_(std::move(writer)), mode_(mode) {}
  grpc::Status adoptOutput(state::UniqueFd stdoutFd, state::UniqueFd stderrFd, std::string& error);
  void streamEnded(logging::LogStream which);
  // Every output stream ended: the drained callback and the taps' ends run.
  void outputEnded();
  // Counts a read against this turn's budget; past it, reading pauses until the next turn.
  void chargeTurn(size_t bytes);
  // Reads while nothing pauses it (a spent turn, a backlogged log writer).
  void updateReading();

  loop::Loop& loop_;
  std::unique_ptr<logging::LogWriter> writer_;
  ContainerIoMode mode_;
  // Output read by the loop: the pipes, or the pty master of a tty container.
  std::array<std::unique_ptr<OutputPipe>, 2> pipes_;  // by logging::LogStream
  loop::HandlePtr<loop::PipeStream> terminal_;
  state::UniqueFd stdoutWrite_, stderrWrite_, stdinRead_;  // the container's ends, until created
  state::UniqueFd stdinWrite_;                             // ours (not for a tty)
  loop::HandlePtr<loop::PipeStream> stdinStream_;          // attachers' writes (not for a tty)
  bool stdinClosed_ = false;
  int openStreams_ = 0;
  bool started_ = false;
  std::array<bool, 2> ended_{};  // by logging::LogStream
  bool turnSpent_ = false;
  bool writerBacklogged_ = false;
  std::function<void()> drained_;
  struct Tap {
    TapData onData;
    std::function<void()> onEnd;
  };
  std::map<uint64_t, Tap> taps_;
  uint64_t nextTap_ = 1;
  uint64_t turn_ = 0;     // the loop turn turnBytes_ counts
  size_t turnBytes_ = 0;  // read from this container in that turn
  loop::LifetimeGuard lifetime_;
};

}  // namespace monocri::monitor
