"""The daemon as an operator meets it: flags, config file, socket handling, signals, its log."""
import json
import os
import re
import signal
import socket
import stat
import subprocess
import threading
import time

import grpc
import pytest

from monocri_harness import (MONOCRI, RUNTIME, Daemon, api_pb2, assert_serving, health_pb2,
                             unary, version)

LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (trace|debug|info|warning|error|critical) \S")


def run(*args, timeout=10):
    return subprocess.run([MONOCRI, *args], capture_output=True, text=True, timeout=timeout)


def test_version_flag():
    result = run("--version")
    assert result.returncode == 0
    assert re.match(r"monocri 0\.1\.0 \(commit \S+\), CRI runtime API v1", result.stdout)


def test_print_config_shows_defaults_and_overrides():
    result = run("--config", "/nonexistent/default-is-optional.toml", "--print-config")
    assert result.returncode == 2  # an explicit --config must exist
    assert "/nonexistent/default-is-optional.toml" in result.stderr
    result = run("--run-root", "/tmp/elsewhere", "--print-config")
    assert result.returncode == 0
    assert "listen = '/tmp/elsewhere/monocri.sock'" in result.stdout
    assert "root = '/var/lib/monocri'" in result.stdout


def test_bad_config_is_refused_with_the_key_and_line(tmp_path):
    path = tmp_path / "monocri.toml"
    path.write_text('root = "/var/lib/monocri"\nlog_levle = "debug"\n')
    result = run("--config", str(path))
    assert result.returncode == 2
    assert "monocri.toml:2" in result.stderr and "log_levle" in result.stderr
    path.write_text('stall_threshold_ms = "fast"\n')
    result = run("--config", str(path))
    assert result.returncode == 2 and "integer" in result.stderr
    result = run("--listen", "relative.sock", "--print-config")
    assert result.returncode == 2 and "absolute" in result.stderr


def test_config_file_values_are_used(tmp_path):
    listen = str(tmp_path / "from-config" / "cri.sock")
    d = Daemon(str(tmp_path), listen=listen,
               config=f'listen = "{listen}"\nlog_level = "info"\nshutdown_grace_ms = 3000\n')
    # --listen given by the harness equals the file's value; --log-level debug overrides "info".
    d.start()
    try:
        with d.channel() as ch:
            info = unary(ch, RUNTIME + "Status", api_pb2.StatusRequest(verbose=True),
                         api_pb2.StatusResponse).info
        config = json.loads(info["config"])
        assert config["configPath"].endswith("monocri.toml")
        assert config["listen"] == listen
        assert config["shutdownGraceMs"] == 3000
        assert config["logLevel"] == "debug"
    finally:
        assert d.stop() == 0


def test_socket_mode_and_directories(daemon):
    st = os.stat(daemon.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert stat.S_IMODE(os.stat(daemon.root).st_mode) == 0o700
    assert os.path.isdir(daemon.run_root)


def test_log_is_one_line_per_event_with_time_and_level(daemon):
    with daemon.channel() as ch:
        version(ch)
    lines = [l for l in daemon.log().splitlines() if l]
    assert lines
    for line in lines:
        assert LOG_LINE.match(line), line
    assert any("serving the CRI on " + daemon.socket in l for l in lines)
    assert any("/runtime.v1.RuntimeService/Version" in l and "OK" in l for l in lines)


def test_stale_socket_is_replaced(tmp_path):
    d = Daemon(str(tmp_path))
    os.makedirs(d.run_root)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(d.socket)
    stale.close()  # the file stays, nobody listens: what a crashed daemon leaves
    d.start()
    try:
        assert_serving(d)
        assert "replaced stale socket" in d.log()
    finally:
        assert d.stop() == 0


def test_live_socket_is_not_stolen(daemon, tmp_path):
    second = Daemon(str(tmp_path / "second"), listen=daemon.socket)
    second.start(wait=False)
    assert second.proc.wait(timeout=10) == 1
    assert "another process is already listening" in second.log()
    assert_serving(daemon)


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path):
    d = Daemon(str(tmp_path))
    os.makedirs(d.run_root)
    with open(d.socket, "w") as f:
        f.write("precious")
    d.start(wait=False)
    assert d.proc.wait(timeout=10) == 1
    assert "is not a socket" in d.log()
    assert open(d.socket).read() == "precious"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(tmp_path, sig):
    d = Daemon(str(tmp_path)).start()
    assert_serving(d)
    assert d.stop(sig) == 0
    assert not os.path.exists(d.socket), "the socket is removed"
    assert "shutting down" in d.log()
    assert "monocri stopped" in d.log()


def test_sigterm_tells_watchers_and_does_not_wait_out_the_grace_period(tmp_path):
    d = Daemon(str(tmp_path), args=["--shutdown-grace-ms", "20000"]).start()
    seen = []
    errors = []

    def watch():
        with d.channel() as ch:
            stream = ch.unary_stream("/grpc.health.v1.Health/Watch",
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=health_pb2.HealthCheckResponse.FromString)
            try:
                for response in stream(health_pb2.HealthCheckRequest(), timeout=30):
                    seen.append(response.status)
            except grpc.RpcError as error:
                errors.append(error.code())

    watcher = threading.Thread(target=watch)
    watcher.start()
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    watcher.join(10)
    assert time.monotonic() - start < 5
    assert seen == [health_pb2.HealthCheckResponse.SERVING,
                    health_pb2.HealthCheckResponse.NOT_SERVING]
    assert errors == [grpc.StatusCode.UNAVAILABLE]


def test_calls_in_flight_at_sigterm_get_an_answer(tmp_path):
    # A request whose body has not arrived yet is in flight; with the grace period over it is
    # answered UNAVAILABLE, and the daemon still exits 0.
    from http2_raw import RawConnection
    d = Daemon(str(tmp_path), args=["--shutdown-grace-ms", "300"]).start()
    conn = RawConnection(d.socket)
    conn.handshake()
    conn.request(1, RUNTIME + "Version", None, end_stream=False)
    time.sleep(0.1)
    d.proc.send_signal(signal.SIGTERM)
    headers, body, trailers, rst = conn.response(1, timeout=5)
    assert trailers["grpc-status"] == "14"
    assert d.proc.wait(timeout=10) == 0
    conn.close()


def test_runtime_ready_is_false_without_the_oci_runtime(tmp_path):
    d = Daemon(str(tmp_path), args=["--oci-runtime", "/nonexistent/runc"]).start()
    try:
        with d.channel() as ch:
            response = unary(ch, RUNTIME + "Status", api_pb2.StatusRequest(),
                             api_pb2.StatusResponse)
        ready = {c.type: c for c in response.status.conditions}["RuntimeReady"]
        assert ready.status is False
        assert ready.reason == "OCIRuntimeNotFound"
        assert "/nonexistent/runc" in ready.message
        assert "RuntimeReady stays false" in d.log()
    finally:
        assert d.stop() == 0


def test_a_client_that_stops_reading_cannot_hold_the_shutdown(tmp_path):
    # 300 verbose Status calls whose answers (about 1 KiB each) the client never reads and
    # never grants flow-control window for: they cannot all leave, so their calls cannot end.
    from http2_raw import RawConnection, grpc_message
    d = Daemon(str(tmp_path), args=["--shutdown-grace-ms", "200"]).start()
    conn = RawConnection(d.socket)
    conn.handshake()
    request = grpc_message(api_pb2.StatusRequest(verbose=True).SerializeToString())
    for i in range(300):
        conn.request(2 * i + 1, RUNTIME + "Status", request)
    time.sleep(0.5)
    start = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 0
    assert time.monotonic() - start < 5
    assert "whose client does not read" in d.log()
    conn.close()
