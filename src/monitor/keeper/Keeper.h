// The keeper: the process `monocri` starts as, parent of the daemon (the event loop) and child
// subreaper of every container (DESIGN.md, "Processes and exits: a keeper under the loop").
//
// It reaps every process that re-parents to it, writes each exit to an exit record on disk,
// then tells the daemon; it holds a duplicate of every container stdio descriptor the daemon
// gives it; when the daemon dies it starts a new one and hands it every held descriptor and
// every exit not yet acknowledged. It is written to be too simple to crash: fixed tables sized
// at start, no allocation afterwards, nothing parsed from containers, plain syscalls (poll,
// signalfd, recvmsg), no libuv, no exceptions. The wire records are in KeeperProtocol.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace monocri::monitor {

// The variable the keeper sets for the daemon: the number of its end of the keeper socket.
inline constexpr char kKeeperFdVariable[] = "MONOCRI_KEEPER_FD";
// The descriptor number the daemon finds its end of the socket at.
inline constexpr int kDaemonKeeperFd = 3;
// A daemon exit status that is final: its configuration is wrong, restarting cannot help.
inline constexpr int kConfigurationErrorExit = 2;

struct KeeperOptions {
  // What to exec as the daemon; argv[0] is the executable's path (monocri re-executes
  // /proc/self/exe with its own argv).
  std::vector<std::string> daemonArgv;
  // Exit records: <exitDir>/<owner>.<pid> (the directory is created 0700).
  std::string exitDir;
  // Fixed tables, sized at start.
  size_t maxHeldFds = 16384;
  size_t maxTracked = 8192;
  size_t maxPendingExits = 8192;    // exits not yet acknowledged by the daemon
  size_t maxUntrackedExits = 1024;  // the ring of exits no TRACK has claimed yet
  // Restart backoff of a daemon that crashed: doubling from min to max, back to min after a
  // daemon that ran at least resetAfterMs.
  uint64_t restartDelayMinMs = 100;
  uint64_t restartDelayMaxMs = 5000;
  uint64_t restartDelayResetAfterMs = 60000;
};

// Runs the keeper until the daemon exits for good. SIGTERM and SIGINT are passed to the daemon
// and end both; SIGHUP restarts the daemon (SIGTERM, then a new one at once, from daemonArgv[0]
// as it is on disk then) while the keeper keeps the held descriptors and the exits: a restart or
// an upgrade of the daemon that loses nothing. Returns the process exit code: 0 when the
// daemon exited 0 (a clean shutdown), 2 when it exited 2 (a configuration error, final), the
// daemon's status after SIGTERM/SIGINT was forwarded to it (128 + signal if it was killed), 1
// if the keeper could not start. Takes over the calling process: signal mask, SIGPIPE, the
// child-subreaper attribute. Call it from a single-threaded process.
int runKeeper(const KeeperOptions& options);

// In the daemon: the descriptor of its end of the keeper socket (from MONOCRI_KEEPER_FD,
// checked to be a SOCK_SEQPACKET socket, then made close-on-exec), or -1 when the daemon runs
// without a keeper. The variable is removed from the environment, so that nothing the daemon
// starts inherits it.
int takeKeeperFd();

}  // namespace monocri::monitor
