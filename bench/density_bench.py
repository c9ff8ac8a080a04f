#!/usr/bin/python3
"""Density benchmark: memory per supervised container. N running busybox `sleep` containers, each
in its own pod, supervised by one monocri daemon under its keeper; then, in the same run, the
same N containers each supervised by its own `conmon` (Debian's 2.1.6, the per-container monitor
of CRI-O) over runc, on bundles made from the daemon's own config.json.

monocri: the daemon's and the keeper's RSS and PSS (/proc/PID/smaps_rollup) with all N running,
and before: after one pod came and went, the baseline of the growth per container. The first pod
pages in the daemon's code for creating containers (some 370 KiB of its text) and fills its
once-only caches: a daemon on a node has run pods before, and that is not memory per container
(the cold figure, before any pod, is printed too). conmon: the sum over the N conmon processes
(PSS shares the pages they have in common fairly; RSS counts them N times).

  bench/density_bench.py [--counts 100,500] [--settle 3]

Needs root, runc, conmon and Debian's docker-registry; run it under tests/harness/in-namespace.
A failure of the daemon at some N is reported with its log lines, not worked around."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# The helpers shared with the start-latency benchmark (CRI calls, daemon, cgroups, peer bundles).
from pod_start_bench import (  # noqa: E402
    CALL_TIMEOUT, RUNC, RUNTIME, Registry, api_pb2, clean_up_after_daemon, container_info,
    daemon_pid_of, extract_busybox_rootfs, peer_spec, push_busybox, remove_cgroups, runtime_calls,
    spec_template, start_daemon, start_sleeper_pod, unary)

CONMON = "/usr/bin/conmon"
DAEMON_TARGET_KIB = 16       # the daemon's added memory per container
CONMON_RATIO_TARGET = 25     # conmon's memory per container over the daemon's


def memory_kib(pid):
    """{"Rss": KiB, "Pss": KiB} of a process, from /proc/PID/smaps_rollup."""
    figures = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                figures[name] = int(rest.split()[0])
    return figures


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def mount_count(pid):
    """Entries of the process's mount table: what every `runc create` there reads."""
    with open(f"/proc/{pid}/mountinfo") as f:
        return sum(1 for _ in f)


def settled_memory_kib(pids, settle):
    """Memory of each process once freed pages had `settle` seconds to go back to the kernel
    (the daemon's reclaim timer, jemalloc's decay): the median of five readings."""
    time.sleep(settle)
    readings = []
    for _ in range(5):
        readings.append({pid: memory_kib(pid) for pid in pids})
        time.sleep(0.2)
    return {pid: {kind: sorted(r[pid][kind] for r in readings)[2] for kind in ("Rss", "Pss")}
            for pid in pids}


def log_problems(daemon, lines=40):
    """The daemon's warnings and errors (the last `lines`), for a report of what broke."""
    picked = [line for line in daemon.log().splitlines()
              if " warn " in line or " error " in line or " critical " in line]
    return "\n".join(picked[-lines:]) or daemon.log()[-3000:]


# ---- monocri ----

def remove_pods_reporting(channel):
    """RemovePodSandbox for every pod; returns (pods, failures)."""
    pods = unary(channel, RUNTIME + "ListPodSandbox", api_pb2.ListPodSandboxRequest(),
                 api_pb2.ListPodSandboxResponse, timeout=CALL_TIMEOUT).items
    failures = []
    for pod in pods:
        try:
            unary(channel, RUNTIME + "RemovePodSandbox",
                  api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id),
                  api_pb2.RemovePodSandboxResponse, timeout=CALL_TIMEOUT)
        except Exception as error:  # noqa: BLE001  (reported; the other pods still removed)
            failures.append(f"RemovePodSandbox {pod.id[:12]}: {error}")
    return len(pods), failures


def run_monocri(count, scratch, registry, settle, cgroup_parent):
    """N pods under one daemon and its keeper; returns the figures, the spec template the conmon
    peer copies, and what went wrong if anything did."""
    workdir = os.path.join(scratch, f"monocri-{count}")
    daemon = start_daemon(workdir, registry, "info", keeper=True)
    result = {"count": count, "problems": []}
    template = None
    try:
        with daemon.channel() as channel:
            daemon_pid = daemon_pid_of(channel)
            keeper_pid = daemon.pid
            if daemon_pid == keeper_pid:
                raise RuntimeError("the daemon did not start under its keeper")
            result["cold"] = settled_memory_kib([daemon_pid, keeper_pid], settle)[daemon_pid]
            log_root = os.path.join(workdir, "logs")
            start_sleeper_pod(channel, daemon.image, "warm-up", log_root, cgroup_parent)
            _, failures = remove_pods_reporting(channel)
            result["problems"] += failures
            before = settled_memory_kib([daemon_pid, keeper_pid], settle)
            result["fds_before"] = (open_fds(daemon_pid), open_fds(keeper_pid))
            result["mounts_before"] = mount_count(daemon_pid)
            latencies = []
            runtime_before = runtime_calls(channel)[0]
            begin = time.monotonic()
            for i in range(count):
                start = time.monotonic()
                try:
                    _, container_id = start_sleeper_pod(channel, daemon.image, f"p{i}", log_root,
                                                        cgroup_parent)
                except Exception as error:  # noqa: BLE001  (a finding: reported, not hidden)
                    result["problems"].append(
                        f"pod {i + 1} of {count} failed after {time.monotonic() - start:.1f} s: "
                        f"{error}\n--- the daemon's log (warnings and errors) ---\n"
                        f"{log_problems(daemon)}")
                    break
                latencies.append(time.monotonic() - start)
                if template is None:
                    template = spec_template(channel, container_id)
            result["started"] = len(latencies)
            result["start_wall"] = time.monotonic() - begin
            result["start_runtime"] = (runtime_calls(channel)[0] - runtime_before) / 1e9
            result["slowest"] = max(latencies, default=0.0)
            running = [c for c in unary(channel, RUNTIME + "ListContainers",
                                        api_pb2.ListContainersRequest(),
                                        api_pb2.ListContainersResponse,
                                        timeout=CALL_TIMEOUT).containers
                       if c.state == api_pb2.CONTAINER_RUNNING]
            result["running"] = len(running)
            if running:
                # Still running, as the daemon and the kernel see them.
                for container in running[:: max(1, len(running) // 10)]:
                    os.kill(container_info(channel, container.id)["pid"], 0)
            after = settled_memory_kib([daemon_pid, keeper_pid], settle)
            result["fds_after"] = (open_fds(daemon_pid), open_fds(keeper_pid))
            result["mounts_after"] = mount_count(daemon_pid)
            result["daemon"] = (before[daemon_pid], after[daemon_pid])
            result["keeper"] = (before[keeper_pid], after[keeper_pid])
            begin = time.monotonic()
            _, failures = remove_pods_reporting(channel)
            result["remove_wall"] = time.monotonic() - begin
            result["problems"] += failures
    except Exception as error:  # noqa: BLE001  (a finding: reported with the daemon's log)
        result["problems"].append(f"{type(error).__name__}: {error}\n--- the daemon's log "
                                  f"(warnings and errors) ---\n{log_problems(daemon)}")
    finally:
        if daemon.alive():
            try:
                with daemon.channel() as channel:
                    remove_pods_reporting(channel)
            except Exception as error:  # noqa: BLE001
                result["problems"].append(f"cleanup: {error}")
        code = daemon.stop(timeout=300)
        if code != 0:
            result["problems"].append(f"monocri exited with {code}:\n{log_problems(daemon)}")
        left = clean_up_after_daemon(daemon)
        if left:
            result["problems"].append(f"runc containers left by the daemon: {len(left)}, "
                                      f"deleted with runc delete --force")
    return result, template


# ---- conmon ----

class ConmonPeer:
    """Containers as CRI-O makes them: one conmon each, which double-forks, runs `runc create`
    and stays as the container's monitor (log file, exit file, attach socket); then `runc start`.
    Paths stay short: conmon's attach socket path must fit in 107 bytes."""

    def __init__(self, base, template, cgroup_parent):
        self.base = base
        self.runc_root = os.path.join(base, "r")
        self.template = template
        self.cgroup_parent = cgroup_parent
        for sub in ("b", "e", "l", "s"):
            os.makedirs(os.path.join(base, sub))
        self.rootfs = extract_busybox_rootfs(os.path.join(base, "rootfs"))
        self.containers = []  # (container id, conmon pid or None)

    def runc(self, *args):
        return [RUNC, "--root", self.runc_root, *args]

    def start(self, container_id):
        """conmon + runc create, then runc start; returns the container's pid."""
        pid, _ = self.create(container_id)
        subprocess.run(self.runc("start", container_id), check=True, capture_output=True,
                       timeout=CALL_TIMEOUT)
        return pid

    def create(self, container_id, log_path=None):
        """conmon + runc create; returns (the container's pid, conmon's pid or None). `log_path`:
        conmon's --log-path (default: a file under the peer's base)."""
        bundle = os.path.join(self.base, "b", container_id)
        os.makedirs(bundle)
        spec = peer_spec(self.template, self.rootfs, bundle, container_id,
                         f"{self.cgroup_parent}/{container_id}")
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        conmon_pidfile = os.path.join(bundle, "conmon.pid")
        sync_read, sync_write = os.pipe()
        command = [CONMON, "--cid", container_id, "--cuuid", container_id,
                   "--name", container_id, "--runtime", RUNC, "--bundle", bundle,
                   "--container-pidfile", os.path.join(bundle, "pid"),
                   "--conmon-pidfile", conmon_pidfile,
                   "--log-path",
                   log_path or os.path.join(self.base, "l", container_id + ".log"),
                   "--exit-dir", os.path.join(self.base, "e"),
                   "--socket-dir-path", os.path.join(self.base, "s"),
                   "--persist-dir", bundle, "--log-level", "info",
                   "--runtime-arg", f"--root={self.runc_root}"]
        # The sync pipe is how CRI-O learns the container's pid (or why create failed).
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "_OCI_SYNCPIPE": str(sync_write)}
        try:
            launcher = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        pass_fds=(sync_write,), env=env, cwd=bundle)
        finally:
            os.close(sync_write)
        try:
            launcher.wait(timeout=CALL_TIMEOUT)  # the first fork's parent leaves at once
            with os.fdopen(sync_read, "rb", closefd=False) as pipe:
                message = pipe.readline()  # once runc create is done, or EOF if conmon died
        finally:
            os.close(sync_read)
        conmon_pid = None
        if os.path.exists(conmon_pidfile):
            with open(conmon_pidfile) as f:
                conmon_pid = int(f.read())
        self.containers.append((container_id, conmon_pid))
        report = json.loads(message or b"{}")
        if report.get("pid", -1) <= 0:
            raise RuntimeError(f"conmon {container_id}: create failed: {report or 'no answer'}")
        return report["pid"], conmon_pid

    def conmon_pids(self):
        return [pid for _, pid in self.containers if pid is not None]

    def delete_containers(self):
        """runc delete --force of every container; returns what failed."""
        failures = []
        for container_id, _ in self.containers:
            done = subprocess.run(self.runc("delete", "--force", container_id),
                                  capture_output=True, text=True)
            if done.returncode != 0 and "does not exist" not in done.stderr:
                failures.append(f"runc delete {container_id}: {done.stderr.strip()}")
        return failures

    def stop_all(self):
        """runc delete --force of every container (its conmon then writes the exit and ends);
        conmons still there after 10 s are killed, by pid. Returns what failed."""
        failures = self.delete_containers()
        deadline = time.monotonic() + 10
        waiting = [pid for pid in self.conmon_pids() if is_conmon(pid)]
        while waiting and time.monotonic() < deadline:
            time.sleep(0.1)
            waiting = [pid for pid in waiting if is_conmon(pid)]
        for pid in waiting:
            os.kill(pid, 9)
            failures.append(f"conmon {pid} did not end with its container: killed")
        self.containers = []
        return failures


def is_conmon(pid):
    """The process is there and is still a conmon (not a reused pid)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "conmon"
    except (FileNotFoundError, ProcessLookupError):
        return False


def run_conmon(count, template, settle, cgroup_parent):
    base = tempfile.mkdtemp(prefix="bench-d", dir="/tmp")
    peer = ConmonPeer(base, template, cgroup_parent)
    result = {"count": count, "problems": []}
    try:
        begin = time.monotonic()
        for i in range(count):
            container_pid = peer.start(f"c{i}")
            os.kill(container_pid, 0)
        result["start_wall"] = time.monotonic() - begin
        pids = peer.conmon_pids()
        memory = settled_memory_kib(pids, settle)
        result["conmon"] = {kind: sum(m[kind] for m in memory.values())
                            for kind in ("Rss", "Pss")}
        result["fds"] = sum(open_fds(pid) for pid in pids)
        result["processes"] = len(pids)
    except Exception as error:  # noqa: BLE001  (reported with the figures)
        result["problems"].append(f"{type(error).__name__}: {error}")
    finally:
        result["problems"] += peer.stop_all()
        shutil.rmtree(base, ignore_errors=True)
    return result


# ---- report ----

def report(monocri, conmon):
    print(f"\nMemory per supervised container: busybox sleep, one container per pod, "
          f"{os.cpu_count()} CPUs; monocri (one daemon + its keeper) vs one conmon per "
          f"container (CRI-O's model)\n")
    for ours, theirs in zip(monocri, conmon):
        n = ours["count"]
        print(f"N = {n}")
        if "daemon" not in ours or ours.get("running") != n:
            print(f"  monocri: {ours.get('running', 0)} of {n} running; no figures")
            if "conmon" in theirs:
                print(f"  conmon per container: RSS {theirs['conmon']['Rss'] / n:.1f} KiB, "
                      f"PSS {theirs['conmon']['Pss'] / n:.1f} KiB\n")
            continue
        d0, d1 = ours["daemon"]
        k0, k1 = ours["keeper"]
        print(f"  {'':38}{'RSS KiB':>10}{'PSS KiB':>10}")
        cold = ours["cold"]
        print(f"  {'monocri daemon, cold (no pod yet)':38}{cold['Rss']:>10}{cold['Pss']:>10}")
        print(f"  {'monocri daemon, warm (1 pod, removed)':38}{d0['Rss']:>10}{d0['Pss']:>10}")
        print(f"  {f'monocri daemon, {n} running':38}{d1['Rss']:>10}{d1['Pss']:>10}")
        print(f"  {'keeper, warm (1 pod, removed)':38}{k0['Rss']:>10}{k0['Pss']:>10}")
        print(f"  {f'keeper, {n} running':38}{k1['Rss']:>10}{k1['Pss']:>10}")
        if "conmon" in theirs:
            c = theirs["conmon"]
            print(f"  {f'{n} conmon processes, summed':38}{c['Rss']:>10}{c['Pss']:>10}")
        per = {}
        for kind in ("Rss", "Pss"):
            per[("daemon", kind)] = (d1[kind] - d0[kind]) / n
            per[("both", kind)] = (d1[kind] - d0[kind] + k1[kind] - k0[kind]) / n
            if "conmon" in theirs:
                per[("conmon", kind)] = theirs["conmon"][kind] / n
        print(f"\n  {'KiB per container':38}{'RSS':>10}{'PSS':>10}")
        for key, label in (("daemon", "monocri daemon"), ("both", "monocri daemon + keeper"),
                           ("conmon", "conmon")):
            if (key, "Rss") in per:
                print(f"  {label:38}{per[(key, 'Rss')]:>10.1f}{per[(key, 'Pss')]:>10.1f}")

        def ratio(kind, ours_key):
            base = per[(ours_key, kind)]
            return f"{per[('conmon', kind)] / base:>10.1f}" if base > 0 else f"{'inf':>10}"

        if ("conmon", "Rss") in per:
            for key, label in (("daemon", "conmon / monocri daemon"),
                               ("both", "conmon / monocri daemon + keeper")):
                print(f"  {label:38}{ratio('Rss', key)}{ratio('Pss', key)}")
        print(f"  {'monocri daemon, from cold':38}{(d1['Rss'] - cold['Rss']) / n:>10.1f}"
              f"{(d1['Pss'] - cold['Pss']) / n:>10.1f}")
        fds = (ours["fds_after"][0] - ours["fds_before"][0]) / n
        keeper_fds = (ours["fds_after"][1] - ours["fds_before"][1]) / n
        print(f"\n  open fds per container: daemon {fds:.1f}, keeper {keeper_fds:.1f}"
              + (f", conmon {theirs['fds'] / n:.1f}" if "fds" in theirs else ""))
        print(f"  start of {n} pods one after the other: {ours['start_wall']:.1f} s "
              f"({ours['start_wall'] / n * 1000:.0f} ms per pod, of which "
              f"{ours['start_runtime'] / n * 1000:.0f} ms inside runc; slowest "
              f"{ours['slowest'] * 1000:.0f} ms); removal {ours['remove_wall']:.1f} s")
        print(f"  mount table of the daemon (where runc runs): {ours['mounts_before']} entries "
              f"before, {ours['mounts_after']} with {n} pods")
        if "start_wall" in theirs:
            print(f"  start of {n} containers with conmon + runc: {theirs['start_wall']:.1f} s "
                  f"({theirs['start_wall'] / n * 1000:.0f} ms per container)")
        daemon_pss = per[("daemon", "Pss")]
        daemon_rss = per[("daemon", "Rss")]
        worst = max(daemon_rss, daemon_pss)
        print(f"  target, the daemon's added memory under {DAEMON_TARGET_KIB} KiB per container: "
              f"{'met' if worst < DAEMON_TARGET_KIB else 'MISSED'} (RSS {daemon_rss:.1f}, "
              f"PSS {daemon_pss:.1f})")
        if ("conmon", "Pss") in per:
            least = min(per[("conmon", k)] / per[("daemon", k)] if per[("daemon", k)] > 0
                        else float("inf") for k in ("Rss", "Pss"))
            print(f"  target, at least {CONMON_RATIO_TARGET}x less than conmon: "
                  f"{'met' if least >= CONMON_RATIO_TARGET else 'MISSED'} ({least:.1f}x)")
        print()
    measured = [r for r in monocri if "daemon" in r and r.get("running") == r["count"]]
    if len(measured) >= 2:
        # Between two counts the daemon's fixed costs (allocator arenas, tables sized for the
        # first containers) cancel out: what one more container costs.
        low, high = measured[0], measured[-1]

        def growth(result, kind):
            return result["daemon"][1][kind] - result["daemon"][0][kind]

        span = high["count"] - low["count"]
        print(f"Marginal daemon memory per container, N = {low['count']} -> {high['count']}: "
              f"RSS {(growth(high, 'Rss') - growth(low, 'Rss')) / span:.1f} KiB, "
              f"PSS {(growth(high, 'Pss') - growth(low, 'Pss')) / span:.1f} KiB\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="100,500",
                        help="numbers of containers, comma-separated")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds given to freed memory before a reading")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",") if c]
    if os.geteuid() != 0:
        sys.exit("density_bench: needs root (runc, mounts); run it under "
                 "tests/harness/in-namespace")
    for tool in (RUNC, CONMON):
        if not os.access(tool, os.X_OK):
            sys.exit(f"density_bench: {tool} is missing (make deps)")

    scratch = tempfile.mkdtemp(prefix="monocri-density-bench-")
    cgroup_parent = f"monocri-density-{os.getpid()}"  # relative: nested under our own cgroups
    monocri, conmon, problems = [], [], []
    try:
        with Registry() as registry:
            push_busybox(registry)
            for count in counts:
                print(f"N = {count}: monocri...", flush=True)
                ours, template = run_monocri(count, scratch, registry, args.settle,
                                             cgroup_parent)
                monocri.append(ours)
                problems += [f"monocri, N = {count}: {p}" for p in ours["problems"]]
                if template is None:
                    conmon.append({"count": count, "problems": []})
                    continue
                print(f"N = {count}: conmon...", flush=True)
                theirs = run_conmon(count, template, args.settle, cgroup_parent)
                conmon.append(theirs)
                problems += [f"conmon, N = {count}: {p}" for p in theirs["problems"]]
    finally:
        for left in remove_cgroups(cgroup_parent):
            problems.append(f"cgroup left: {left}")
        shutil.rmtree(scratch, ignore_errors=True)

    report(monocri, conmon)
    if problems:
        print("Problems:\n" + "\n".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
