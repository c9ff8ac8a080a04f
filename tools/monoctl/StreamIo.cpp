#include "monoctl/StreamIo.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace monocri::monoctl {

namespace {

// The write end of the one SignalPipe, for the handler.
volatile sig_atomic_t gSignalWriteFd = -1;

void onSignal(int signo) {
  const int savedErrno = errno;
  const unsigned char byte = static_cast<unsigned char>(signo);
  if (gSignalWriteFd >= 0) {
    // Non-blocking: a full pipe already holds enough to wake the loop.
    [[maybe_unused]] ssize_t n = write(gSignalWriteFd, &byte, 1);
  }
  errno = savedErrno;
}

}  // namespace

SignalPipe::SignalPipe(std::initializer_list<int> signals) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    // No descriptors left: nothing sensible remains to do.
    std::cerr << "monoctl: pipe: " << std::strerror(errno) << "\n";
    std::abort();
  }
  read_.reset(fds[0]);
  write_.reset(fds[1]);
  gSignalWriteFd = fds[1];
  struct sigaction action {};
  action.sa_handler = onSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int signo : signals) {
    struct sigaction old {};
    sigaction(signo, &action, &old);
    saved_.emplace_back(signo, old);
  }
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  struct sigaction old {};
  sigaction(SIGPIPE, &ignore, &old);
  saved_.emplace_back(SIGPIPE, old);
}

SignalPipe::~SignalPipe() {
  for (auto it = saved_.rbegin(); it != saved_.rend(); ++it)
    sigaction(it->first, &it->second, nullptr);
  gSignalWriteFd = -1;
}

std::vector<int> SignalPipe::take() {
  std::vector<int> signals;
  unsigned char buffer[64];
  for (;;) {
    const ssize_t n = read(read_.get(), buffer, sizeof buffer);
    if (n <= 0) break;
    signals.insert(signals.end(), buffer, buffer + n);
  }
  return signals;
}

std::unique_ptr<RawTerminal> RawTerminal::enter(int fd, std::string& error) {
  termios saved{};
  if (tcgetattr(fd, &saved) != 0) {
    error = std::strerror(errno);
    return nullptr;
  }
  termios raw = saved;
  cfmakeraw(&raw);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  if (tcsetattr(fd, TCSANOW, &raw) != 0) {
    error = std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<RawTerminal>(new RawTerminal(fd, saved));
}

RawTerminal::~RawTerminal() {
  tcsetattr(fd_, TCSANOW, &saved_);
}

std::optional<TerminalSize> terminalSize(int fd) {
  winsize size{};
  if (ioctl(fd, TIOCGWINSZ, &size) != 0 || (size.ws_col == 0 && size.ws_row == 0)) {
    return std::nullopt;
  }
  return TerminalSize{size.ws_col, size.ws_row};
}

NonBlockingFds::NonBlockingFds(std::initializer_list<int> fds) {
  for (int fd : fds) {
    const int flags = fcntl(fd, F_GETFL);
    if (flags < 0) continue;
    saved_.emplace_back(fd, flags);
    if (!(flags & O_NONBLOCK)) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  }
}

NonBlockingFds::~NonBlockingFds() {
  // In reverse: where fds share an open file, the first one's flags (the original) win.
  for (auto it = saved_.rbegin(); it != saved_.rend(); ++it)
    fcntl(it->first, F_SETFL, it->second);
}

void OutputBuffer::append(std::string_view bytes) {
  if (failed_ || bytes.empty()) return;
  if (offset_ == bytes_.size()) {
    bytes_.clear();
    offset_ = 0;
  }
  bytes_.append(bytes);
  writeSome();
}

bool OutputBuffer::writeSome() {
  while (!failed_ && offset_ < bytes_.size()) {
    const ssize_t n = write(fd_, bytes_.data() + offset_, bytes_.size() - offset_);
    if (n > 0) {
      offset_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    failed_ = true;
    errno_ = n < 0 ? errno : EIO;
  }
  if (offset_ == bytes_.size() || failed_) {
    bytes_.clear();
    offset_ = 0;
  } else if (offset_ > 64 * 1024 && offset_ * 2 > bytes_.size()) {
    bytes_.erase(0, offset_);
    offset_ = 0;
  }
  return !failed_;
}

bool OutputBuffer::drain(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (writeSome() && !empty()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return false;
    pollfd p{fd_, POLLOUT, 0};
    poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
  }
  return !failed_;
}

void PollSet::wait(int timeoutMs) {
  for (auto& p : fds_)
    p.revents = 0;
  if (poll(fds_.data(), fds_.size(), timeoutMs) < 0 && errno != EINTR) {
    // EFAULT, EINVAL, ENOMEM: a bug or an exhausted machine.
    std::cerr << "monoctl: poll: " << std::strerror(errno) << "\n";
    std::abort();
  }
}

}  // namespace monocri::monoctl
