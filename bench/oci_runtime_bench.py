#!/usr/bin/python3
"""OCI runtime benchmark: the full lifecycle of a busybox `true` container (create + start +
wait for the init's exit + delete) with monocri-runtime (the bundled runtime, runc's command
line) and with runc, side by side in the same run, called directly from Python.

  - sequential: N lifecycles one after the other per runtime, in blocks of 20, the runtimes
    alternating block by block (ABBA), so that the VM's drift hits both alike;
  - parallel: rounds of P lifecycles at once (P threads released together, one bundle each),
    the runtimes alternating round by round, M lifecycles per runtime in all.

Prints per lifecycle the median and p99 latency of each runtime and runc / monocri-runtime
(target: at least 2x), the median of each verb (create, start, wait, delete: where the time
goes), and the peak RSS of every runtime invocation (ru_maxrss from os.wait4: the process and
what it waited for; target for monocri-runtime: under 2 MiB), max and median per verb.

Every bundle uses one busybox rootfs extracted once (root.readonly) and the config.json of
`runc spec` running `true`; cgroups nest under this process's own (relative cgroupsPath
ocibench-<pid>/<id>); each runtime has a --root and a JSON --log of its own under a temp dir.
`create` gets /dev/null for stdio; this process is a child subreaper, so the container's init
is re-parented to it when `create` exits and its exit status comes from os.waitpid.

  bench/oci_runtime_bench.py [--sequential 200] [--parallel 20] [--total-parallel 200]
                             [--runtimes runc,monocri-runtime]

Needs root and runc; run it under tests/harness/in-namespace."""
import argparse
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests/harness"))
sys.path.insert(0, os.path.join(ROOT, "tools/testimage"))

from cgroups import own_cgroup_dirs, remove_cgroups  # noqa: E402
from oci_bundle import (default_spec, extract_busybox_rootfs, read_log_entries,  # noqa: E402
                        set_child_subreaper)
sys.path.insert(0, HERE)
from pod_start_bench import percentile  # noqa: E402

BINARIES = {
    "runc": "/usr/sbin/runc",
    "monocri-runtime": os.path.join(os.environ.get("MONOCRI_BIN", os.path.join(ROOT, "build/bin")),
                                    "monocri-runtime"),
}
VERBS = ("create", "start", "wait", "delete")
RSS_VERBS = ("create", "start", "delete")  # the runtime's own processes
SEQUENTIAL_BLOCK = 20
WARMUP = 3  # untimed lifecycles per runtime first: binaries and rootfs in the page cache
CALL_TIMEOUT = 30.0  # seconds; a runtime call or an init this slow is a failure
TARGET_RATIO = 2.0
TARGET_RSS_KIB = 2048
CGROUP_PARENT = f"ocibench-{os.getpid()}"




class LifecycleFailed(RuntimeError):
    pass


# The runtimes are spawned by this helper (one per worker), not by Python: see its comment. A
# runtime forked from Python shows Python's ~30 MiB as its ru_maxrss, whatever it uses itself.
SPAWNER_C = r"""/* Runs commands for the bench, each as its own child: ru_maxrss from wait4 of a child counts the
   RSS of the process it was forked from (the kernel keeps the old mm's high-water mark at
   exec), so the runtimes are spawned from this
   small static process rather than from Python. Protocol: fd 0 gives "<bytes>\n" then the
   NUL-terminated arguments; fd 1 answers "<wait status> <ru_maxrss KiB> <ns from spawn to
   reap>\n". The child's stdio is /dev/null. `spawner --noop` exits at once (the floor). */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--noop") == 0) return 0;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    for (int fd = 0; fd < 3; fd++)
        posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd ? O_WRONLY : O_RDONLY, 0);
    static char buffer[1 << 16];
    char *args[256];
    size_t size;
    while (scanf("%zu", &size) == 1 && getchar() == '\n') {
        if (size >= sizeof buffer || fread(buffer, 1, size, stdin) != size) return 2;
        int count = 0;
        for (size_t at = 0; at < size && count < 255; at += strlen(buffer + at) + 1)
            args[count++] = buffer + at;
        args[count] = NULL;
        struct timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        pid_t pid;
        int error = posix_spawn(&pid, args[0], &actions, NULL, args, environ);
        int status = 127 << 8;
        struct rusage usage = {0};
        if (error == 0 && wait4(pid, &status, 0, &usage) < 0) return 3;
        clock_gettime(CLOCK_MONOTONIC, &end);
        long long ns = (end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
        printf("%d %ld %lld\n", status, usage.ru_maxrss, ns);
        fflush(stdout);
    }
    return 0;
}
"""


def build_spawner(directory):
    """SPAWNER_C compiled (static) into `directory`; returns its path."""
    source, binary = os.path.join(directory, "spawner.c"), os.path.join(directory, "spawner")
    with open(source, "w") as f:
        f.write(SPAWNER_C)
    subprocess.run(["cc", "-O2", "-static", "-Wall", "-o", binary, source], check=True)
    return binary


class Spawner:
    """One spawner process: run() spawns a command from it and returns (wait status, ru_maxrss
    KiB, seconds from spawn to reap)."""

    def __init__(self, binary):
        self.process = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(self, command):
        message = b"".join(arg.encode() + b"\0" for arg in command)
        self.process.stdin.write(b"%d\n" % len(message) + message)
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], CALL_TIMEOUT)
        if not ready:
            raise LifecycleFailed(f"{' '.join(command)} still running after {CALL_TIMEOUT}s")
        reply = self.process.stdout.readline().split()
        if len(reply) != 3:
            raise LifecycleFailed(f"the spawner died running {' '.join(command)}")
        return int(reply[0]), int(reply[1]), int(reply[2]) / 1e9

    def close(self):
        """Ends the spawner (EOF on its input), SIGKILL if it is stuck in a wait."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


class Runtime:
    """One runtime binary with its --root and --log under the bench's temp dir; remembers the
    containers it created and not yet deleted, and the inits not yet reaped (for the cleanup)."""

    def __init__(self, name, binary, workdir):
        self.name, self.binary = name, binary
        self.root = os.path.join(workdir, "root")
        self.log = os.path.join(workdir, "log.json")
        self.bundles = os.path.join(workdir, "bundles")
        os.makedirs(self.bundles)
        self.lock = threading.Lock()
        self.live = {}  # ids created, not deleted: their --pid-file (None once reaped)
        self.inits = set()  # init pids not reaped

    def command(self, *args):
        return [self.binary, "--root", self.root, "--log", self.log, "--log-format", "json",
                *args]

    def invoke(self, spawner, *args):
        """Runs one runtime command to its end from `spawner`, stdio on /dev/null; returns
        (seconds from its spawn to its reap, its ru_maxrss in KiB from wait4 of its own pid)."""
        status, maxrss, elapsed = spawner.run(self.command(*args))
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise LifecycleFailed(f"{self.name} {' '.join(args)} exited {code}; "
                                  f"log: {self.log_tail()}")
        return elapsed, maxrss

    def log_entries(self):
        return read_log_entries(self.log)

    def log_tail(self, count=3):
        return " | ".join(str(e.get("msg", e)) for e in self.log_entries()[-count:])

    def state_ids(self):
        return sorted(os.listdir(self.root)) if os.path.isdir(self.root) else []


def wait_init(pid, pidfd):
    """Waits for the container's init (our child once `create` has exited) to exit, by poll on
    its pidfd (exact, with a timeout), then reaps that pid; returns its exit code."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if not poller.poll(CALL_TIMEOUT * 1000):
        raise LifecycleFailed(f"container init {pid} still running after {CALL_TIMEOUT}s")
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        raise LifecycleFailed(f"container init {pid} is not a child of the bench once create "
                              "has exited") from None
    return os.waitstatus_to_exitcode(status)


def lifecycle(runtime, spawner, bundle, container_id, rootfs):
    """create, start, wait, delete of `true` in `bundle`; returns the record of its times (s)
    and each invocation's ru_maxrss (KiB)."""
    spec = default_spec(["true"], f"{CGROUP_PARENT}/{runtime.name}-{container_id}",
                        hostname="ocibench")
    spec["root"] = {"path": rootfs, "readonly": True}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    pid_file = os.path.join(bundle, "init.pid")
    if os.path.exists(pid_file):
        os.unlink(pid_file)
    record = {"runtime": runtime.name}
    start = time.monotonic()
    with runtime.lock:
        runtime.live[container_id] = pid_file
    record["create"], record["rss_create"] = runtime.invoke(
        spawner, "create", "--bundle", bundle, "--pid-file", pid_file, container_id)
    with open(pid_file) as f:
        pid = int(f.read())
    with runtime.lock:
        runtime.inits.add(pid)
    pidfd = os.pidfd_open(pid)
    try:
        record["start"], record["rss_start"] = runtime.invoke(spawner, "start", container_id)
        waited = time.monotonic()
        code = wait_init(pid, pidfd)
        record["wait"] = time.monotonic() - waited
    finally:
        os.close(pidfd)
    with runtime.lock:
        runtime.inits.discard(pid)
        runtime.live[container_id] = None  # its init is reaped
    if code != 0:
        raise LifecycleFailed(f"{runtime.name}: `true` in {container_id} exited {code}")
    record["delete"], record["rss_delete"] = runtime.invoke(spawner, "delete", container_id)
    record["total"] = time.monotonic() - start
    with runtime.lock:
        runtime.live.pop(container_id, None)
    return record


def worker_bundle(runtime, worker):
    path = os.path.join(runtime.bundles, f"w{worker}")
    os.makedirs(path, exist_ok=True)
    return path


def run_sequential(runtimes, spawner, count, rootfs, stop):
    """`count` lifecycles per runtime, one after the other, in alternating blocks."""
    records = {r.name: [] for r in runtimes}
    blocks = (count + SEQUENTIAL_BLOCK - 1) // SEQUENTIAL_BLOCK
    for block in range(blocks):
        order = runtimes if block % 2 == 0 else list(reversed(runtimes))
        size = min(SEQUENTIAL_BLOCK, count - block * SEQUENTIAL_BLOCK)
        for runtime in order:
            bundle = worker_bundle(runtime, 0)
            for i in range(size):
                if stop.is_set():
                    raise KeyboardInterrupt
                n = block * SEQUENTIAL_BLOCK + i
                records[runtime.name].append(lifecycle(runtime, spawner, bundle, f"s{n}",
                                                         rootfs))
    return records


def run_round(runtime, spawners, width, round_index, rootfs, stop):
    """`width` lifecycles at once, one thread each, released together; returns (records, wall
    seconds of the round)."""
    barrier = threading.Barrier(width + 1)
    results, errors = [None] * width, []

    def work(worker):
        try:
            barrier.wait()
            if not stop.is_set():
                results[worker] = lifecycle(runtime, spawners[worker],
                                            worker_bundle(runtime, worker),
                                            f"p{round_index}-{worker}", rootfs)
        except threading.BrokenBarrierError:
            pass
        except Exception as error:  # noqa: BLE001  (reported by the main thread)
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,), name=f"{runtime.name}-{w}")
               for w in range(width)]
    for thread in threads:
        thread.start()
    try:
        barrier.wait()
        start = time.monotonic()
    except BaseException:
        barrier.abort()
        stop.set()
        raise
    finally:
        for thread in threads:  # each lifecycle ends within its timeouts; never left running
            while thread.is_alive():
                try:
                    thread.join()
                except KeyboardInterrupt:
                    stop.set()
    wall = time.monotonic() - start
    if errors:
        raise errors[0]
    if stop.is_set():
        raise KeyboardInterrupt
    return results, wall


def run_parallel(runtimes, spawners, width, total, rootfs, stop):
    """Rounds of `width` lifecycles at once, `total` per runtime, alternating round by round;
    returns the records and the wall time of all rounds per runtime."""
    records = {r.name: [] for r in runtimes}
    walls = {r.name: 0.0 for r in runtimes}
    rounds = (total + width - 1) // width
    for index in range(rounds):
        order = runtimes if index % 2 == 0 else list(reversed(runtimes))
        size = min(width, total - index * width)
        for runtime in order:
            done, wall = run_round(runtime, spawners, size, index, rootfs, stop)
            records[runtime.name] += done
            walls[runtime.name] += wall
    return records, walls


# ---- cleanup ----

def children_of_self():
    """Pids whose parent is this process (container inits re-parented here and not reaped)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                found.append(int(entry))
    return found


def reap(pid, timeout=5.0):
    """waitpid of that one pid, SIGKILL if it outlives `timeout`; False if it was not ours."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if done:
            return True
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.01)


def clean_up(runtimes, spawners, scratch):
    """delete --force what is still there, reap the inits, end the spawners, remove the cgroups
    and the temp dir; returns the leftovers found (each a line to print)."""
    leftovers = []
    for runtime in runtimes:
        ids = sorted(set(runtime.state_ids()) | set(runtime.live))
        for container_id in ids:
            done = subprocess.run(runtime.command("delete", "--force", container_id),
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=CALL_TIMEOUT)
            if container_id in runtime.state_ids():
                leftovers.append(f"{runtime.name}: state of {container_id} left after delete "
                                 f"--force ({done.returncode}: {done.stderr.strip()})")
        for pid_file in runtime.live.values():  # an init whose create was interrupted
            if pid_file is None:
                continue
            try:
                with open(pid_file) as f:
                    runtime.inits.add(int(f.read()))
            except (OSError, ValueError):
                pass
        for pid in sorted(runtime.inits):
            reap(pid)
        runtime.inits.clear()
        runtime.live.clear()
    for spawner in spawners:
        spawner.close()
    for pid in children_of_self():  # nothing else may be left re-parented here
        try:
            with open(f"/proc/{pid}/stat") as f:
                name = f.read().split(" (", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            name = "?"
        leftovers.append(f"process {pid} ({name}) left as the bench's child; reaped")
        reap(pid)
    stray = []  # container cgroups delete did not remove
    for top in own_cgroup_dirs(CGROUP_PARENT):
        if os.path.isdir(top):
            stray += [os.path.join(top, d) for d in os.listdir(top)
                      if os.path.isdir(os.path.join(top, d))]
    if stray:
        leftovers.append(f"{len(stray)} container cgroups left after delete, e.g. {stray[:3]}")
    for left in remove_cgroups(CGROUP_PARENT):
        leftovers.append(f"cgroup could not be removed: {left}")
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(scratch + "/")]
    if mounts:
        leftovers.append(f"mounts left under the temp dir: {mounts}")
        for point in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(scratch, ignore_errors=True)
    if os.path.exists(scratch):
        leftovers.append(f"temp dir {scratch} could not be removed")
    return leftovers


# ---- report ----

def ms(seconds):
    return seconds * 1000.0


def mib(kib):
    return kib / 1024.0


def print_report(args, runtimes, sequential, parallel, walls, floor):
    names = [r.name for r in runtimes]
    ours, peer = "monocri-runtime", "runc"
    both = ours in names and peer in names
    width = 16
    header = "".join(f"{n:>{width}}" for n in names) + (f"{'runc / monocri':>{width}}" if both else "")
    print(f"\nOCI runtime lifecycle: create + start + wait + delete of busybox `true`, "
          f"{os.cpu_count()} CPUs, runc {runc_version()}")
    print(f"sequential: {args.sequential} per runtime, blocks of {SEQUENTIAL_BLOCK} alternating; "
          f"parallel: {args.total_parallel} per runtime, rounds of {args.parallel} at once "
          "alternating\n")

    def row(label, values, fmt="{:.2f}", ratio=True):
        line = f"{label:26}" + "".join(f"{fmt.format(v):>{width}}" for v in values)
        if both and ratio:
            line += f"{values[names.index(peer)] / values[names.index(ours)]:>{width}.2f}"
        print(line)

    print(f"{'ms per lifecycle':26}{header}")
    for mode, records in (("sequential", sequential), ("parallel", parallel)):
        if not records or not records[names[0]]:
            continue
        for label, fraction in (("median", 0.5), ("p90", 0.9), ("p99", 0.99)):
            row(f"{mode} {label}",
                [ms(percentile([r["total"] for r in records[n]], fraction)) for n in names])
        if mode == "parallel":
            row("parallel lifecycles/s",
                [len(records[n]) / walls[n] for n in names], "{:.1f}", ratio=False)

    for mode, records in (("sequential", sequential), ("parallel", parallel)):
        if not records or not records[names[0]]:
            continue
        print(f"\n{'ms, ' + mode + ' medians':26}{header}")
        for verb in VERBS:
            row(verb, [ms(statistics.median([r[verb] for r in records[n]])) for n in names])

    print(f"\n{'peak RSS, MiB (max / median)':30}" + "".join(f"{n:>20}" for n in names))
    for verb in RSS_VERBS:
        cells = []
        for n in names:
            values = [r["rss_" + verb] for r in sequential.get(n, []) + parallel.get(n, [])]
            cells.append(f"{mib(max(values)):.2f} / {mib(statistics.median(values)):.2f}")
        print(f"{verb:30}" + "".join(f"{c:>20}" for c in cells))
    print(f"  (ru_maxrss of each runtime process from the spawner's wait4; a static no-op from "
          f"the same spawner: {mib(floor):.2f} MiB)")

    if ours in names:
        print()
        every = sequential.get(ours, []) + parallel.get(ours, [])
        peak = max(r["rss_" + v] for r in every for v in RSS_VERBS)
        print(f"  {ours} peak RSS {mib(peak):.2f} MiB (target under {mib(TARGET_RSS_KIB):.0f} "
              f"MiB: {'met' if peak < TARGET_RSS_KIB else 'MISSED'})")
        if both:
            for mode, records in (("sequential", sequential), ("parallel", parallel)):
                if records and records[ours]:
                    ratio = (statistics.median([r["total"] for r in records[peer]])
                             / statistics.median([r["total"] for r in records[ours]]))
                    print(f"  {mode}: runc / {ours} at the median {ratio:.2f}x (target at least "
                          f"{TARGET_RATIO:.0f}x: {'met' if ratio >= TARGET_RATIO else 'MISSED'})")


def runc_version():
    done = subprocess.run([BINARIES["runc"], "--version"], capture_output=True, text=True)
    return done.stdout.split()[2] if done.returncode == 0 and done.stdout else "?"


def print_logs(logs):
    """What each runtime wrote to its --log (name: entries): counts by level, the first
    messages above info."""
    for name, entries in logs.items():
        levels = {}
        for entry in entries:
            levels[entry.get("level", "?")] = levels.get(entry.get("level", "?"), 0) + 1
        print(f"  {name} --log: {len(entries)} entries {levels or ''}")
        shown = set()
        for entry in entries:
            message = str(entry.get("msg", entry))
            if entry.get("level") not in ("info", "debug") and message not in shown:
                shown.add(message)
                print(f"    {entry.get('level')}: {message[:200]}")
                if len(shown) >= 5:
                    break


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--total-parallel", type=int, default=200)
    parser.add_argument("--runtimes", default="runc,monocri-runtime")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("oci_runtime_bench: needs root; run it under tests/harness/in-namespace")
    names = [n.strip() for n in args.runtimes.split(",") if n.strip()]
    for name in names:
        if name not in BINARIES:
            sys.exit(f"oci_runtime_bench: unknown runtime {name} (known: {', '.join(BINARIES)})")
        if not os.access(BINARIES[name], os.X_OK):
            sys.exit(f"oci_runtime_bench: {BINARIES[name]} is missing")

    # SIGTERM ends the run as Ctrl-C does: through the cleanup.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stop = threading.Event()
    scratch = tempfile.mkdtemp(prefix="monocri-oci-bench-")
    runtimes, spawners = [], []
    sequential, parallel, walls = {}, {}, {}
    floor = None
    failed = False
    set_child_subreaper(True)
    try:
        spawner_binary = build_spawner(scratch)
        spawners = [Spawner(spawner_binary) for _ in range(max(1, args.parallel))]
        floor = spawners[0].run([spawner_binary, "--noop"])[1]
        rootfs = extract_busybox_rootfs(os.path.join(scratch, "rootfs"))
        runtimes = [Runtime(n, BINARIES[n], os.path.join(scratch, n)) for n in names]
        for runtime in runtimes:
            bundle = worker_bundle(runtime, 0)
            for i in range(WARMUP):
                lifecycle(runtime, spawners[0], bundle, f"warm{i}", rootfs)
        if args.sequential > 0:
            sequential = run_sequential(runtimes, spawners[0], args.sequential, rootfs, stop)
        if args.total_parallel > 0 and args.parallel > 0:
            parallel, walls = run_parallel(runtimes, spawners, args.parallel,
                                           args.total_parallel, rootfs, stop)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        failed = True
    except Exception as error:  # noqa: BLE001  (reported, then the cleanup)
        print(f"\nfailed: {error}", file=sys.stderr)
        failed = True
    finally:
        stop.set()
        logs = {r.name: r.log_entries() for r in runtimes}  # read before the temp dir goes
        leftovers = clean_up(runtimes, spawners, scratch)
        set_child_subreaper(False)
    if not failed:
        print_report(args, runtimes, sequential, parallel, walls, floor)
    print()
    print_logs(logs)
    for line in leftovers:
        print(f"  LEFT: {line}", file=sys.stderr)
    if not leftovers:
        print("  cleanup: no state, cgroup, process, mount or temp dir left")
    if failed or leftovers:
        sys.exit(1)


if __name__ == "__main__":
    main()
