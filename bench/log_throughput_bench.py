#!/usr/bin/python3
"""CRI log throughput benchmark (issue 5): one container writes --bytes of lines to stdout, for
each line shape (--shapes, the '\\n' included), and the bytes are followed until the last one is
in the CRI log file. Three runs per shape in the same invocation, on the same filesystem:

  monocri  a busybox container through the CRI (one pod each), the daemon under its keeper;
  conmon   the same container (same rootfs, same config.json, runc) under Debian's conmon
           (CRI-O's per-container monitor) writing its `k8s-file` CRI log;
  cat      the plain limit: the same generator piped into `cat > file` on the host.

The generator is busybox `cat` of a 4 MiB file of whole lines (sendfile into the pipe), read as
many times as --bytes needs: it costs ~0.1 CPU s per GiB, where `yes | head -c` costs ~4 and
would be the bottleneck of all three runs. Every line differs from its neighbours, so a lost,
doubled or reordered piece shows in the check.

The three take turns at going first in each round of --repeat. Per run: wall time from the
start (StartContainer, `runc start`, the generator's spawn) until the file holds the last byte
(its size polled every millisecond); MB/s = payload / wall (MB = 10^6 bytes); the CPU time of
the process that writes the log (utime + stime from /proc/PID/stat, children excluded: the
daemon plus its keeper, conmon, cat) per GiB of payload; MB logged per CPU second. Targets:
monocri at least 3x conmon's MB per CPU second and at least half cat's MB/s. Each log is then
read back in full: record count and every content byte against the generator.

  bench/log_throughput_bench.py [--bytes 1G] [--shapes 100,16384] [--repeat 1] [--dir /var/tmp]

Needs root, runc, conmon and Debian's docker-registry; run it under tests/harness/in-namespace.
A missed target, the daemon's loop stalls and warnings are reported; a wrong log, a writer that
never finishes or anything left behind fails the run (exit status 1)."""
import argparse
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# The helpers of the other benchmarks (daemon, CRI calls, cgroups, the conmon peer).
from density_bench import CONMON, ConmonPeer, is_conmon, log_problems  # noqa: E402
from pod_start_bench import (  # noqa: E402
    CALL_TIMEOUT, RUNC, RUNTIME, Registry, api_pb2, clean_up_after_daemon, cpu_seconds,
    daemon_pid_of, pod_config, proc_stat_fields, push_busybox, remove_all_pods,
    remove_cgroups, spec_template_of, start_daemon, tmpfs_at, unary, user_cpu_seconds,
    verbose_info)
from monocri_harness import status_kib_of  # noqa: E402

BUSYBOX = "/bin/busybox"  # the binary the test image ships: the generator on the host too
CAT = "/bin/cat"
PATTERN_BYTES = 4 << 20
POLL_SECONDS = 0.001
STALL_SECONDS = 10.0  # no growth for this long once the writer is gone: the log is final
RUN_TIMEOUT = 900.0
CHECK_CHUNK = 16 << 20
CONMON_EFFICIENCY_TARGET = 3.0  # monocri's MB per CPU second over conmon's
CAT_FRACTION_TARGET = 0.5       # monocri's MB/s over cat's
GIB = 1 << 30
PR_SET_CHILD_SUBREAPER = 36

# A CRI log record's header with every digit made '0' (the content has none): monocri writes
# UTC with Z, conmon the local offset.
MASK_DIGITS = bytes.maketrans(b"0123456789", b"0" * 10)
MASKED_TIMESTAMPS = (b"0000-00-00T00:00:00.000000000Z", b"0000-00-00T00:00:00.000000000+00:00",
                     b"0000-00-00T00:00:00.000000000-00:00")
PARTIAL_MARK = b"\x00"  # stands for a P header while the record is joined to the next one
JOIN_PARTIAL = re.compile(rb"\x00([^\n]*)\n")
MONOCRI_HEADER_BYTES = 30 + len(b" stdout F ")


def parse_size(text):
    """'1G', '64M', '512K' (powers of 1024) or a plain number of bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def filesystem_of(path):
    """(mount point, filesystem type) holding `path`, from this namespace's mount table."""
    path = os.path.realpath(path)
    best = ("/", "?")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            before, after = line.split(" - ", 1)
            point, fstype = before.split()[4], after.split()[0]
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best[0]):
                best = (point, fstype)
    return best


# ---- the generator ----

class Workload:
    """`lines` lines of `line_bytes` each ('\\n' included): a 4 MiB pattern file read `reps`
    times, then its head (file t) for the rest. Line i of the pattern starts with i written in
    letters, so that neighbouring lines differ."""

    def __init__(self, line_bytes, total_bytes, directory):
        if line_bytes < 2:
            raise ValueError("a line needs at least one byte of content and its '\\n'")
        self.line_bytes = line_bytes
        self.lines = total_bytes // line_bytes
        self.payload = self.lines * line_bytes
        per_pattern = max(1, PATTERN_BYTES // line_bytes)
        letters = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        lines = []
        for i in range(per_pattern):
            # No digit, space or NUL in the content: the check masks digits in the headers.
            number = bytes(letters[26 + i // 26 ** k % 26] for k in (3, 2, 1, 0)) + b"-"
            rotated = letters[i % 26:26] + letters[:i % 26]
            content = number + rotated * ((line_bytes - 1) // 26 + 1)
            lines.append(content[:line_bytes - 1] + b"\n")
        self.pattern = b"".join(lines)
        self.reps, tail = divmod(self.payload, len(self.pattern))
        self.directory = directory
        os.makedirs(directory)
        with open(os.path.join(directory, "p"), "wb") as f:
            f.write(self.pattern)
        with open(os.path.join(directory, "t"), "wb") as f:
            f.write(self.pattern[:tail])
        self._periodic = b""

    def files(self, prefix):
        """The generator's arguments: the pattern `reps` times, then the rest."""
        return [f"{prefix}/p"] * self.reps + [f"{prefix}/t"]

    def expected(self, offset, length):
        """Bytes [offset, offset + length) of the stream the generator writes."""
        need = length + len(self.pattern)
        if len(self._periodic) < need:
            self._periodic = self.pattern * (need // len(self.pattern) + 1)
        start = offset % len(self.pattern)
        return self._periodic[start:start + length]

    def monocri_log_bytes(self):
        """The exact size of monocri's log: one F record per line (a line within the line cap)."""
        return self.lines * (MONOCRI_HEADER_BYTES + self.line_bytes)


def check_stream(workload, path, cri):
    """Reads `path` through (16 MiB at a time) and compares what it carries with the generator's
    bytes: a CRI log's record contents (`cri`) or the raw bytes. Returns the counts and the
    problems found."""
    found = {"records": 0, "full": 0, "partial": 0, "content": 0, "problems": []}
    carry = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHECK_CHUNK)
            if not chunk:
                break
            if cri:
                data = carry + chunk
                cut = data.rfind(b"\n") + 1
                data, carry = data[:cut].translate(MASK_DIGITS), data[cut:]
                for stamp in MASKED_TIMESTAMPS:
                    found["full"] += data.count(stamp + b" stdout F ")
                    found["partial"] += data.count(stamp + b" stdout P ")
                    data = data.replace(stamp + b" stdout F ", b"")
                    data = data.replace(stamp + b" stdout P ", PARTIAL_MARK)
                # A P record's content goes on in the next record: its '\n' is not the line's.
                # A record in any other shape keeps its header here, and mismatches below.
                found["records"] = found["full"] + found["partial"]
                if PARTIAL_MARK in data:
                    data = JOIN_PARTIAL.sub(rb"\1", data)
            else:
                data = chunk
            expected = workload.expected(found["content"], len(data))
            if data != expected:
                at = next((i for i in range(min(len(data), len(expected)))
                           if data[i] != expected[i]), min(len(data), len(expected)))
                found["problems"].append(
                    f"{path}: content differs at stream byte {found['content'] + at} (digits "
                    f"of headers shown as 0): got {data[max(0, at - 20):at + 40]!r}, expected "
                    f"{expected[max(0, at - 20):at + 40]!r}")
                return found
            found["content"] += len(data)
    if carry:
        found["problems"].append(f"{path}: ends inside a record: {carry[:80]!r}")
    if found["content"] != workload.payload:
        found["problems"].append(f"{path}: {found['content']} content bytes, expected "
                                 f"{workload.payload}")
    if cri and found["full"] != workload.lines:
        found["problems"].append(f"{path}: {found['full']} F records, expected {workload.lines}")
    return found


# ---- following a log file ----

def follow(path, finished, timeout=RUN_TIMEOUT):
    """Polls the size of `path` every millisecond until `finished(size, seconds without growth)`
    says it is final. Returns (time of the first byte, time of the last growth, final size), in
    time.monotonic() seconds."""
    began = time.monotonic()
    first = last = None
    size = 0
    deadline = began + timeout
    while True:
        now = time.monotonic()
        try:
            current = os.stat(path).st_size
        except FileNotFoundError:
            current = 0
        if current != size:
            size, last = current, now
            if first is None:
                first = now
        if finished(size, now - (last or began)):
            # The writer is gone: one more look for bytes written since the last poll.
            try:
                current = os.stat(path).st_size
            except FileNotFoundError:
                current = 0
            if current != size:
                size, last = current, time.monotonic()
                first = first or last
            if first is None:
                raise RuntimeError(f"{path}: no byte arrived")
            return first, last, size
        if now > deadline:
            raise TimeoutError(f"{path}: {size} bytes after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def new_log_lines(daemon, offset):
    """The daemon's log lines past byte `offset`."""
    with open(daemon.log_path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace").splitlines()


# ---- monocri ----

def container_status(channel, container_id):
    response = unary(channel, RUNTIME + "ContainerStatus",
                     api_pb2.ContainerStatusRequest(container_id=container_id, verbose=True),
                     api_pb2.ContainerStatusResponse, timeout=CALL_TIMEOUT)
    return response.status, json.loads(response.info["info"])


def run_monocri(daemon, channel, workload, log_root, cgroup_parent, label):
    """One pod, one writer container; returns the run's figures and the container's spec (what
    the conmon run copies)."""
    config = pod_config(label, log_root, cgroup_parent)
    pod_id = unary(channel, RUNTIME + "RunPodSandbox", api_pb2.RunPodSandboxRequest(config=config),
                   api_pb2.RunPodSandboxResponse, timeout=CALL_TIMEOUT).pod_sandbox_id
    container = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="writer"),
        image=api_pb2.ImageSpec(image=daemon.image), command=["cat", *workload.files("/g")],
        log_path="writer/0.log",
        mounts=[api_pb2.Mount(container_path="/g", host_path=workload.directory,
                              readonly=True)],
        linux=api_pb2.LinuxContainerConfig(security_context=api_pb2.LinuxContainerSecurityContext(
            namespace_options=config.linux.security_context.namespace_options)))
    container_id = unary(channel, RUNTIME + "CreateContainer",
                         api_pb2.CreateContainerRequest(pod_sandbox_id=pod_id, config=container,
                                                        sandbox_config=config),
                         api_pb2.CreateContainerResponse, timeout=CALL_TIMEOUT).container_id
    # Read while the container is only created: it exits within a second once started.
    template = spec_template_of(container_status(channel, container_id)[1])
    path = os.path.join(config.log_directory, "writer/0.log")
    expected_size = workload.monocri_log_bytes()
    daemon_pid, keeper_pid = daemon_pid_of(channel), daemon.pid
    rss_before = status_kib_of(daemon_pid, "VmRSS")
    log_offset = os.path.getsize(daemon.log_path)

    next_look = [0.0]

    def finished(size, quiet):
        if size >= expected_size:
            return True
        # Short of the expected size: final only once the container is gone and the file
        # stopped growing (a call once a second at most: calls cost the daemon CPU).
        if quiet < STALL_SECONDS or time.monotonic() < next_look[0]:
            return False
        next_look[0] = time.monotonic() + 1.0
        return container_status(channel, container_id)[0].state == api_pb2.CONTAINER_EXITED

    def log_writes():
        return verbose_info(channel)["containerLogWrites"]["batchesWritten"]

    writes_before = log_writes()
    cpu_before = cpu_seconds(daemon_pid), cpu_seconds(keeper_pid), user_cpu_seconds(daemon_pid)
    begin = time.monotonic()
    unary(channel, RUNTIME + "StartContainer",
          api_pb2.StartContainerRequest(container_id=container_id),
          api_pb2.StartContainerResponse, timeout=CALL_TIMEOUT)
    first, last, size = follow(path, finished)
    daemon_cpu = cpu_seconds(daemon_pid) - cpu_before[0]
    keeper_cpu = cpu_seconds(keeper_pid) - cpu_before[1]
    daemon_user = user_cpu_seconds(daemon_pid) - cpu_before[2]
    result = {"wall": last - begin, "first_byte": first - begin, "cpu": daemon_cpu + keeper_cpu,
              "user": daemon_user, "keeper_cpu": keeper_cpu, "rss_before": rss_before,
              "rss_after": status_kib_of(daemon_pid, "VmRSS"),
              "hwm": status_kib_of(daemon_pid, "VmHWM"), "size": size, "problems": [],
              "writes": log_writes() - writes_before}
    deadline = time.monotonic() + CALL_TIMEOUT
    while True:
        status, info = container_status(channel, container_id)
        if status.state == api_pb2.CONTAINER_EXITED or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if status.state != api_pb2.CONTAINER_EXITED or status.exit_code != 0:
        result["problems"].append(f"the writer container ended as {status.state} with exit "
                                  f"code {status.exit_code} ({status.reason}: {status.message})")
    stats = info.get("log", {})
    result["records_written"] = stats.get("recordsWritten")
    if stats.get("bytesIn") != workload.payload or any(
            stats.get(key) for key in ("writeErrors", "bytesDropped", "bytesDroppedBySizeLimit",
                                       "bytesDroppedByRateLimit")):
        result["problems"].append(f"the daemon's log counters: {stats}")
    if size != expected_size:
        result["problems"].append(f"the log holds {size} bytes, {expected_size} expected")
    lines = new_log_lines(daemon, log_offset)
    stalls = [line for line in lines if "loop stall" in line]
    result["stalls"] = len(stalls)
    result["worst_stall"], result["worst_stall_line"] = max(
        ((float(m.group(1)), line) for line, m in
         ((line, re.search(r"spent ([0-9.]+) ms", line)) for line in stalls) if m),
        default=(0.0, ""))
    result["warnings"] = [line for line in lines if (" warn " in line or " error " in line)
                          and "loop stall" not in line]
    check = check_stream(workload, path, cri=True)
    result["check"] = check
    result["problems"] += check["problems"]
    if check["partial"]:
        result["problems"].append(f"{check['partial']} P records for lines within the line cap")
    unary(channel, RUNTIME + "RemovePodSandbox",
          api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
          api_pb2.RemovePodSandboxResponse, timeout=CALL_TIMEOUT)
    shutil.rmtree(config.log_directory, ignore_errors=True)
    return result, template


# ---- conmon ----

@contextlib.contextmanager
def child_subreaper():
    """This process adopts its orphaned descendants while inside: conmon, once it has forked
    away from its launcher, becomes our child, so that its /proc/PID/stat (its CPU time) outlives
    its exit as a zombie until we reap it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def is_zombie(pid):
    fields = proc_stat_fields(pid)
    return fields is None or fields[0] == "Z"


def reap(pid, timeout):
    """Waits for our child `pid` to end (killing it after `timeout`); False if it had to be
    killed. A pid that is not our child is only watched."""
    deadline = time.monotonic() + timeout
    killed = False
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return not killed
        except ChildProcessError:
            if not is_conmon(pid):
                return not killed
        if time.monotonic() > deadline and not killed:
            os.kill(pid, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + timeout
        elif time.monotonic() > deadline:
            return False
        time.sleep(0.02)


class ConmonLogPeer(ConmonPeer):
    """The density benchmark's conmon peer, with conmon writing a `k8s-file` log where the other
    runs write theirs, and the start (`runc start`) left to the caller so that it can be timed."""

    def __init__(self, base, template, cgroup_parent, log_dir):
        super().__init__(base, template, cgroup_parent)
        self.log_dir = log_dir

    def create(self, container_id):
        """conmon + `runc create`; returns (conmon's pid, the log's path)."""
        log_path = os.path.join(self.log_dir, container_id + ".log")
        _, conmon_pid = super().create(container_id, log_path=f"k8s-file:{log_path}")
        if conmon_pid is None:
            raise RuntimeError(f"conmon {container_id}: no pid file after create")
        return conmon_pid, log_path

    def exit_code(self, container_id):
        with open(os.path.join(self.base, "e", container_id)) as f:
            return int(f.read().strip())

    def remove_all(self):
        """runc delete --force of every container, each conmon reaped (killed after 10 s);
        returns what failed."""
        failures = self.delete_containers()
        for _, conmon_pid in self.containers:
            if conmon_pid is not None and not reap(conmon_pid, 10):
                failures.append(f"conmon {conmon_pid} did not end with its container: killed")
        self.containers = []
        return failures


def run_conmon(peer, workload, label):
    """One container under conmon; returns the run's figures."""
    conmon_pid, path = peer.create(label)
    result = {"problems": []}
    cpu_before = cpu_seconds(conmon_pid), user_cpu_seconds(conmon_pid)
    begin = time.monotonic()
    subprocess.run(peer.runc("start", label), check=True, capture_output=True,
                   timeout=CALL_TIMEOUT)
    # conmon ends once the container has exited and its pipes are drained: the log is final.
    first, last, size = follow(path, lambda size, quiet: is_zombie(conmon_pid))
    if proc_stat_fields(conmon_pid) is None:
        raise RuntimeError(f"conmon {conmon_pid} was reaped by another process: its CPU time "
                           f"is lost (is this process its subreaper?)")
    result["cpu"] = cpu_seconds(conmon_pid) - cpu_before[0]
    result["user"] = user_cpu_seconds(conmon_pid) - cpu_before[1]
    result.update(wall=last - begin, first_byte=first - begin, size=size)
    if not reap(conmon_pid, 10):
        result["problems"].append(f"conmon {conmon_pid} did not end")
    code = peer.exit_code(label)
    if code != 0:
        result["problems"].append(f"the writer container exited with {code}")
    result["problems"] += peer.remove_all()
    check = check_stream(workload, path, cri=True)
    result["check"] = check
    result["problems"] += check["problems"]
    os.unlink(path)
    return result


# ---- cat ----

def run_cat(workload, path):
    """The generator piped into `cat > path` on the host; cat's own CPU from wait4."""
    with open(path, "wb") as out:
        begin = time.monotonic()
        generator = subprocess.Popen([BUSYBOX, "cat", *workload.files(workload.directory)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        try:
            cat = subprocess.Popen([CAT], stdin=generator.stdout, stdout=out)
        finally:
            generator.stdout.close()
        _, status, usage = os.wait4(cat.pid, 0)
        end = time.monotonic()
    cat.returncode = os.waitstatus_to_exitcode(status)
    result = {"wall": end - begin, "first_byte": None, "cpu": usage.ru_utime + usage.ru_stime,
              "user": usage.ru_utime,
              "size": os.path.getsize(path), "problems": []}
    if generator.wait() != 0 or cat.returncode != 0:
        result["problems"].append(f"generator exited with {generator.returncode}, cat with "
                                  f"{cat.returncode}")
    check = check_stream(workload, path, cri=False)
    result["check"] = check
    result["problems"] += check["problems"]
    os.unlink(path)
    return result


# ---- report ----

def mb_per_s(payload, result):
    return payload / 1e6 / result["wall"]


def mb_per_cpu_s(payload, result):
    return payload / 1e6 / result["cpu"] if result["cpu"] > 0 else float("inf")


def wrong(result):
    return "  (WRONG: see the problems below)" if result["problems"] else ""


def shape_name(line_bytes):
    return f"{line_bytes // 1024} KiB" if line_bytes % 1024 == 0 else f"{line_bytes} B"


def report(shape, workload, runs):
    """The table of one line shape: medians over the repeats, and the targets."""
    payload = workload.payload
    print(f"\nLines of {shape_name(shape)} ('\\n' included): {workload.lines} lines, "
          f"{payload} bytes ({payload / GIB:.3f} GiB) to stdout, {len(runs['monocri'])} run(s), "
          f"medians\n")
    print(f"{'':10}{'wall s':>9}{'1st byte ms':>12}{'MB/s':>9}{'CPU s/GiB':>11}{'user %':>8}"
          f"{'MB/CPU s':>10}{'records':>10}{'P':>8}")
    medians = {}
    for who in ("monocri", "conmon", "cat"):
        done = [r for r in runs[who] if not r["problems"] and r["cpu"] >= 0]
        if not done:
            print(f"{who:10}{'failed':>9}")
            continue
        wall = statistics.median(r["wall"] for r in done)
        cpu = statistics.median(r["cpu"] for r in done)
        user = sum(r["user"] for r in done) / max(sum(r["cpu"] for r in done), 1e-9)
        firsts = [r["first_byte"] for r in done if r["first_byte"] is not None]
        first = f"{statistics.median(firsts) * 1000:>12.1f}" if firsts else f"{'-':>12}"
        medians[who] = {"wall": wall, "cpu": cpu}
        check = done[0]["check"]
        records = f"{check['records']:>10}" if who != "cat" else f"{'-':>10}"
        partial = f"{check['partial']:>8}" if who != "cat" else f"{'-':>8}"
        print(f"{who:10}{wall:>9.3f}{first}{mb_per_s(payload, medians[who]):>9.0f}"
              f"{cpu / (payload / GIB):>11.3f}{user * 100:>8.0f}"
              f"{mb_per_cpu_s(payload, medians[who]):>10.0f}{records}{partial}")
    if "monocri" in medians:
        ours = runs["monocri"]
        keeper = statistics.median(r["keeper_cpu"] for r in ours)
        print(f"\n  monocri CPU = daemon + keeper (keeper: {keeper:.2f} s); daemon RSS "
              f"{ours[0]['rss_before']} KiB before the first run, "
              f"{ours[-1]['rss_after']} KiB after the last, peak {max(r['hwm'] for r in ours)} "
              f"KiB; loop stalls reported: {sum(r['stalls'] for r in ours)} (worst "
              f"{max(r['worst_stall'] for r in ours):.1f} ms)")
        writes = statistics.median(r["writes"] for r in ours)
        print(f"  log writes (writev batches): {writes:.0f}, {payload / max(writes, 1) / 1024:.1f} "
              f"KiB of output each on average")
        worst = max(ours, key=lambda r: r["worst_stall"])
        if worst["worst_stall_line"]:
            print(f"  the worst stall, as the daemon logged it: "
                  f"{worst['worst_stall_line'].strip()[-160:]}")
    print("  wall: from StartContainer / runc start / the generator's spawn to the last byte in"
          " the file (polled every 1 ms); 1st byte: the same start to the first byte; user %: the"
          " share of the CPU time spent outside the kernel")
    verdicts = []
    if "monocri" in medians and "conmon" in medians:
        efficiency = mb_per_cpu_s(payload, medians["monocri"]) / \
            mb_per_cpu_s(payload, medians["conmon"])
        speed = mb_per_s(payload, medians["monocri"]) / mb_per_s(payload, medians["conmon"])
        met = efficiency >= CONMON_EFFICIENCY_TARGET
        verdicts.append(met)
        print(f"  monocri / conmon, MB per CPU second: {efficiency:.2f}x (target >= "
              f"{CONMON_EFFICIENCY_TARGET:.0f}x): {'met' if met else 'MISSED'}; MB/s: "
              f"{speed:.2f}x")
    if "monocri" in medians and "cat" in medians:
        fraction = mb_per_s(payload, medians["monocri"]) / mb_per_s(payload, medians["cat"])
        met = fraction >= CAT_FRACTION_TARGET
        verdicts.append(met)
        print(f"  monocri / cat, MB/s: {fraction:.2f}x (target >= {CAT_FRACTION_TARGET}x): "
              f"{'met' if met else 'MISSED'}")
    return verdicts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", default="1G", help="payload per run (1G, 64M, or bytes)")
    parser.add_argument("--shapes", default="100,16384",
                        help="line sizes in bytes, '\\n' included, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each of the three")
    parser.add_argument("--journal", choices=("on", "off"), default="on",
                        help="the daemon's container_log_journal (on: the default, lossless "
                             "across a daemon crash; its spools live under the run root, a tmpfs "
                             "here as /run is on a node)")
    parser.add_argument("--dir", default="/var/tmp",
                        help="where the three logs are written (one filesystem for all)")
    args = parser.parse_args()
    total = parse_size(args.bytes)
    shapes = [int(s) for s in args.shapes.split(",") if s]
    if os.geteuid() != 0:
        sys.exit("log_throughput_bench: needs root (runc, mounts); run it under "
                 "tests/harness/in-namespace")
    for tool in (RUNC, CONMON, BUSYBOX, CAT):
        if not os.access(tool, os.X_OK):
            sys.exit(f"log_throughput_bench: {tool} is missing (make deps)")

    scratch = tempfile.mkdtemp(prefix="monocri-log-bench-")
    logs = tempfile.mkdtemp(prefix="monocri-log-bench-", dir=args.dir)
    point, fstype = filesystem_of(logs)
    print(f"logs in {logs}: {fstype} mounted on {point}"
          + ("  (a memory filesystem: not what a node's disk does)" if fstype == "tmpfs" else ""))
    print(f"{os.cpu_count()} CPUs; generator: busybox cat of a 4 MiB file of lines; "
          f"conmon {CONMON}, runc {RUNC}", flush=True)
    cgroup_parent = f"monocri-logbench-{os.getpid()}"  # relative: nested under our own cgroups
    problems, notes, verdicts = [], [], []
    daemon = None
    peer_base = None
    mounts = contextlib.ExitStack()
    try:
        with Registry() as registry:
            push_busybox(registry)
            # The run root on tmpfs, as /run is on a node: the journal's spools live there.
            mounts.enter_context(tmpfs_at(os.path.join(scratch, "monocri", "d", "run")))
            daemon = start_daemon(
                os.path.join(scratch, "monocri"), registry, "info", keeper=True,
                config=f"container_log_journal = {'true' if args.journal == 'on' else 'false'}\n")
            print(f"monocri: container_log_journal = {args.journal}", flush=True)
            with daemon.channel() as channel:
                if daemon_pid_of(channel) == daemon.pid:
                    raise RuntimeError("the daemon did not start under its keeper")
                for shape in shapes:
                    workload = Workload(shape, total, os.path.join(logs, f"gen-{shape}"))
                    runs = {"monocri": [], "conmon": [], "cat": []}
                    peer_base = tempfile.mkdtemp(prefix="bench-l", dir="/tmp")  # short paths
                    peer = None
                    template = None

                    def ours(label):
                        nonlocal template, problems, notes
                        result, template = run_monocri(daemon, channel, workload,
                                                       os.path.join(logs, "monocri"),
                                                       cgroup_parent, label)
                        runs["monocri"].append(result)
                        problems += [f"monocri, {shape} B lines: {p}"
                                     for p in result["problems"]]
                        notes += [f"monocri, {shape} B lines, the daemon warned: {w}"
                                  for w in result["warnings"][:10]]
                        return result

                    def conmons(label):
                        nonlocal peer, problems
                        if peer is None:
                            peer = ConmonLogPeer(peer_base, template, cgroup_parent,
                                                 os.path.join(logs, "conmon"))
                            os.makedirs(peer.log_dir, exist_ok=True)
                        with child_subreaper():
                            try:
                                result = run_conmon(peer, workload, label)
                            except Exception as error:  # noqa: BLE001  (reported)
                                result = {"problems": [f"{type(error).__name__}: {error}"]}
                            finally:
                                problems += [f"conmon: {p}" for p in peer.remove_all()]
                        if "check" in result:
                            runs["conmon"].append(result)
                        problems += [f"conmon, {shape} B lines: {p}" for p in result["problems"]]
                        return result

                    def cats(label):
                        nonlocal problems
                        result = run_cat(workload, os.path.join(logs, "cat.out"))
                        runs["cat"].append(result)
                        problems += [f"cat, {shape} B lines: {p}" for p in result["problems"]]
                        return result

                    writers = [("monocri", ours), ("conmon", conmons), ("cat", cats)]
                    failed = False
                    for r in range(args.repeat):
                        label = f"l{shape}-{r}"
                        # Each writer goes first in turn: on a VM that takes freed memory
                        # back at once (README), the first after a round's deletions is the
                        # one that pays for it. monocri's first run gives conmon its spec.
                        for name, run in writers[r % 3:] + writers[:r % 3]:
                            print(f"lines of {shape} B, run {r + 1}: {name}...", flush=True)
                            try:
                                result = run(label)
                            except Exception as error:  # noqa: BLE001  (reported with the log)
                                problems.append(f"{name}, {shape} B lines: "
                                                f"{type(error).__name__}: {error}\n"
                                                f"{log_problems(daemon)}")
                                remove_all_pods(channel)
                                failed = True
                                break
                            if "check" in result:
                                print(f"  {mb_per_s(workload.payload, result):.0f} MB/s, "
                                      f"{result['cpu']:.2f} CPU s{wrong(result)}", flush=True)
                        if failed:
                            break
                    verdicts += report(shape, workload, runs)
                    shutil.rmtree(peer_base, ignore_errors=True)
                    peer_base = None
                    shutil.rmtree(workload.directory, ignore_errors=True)
                remove_all_pods(channel)
    finally:
        if daemon is not None:
            if daemon.alive():
                with contextlib.suppress(Exception), daemon.channel() as channel:
                    remove_all_pods(channel)
            code = daemon.stop(timeout=120)
            if code != 0:
                problems.append(f"monocri exited with {code}:\n{log_problems(daemon)}")
            left = clean_up_after_daemon(daemon)
            if left:
                problems.append(f"runc containers left by the daemon (deleted): {left}")
        if peer_base is not None:
            shutil.rmtree(peer_base, ignore_errors=True)
        for left in remove_cgroups(cgroup_parent):
            problems.append(f"cgroup left: {left}")
        mounts.close()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)

    if verdicts:
        print(f"\ntargets met: {sum(verdicts)} of {len(verdicts)}")
    if notes:
        print("\nNotes:\n" + "\n".join(notes))
    if problems:
        print("\nProblems:\n" + "\n".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
