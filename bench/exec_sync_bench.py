#!/usr/bin/python3
"""ExecSync benchmark: `true` run N times in one running busybox container through the CRI's
ExecSync, side by side in the same run with `runc exec` of the same container called directly
from Python (runc's foreground exec: the floor a runtime that shells out to runc starts from).
Prints p50/p99 of each and what the daemon adds at the median.

  bench/exec_sync_bench.py [--calls 200]

Needs root, runc and Debian's docker-registry; run it under tests/harness/in-namespace."""
import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from pod_start_bench import (RUNC, RUNTIME, api_pb2, make_log_dirs,  # noqa: E402
                             percentile, push_busybox, remove_cgroups, start_daemon,
                             start_sleeper_pod, stop_daemon, tmpfs_at, unary)
from registry import Registry  # noqa: E402

TARGET_MS = 2.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("exec_sync_bench: needs root; run it under tests/harness/in-namespace")
    scratch = tempfile.mkdtemp(prefix="monocri-exec-bench-")
    cgroup_parent = f"monocri-execbench-{os.getpid()}"
    log_root = os.path.join(scratch, "logs")
    ours, theirs = [], []
    daemon = None
    with contextlib.ExitStack() as mounts:
        try:
            with Registry() as registry:
                push_busybox(registry)
                mounts.enter_context(tmpfs_at(os.path.join(scratch, "monocri", "d", "run")))
                daemon = start_daemon(os.path.join(scratch, "monocri"), registry, "info")
                with daemon.channel() as channel:
                    make_log_dirs(log_root, ["exec"])
                    _, container_id = start_sleeper_pod(channel, daemon.image, "exec", log_root,
                                                        cgroup_parent)
                    request = api_pb2.ExecSyncRequest(container_id=container_id, cmd=["true"],
                                                      timeout=10)
                    runc = [RUNC, "--root", os.path.join(daemon.run_root, "runc"), "exec",
                            container_id, "true"]
                    for _ in range(5):  # warm both paths
                        unary(channel, RUNTIME + "ExecSync", request, api_pb2.ExecSyncResponse)
                        subprocess.run(runc, check=True)
                    for _ in range(args.calls):  # interleaved: the VM's drift hits both alike
                        start = time.monotonic()
                        reply = unary(channel, RUNTIME + "ExecSync", request,
                                      api_pb2.ExecSyncResponse)
                        ours.append(time.monotonic() - start)
                        if reply.exit_code != 0:
                            raise RuntimeError(f"ExecSync of true answered {reply.exit_code}")
                        start = time.monotonic()
                        subprocess.run(runc, check=True, stdin=subprocess.DEVNULL)
                        theirs.append(time.monotonic() - start)
        finally:
            if daemon is not None:
                stop_daemon(daemon)
            for left in remove_cgroups(cgroup_parent):
                print(f"cgroup left: {left}", file=sys.stderr)
    shutil.rmtree(scratch, ignore_errors=True)

    ms = 1000.0
    print(f"\nExecSync of `true`, {args.calls} calls, {os.cpu_count()} CPUs; peer: runc exec of the "
          "same container, called directly (foreground)\n")
    print(f"{'':12}{'ExecSync':>12}{'runc exec':>12}{'ratio':>8}")
    for label, fraction in (("p50 (ms)", 0.5), ("p90 (ms)", 0.9), ("p99 (ms)", 0.99)):
        a, b = percentile(ours, fraction) * ms, percentile(theirs, fraction) * ms
        print(f"{label:12}{a:>12.2f}{b:>12.2f}{a / b:>8.2f}")
    added = (statistics.median(ours) - statistics.median(theirs)) * ms
    print(f"\n  the daemon adds {added:.2f} ms at the median (target under {TARGET_MS:.0f} ms: "
          f"{'met' if added < TARGET_MS else 'MISSED'})")


if __name__ == "__main__":
    main()
