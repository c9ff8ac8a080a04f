"""ExecSync through the CRI in real runc containers: what the command printed and returned, the
container's own settings it runs with, its timeout, bounded output, and a background child that
keeps the output pipe open."""
import os
import time

import grpc
import pytest

from monocri_harness import api_pb2, unary
from test_containers import (RUNTIME, call, create, daemon, make_pod,  # noqa: F401
                             keeper_daemon, registry, start, wait_exited)

BIG = 64 * 1024 * 1024


def exec_sync(daemon, container_id, cmd, timeout=10, call_timeout=60):
    with daemon.channel(**{"grpc.max_receive_message_length": BIG}) as channel:
        return unary(channel, RUNTIME + "ExecSync",
                     api_pb2.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=timeout),
                     api_pb2.ExecSyncResponse, timeout=call_timeout)


@pytest.fixture
def running(daemon, tmp_path):
    """A running `sleep` container with an env variable, a working dir and a user of its own."""
    pod = make_pod(daemon, tmp_path, name="pod-exec")
    container_id = create(
        daemon, pod, "sleeper", ["sleep", "3600"],
        envs=[api_pb2.KeyValue(key="GREETING", value=b"hello from the spec")],
        working_dir="/tmp",
        linux=api_pb2.LinuxContainerConfig(
            security_context=api_pb2.LinuxContainerSecurityContext(
                run_as_user=api_pb2.Int64Value(value=1000),
                namespace_options=pod[1].linux.security_context.namespace_options)))
    start(daemon, container_id)
    return container_id


def test_exit_code_stdout_and_stderr_come_back_apart(daemon, running):
    reply = exec_sync(daemon, running, ["sh", "-c", "echo out; echo err >&2; printf tail; exit 3"])
    assert reply.exit_code == 3
    assert reply.stdout == b"out\ntail"
    assert reply.stderr == b"err\n"
    assert exec_sync(daemon, running, ["true"]).exit_code == 0


def test_the_command_runs_with_the_containers_env_cwd_and_user(daemon, running):
    reply = exec_sync(daemon, running, ["sh", "-c", 'echo "$GREETING"; pwd; id -u'])
    assert reply.exit_code == 0, reply.stderr
    assert reply.stdout == b"hello from the spec\n/tmp\n1000\n"


def test_stdin_is_empty(daemon, running):
    started = time.monotonic()
    reply = exec_sync(daemon, running, ["cat"])
    assert (reply.exit_code, reply.stdout) == (0, b"")
    assert time.monotonic() - started < 5


def test_a_command_past_its_timeout_is_killed_and_the_call_says_so(daemon, running):
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as error:
        exec_sync(daemon, running, ["sleep", "37"], timeout=1)
    took = time.monotonic() - started
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error.value.details()
    assert "timed out after 1 s" in error.value.details()
    assert 1.0 <= took < 5, took
    left = exec_sync(daemon, running, ["ps", "-o", "args"]).stdout
    assert b"sleep 37" not in left, left


def test_twenty_mib_of_output_is_cut_with_a_marker_and_nothing_blocks(daemon, running):
    total = 20 * 1024 * 1024
    line = b"0123456789abcdef\n"
    reply = exec_sync(daemon, running,
                      ["sh", "-c", f"yes 0123456789abcdef | head -c {total}; echo done >&2"],
                      timeout=60)
    assert reply.exit_code == 0
    marker = reply.stdout.rfind(b"\n[monocri: output truncated: ")
    assert marker > 15 * 1024 * 1024, marker
    kept = reply.stdout[:marker]
    expected = (line * (len(kept) // len(line) + 1))[:len(kept)]
    assert kept == expected  # the first bytes, exactly
    assert reply.stdout[marker:] == (f"\n[monocri: output truncated: {total - len(kept)} more "
                                     f"bytes were dropped after the first {len(kept)}]\n").encode()
    assert reply.stderr == b"done\n"
    assert len(reply.stdout) + len(reply.stderr) < 16 * 1024 * 1024  # what kubelet accepts


def test_a_background_child_holding_stdout_does_not_hold_the_call(daemon, running):
    started = time.monotonic()
    reply = exec_sync(daemon, running, ["sh", "-c", "sleep 300 & echo hi"], timeout=30)
    assert time.monotonic() - started < 3
    assert (reply.exit_code, reply.stdout) == (0, b"hi\n")


def test_bad_calls_get_clear_errors(daemon, running, tmp_path):
    cases = [
        ("no-such-container", ["true"], grpc.StatusCode.NOT_FOUND, "not found"),
        (running, [], grpc.StatusCode.INVALID_ARGUMENT, "cmd"),
        (running, ["/no/such/binary"], None, "/no/such/binary"),
    ]
    for container_id, cmd, code, words in cases:
        with pytest.raises(grpc.RpcError) as error:
            exec_sync(daemon, container_id, cmd)
        if code is not None:
            assert error.value.code() == code, error.value.details()
        assert words in error.value.details(), error.value.details()
    # An exited container has nothing to exec in.
    pod = make_pod(daemon, tmp_path, name="pod-done")
    done = create(daemon, pod, "done", ["true"])
    start(daemon, done)
    wait_exited(daemon, done)
    with pytest.raises(grpc.RpcError) as error:
        exec_sync(daemon, done, ["true"])
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not running" in error.value.details()
    # Nothing of the calls is left in the bundle.
    bundle = os.path.join(daemon.run_root, "containers", running)
    assert [f for f in os.listdir(bundle) if f.startswith("exec-")] == []


def test_under_the_keeper_the_exit_comes_from_the_subreaper(tmp_path, registry):
    """With the keeper (the normal case) the detached process is the keeper's to reap: its exit
    code still comes back, and a kill at the timeout still ends it."""
    d = keeper_daemon(tmp_path / "k", registry)
    try:
        pod = make_pod(d, tmp_path, name="pod-keeper")
        container_id = create(d, pod, "sleeper", ["sleep", "3600"])
        start(d, container_id)
        reply = exec_sync(d, container_id, ["sh", "-c", "echo kept; exit 7"])
        assert (reply.exit_code, reply.stdout) == (7, b"kept\n")
        with pytest.raises(grpc.RpcError) as error:
            exec_sync(d, container_id, ["sleep", "41"], timeout=1)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert b"sleep 41" not in exec_sync(d, container_id, ["ps", "-o", "args"]).stdout
        call(d, "RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod[0]),
             api_pb2.RemovePodSandboxResponse)
    finally:
        assert d.stop() == 0, d.log()
