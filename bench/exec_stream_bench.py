#!/usr/bin/python3
"""Exec stream throughput: bytes pushed through `cat` in a running busybox container and read
back, over the streaming server's SPDY/3.1 (as kubelet relays `kubectl exec -i`), side by side
in the same run with `runc exec` of the same container called directly with pipes (the floor:
runc hands the pipes to the process and copies nothing). Prints MB/s of each, their ratio, and
the daemon's CPU per MB.

  bench/exec_stream_bench.py [--mib 256] [--rounds 3] [--tls]

With --tls the daemon's streaming server speaks TLS (a certificate made for the run) and the
client reaches it through Python's ssl module, one thread doing both directions.

The SPDY client opens its streams with the SYN_STREAM frames kubectl sent in
tests/fixtures/spdy/exec-cat-256k.c2s.bin (their zlib header blocks as recorded) and sends
32 KiB DATA frames, as kubectl does. Needs root, runc and Debian's docker-registry; run it under
tests/harness/in-namespace."""
import argparse
import contextlib
import selectors
import ssl
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from pod_start_bench import (RUNC, RUNTIME, api_pb2, make_log_dirs,  # noqa: E402
                             push_busybox, remove_cgroups, start_daemon, start_sleeper_pod,
                             stop_daemon, tmpfs_at, unary)
from registry import Registry  # noqa: E402
from tls_certs import Issuer  # noqa: E402

FIXTURE = os.path.join(HERE, "..", "tests", "fixtures", "spdy", "exec-cat-256k.c2s.bin")
CHUNK = 32 * 1024


def recorded_syn_streams():
    """The upgrade head and the four SYN_STREAM frames (error, stdin, stdout, stderr)."""
    with open(FIXTURE, "rb") as f:
        data = f.read()
    end = data.index(b"\r\n\r\n") + 4
    head, at, frames = data[:end], end, []
    while len(frames) < 4:
        first, flags_length = struct.unpack(">II", data[at:at + 8])
        size = 8 + (flags_length & 0xFFFFFF)
        if first & 0x80000000 and first & 0xFFFF == 1:
            frames.append(data[at:at + size])
        at += size
    return head, b"".join(frames)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StdoutCounter:
    """The server's side of the connection fed in as it comes: the response head skipped, then
    the stdout stream's DATA bytes (stream 5 in the fixture) counted."""

    def __init__(self):
        self.bytes = 0
        self.answered = False
        self.buf = bytearray()

    def feed(self, chunk):
        self.buf += chunk
        if not self.answered:
            if b"\r\n\r\n" not in self.buf:
                return
            del self.buf[:self.buf.index(b"\r\n\r\n") + 4]
            self.answered = True
        at = 0
        while len(self.buf) - at >= 8:
            first, flags_length = struct.unpack_from(">II", self.buf, at)
            size = 8 + (flags_length & 0xFFFFFF)
            if len(self.buf) - at < size:
                break
            if first == 5:  # a DATA frame of stream 5
                self.bytes += size - 8
            at += size
        del self.buf[:at]


def through_spdy(url, payload):
    head, syns = recorded_syn_streams()
    parsed = urllib.parse.urlparse(url)
    head = head.replace(head.split(b" ", 2)[1], parsed.path.encode(), 1)
    sock = socket.create_connection((parsed.hostname, parsed.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    received = StdoutCounter()

    def read():
        while chunk := sock.recv(1 << 20):
            received.feed(chunk)

    reader = threading.Thread(target=read)
    start = time.monotonic()
    reader.start()
    sock.sendall(head + syns)
    view = memoryview(payload)
    for i in range(0, len(payload), CHUNK):
        piece = view[i:i + CHUNK]
        sock.sendall(struct.pack(">II", 3, len(piece)) + piece)
    sock.sendall(struct.pack(">II", 3, 1 << 24))  # empty DATA, FIN: end of stdin
    reader.join()
    took = time.monotonic() - start
    sock.close()
    if received.bytes != len(payload):
        raise RuntimeError(f"SPDY exec: {received.bytes} bytes back of {len(payload)}")
    return took


def through_spdy_tls(url, payload, ca_file):
    """As through_spdy, over TLS: one thread writes and reads (an SSL object is not for two)."""
    head, syns = recorded_syn_streams()
    parsed = urllib.parse.urlparse(url)
    head = head.replace(head.split(b" ", 2)[1], parsed.path.encode(), 1)
    out = bytearray(head + syns)
    for i in range(0, len(payload), CHUNK):
        piece = payload[i:i + CHUNK]
        out += struct.pack(">II", 3, len(piece)) + piece
    out += struct.pack(">II", 3, 1 << 24)  # empty DATA, FIN: end of stdin
    context = ssl.create_default_context(cafile=ca_file)
    start = time.monotonic()
    raw = socket.create_connection((parsed.hostname, parsed.port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock = context.wrap_socket(raw, server_hostname=parsed.hostname)
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    view, sent, received = memoryview(out), 0, StdoutCounter()
    done = False
    while not done:
        selector.select()
        if sent < len(out):
            try:
                sent += sock.send(view[sent:sent + (1 << 20)])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            if sent == len(out):
                selector.modify(sock, selectors.EVENT_READ)
        while True:
            try:
                chunk = sock.recv(1 << 20)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except (ssl.SSLEOFError, ConnectionResetError):
                chunk = b""
            if not chunk:
                done = True
                break
            received.feed(chunk)
    took = time.monotonic() - start
    selector.close()
    sock.close()
    if received.bytes != len(payload):
        raise RuntimeError(f"SPDY over TLS: {received.bytes} bytes back of {len(payload)}")
    return took


def make_certificate(directory):
    """A CA and a server certificate for 127.0.0.1: (ca, cert, key) paths."""
    issuer = Issuer(directory, "bench-ca")
    cert, key, _ = issuer.issue("bench-stream")
    return issuer.path, cert, key


def through_runc(command, payload):
    start = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    received = [0]

    def read():
        while True:
            chunk = proc.stdout.read1(1 << 20)
            if not chunk:
                return
            received[0] += len(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    view = memoryview(payload)
    for i in range(0, len(payload), CHUNK):
        proc.stdin.write(view[i:i + CHUNK])
    proc.stdin.close()
    reader.join()
    proc.wait()
    took = time.monotonic() - start
    if received[0] != len(payload):
        raise RuntimeError(f"runc exec: {received[0]} bytes back of {len(payload)}")
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tls", action="store_true", help="the streaming server speaks TLS")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("exec_stream_bench: needs root; run it under tests/harness/in-namespace")
    payload = os.urandom(args.mib * 1024 * 1024)
    scratch = tempfile.mkdtemp(prefix="monocri-stream-bench-")
    cgroup_parent = f"monocri-streambench-{os.getpid()}"
    log_root = os.path.join(scratch, "logs")
    rows = []
    daemon = None
    with contextlib.ExitStack() as mounts:
        try:
            with Registry() as registry:
                push_busybox(registry)
                mounts.enter_context(tmpfs_at(os.path.join(scratch, "monocri", "d", "run")))
                config, ca = None, None
                if args.tls:
                    ca, cert, key = make_certificate(scratch)
                    config = f'stream_tls_cert = "{cert}"\nstream_tls_key = "{key}"\n'
                daemon = start_daemon(os.path.join(scratch, "monocri"), registry, "info",
                                      config=config)
                with daemon.channel() as channel:
                    make_log_dirs(log_root, ["stream"])
                    _, container_id = start_sleeper_pod(channel, daemon.image, "stream",
                                                        log_root, cgroup_parent)
                    request = api_pb2.ExecRequest(container_id=container_id, cmd=["cat"],
                                                  stdin=True, stdout=True, stderr=True)
                    runc = [RUNC, "--root", os.path.join(daemon.run_root, "runc"), "exec",
                            container_id, "cat"]
                    for _ in range(args.rounds):
                        url = unary(channel, RUNTIME + "Exec", request, api_pb2.ExecResponse).url
                        cpu = cpu_seconds(daemon.pid)
                        ours = (through_spdy_tls(url, payload, ca) if args.tls
                                else through_spdy(url, payload))
                        cpu = cpu_seconds(daemon.pid) - cpu
                        theirs = through_runc(runc, payload)
                        rows.append((ours, theirs, cpu))
        finally:
            if daemon is not None:
                stop_daemon(daemon)
            for left in remove_cgroups(cgroup_parent):
                print(f"cgroup left: {left}", file=sys.stderr)
    shutil.rmtree(scratch, ignore_errors=True)

    mb = len(payload) / 1e6
    ours_label = "SPDY+TLS MB/s" if args.tls else "SPDY MB/s"
    print(f"\nExec stream, {args.mib} MiB stdin -> cat -> stdout, {os.cpu_count()} CPUs; "
          "peer: runc exec of the same container with pipes, called directly\n")
    print(f"{'round':8}{ours_label:>14}{'runc MB/s':>12}{'ratio':>8}{'daemon CPU s/GB':>18}")
    for i, (ours, theirs, cpu) in enumerate(rows, 1):
        print(f"{i:<8}{mb / ours:>14.0f}{mb / theirs:>12.0f}{theirs / ours:>8.2f}"
              f"{cpu / (mb / 1000):>18.2f}")


if __name__ == "__main__":
    main()
