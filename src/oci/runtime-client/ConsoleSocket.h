// The receiving end of `--console-socket`: for a tty container the OCI runtime creates the pty
// inside the container and sends its master here over a unix socket (SCM_RIGHTS). One socket
// per container; it takes one connection and one terminal, then goes away.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "loop/Loop.h"
#include "loop/Poll.h"
#include "state/UniqueFd.h"

namespace monocri::oci {

class ConsoleSocket {
 public:
  // Listens at `path` (mode 0600). It must fit a unix socket address (107 bytes: keep it short,
  // under the run dir) and must not exist. Null with `error` otherwise.
  static std::unique_ptr<ConsoleSocket> listen(loop::Loop& loop, const std::string& path,
                                               std::string& error);
  // Stops listening and removes the socket file if it is still there.
  ~ConsoleSocket();
  ConsoleSocket(const ConsoleSocket&) = delete;
  ConsoleSocket& operator=(const ConsoleSocket&) = delete;

  const std::string& path() const { return path_; }

  // `done` runs once on the loop: with the pty master (close-on-exec, the caller's to keep) and
  // "", or with an invalid fd and the reason. The socket file is removed before it runs. A
  // runtime that fails before sending anything never connects: the caller, which learns of that
  // failure from the runtime, drops this object.
  using Received = std::function<void(state::UniqueFd master, std::string error)>;
  void receive(Received done);

 private:
  ConsoleSocket(loop::Loop& loop, std::string path) : loop_(loop), path_(std::move(path)) {}
  void onConnectable();
  void onReadable();
  void stop();
  void answer(state::UniqueFd master, std::string error);

  loop::Loop& loop_;
  std::string path_;
  bool bound_ = false;  // the file at path_ is ours to remove
  size_t bytesBeforeDescriptor_ = 0;
  state::UniqueFd listener_, connection_;
  loop::HandlePtr<loop::Poll> listenerWatch_, connectionWatch_;
  Received done_;
  loop::LifetimeGuard lifetime_;
};

}  // namespace monocri::oci
