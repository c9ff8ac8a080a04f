"""monoctl exec, attach and port-forward against a real daemon and real runc containers: the
CLI dials the streaming server's URL and speaks SPDY/3.1 as kubectl does through kubelet."""
import fcntl
import hashlib
import http.client
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time

import pytest

from monocri_harness import MONOCTL, api_pb2, run_monoctl
from test_containers import call, create, daemon, make_pod, registry, start  # noqa: F401
from test_streaming import wait_listening


def endpoint(daemon):
    return "unix://" + daemon.socket


def monoctl(daemon, *args, stdin=None, timeout=60):
    """monoctl with bytes in and out (run_monoctl is text only)."""
    env = dict(os.environ)
    env.pop("MONOCRI_ENDPOINT", None)
    return subprocess.run([MONOCTL, "-r", endpoint(daemon), *args], input=stdin,
                          capture_output=True, env=env, timeout=timeout)


def exec_sync(daemon, container_id, cmd):
    return call(daemon, "ExecSync", api_pb2.ExecSyncRequest(
        container_id=container_id, cmd=cmd, timeout=10), api_pb2.ExecSyncResponse)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.fixture
def pod(daemon, tmp_path):
    return make_pod(daemon, tmp_path, name="pod-monoctl-streams")


@pytest.fixture
def sleeper(daemon, pod):
    container_id = create(daemon, pod, "sleeper", ["sleep", "3600"])
    start(daemon, container_id)
    return container_id


# ---- exec ----

def test_exec_echo(daemon, sleeper):
    result = run_monoctl("-r", endpoint(daemon), "exec", sleeper, "echo", "hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hi\n", "")


def test_exec_by_id_prefix_and_after_a_double_dash(daemon, sleeper):
    # The command's own options are its own, after `--` or not.
    result = run_monoctl("-r", endpoint(daemon), "exec", sleeper[:12], "--", "ls", "-d", "/tmp")
    assert (result.returncode, result.stdout) == (0, "/tmp\n"), result.stderr
    result = run_monoctl("-r", endpoint(daemon), "exec", sleeper, "sh", "-c", "echo -t -i $0", "x")
    assert (result.returncode, result.stdout) == (0, "-t -i x\n"), result.stderr


def test_exec_exit_code_and_both_output_streams(daemon, sleeper):
    result = run_monoctl("-r", endpoint(daemon), "exec", sleeper, "sh", "-c", "exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "", "")
    result = run_monoctl("-r", endpoint(daemon), "exec", sleeper, "sh", "-c",
                         "echo to-stdout; echo to-stderr >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, "to-stdout\n", "to-stderr\n")


def test_exec_of_a_missing_command_fails_with_the_servers_message(daemon, sleeper):
    result = run_monoctl("-r", endpoint(daemon), "exec", sleeper, "/no/such/command")
    assert result.returncode == 1
    assert re.search(r"^monoctl: exec: .*/no/such/command.*no such file", result.stderr, re.M), \
        result.stderr


def test_exec_stdin_one_mib_byte_exact(daemon, sleeper):
    payload = os.urandom(1024 * 1024)
    result = monoctl(daemon, "exec", "-i", sleeper, "cat", stdin=payload)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == len(payload)
    assert result.stdout == payload
    # Without -i the command's stdin is closed at once: cat ends.
    result = monoctl(daemon, "exec", sleeper, "cat", stdin=b"ignored")
    assert (result.returncode, result.stdout) == (0, b"")


def test_exec_a_slow_reader_holds_the_output_back_not_in_memory(daemon, sleeper):
    total = 64 * 1024 * 1024
    env = dict(os.environ)
    env.pop("MONOCRI_ENDPOINT", None)
    proc = subprocess.Popen([MONOCTL, "-r", endpoint(daemon), "exec", sleeper, "sh", "-c",
                             f"head -c {total} /dev/zero"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        time.sleep(3)  # nobody reads: the output waits in the container, not in monoctl
        assert proc.poll() is None
        stalled = rss_kib(proc.pid)  # ~8 MiB: the output is bounded to a few hundred KiB
        assert stalled < 24 * 1024, f"monoctl holds {stalled} KiB while its reader is stalled"
        received = 0
        while True:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            assert chunk.count(0) == len(chunk)
            received += len(chunk)
        assert proc.wait(30) == 0, proc.stderr.read()
        assert received == total
    finally:
        proc.kill()
        proc.wait()


def test_exec_sync(daemon, sleeper):
    result = run_monoctl("-r", endpoint(daemon), "exec", "--sync", sleeper, "sh", "-c",
                         "echo out; echo err >&2; exit 4")
    assert (result.returncode, result.stdout, result.stderr) == (4, "out\n", "err\n")
    result = run_monoctl("-r", endpoint(daemon), "exec", "-s", sleeper, "echo", "fine")
    assert (result.returncode, result.stdout) == (0, "fine\n")
    started = time.monotonic()
    result = run_monoctl("-r", endpoint(daemon), "exec", "--sync", "--timeout", "1", sleeper,
                         "sleep", "30")
    assert result.returncode == 1 and "DEADLINE_EXCEEDED" in result.stderr, result.stderr
    assert time.monotonic() - started < 10


def test_exec_tty_without_a_terminal_still_runs(daemon, sleeper):
    # stdin is a pipe: no raw mode, no size to send, but the command has its terminal.
    result = monoctl(daemon, "exec", "-t", sleeper, "sh", "-c", "tty; echo hi")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rb"/dev/pts/\d+\r\nhi\r\n", result.stdout), result.stdout
    result = monoctl(daemon, "exec", "-i", "-t", sleeper, "sh", "-c", "read x; echo got:$x; exit 5",
                     stdin=b"abc\n")
    assert result.returncode == 5, result.stderr
    assert b"got:abc\r\n" in result.stdout, result.stdout


def test_exec_of_a_container_that_is_not_running(daemon, pod):
    container_id = create(daemon, pod, "created", ["true"])
    result = run_monoctl("-r", endpoint(daemon), "exec", container_id, "true")
    assert result.returncode == 1
    assert f"container {container_id} is not running" in result.stderr, result.stderr
    result = run_monoctl("-r", endpoint(daemon), "exec", "nosuchcontainer", "true")
    assert result.returncode == 1 and "no container matches" in result.stderr


def test_exec_sigint_ends_the_session(daemon, sleeper):
    env = dict(os.environ)
    env.pop("MONOCRI_ENDPOINT", None)
    proc = subprocess.Popen([MONOCTL, "-r", endpoint(daemon), "exec", sleeper, "sh", "-c",
                             "echo started; sleep 300"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        # At once: `runc exec` may not have answered yet. The abandoned process must still be
        # tracked and reaped, or the container could not be stopped in the teardown (1df311c).
        assert proc.stdout.readline() == b"started\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 128 + signal.SIGINT
    finally:
        proc.kill()
        proc.wait()
    # The daemon serves on.
    assert exec_sync(daemon, sleeper, ["echo", "ok"]).stdout == b"ok\n"


# ---- exec on a real terminal ----

def read_until(fd, pattern, timeout=15):
    out = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, out):
        left = deadline - time.monotonic()
        assert left > 0, f"no {pattern!r} in {out!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


@pytest.mark.parametrize("ending", ["exit", "sigterm"])
def test_exec_tty_on_a_terminal_is_raw_sized_and_restored(daemon, sleeper, ending):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    before = termios.tcgetattr(slave)
    env = dict(os.environ)
    env.pop("MONOCRI_ENDPOINT", None)
    proc = subprocess.Popen([MONOCTL, "-r", endpoint(daemon), "exec", "-i", "-t", sleeper, "sh"],
                            stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    try:
        read_until(master, rb"# ")
        # Raw: no local echo or line editing, the container's terminal does both.
        assert termios.tcgetattr(slave)[3] & termios.ECHO == 0
        os.write(master, b"stty size\r")
        read_until(master, rb"30 100\r\n")
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.kill(proc.pid, signal.SIGWINCH)
        time.sleep(0.3)
        os.write(master, b"stty size\r")
        read_until(master, rb"40 120\r\n")
        if ending == "exit":
            os.write(master, b"exit 9\r")
            assert proc.wait(10) == 9
        else:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 128 + signal.SIGTERM
        assert termios.tcgetattr(slave) == before
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)


# ---- attach ----

def test_attach_stdin_to_a_container_reading_it(daemon, pod):
    container_id = create(daemon, pod, "reader",
                          ["sh", "-c", "while read l; do echo got:$l; done; echo stdin-closed"],
                          stdin=True, stdin_once=True)
    start(daemon, container_id)
    result = monoctl(daemon, "attach", "-i", container_id, stdin=b"hello\nworld\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"got:hello\ngot:world\nstdin-closed\n"


def test_attach_tty_to_a_shell_on_a_terminal(daemon, pod):
    container_id = create(daemon, pod, "shell", ["sh"], stdin=True, stdin_once=True, tty=True)
    start(daemon, container_id)
    result = monoctl(daemon, "attach", "-i", "-t", container_id,
                     stdin=b"echo attached-$((40+2))\nexit\n")
    assert result.returncode == 0, result.stderr
    assert b"attached-42\r\n" in result.stdout, result.stdout
    assert b"\n" not in result.stdout.replace(b"\r\n", b""), result.stdout  # one terminal


# ---- port-forward ----

@pytest.fixture
def httpd(daemon, pod):
    container_id = create(daemon, pod, "web", [
        "sh", "-c", "mkdir -p /www && head -c 1048576 /dev/urandom > /www/big.bin && "
                    "exec httpd -f -p 80 -h /www"])
    start(daemon, container_id)
    wait_listening(daemon, container_id, 80)
    content = exec_sync(daemon, container_id, ["cat", "/www/big.bin"]).stdout
    assert len(content) == 1024 * 1024
    return container_id, hashlib.md5(content).hexdigest()


def start_port_forward(daemon, pod_id, *ports):
    env = dict(os.environ)
    env.pop("MONOCRI_ENDPOINT", None)
    proc = subprocess.Popen([MONOCTL, "-r", endpoint(daemon), "port-forward", pod_id, *ports],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    forwarded = {}
    for _ in ports:
        line = proc.stdout.readline().decode()
        m = re.fullmatch(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)\n", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        forwarded[int(m.group(2))] = int(m.group(1))
    return proc, forwarded


def test_port_forward_two_connections_byte_exact_then_sigint(daemon, pod, httpd):
    _, digest = httpd
    proc, forwarded = start_port_forward(daemon, pod[0], "80")
    try:
        local = forwarded[80]
        for _ in range(2):
            conn = http.client.HTTPConnection("127.0.0.1", local, timeout=30)
            conn.request("GET", "/big.bin")
            response = conn.getresponse()
            body = response.read()
            conn.close()
            assert response.status == 200
            assert len(body) == 1024 * 1024
            assert hashlib.md5(body).hexdigest() == digest
        # A raw socket, half-closed after the request: the answer still comes whole.
        with socket.create_connection(("127.0.0.1", local), timeout=30) as s:
            s.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            answer = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        body = answer[answer.index(b"\r\n\r\n") + 4:]
        assert hashlib.md5(body).hexdigest() == digest
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0, proc.stderr.read()
        assert proc.stderr.read() == b""
    finally:
        proc.kill()
        proc.wait()


def test_port_forward_a_given_local_port_and_a_port_nobody_listens_on(daemon, pod, httpd):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    proc, forwarded = start_port_forward(daemon, pod[0], f"{free}:80", "0:81")
    try:
        assert forwarded[80] == free
        conn = http.client.HTTPConnection("127.0.0.1", free, timeout=30)
        conn.request("GET", "/big.bin")
        assert conn.getresponse().status == 200
        conn.close()
        # Port 81: the server says why on the error stream, the local connection just closes.
        with socket.create_connection(("127.0.0.1", forwarded[81]), timeout=30) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert s.recv(4096) == b""
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        err = proc.stderr.read().decode()
        assert f"forwarding 127.0.0.1:{forwarded[81]} -> 81: error forwarding port 81 to pod" \
            in err, err
    finally:
        proc.kill()
        proc.wait()


def test_port_forward_bad_arguments(daemon, pod):
    result = run_monoctl("-r", endpoint(daemon), "port-forward", pod[0], "x:80")
    assert result.returncode == 2 and "[LOCAL:]REMOTE" in result.stderr
    result = run_monoctl("-r", endpoint(daemon), "port-forward", "nosuchpod", "80")
    assert result.returncode == 1 and "no pod matches" in result.stderr
