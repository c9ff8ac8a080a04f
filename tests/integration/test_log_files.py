"""Reading CRI logs back and writing them to a full disk: `monoctl logs -f` across kubelet's
rotations, --since and --tail (P records joined, lines longer than the reader's fragment size),
a log directory whose filesystem fills up (the container is not held up, the loss is reported,
writing resumes once there is room), and ReopenContainerLog on containers that do not run."""
import errno
import hashlib
import json
import os
import random
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from monocri_harness import (MONOCTL, SANITIZED, api_pb2, assert_serving, run_monoctl,
                              status_kib_of, unary)
from test_containers import (RECORD, RUNTIME, call, create, daemon, log_records,  # noqa: F401
                             make_pod, registry, start, status, wait_exited)


def endpoint(daemon):
    return ["-r", "unix://" + daemon.socket]


def reopen(daemon, container_id):
    with daemon.channel() as channel:
        unary(channel, RUNTIME + "ReopenContainerLog",
              api_pb2.ReopenContainerLogRequest(container_id=container_id),
              api_pb2.ReopenContainerLogResponse)


def record_times(path):
    """(timestamp text, stream, tag, content) of each record of a log file."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    assert lines[-1] == b"", f"{path} ends with a whole record"
    out = []
    for line in lines[:-1]:
        match = RECORD.match(line)
        assert match, line[:200]
        out.append((match.group(1).decode(), match.group(2).decode(), match.group(3).decode(),
                    match.group(4)))
    return out


def ns_of(stamp):
    """Nanoseconds since the epoch of a writer's timestamp (2026-11-21T23:41:00.123456789Z)."""
    whole = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(whole.timestamp()) * 10**9 + int(stamp[20:29])


class Follower:
    """`monoctl logs -f` in the background, its stdout collected line by line."""

    def __init__(self, daemon, container_id):
        self.proc = subprocess.Popen([MONOCTL, *endpoint(daemon), "logs", "-f", container_id],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = []
        self.errors = b""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for_lines(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.lines) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.lines) >= count, (self.lines, self.proc.poll())

    def wait(self, timeout):
        """monoctl's exit code, or None if it was still following after `timeout` (then it is
        killed)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        self.reader.join(timeout=5)
        self.errors = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code


def test_follow_goes_across_rotations_and_ends_with_the_container(daemon, tmp_path):
    """A container prints a numbered line every ~20 ms; kubelet rotates its log four times
    while `monoctl logs -f` follows: every number comes out once, in order, and -f ends once
    the container has exited."""
    count = 150
    pod = make_pod(daemon, tmp_path, name="followed")
    container_id = create(daemon, pod, "counter", [
        "sh", "-c", f"i=0; while [ $i -lt {count} ]; do i=$((i+1)); echo $i; sleep 0.02; done"])
    log = os.path.join(pod[1].log_directory, "counter/0.log")
    start(daemon, container_id)
    follower = Follower(daemon, container_id)
    try:
        follower.wait_for_lines(1)  # it has the first file open
        rotated = []
        for n in range(4):
            time.sleep(0.4)
            # As kubelet does: rename with a timestamp suffix, then ask for a new file.
            target = f"{log}.{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.{n}"
            os.rename(log, target)
            rotated.append(target)
            reopen(daemon, container_id)
        assert wait_exited(daemon, container_id).exit_code == 0
        exited_at = time.monotonic()
    finally:
        code = follower.wait(timeout=10)
    assert code == 0, ("monoctl logs -f ended when the container exited", code, follower.errors)
    assert time.monotonic() - exited_at < 3, "and promptly"

    # Each file, the new one included, holds some of the numbers: the reader did go across.
    per_file = [[int(c) for _, _, _, c in record_times(path)] for path in rotated + [log]]
    assert all(per_file), [len(numbers) for numbers in per_file]
    assert sum(per_file, []) == list(range(1, count + 1)), "the files together hold every line"
    got = [line.rstrip(b"\n").decode() for line in follower.lines]
    assert got == [str(i) for i in range(1, count + 1)], (len(got), got[:5], got[-5:])
    assert follower.errors == b""


def test_follow_of_an_exited_container_prints_its_log_and_ends(daemon, tmp_path):
    pod = make_pod(daemon, tmp_path, name="done")
    container_id = create(daemon, pod, "c", ["sh", "-c", "echo one; echo two >&2"])
    start(daemon, container_id)
    wait_exited(daemon, container_id)
    log_records(os.path.join(pod[1].log_directory, "c/0.log"))
    began = time.monotonic()
    followed = run_monoctl(*endpoint(daemon), "logs", "-f", container_id, timeout=10)
    assert followed.returncode == 0, followed.stderr
    assert (followed.stdout, followed.stderr) == ("one\n", "two\n")
    assert time.monotonic() - began < 3


def test_since_selects_the_records_at_or_after_a_time(daemon, tmp_path):
    pod = make_pod(daemon, tmp_path, name="since")
    # The early lines in one write (one timestamp), 1.2 s before the late ones: a whole second
    # falls between them.
    container_id = create(daemon, pod, "c", [
        "sh", "-c", "printf 'early-1\\nearly-2\\n'; sleep 1.2; echo late-1; sleep 0.1; "
                    "echo late-2; sleep 0.1; echo late-3 >&2"])
    start(daemon, container_id)
    assert wait_exited(daemon, container_id).exit_code == 0
    log = os.path.join(pod[1].log_directory, "c/0.log")
    log_records(log)
    records = record_times(log)
    assert [c for _, _, _, c in records] == [b"early-1", b"early-2", b"late-1", b"late-2",
                                              b"late-3"], records
    first_late = records[2][0]

    def since(text):
        ran = run_monoctl(*endpoint(daemon), "logs", "--since", text, container_id)
        assert ran.returncode == 0, (text, ran.stderr)
        return ran.stdout, ran.stderr

    late = ("late-1\nlate-2\n", "late-3\n")
    # Exactly the first late record's time: it is included (at or after).
    assert since(first_late) == late
    # One nanosecond later: that line is left out, the next one (its own time) is not.
    later = datetime.fromtimestamp((ns_of(first_late) + 1) // 10**9, timezone.utc)
    one_ns_later = f"{later:%Y-%m-%dT%H:%M:%S}.{(ns_of(first_late) + 1) % 10**9:09d}Z"
    assert ns_of(records[3][0]) > ns_of(first_late)
    assert since(one_ns_later) == ("late-2\n", "late-3\n")
    # The whole second between the bursts, without a fraction and with an offset: RFC 3339 as
    # a person types it.
    boundary = ns_of(records[1][0]) // 10**9 + 1
    assert ns_of(records[1][0]) < boundary * 10**9 <= ns_of(first_late)
    local = datetime.fromtimestamp(boundary, timezone(timedelta(hours=5, minutes=30)))
    assert since(local.strftime("%Y-%m-%dT%H:%M:%S+05:30")) == late
    assert since(datetime.fromtimestamp(boundary, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")) == late
    # Before everything / after everything.
    assert since("2000-01-01T00:00:00Z") == ("early-1\nearly-2\nlate-1\nlate-2\n", "late-3\n")
    assert since("2200-01-01T00:00:00Z") == ("", "")
    # --since applies to what --tail selected.
    both = run_monoctl(*endpoint(daemon), "logs", "--tail", "4", "--since", first_late,
                       container_id)
    assert (both.stdout, both.stderr) == late, both
    # A time that is not RFC 3339 is refused with the expected form, not read as "all".
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "2026-01-01 00:00:00"):
        ran = run_monoctl(*endpoint(daemon), "logs", "--since", bad, container_id)
        assert ran.returncode == 2 and ran.stdout == "", (bad, ran)
        assert "RFC 3339" in ran.stderr, ran.stderr


def test_tail_counts_lines_and_gives_back_long_lines_whole(daemon, tmp_path):
    """A 1.3 MB stdout line (about 80 P records and an F, with a stderr line written between
    its chunks) and short lines: --tail counts logical lines, and the long line comes back byte
    for byte, although it is longer than the reader hands on at once (1 MiB)."""
    rng = random.Random(5)
    long_line = bytes(rng.choices(bytes(b for b in range(256) if b != 0x0A), k=1_300_000))
    data = tmp_path / "data"
    data.mkdir()
    (data / "long").write_bytes(long_line + b"\n")
    pod = make_pod(daemon, tmp_path, name="tail")
    container_id = create(daemon, pod, "c", [
        "sh", "-c", "echo before; echo before-err >&2; head -c 600000 /data/long; sleep 0.3; "
                    "echo between >&2; sleep 0.3; dd if=/data/long bs=600000 skip=1 2>/dev/null; "
                    "echo after-1; echo after-2"],
        mounts=[api_pb2.Mount(container_path="/data", host_path=str(data), readonly=True)])
    start(daemon, container_id)
    assert wait_exited(daemon, container_id).exit_code == 0
    records = log_records(os.path.join(pod[1].log_directory, "c/0.log"))
    shape = [(s, t) for s, t, _ in records]
    between = shape.index(("stderr", "F"))
    between = shape.index(("stderr", "F"), between + 1)
    assert records[between][2] == b"between"
    assert ("stdout", "P") in shape[:between] and ("stdout", "P") in shape[between + 1:], \
        "the stderr line sits between P records of the long line"
    assert sum(1 for s, t in shape if t == "P") >= 1_300_000 // 16384, shape
    assert b"".join(c for s, _, c in records if s == "stdout")[len(b"before"):][:len(
        long_line)] == long_line, "the writer kept the bytes (the reader is tested below)"

    def tail(n):
        ran = subprocess.run([MONOCTL, *endpoint(daemon), "logs", "--tail", str(n),
                              container_id], capture_output=True, timeout=30)
        assert ran.returncode == 0, ran.stderr[-500:]
        return ran.stdout, ran.stderr

    assert tail(0) == (b"", b"")
    assert tail(2) == (b"after-1\nafter-2\n", b"")
    out, err = tail(3)
    assert len(out) == len(long_line) + 17 and out == long_line + b"\nafter-1\nafter-2\n"
    assert err == b"", "the stderr line amid the long line's chunks ended before it did"
    assert tail(4) == (long_line + b"\nafter-1\nafter-2\n", b"between\n")
    everything = (b"before\n" + long_line + b"\nafter-1\nafter-2\n", b"before-err\nbetween\n")
    assert tail(6) == everything
    assert tail(1000) == everything
    full = subprocess.run([MONOCTL, *endpoint(daemon), "logs", container_id],
                          capture_output=True, timeout=30)
    assert (full.stdout, full.stderr) == everything

    # --timestamps: a line's time is its first record's, written once however many pieces the
    # line is read in.
    stamps = record_times(os.path.join(pod[1].log_directory, "c/0.log"))
    first_chunk = next(t for t, s, tag, _ in stamps if s == "stdout" and tag == "P")
    after = [t for t, _, _, c in stamps if c in (b"after-1", b"after-2")]
    stamped = subprocess.run([MONOCTL, *endpoint(daemon), "logs", "--timestamps", "--tail", "3",
                              container_id], capture_output=True, timeout=30)
    assert stamped.returncode == 0, stamped.stderr
    assert stamped.stdout == (f"{first_chunk} ".encode() + long_line + b"\n" +
                              f"{after[0]} after-1\n{after[1]} after-2\n".encode())


def monoctl_reading(daemon, *args):
    """Runs monoctl, hashing its stdout as it comes: (sha256, bytes, peak RSS in KiB as last
    seen while it wrote, exit code, stderr)."""
    proc = subprocess.Popen([MONOCTL, *endpoint(daemon), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    digest, size, peak_kib = hashlib.sha256(), 0, 0
    while chunk := proc.stdout.read1(64 << 10):
        digest.update(chunk)
        size += len(chunk)
        try:  # a high-water mark: the last look before the exit sees nearly all of the run
            peak_kib = status_kib_of(proc.pid, "VmHWM")
        except (FileNotFoundError, KeyError):
            pass
    err = proc.stderr.read()
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return digest.hexdigest(), size, peak_kib, proc.returncode, err


def test_a_big_log_is_read_in_bounded_memory(daemon, tmp_path):
    """A 24 MB line (1464 P records and an F) and 80000 short ones, 35 MB of log: monoctl hands them
    out byte for byte without holding the line or the file (its peak RSS stays within 8 MiB of
    what reading a two-line log takes), and --tail counts the long line as one."""
    short = "s" * 99
    pod = make_pod(daemon, tmp_path, name="big")
    small = create(daemon, pod, "small", ["sh", "-c", "echo a; echo b"])
    big = create(daemon, pod, "big", [
        "sh", "-c", f"head -c 24000000 /dev/zero | tr '\\0' y; echo; yes {short} | "
                    "head -n 80000"])
    for container_id in (small, big):
        start(daemon, container_id)
        assert wait_exited(daemon, container_id, timeout=60).exit_code == 0
    log_records(os.path.join(pod[1].log_directory, "small/0.log"))
    log = os.path.join(pod[1].log_directory, "big/0.log")
    deadline = time.monotonic() + 20
    expected = b"y" * 24_000_000 + b"\n" + (short.encode() + b"\n") * 80000
    while True:  # the writer finishes after the exit
        digest, size, peak_kib, code, err = monoctl_reading(daemon, "logs", big)
        if size == len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert code == 0, err
    assert (size, digest) == (len(expected), hashlib.sha256(expected).hexdigest())
    with open(log, "rb") as f:
        assert sum(1 for record in f if record[30:40] == b" stdout P ") == 24_000_000 // 16384
    # -f: it lingers after its output (the container has exited), so its peak is seen.
    _, small_size, small_peak_kib, small_code, _ = monoctl_reading(daemon, "logs", "-f", small)
    assert small_code == 0 and small_size == 4 and small_peak_kib > 0
    if not SANITIZED:  # ASan's quarantine keeps freed memory
        assert peak_kib < small_peak_kib + 8 * 1024, (peak_kib, small_peak_kib)

    # --tail counts the 24 MB line as one, however many records it took.
    shorts = (short.encode() + b"\n") * 80000
    for lines, want in ((1, short.encode() + b"\n"), (80000, shorts), (80001, expected)):
        digest, size, _, code, err = monoctl_reading(daemon, "logs", "--tail", str(lines), big)
        assert code == 0, err
        assert (size, digest) == (len(want), hashlib.sha256(want).hexdigest()), lines


def fill_up(path):
    """Appends to `path` until its filesystem has no block left."""
    with open(path, "ab", buffering=0) as f:
        chunk = b"\0" * 4096
        while True:
            try:
                if f.write(chunk) < len(chunk):
                    chunk = chunk[:1]
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                if len(chunk) == 1:
                    return
                chunk = chunk[:1]


def log_info(daemon, container_id):
    return json.loads(status(daemon, container_id, verbose=True).info["info"])["log"]


def settled_log_info(daemon, container_id, timeout=10):
    """The log stats once they stop changing: the write thread is done with what it had."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        info = log_info(daemon, container_id)
        if info == last:
            return info
        assert time.monotonic() < deadline, ("still changing", info)
        last = info
        time.sleep(0.1)


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_full_disk_drops_output_without_blocking_and_writing_resumes(daemon, tmp_path):
    """The pod's log directory is a 1 MiB tmpfs, 896 KiB of it taken by a filler. The
    container writes 407 KB at once (800 KB of records: more than fits), then, once the test
    has filled the disk to the last block, prints 40 numbered 8 KiB lines 50 ms apart. It runs
    to its end unblocked, the write errors are in its verbose status and in the daemon's log,
    the daemon answers meanwhile, and once the filler is deleted the later lines reach the file
    again (the 320 KB of them fit in what the filler held)."""
    pod_id, config = make_pod(daemon, tmp_path, name="full")
    log_dir = config.log_directory
    os.makedirs(log_dir, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", log_dir],
                   check=True)
    try:
        filler = os.path.join(log_dir, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (896 << 10))
        burst = "0123456789abcdefghijklmnopqrstuvwxyz"
        control = tmp_path / "control"  # the ticks begin once the test made a file "go" here
        control.mkdir()
        container_id = create(daemon, (pod_id, config), "c", [
            "sh", "-c", f"yes {burst} | head -n 11000; "
                        "pad=$(head -c 8000 /dev/zero | tr '\\0' x); "
                        "while [ ! -e /control/go ]; do sleep 0.02; done; "
                        "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo tick-$i-$pad; "
                        "sleep 0.05; done"],
            mounts=[api_pb2.Mount(container_path="/control", host_path=str(control),
                                  readonly=True)])
        log = os.path.join(log_dir, "c/0.log")
        began = time.monotonic()
        start(daemon, container_id)

        # The burst did not fit: the loss is reported, the daemon answers.
        wait_for(lambda: log_info(daemon, container_id)["bytesIn"] >= 11000 * 37)
        info = settled_log_info(daemon, container_id)
        assert info["writeErrors"] > 0 and info["bytesDropped"] > 0, info
        assert info["lastError"] == f"write {log}: No space left on device", info
        assert info["path"] == log
        assert_serving(daemon)

        # Full to the last block: every tick (8 KiB, a new page at least) fails while it lasts.
        fill_up(filler)
        assert os.statvfs(log_dir).f_bavail == 0
        errors_when_full = log_info(daemon, container_id)["writeErrors"]
        size_when_full = os.path.getsize(log)
        (control / "go").touch()
        wait_for(lambda: log_info(daemon, container_id)["writeErrors"] >= errors_when_full + 3)
        assert status(daemon, container_id).status.state == api_pb2.CONTAINER_RUNNING
        assert os.path.getsize(log) == size_when_full, "nothing reached the full disk"
        assert_serving(daemon)

        # Room again: later output reaches the file.
        os.unlink(filler)
        s = wait_exited(daemon, container_id, timeout=20)
        took = time.monotonic() - began
        assert s.exit_code == 0 and s.reason == "Completed", s
        assert took < 15, f"the container was not held up by the full disk ({took:.1f} s)"
        records = log_records(log)
        info = log_info(daemon, container_id)
        pad = b"x" * 8000
        ticks = [c for _, _, c in records if c.startswith(b"tick-")]
        assert all(c.endswith(b"-" + pad) for c in ticks), "each tick whole"
        numbers = [int(c.split(b"-")[1]) for c in ticks]
        assert numbers and numbers == list(range(numbers[0], 41)), \
            ("from some tick on, every one reached the file again", numbers)
        assert numbers[0] > 3, ("the ticks printed while the disk was full were dropped",
                                numbers)
        bursts = [c for _, _, c in records if not c.startswith(b"tick-")]
        assert all(c == burst.encode() for c in bursts), \
            "what fit of the burst is whole lines: the failed batches were cut back"
        assert info["recordsWritten"] == len(records), (info, len(records))
        assert info["writeErrors"] >= errors_when_full + 3, info
        daemon_log = daemon.log()
        assert f"write {log}: No space left on device" in daemon_log
        assert daemon_log.rfind(f"container log {log}: writing again") > \
            daemon_log.rfind(f"write {log}: No space left on device"), "the last word is good"
        assert_serving(daemon)
    finally:
        # The log file stays open until the container is removed.
        call(daemon, "RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
             api_pb2.RemovePodSandboxResponse)
        subprocess.run(["umount", log_dir], check=True)


def test_reopen_of_a_container_that_does_not_run_fails_clearly(daemon, tmp_path):
    pod = make_pod(daemon, tmp_path, name="reopen")
    created = create(daemon, pod, "created", ["sh", "-c", "echo ran"])
    exited = create(daemon, pod, "exited", ["true"])
    start(daemon, exited)
    wait_exited(daemon, exited)
    for container_id in (created, exited):
        with pytest.raises(grpc.RpcError) as error:
            reopen(daemon, container_id)
        # containerd and CRI-O answer the same words (with code UNKNOWN: a plain Go error).
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION, error.value.details()
        assert error.value.details() == f"container {container_id} is not running"
    unknown = "f" * 64
    with pytest.raises(grpc.RpcError) as error:
        reopen(daemon, unknown)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND, error.value.details()
    assert unknown in error.value.details()
    # The refused reopen left the created container's log alone: it is written once started.
    log_dir = pod[1].log_directory
    assert sorted(os.listdir(os.path.join(log_dir, "created"))) == ["0.log"]
    start(daemon, created)
    assert wait_exited(daemon, created).exit_code == 0
    assert log_records(os.path.join(log_dir, "created/0.log")) == [("stdout", "F", b"ran")]
    assert_serving(daemon)
