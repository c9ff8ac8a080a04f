// The local side of monoctl's streaming verbs (exec, attach, port-forward), for one poll(2)
// loop on one thread: signals as a pipe, the terminal in raw mode and its size, stdio made
// non-blocking, and bounded output buffers. Each piece restores what it changed when it goes,
// so every way out of a verb (its end, an error, SIGINT/SIGTERM/SIGHUP, which arrive through the
// pipe and end the loop) leaves the terminal as it was.
#pragma once

#include <poll.h>
#include <termios.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "state/UniqueFd.h"

namespace monocri::monoctl {

// While alive, each of `signals` writes its number to a pipe (read by the loop) instead of its
// default action, and SIGPIPE is ignored (write errors say EPIPE). One at a time per process.
class SignalPipe {
 public:
  explicit SignalPipe(std::initializer_list<int> signals);
  ~SignalPipe();  // the previous dispositions back
  SignalPipe(const SignalPipe&) = delete;
  SignalPipe& operator=(const SignalPipe&) = delete;

  int fd() const { return read_.get(); }
  // The signals that came since the last call, in order.
  std::vector<int> take();

 private:
  state::UniqueFd read_, write_;
  std::vector<std::pair<int, struct ::sigaction>> saved_;
};

// The terminal on `fd` in raw mode (kubectl's term.MakeRaw: cfmakeraw) while alive: no echo,
// no line editing, no signals from keys (Ctrl-C goes to the container as a byte).
class RawTerminal {
 public:
  // nullptr with `error` set when `fd` is no terminal or cannot be set.
  static std::unique_ptr<RawTerminal> enter(int fd, std::string& error);
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  RawTerminal(int fd, const termios& saved) : fd_(fd), saved_(saved) {}
  int fd_;
  termios saved_;
};

struct TerminalSize {
  uint16_t width = 0, height = 0;
  bool operator==(const TerminalSize&) const = default;
};
// The window size of the terminal on `fd`, if it is one and knows its size.
std::optional<TerminalSize> terminalSize(int fd);

// O_NONBLOCK on `fds` while alive, each one's flags restored after (fds 0, 1 and 2 often share
// one open file: the first flags seen are the ones restored).
class NonBlockingFds {
 public:
  explicit NonBlockingFds(std::initializer_list<int> fds);
  ~NonBlockingFds();
  NonBlockingFds(const NonBlockingFds&) = delete;
  NonBlockingFds& operator=(const NonBlockingFds&) = delete;

 private:
  std::vector<std::pair<int, int>> saved_;  // fd, flags
};

// Bytes on their way to a non-blocking fd that may take them slowly (a terminal, a pipe, a
// socket), written in order as it takes them. The owner bounds it: it stops producing (reading
// the connection) while size() is over its high-water mark.
class OutputBuffer {
 public:
  explicit OutputBuffer(int fd = -1) : fd_(fd) {}
  int fd() const { return fd_; }
  // Queues `bytes` and writes what the fd takes now.
  void append(std::string_view bytes);
  // Writes what the fd takes. False on a write error (errno kept): the rest is dropped.
  bool writeSome();
  // Blocks (poll) until all is written, at most `timeout`; false on an error or the timeout.
  bool drain(std::chrono::milliseconds timeout);
  size_t size() const { return bytes_.size() - offset_; }
  bool empty() const { return size() == 0; }
  bool failed() const { return failed_; }
  int error() const { return errno_; }

 private:
  int fd_;
  std::string bytes_;
  size_t offset_ = 0;
  bool failed_ = false;
  int errno_ = 0;
};

// One turn's interest list for poll(2): add() what each fd waits for this turn, wait(), then
// ask revents() by the index add() gave.
class PollSet {
 public:
  // An fd waiting for nothing this turn is left out (poll would still report its POLLHUP).
  size_t add(int fd, short events) {
    fds_.push_back(pollfd{events != 0 ? fd : -1, events, 0});
    return fds_.size() - 1;
  }
  // poll() with `timeoutMs` (-1: none); EINTR counts as a turn with no events.
  void wait(int timeoutMs);
  short revents(size_t index) const { return fds_[index].revents; }
  void clear() { fds_.clear(); }

 private:
  std::vector<pollfd> fds_;
};

}  // namespace monocri::monoctl
