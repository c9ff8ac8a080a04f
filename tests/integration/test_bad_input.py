"""Hostile and broken clients. After each, a fresh client's Version call must succeed: the daemon
never crashes, answers with the right gRPC status or closes that one connection, and gives the
memory back."""
import os
import socket
import time

import grpc
import pytest

from http2_raw import (PREFACE, DataFrame, GoAwayFrame, HeadersFrame, PingFrame, RawConnection,
                       RstStreamFrame, SettingsFrame, grpc_message)
from monocri_harness import (RUNTIME, SANITIZED, Daemon, api_pb2, assert_serving, health_pb2,
                             raw_unary)

VERSION = RUNTIME + "Version"
WATCH = "/grpc.health.v1.Health/Watch"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """One daemon takes every attack in this file, in order; the last test checks that it gave
    the memory back."""
    d = Daemon(str(tmp_path_factory.mktemp("hostile"))).start()
    assert_serving(d)  # the call path is loaded before the baseline is taken
    time.sleep(1)
    d.idle_kib = d.rss_kib()
    yield d
    code = d.stop()
    assert code == 0, f"monocri exited with {code}:\n{d.log()}"


def connect(daemon):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(daemon.socket)
    return s


def read_until_closed(s, timeout=10):
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def open_connections(daemon):
    import json
    with daemon.channel() as ch:
        from monocri_harness import unary
        info = unary(ch, RUNTIME + "Status", api_pb2.StatusRequest(verbose=True),
                     api_pb2.StatusResponse).info
    return json.loads(info["grpc"])["openConnections"] - 1  # minus the one asking


def test_random_bytes_close_that_connection_only(daemon):
    for _ in range(20):
        s = connect(daemon)
        s.sendall(os.urandom(4096))
        read_until_closed(s)  # the server hangs up: the bytes are no HTTP/2 preface
        s.close()
    assert_serving(daemon)


def test_http1_request_gets_a_clear_answer(daemon):
    s = connect(daemon)
    s.sendall(b"GET /runtime.v1.RuntimeService/Version HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = read_until_closed(s).decode()
    s.close()
    assert answer.startswith("HTTP/1.1 505 ")
    assert "HTTP/2" in answer
    assert_serving(daemon)


def test_truncated_frames(daemon):
    # A frame header announcing more bytes than ever come, then the client hangs up.
    s = connect(daemon)
    s.sendall(PREFACE + SettingsFrame(0).serialize() + b"\x00\x00\x64\x01\x04\x00\x00\x00\x01abc")
    time.sleep(0.2)
    s.close()
    # A frame cut inside its 9-byte header, connection left open.
    idle = connect(daemon)
    idle.sendall(PREFACE + SettingsFrame(0).serialize()[:5])
    assert_serving(daemon)
    idle.close()
    # A truncated preface.
    s = connect(daemon)
    s.sendall(PREFACE[:10])
    s.close()
    assert_serving(daemon)


def test_100_mib_message_is_refused_without_buffering_it(daemon):
    idle_hwm = daemon.status_kib("VmHWM")
    with daemon.channel(**{"grpc.max_send_message_length": -1}) as ch:
        with pytest.raises(grpc.RpcError) as error:
            raw_unary(ch, VERSION, b"\x0a" + b"x" * (100 << 20), timeout=60)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "104857" in error.value.details()  # the declared length, in bytes
    if not SANITIZED:
        # The peak resident set never came near the size of the message.
        assert daemon.status_kib("VmHWM") < idle_hwm + 20 * 1024
    assert_serving(daemon)


def test_100_mib_message_from_a_raw_client_is_answered_from_its_prefix(daemon):
    conn = RawConnection(daemon.socket)
    conn.handshake()
    conn.request(1, VERSION, grpc_message(b"")[:1] + (100 << 20).to_bytes(4, "big") + b"x" * 1000,
                 end_stream=False)
    headers, body, trailers, rst = conn.response(1)
    assert trailers["grpc-status"] == "8"  # RESOURCE_EXHAUSTED
    # The client is told to stop sending the rest of the body.
    rst = conn.wait_for(lambda f: isinstance(f, RstStreamFrame) and f.stream_id == 1)
    assert rst.error_code == 0
    conn.close()
    assert_serving(daemon)


def test_garbage_protobuf_in_a_valid_frame(daemon):
    conn = RawConnection(daemon.socket)
    conn.handshake()
    conn.request(1, VERSION, grpc_message(b"\xff\xff\xff\xff\xff\xff\xff\xff"))
    headers, body, trailers, rst = conn.response(1)
    assert headers[":status"] == "200"
    assert trailers["grpc-status"] == "3"  # INVALID_ARGUMENT
    conn.close()
    assert_serving(daemon)


def test_bad_grpc_framing_and_headers(daemon):
    conn = RawConnection(daemon.socket)
    conn.handshake()
    # compressed-flag 7
    conn.request(1, VERSION, b"\x07\x00\x00\x00\x00")
    assert conn.response(1)[2]["grpc-status"] == "13"
    # request ends inside a message
    conn.request(3, VERSION, b"\x00\x00\x00\x00\x10abc")
    assert conn.response(3)[2]["grpc-status"] == "13"
    # two messages for a unary method
    conn.request(5, VERSION, grpc_message(b"") + grpc_message(b""))
    assert conn.response(5)[2]["grpc-status"] == "13"
    # compressed with an encoding the server does not have
    conn.request(7, VERSION, grpc_message(b"abc", compressed=True),
                 extra=[("grpc-encoding", "snappy")])
    trailers = conn.response(7)[2]
    assert trailers["grpc-status"] == "12"  # UNIMPLEMENTED
    assert "gzip" in conn.response(7)[0]["grpc-accept-encoding"]
    # gzip flag on a message that is not gzip
    conn.request(9, VERSION, grpc_message(b"abc", compressed=True),
                 extra=[("grpc-encoding", "gzip")])
    assert conn.response(9)[2]["grpc-status"] == "13"
    # malformed grpc-timeout
    conn.request(11, VERSION, grpc_message(b""), extra=[("grpc-timeout", "soon")])
    assert conn.response(11)[2]["grpc-status"] == "13"
    # not gRPC: wrong content-type and method
    conn.headers(13, [(":method", "POST"), (":scheme", "http"), (":path", VERSION),
                      (":authority", "x"), ("content-type", "text/plain")], end_stream=True)
    assert conn.response(13)[0][":status"] == "415"
    conn.headers(15, [(":method", "GET"), (":scheme", "http"), (":path", VERSION),
                      (":authority", "x"), ("content-type", "application/grpc")], end_stream=True)
    assert conn.response(15)[0][":status"] == "405"
    # a control character in the path must not reach the log as a line break
    conn.request(17, "/x\nFORGED log line", grpc_message(b""))
    assert conn.response(17)[2]["grpc-status"] == "12"
    conn.close()
    assert "\nFORGED" not in daemon.log()
    assert_serving(daemon)


def test_server_enforces_the_deadline(daemon):
    # Health/Watch never ends by itself; grpc-timeout 100 ms must end it with
    # DEADLINE_EXCEEDED from the server (this client has no deadline of its own).
    conn = RawConnection(daemon.socket)
    conn.handshake()
    start = time.monotonic()
    conn.request(1, WATCH, grpc_message(health_pb2.HealthCheckRequest().SerializeToString()),
                 extra=[("grpc-timeout", "100m")])
    headers, body, trailers, rst = conn.response(1, timeout=5)
    elapsed = time.monotonic() - start
    assert trailers["grpc-status"] == "4"
    assert 0.09 < elapsed < 2
    # The SERVING status came first.
    assert health_pb2.HealthCheckResponse.FromString(body[5:]).status == 1
    conn.close()


def test_1000_streams_then_disconnect(daemon):
    conn = RawConnection(daemon.socket, timeout=30)
    conn.handshake()
    request = grpc_message(health_pb2.HealthCheckRequest().SerializeToString())
    for i in range(1000):
        stream = 2 * i + 1
        if i % 2:
            conn.request(stream, WATCH, request)  # a stream that stays open
        else:
            conn.request(stream, VERSION, None, end_stream=False)  # a request never finished
    # The server has seen them all: the last Watch answered its first message.
    conn.wait_for(lambda f: f.stream_id == 1999 and isinstance(f, DataFrame), timeout=30)
    conn.sock.close()  # vanish with 1000 open streams
    deadline = time.monotonic() + 10
    while open_connections(daemon) != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_connections(daemon) == 0
    assert_serving(daemon)


def test_rapid_reset_flood_loses_the_connection_not_the_daemon(daemon):
    conn = RawConnection(daemon.socket)
    conn.handshake()
    frames = b""
    for i in range(3000):
        stream = 2 * i + 1
        fields = conn.encoder.encode([(":method", "POST"), (":scheme", "http"),
                                      (":path", VERSION), (":authority", "x"),
                                      ("content-type", "application/grpc")])
        frames += HeadersFrame(stream, fields, flags=["END_HEADERS"]).serialize()
        frames += RstStreamFrame(stream, error_code=8).serialize()
    try:
        conn.send(frames)
        goaway = conn.wait_for(lambda f: isinstance(f, GoAwayFrame), timeout=10)
        assert goaway.error_code != 0
    except (ConnectionError, BrokenPipeError):
        pass  # closed before we read the GOAWAY
    conn.close()
    assert_serving(daemon)


def test_ping_flood_without_reading(daemon):
    conn = RawConnection(daemon.socket)
    conn.handshake()
    flood = PingFrame(0, opaque_data=b"12345678").serialize() * 100000
    try:
        conn.sock.settimeout(10)
        conn.send(flood)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass  # the server stopped reading or dropped us: either is fine
    conn.close()
    assert_serving(daemon)


def test_silent_client_is_dropped_after_the_handshake_timeout(daemon):
    s = connect(daemon)
    start = time.monotonic()
    data = read_until_closed(s, timeout=20)
    assert data == b"", "the server speaks only after the client's preface"
    assert 9 < time.monotonic() - start < 15
    assert "sent no HTTP/2 preface" in daemon.log()
    assert_serving(daemon)


@pytest.mark.skipif(SANITIZED, reason="ASan's allocator; LeakSanitizer checks at exit instead")
def test_memory_returns_to_the_idle_level_after_every_attack(daemon):
    assert open_connections(daemon) == 0, "every hostile connection was released"
    settled = daemon.settle_rss(daemon.idle_kib + 1024)
    assert settled < daemon.idle_kib + 1024, \
        f"VmRSS {settled} KiB after the attacks, {daemon.idle_kib} KiB before"
