"""The streaming server against real runc containers: Exec, Attach and PortForward URLs dialed
by independent clients. SPDY/3.1 is driven by replays of the bytes kubectl 1.26 sent through
kubelet (tests/fixtures/spdy/), paced as they were recorded, with this file's own frame
splitter reading the answers; WebSocket by Python's `websocket` client."""
import json
import os
import re
import socket
import struct
import threading
import time
import urllib.parse

import pytest
import websocket

from cgroups import remove_cgroups
from monocri_harness import api_pb2
from test_containers import (RUNTIME, call, create, daemon, make_pod,  # noqa: F401
                             registry, start, status)

FIXTURES = os.path.join(os.environ.get("MONOCRI_FIXTURES") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"), "spdy")
SUCCESS = {"metadata": {}, "status": "Success"}


def exit_status(code):
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


# ---- SPDY: frames as the wire has them (SPDY/3 section 2.2) ----

SYN_STREAM, SYN_REPLY, RST_STREAM, PING, GOAWAY = 1, 2, 3, 6, 7


def split_frames(data):
    """(offset, control, type_or_stream, flags, payload) for each whole frame; a partial frame at
    the end (a teardown race) is left out."""
    frames, at = [], 0
    while at + 8 <= len(data):
        first, flags_length = struct.unpack(">II", data[at:at + 8])
        length = flags_length & 0xFFFFFF
        if at + 8 + length > len(data):
            break
        control = bool(first & 0x80000000)
        kind = first & 0xFFFF if control else first & 0x7FFFFFFF
        frames.append((at, control, kind, flags_length >> 24, data[at + 8:at + 8 + length]))
        at += 8 + length
    return frames


def transcript_matches(name, pattern):
    """The matches of `pattern` at the start of the fixture transcript's lines."""
    with open(os.path.join(FIXTURES, f"{name}.frames.txt")) as f:
        return [m for m in (re.match(pattern, line) for line in f) if m]


def recorded_times(name):
    """Byte offset in the .c2s.bin → seconds since the first frame, from the transcript."""
    return {int(m.group(2)): float(m.group(1))
            for m in transcript_matches(name, r"\[\s*([\d.]+)\] c2s @(\d+)")}


class Replay:
    """One fixture connection replayed against `url`: the recorded request head with our token,
    then the recorded frames at their recorded pace (gaps capped), stopping before the client's
    own teardown (its first RST_STREAM or GOAWAY) unless `whole`. The server's bytes are
    collected until it closes."""

    def __init__(self, name, url, max_gap=0.5, whole=False):
        with open(os.path.join(FIXTURES, f"{name}.c2s.bin"), "rb") as f:
            recorded = f.read()
        head_end = recorded.index(b"\r\n\r\n") + 4
        head, body = recorded[:head_end], recorded[head_end:]
        path = urllib.parse.urlparse(url).path.encode()
        head = re.sub(rb"^POST \S+ ", b"POST " + path + b" ", head)
        times = recorded_times(name)
        parsed = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=30)
        self.received = bytearray()
        self.closed = threading.Event()
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        self.sock.sendall(head)
        last = None
        for offset, control, kind, flags, payload in split_frames(body):
            if control and kind in (RST_STREAM, GOAWAY) and not whole:
                break
            at = times.get(head_end + offset)
            if at is not None and last is not None:
                time.sleep(min(max(at - last, 0), max_gap))
            last = at if at is not None else last
            frame = body[offset:offset + 8 + len(payload)]
            # As kubectl wrote them: in small pieces.
            for i in range(0, len(frame), 3):
                self.sock.sendall(frame[i:i + 3])
            if self.closed.is_set():
                break
        assert self.closed.wait(30), "the server did not end the session"
        reader.join(5)
        self.sock.close()
        end = self.received.index(b"\r\n\r\n") + 4
        self.head = bytes(self.received[:end]).decode()
        self.frames = split_frames(bytes(self.received[end:]))

    def _read(self):
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.received += chunk
        except OSError:
            pass
        self.closed.set()

    def data(self, stream):
        return b"".join(p for _, c, s, _, p in self.frames if not c and s == stream)

    def kinds(self):
        return [("ctl", k) if c else ("data", k) for _, c, k, _, _ in self.frames]


def client_streams(name):
    """Stream id → streamtype as the fixture's client opened them (from the transcript)."""
    types = {}
    for m in transcript_matches(name, r"#\s+stream (\d+) \(opened by c2s\): (.*?);"):
        fields = dict(kv.split("=") for kv in m.group(2).split(", "))
        types[int(m.group(1))] = fields["streamtype"]
    return types


def stream_of(name, streamtype):
    return next(i for i, t in client_streams(name).items() if t == streamtype)


def recorded_stdin(name):
    with open(os.path.join(FIXTURES, f"{name}.c2s.bin"), "rb") as f:
        recorded = f.read()
    body = recorded[recorded.index(b"\r\n\r\n") + 4:]
    stdin = stream_of(name, "stdin")
    return b"".join(p for _, c, s, _, p in split_frames(body) if not c and s == stdin)


# ---- CRI calls ----

def exec_url(daemon, container_id, cmd, tty=False, stdin=False, stdout=True, stderr=True):
    return call(daemon, "Exec", api_pb2.ExecRequest(
        container_id=container_id, cmd=cmd, tty=tty, stdin=stdin, stdout=stdout,
        stderr=stderr), api_pb2.ExecResponse).url


def attach_url(daemon, container_id, stdin=False, stdout=True, stderr=True, tty=False):
    return call(daemon, "Attach", api_pb2.AttachRequest(
        container_id=container_id, stdin=stdin, stdout=stdout, stderr=stderr, tty=tty),
        api_pb2.AttachResponse).url


def port_forward_url(daemon, pod_id, ports=()):
    return call(daemon, "PortForward", api_pb2.PortForwardRequest(
        pod_sandbox_id=pod_id, port=list(ports)), api_pb2.PortForwardResponse).url


def exec_sync(daemon, container_id, cmd):
    return call(daemon, "ExecSync", api_pb2.ExecSyncRequest(
        container_id=container_id, cmd=cmd, timeout=10), api_pb2.ExecSyncResponse)


@pytest.fixture
def pod(daemon, tmp_path):
    return make_pod(daemon, tmp_path, name="pod-stream")


@pytest.fixture
def sleeper(daemon, pod):
    container_id = create(daemon, pod, "sleeper", ["sleep", "3600"])
    start(daemon, container_id)
    return container_id


# ---- SPDY replays ----

@pytest.mark.parametrize("name, cmd, stdout, stderr, error", [
    ("exec-echo", ["echo", "hello"], b"hello\n", b"", SUCCESS),
    ("exec-exit-code", ["sh", "-c", "exit 3"], b"", b"", exit_status(3)),
    ("exec-stderr", ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"],
     b"to-stdout\n", b"to-stderr\n", exit_status(7)),
])
def test_spdy_exec_replays(daemon, sleeper, name, cmd, stdout, stderr, error):
    replay = Replay(name, exec_url(daemon, sleeper, cmd))
    assert replay.head.startswith("HTTP/1.1 101 Switching Protocols\r\n"), replay.head
    assert "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n" in replay.head
    assert replay.data(stream_of(name, "stdout")) == stdout
    assert replay.data(stream_of(name, "stderr")) == stderr
    assert json.loads(replay.data(stream_of(name, "error"))) == error
    # Every stream answered, then reset at the end, then GOAWAY last: as kubectl expects.
    kinds = replay.kinds()
    assert kinds.count(("ctl", SYN_REPLY)) == len(client_streams(name))
    assert kinds[-1] == ("ctl", GOAWAY)


def test_spdy_exec_with_stdin_replays(daemon, sleeper):
    replay = Replay("exec-stdin", exec_url(daemon, sleeper, ["cat"], stdin=True))
    assert replay.data(stream_of("exec-stdin", "stdout")) == b"line one\nline two\nline three\n"
    assert json.loads(replay.data(stream_of("exec-stdin", "error"))) == SUCCESS


def test_spdy_256k_through_cat_byte_exact(daemon, sleeper):
    sent = recorded_stdin("exec-cat-256k")
    assert len(sent) == 256 * 1024
    replay = Replay("exec-cat-256k", exec_url(daemon, sleeper, ["cat"], stdin=True))
    assert replay.data(stream_of("exec-cat-256k", "stdout")) == sent
    assert json.loads(replay.data(stream_of("exec-cat-256k", "error"))) == SUCCESS


def test_spdy_tty_exec_sees_its_resizes(daemon, sleeper):
    replay = Replay("exec-tty", exec_url(daemon, sleeper, ["sh"], tty=True, stdin=True,
                                         stderr=False), max_gap=1.0)
    out = replay.data(stream_of("exec-tty", "stdout"))
    # The recorded session typed `stty size` at 100x30, resized to 120x40, typed it again.
    assert re.search(rb"30 100\r\n.*40 120\r\n", out, re.S), out
    assert json.loads(replay.data(stream_of("exec-tty", "error"))) == SUCCESS


def test_spdy_attach_replays_with_stdin_once(daemon, pod):
    container_id = create(daemon, pod, "reader",
                          ["sh", "-c", "while read l; do echo got:$l; done; echo stdin-closed"],
                          stdin=True, stdin_once=True)
    start(daemon, container_id)
    replay = Replay("attach-stdin", attach_url(daemon, container_id, stdin=True))
    assert replay.data(stream_of("attach-stdin", "stdout")) == (
        b"got:hello\ngot:world\nstdin-closed\n")
    assert json.loads(replay.data(stream_of("attach-stdin", "error"))) == SUCCESS
    # The attachment did not take the output away from the CRI log.
    log = os.path.join(pod[1].log_directory, "reader/0.log")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and b"stdin-closed" not in open(log, "rb").read():
        time.sleep(0.05)
    assert b"stdout F got:hello\n" in open(log, "rb").read()


@pytest.fixture
def httpd(daemon, pod):
    container_id = create(daemon, pod, "web", [
        "sh", "-c", "mkdir -p /www && echo 'hello from busybox httpd' > /www/hello.txt && "
                    "exec httpd -f -p 80 -h /www"])
    start(daemon, container_id)
    wait_listening(daemon, container_id, 80)
    return container_id


def wait_listening(daemon, container_id, port, timeout=10):
    """Until something in the container listens on `port` (busybox httpd binds [::]: its
    /proc/net/tcp6 says so, or /proc/net/tcp for an IPv4 socket)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tables = exec_sync(daemon, container_id, ["cat", "/proc/net/tcp", "/proc/net/tcp6"])
        if f":{port:04X} ".encode() in tables.stdout:
            return
        time.sleep(0.05)
    pytest.fail(f"nothing listens on port {port} in {container_id}")


def test_spdy_port_forward_replays_two_connections(daemon, pod, httpd):
    replay = Replay("port-forward", port_forward_url(daemon, pod[0]), whole=True)
    assert "X-Stream-Protocol-Version: portforward.k8s.io\r\n" in replay.head
    for stream in (3, 7):  # the two data streams
        body = replay.data(stream)
        assert body.startswith(b"HTTP/1.1 200 OK\r\n"), body
        assert body.endswith(b"\r\n\r\nhello from busybox httpd\n"), body
    fins = [s for _, c, s, flags, p in replay.frames if not c and flags & 1 and not p]
    assert sorted(fins) == [1, 3, 5, 7], replay.kinds()  # each side half-closed, errors empty


# ---- tokens ----

def raw_request(url, method="POST", headers=()):
    parsed = urllib.parse.urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as s:
        lines = [f"{method} {parsed.path} HTTP/1.1", f"Host: {parsed.netloc}",
                 "Connection: Upgrade", "Upgrade: SPDY/3.1",
                 "X-Stream-Protocol-Version: v4.channel.k8s.io", *headers]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer.decode(errors="replace")


def test_a_token_works_once_and_only_for_its_kind(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["sh", "-c", "echo ran >> /tmp/runs"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/exec/[A-Za-z0-9_-]{22}", url), url
    replay_ok = Replay("exec-echo", url)
    assert json.loads(replay_ok.data(1)) == SUCCESS
    assert raw_request(url).startswith("HTTP/1.1 404 ")
    # A token is for its own endpoint: an exec token at /attach/ is refused and used up.
    other = exec_url(daemon, sleeper, ["sh", "-c", "echo ran >> /tmp/runs"])
    assert raw_request(other.replace("/exec/", "/attach/")).startswith("HTTP/1.1 404 ")
    assert raw_request(other).startswith("HTTP/1.1 404 ")
    assert raw_request(url.rsplit("/", 1)[0] + "/" + "A" * 22).startswith("HTTP/1.1 404 ")
    assert exec_sync(daemon, sleeper, ["cat", "/tmp/runs"]).stdout == b"ran\n"


def test_bad_requests_get_clear_answers(daemon, sleeper):
    url = exec_url(daemon, sleeper, ["true"])
    parsed = urllib.parse.urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 400 ")
    # No protocol in common: refused, naming what the server speaks.
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as s:
        s.sendall((f"POST {parsed.path} HTTP/1.1\r\nConnection: Upgrade\r\n"
                   "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v9.channel.k8s.io\r\n"
                   "\r\n").encode())
        refused = s.recv(4096)
    assert refused.startswith(b"HTTP/1.1 403 "), refused
    assert b"v4.channel.k8s.io" in refused
    # No upgrade at all.
    other = urllib.parse.urlparse(exec_url(daemon, sleeper, ["true"]))
    with socket.create_connection((other.hostname, other.port), timeout=10) as s:
        s.sendall(f"GET {other.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 400 ")
    assert exec_sync(daemon, sleeper, ["echo", "ok"]).stdout == b"ok\n"


def test_exec_of_a_container_that_is_not_running_is_refused_at_once(daemon, pod):
    import grpc
    container_id = create(daemon, pod, "created", ["true"])
    with pytest.raises(grpc.RpcError) as error:
        exec_url(daemon, container_id, ["true"])
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as error:
        exec_url(daemon, container_id, ["true"], stdin=False, stdout=False, stderr=False)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# ---- WebSocket (Python's websocket client) ----

def ws_connect(url, protocol, query=""):
    ws_url = url.replace("http://", "ws://", 1) + query
    return websocket.create_connection(ws_url, subprotocols=[protocol], timeout=30)


def ws_collect(ws, base64=False):
    """Channel → bytes until the server closes."""
    out = {}
    while True:
        try:
            opcode, data = ws.recv_data()
        except websocket.WebSocketConnectionClosedException:
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        if not data:
            continue
        if base64:
            import base64 as b64
            channel, payload = int(chr(data[0])), b64.b64decode(data[1:])
        else:
            channel, payload = data[0], data[1:]
        out.setdefault(channel, bytearray()).extend(payload)
    return {channel: bytes(data) for channel, data in out.items()}


def test_websocket_exec_output_and_exit_code(daemon, sleeper):
    ws = ws_connect(exec_url(daemon, sleeper, ["sh", "-c", "echo out; echo err >&2; exit 5"]),
                    "v4.channel.k8s.io")
    assert ws.getsubprotocol() == "v4.channel.k8s.io"
    out = ws_collect(ws)
    assert out.get(1) == b"out\n" and out.get(2) == b"err\n", out
    assert json.loads(out[3]) == exit_status(5)


def test_websocket_base64_protocol(daemon, sleeper):
    ws = ws_connect(exec_url(daemon, sleeper, ["printf", "\\001\\377binary"]),
                    "base64.channel.k8s.io")
    out = ws_collect(ws, base64=True)
    assert out.get(1) == b"\x01\xffbinary", out
    assert 3 not in out  # channel.k8s.io (v1): nothing on the error channel for exit 0


def ws_through_cat(ws, payload):
    """`payload` sent as stdin in 32 KiB frames (v5: then closed) while the channels are read
    by another thread; returns them."""
    result = {}
    reader = threading.Thread(target=lambda: result.update(ws_collect(ws)))
    reader.start()
    for i in range(0, len(payload), 32 * 1024):
        ws.send_binary(b"\x00" + payload[i:i + 32 * 1024])
    ws.send_binary(b"\xff\x00")  # v5: close stdin
    reader.join(60)
    assert not reader.is_alive()
    return result


def test_websocket_ten_mib_through_cat_byte_exact(daemon, sleeper):
    payload = os.urandom(10 * 1024 * 1024)
    ws = ws_connect(exec_url(daemon, sleeper, ["cat"], stdin=True), "v5.channel.k8s.io")
    result = ws_through_cat(ws, payload)
    assert len(result.get(1, b"")) == len(payload)
    assert result[1] == payload
    assert json.loads(result[3]) == SUCCESS


def test_websocket_tty_exec_with_resize(daemon, sleeper):
    ws = ws_connect(exec_url(daemon, sleeper, ["sh"], tty=True, stdin=True, stderr=False),
                    "v4.channel.k8s.io")
    ws.send_binary(b"\x04" + json.dumps({"Width": 77, "Height": 19}).encode())
    time.sleep(0.3)
    ws.send_binary(b"\x00stty size; exit 9\r")
    out = ws_collect(ws)
    assert b"19 77\r\n" in out.get(1, b""), out
    assert json.loads(out[3]) == exit_status(9)


def test_a_background_child_holding_stdout_does_not_hold_the_session(daemon, sleeper):
    started = time.monotonic()
    ws = ws_connect(exec_url(daemon, sleeper, ["sh", "-c", "sleep 300 & echo hi"]),
                    "v4.channel.k8s.io")
    out = ws_collect(ws)
    assert out.get(1) == b"hi\n"
    assert json.loads(out[3]) == SUCCESS
    assert time.monotonic() - started < 5


def test_output_still_flowing_at_the_exit_is_drained_until_quiet_within_a_cap(daemon, sleeper):
    # A child writing every 100 ms for 0.8 s after its parent exited: all of it arrives (the
    # drain waits for 200 ms of quiet, not 200 ms in all).
    ws = ws_connect(exec_url(daemon, sleeper, [
        "sh", "-c", "(for i in 1 2 3 4 5 6 7 8; do sleep 0.1; echo tick$i; done) & echo parent"]),
        "v4.channel.k8s.io")
    out = ws_collect(ws)
    assert out.get(1) == b"parent\n" + b"".join(b"tick%d\n" % i for i in range(1, 9)), out
    assert json.loads(out[3]) == SUCCESS
    # One that never stops writing holds the session for the cap (2 s), not longer.
    started = time.monotonic()
    ws = ws_connect(exec_url(daemon, sleeper, [
        "sh", "-c", "(while echo more; do sleep 0.05; done) & echo parent"]),
        "v4.channel.k8s.io")
    out = ws_collect(ws)
    elapsed = time.monotonic() - started
    assert out.get(1, b"").startswith(b"parent\nmore\n"), out
    assert json.loads(out[3]) == SUCCESS
    assert 1.5 < elapsed < 6, elapsed


def test_two_attachers_both_see_a_counter(daemon, pod):
    container_id = create(daemon, pod, "counter", [
        "sh", "-c", "i=0; while true; do echo n=$i; i=$((i+1)); sleep 0.05; done"])
    start(daemon, container_id)
    clients = [ws_connect(attach_url(daemon, container_id), "v4.channel.k8s.io")
               for _ in range(2)]
    seen = []
    for ws in clients:
        got = b""
        while got.count(b"\n") < 5:
            opcode, data = ws.recv_data()
            if data and data[0] == 1:
                got += data[1:]
        seen.append([int(x) for x in re.findall(rb"n=(\d+)\n", got)])
        ws.close()
    for numbers in seen:
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), seen
    assert status(daemon, container_id).status.state == api_pb2.CONTAINER_RUNNING


def test_websocket_port_forward_fetches_a_file(daemon, pod, httpd):
    ws = ws_connect(port_forward_url(daemon, pod[0]), "v4.channel.k8s.io", "?ports=80")
    ws.send_binary(b"\x00GET /hello.txt HTTP/1.0\r\n\r\n")
    out = {}
    prefixes = 0
    while True:
        try:
            opcode, data = ws.recv_data()
        except websocket.WebSocketConnectionClosedException:
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        if len(data) == 3 and data[1:] == struct.pack("<H", 80) and prefixes < 2:
            prefixes += 1  # each channel opens with its port
            continue
        out[data[0]] = out.get(data[0], b"") + data[1:]
    assert prefixes == 2
    assert out[0].startswith(b"HTTP/1.0 200 OK\r\n") or out[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert out[0].endswith(b"\r\n\r\nhello from busybox httpd\n"), out


def test_port_forward_to_a_closed_port_says_why(daemon, pod, httpd):
    ws = ws_connect(port_forward_url(daemon, pod[0]), "v4.channel.k8s.io", "?ports=81")
    out = ws_collect(ws)
    error = out.get(1, b"")[2:]  # after the port prefix
    assert b"error forwarding port 81" in error and b"refused" in error, out


def test_a_client_that_vanishes_leaks_nothing(daemon, sleeper):
    fds_before = len(os.listdir(f"/proc/{daemon.pid}/fd"))
    ws = ws_connect(exec_url(daemon, sleeper, ["cat"], stdin=True), "v4.channel.k8s.io")
    ws.send_binary(b"\x00partial input")
    time.sleep(0.3)
    ws.sock.shutdown(socket.SHUT_RDWR)
    ws.sock.close()
    # The exec's stdin closed with the session: cat sees its end and exits.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        procs = exec_sync(daemon, sleeper, ["ps", "-o", "args"]).stdout
        if b"\ncat" not in procs and len(os.listdir(f"/proc/{daemon.pid}/fd")) <= fds_before:
            break
        time.sleep(0.1)
    assert b"\ncat" not in procs, procs
    assert len(os.listdir(f"/proc/{daemon.pid}/fd")) <= fds_before


def test_a_slow_client_does_not_make_the_daemon_buffer(daemon, sleeper):
    """The command is paused while its output waits for the client: the daemon holds at most
    about a high-water mark of it, whatever the command writes."""
    total = 256 * 1024 * 1024
    rss_before = daemon.rss_kib()
    ws = ws_connect(exec_url(daemon, sleeper, ["head", "-c", str(total), "/dev/zero"]),
                    "v4.channel.k8s.io")
    assert_bounded_for_a_client_not_reading(daemon, rss_before, ws, total)


def assert_bounded_for_a_client_not_reading(daemon, rss_before, ws, total):
    """`ws` runs a command writing `total` bytes: not read for 3 s, the daemon grows less than
    24 MiB; read then, all of it comes."""
    time.sleep(3)  # not reading: the socket buffers fill, then the daemon's queue
    grown = daemon.rss_kib() - rss_before
    assert grown < 24 * 1024, f"the daemon grew {grown} KiB for a client that does not read"
    out = ws_collect(ws)
    assert len(out.get(1, b"")) == total
    assert json.loads(out[3]) == SUCCESS


def test_a_command_that_cannot_run_says_why_on_the_error_stream(daemon, sleeper):
    ws = ws_connect(exec_url(daemon, sleeper, ["/no/such/binary"]), "v4.channel.k8s.io")
    status_ = json.loads(ws_collect(ws)[3])
    assert status_["status"] == "Failure" and status_["reason"] == "InternalError", status_
    assert "/no/such/binary" in status_["message"], status_


def test_stdin_once_reaches_the_container_under_the_keeper(tmp_path, registry):
    """The keeper holds a copy of a container's stdin: the attacher's end of input must release
    it too, or the container would wait for input forever."""
    from test_containers import keeper_daemon
    d = keeper_daemon(tmp_path, registry)
    try:
        pod = make_pod(d, tmp_path, name="pod-keeper-attach")
        container_id = create(d, pod, "reader",
                              ["sh", "-c", "while read l; do echo got:$l; done; echo stdin-closed"],
                              stdin=True, stdin_once=True)
        start(d, container_id)
        replay = Replay("attach-stdin", attach_url(d, container_id, stdin=True))
        assert replay.data(stream_of("attach-stdin", "stdout")) == (
            b"got:hello\ngot:world\nstdin-closed\n")
        deadline = time.monotonic() + 10
        while status(d, container_id).status.state != api_pb2.CONTAINER_EXITED:
            assert time.monotonic() < deadline, "the container never saw the end of its input"
            time.sleep(0.05)
        call(d, "RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod[0]),
             api_pb2.RemovePodSandboxResponse)
    finally:
        assert d.stop() == 0, d.log()
        assert remove_cgroups(d.cgroup_parent) == []


def test_sessions_dropped_while_runc_starts_the_exec_leave_no_zombie(daemon, pod, sleeper):
    """A client that leaves while `runc exec` is still starting its process (found by the
    monoctl work: the process files went before runc answered, and the pid was never tracked):
    the process is still reaped, and the container still stops."""
    import subprocess
    recorded = open(os.path.join(FIXTURES, "exec-exit-code.c2s.bin"), "rb").read()
    head_end = recorded.index(b"\r\n\r\n") + 4
    body = recorded[head_end:]
    syns = b"".join(body[o:o + 8 + len(p)] for o, c, k, _, p in split_frames(body)
                    if c and k == SYN_STREAM)
    for attempt in range(40):
        url = urllib.parse.urlparse(
            exec_url(daemon, sleeper, ["sh", "-c", "echo started; exec sleep 300"]))
        head = re.sub(rb"^POST \S+ ", b"POST " + url.path.encode() + b" ", recorded[:head_end])
        with socket.create_connection((url.hostname, url.port)) as s:
            s.sendall(head + syns)
            got = b""
            while b"started" not in got:  # the process runs; runc may not have answered yet
                got += s.recv(4096)
            time.sleep((attempt % 10) * 0.001)
        time.sleep(0.3)
    call(daemon, "StopContainer", api_pb2.StopContainerRequest(container_id=sleeper, timeout=0),
         api_pb2.StopContainerResponse)
    ps = subprocess.run(["ps", "-o", "stat=", "--ppid", str(daemon.pid)],
                        capture_output=True, text=True).stdout.split()
    assert not [s for s in ps if s.startswith("Z")], ps
