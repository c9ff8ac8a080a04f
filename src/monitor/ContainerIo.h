// A container's stdout and stderr: the pipes the OCI runtime hands to the container, read by
// the loop into the container's CRI log writer. The read ends stay with the daemon (and a
// duplicate with the keeper, so that a daemon restart never leaves the container writing into
// a pipe without a reader).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "logging/LogWriter.h"
#include "loop/Loop.h"
#include "loop/PipeStream.h"
#include "state/UniqueFd.h"

namespace monocri::monitor {

class ContainerIo {
 public:
  // New pipes for a container about to be created. `writer` may be null (no log path).
  static std::unique_ptr<ContainerIo> create(loop::Loop& loop,
                                             std::unique_ptr<logging::LogWriter> writer,
                                             std::string& error);
  // The read ends of an existing container (given back by the keeper after a restart).
  static std::unique_ptr<ContainerIo> adopt(loop::Loop& loop,
                                            std::unique_ptr<logging::LogWriter> writer,
                                            state::UniqueFd stdoutRead, state::UniqueFd stderrRead,
                                            std::string& error);
  ~ContainerIo();
  ContainerIo(const ContainerIo&) = delete;
  ContainerIo& operator=(const ContainerIo&) = delete;

  // For the runtime's create: the container's ends. Closed by closeContainerEnds() once the
  // runtime has them, so that the container's exit ends the pipes.
  int stdoutWriteFd() const { return stdoutWrite_.get(); }
  int stderrWriteFd() const { return stderrWrite_.get(); }
  void closeContainerEnds();
  // For the keeper: our ends, duplicated there.
  int stdoutReadFd() const;
  int stderrReadFd() const;

  // Starts reading. `drained` runs once both pipes reached their end (every writer, the
  // container and whatever it left behind holding them, is gone).
  void start(std::function<void()> drained);
  bool drained() const { return openStreams_ == 0; }

  logging::LogWriter* writer() { return writer_.get(); }

 private:
  ContainerIo(loop::Loop& loop, std::unique_ptr<logging::LogWriter> writer)
      : loop_(loop), writer_(std::move(writer)) {}
  grpc::Status adoptReadEnds(int stdoutFd, int stderrFd, std::string& error);
  void streamEnded();

  loop::Loop& loop_;
  std::unique_ptr<logging::LogWriter> writer_;
  loop::HandlePtr<loop::PipeStream> stdout_, stderr_;
  state::UniqueFd stdoutWrite_, stderrWrite_;
  int openStreams_ = 0;
  std::function<void()> drained_;
};

}  // namespace monocri::monitor
