#!/usr/bin/python3
"""Image pull benchmark: pull and unpack of an image from the local registry into a cold
store, monocri (PullImage: the daemon and its image worker) side by side, in the same run, with
the path of CRI-O's image ecosystem: `skopeo copy docker://... oci:...` then `umoci unpack`.
Two images: a few big files of random bytes (bound by bytes: download, hashing, inflate) and
many small text files (bound by metadata, as a distro image is). Prints wall time, CPU time and
peak RSS (medians over the runs) and their ratios.

  bench/image_pull_bench.py [--size-mb 200] [--files 30000] [--layers 5] [--runs 3]

Needs root (umoci unpack, and the daemon's ownership-preserving unpack) and Debian's
docker-registry, skopeo and umoci (`make deps`)."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests/harness"))
sys.path.insert(0, os.path.join(ROOT, "tools/testimage"))
os.environ.setdefault("MONOCRI_BIN", os.path.join(ROOT, "build/bin"))
os.environ.setdefault("MONOCRI_PYTHON_OUT", os.path.join(ROOT, "build/python"))

import testimage  # noqa: E402
from monocri_harness import Daemon, api_pb2, children_of, status_kib_of, unary  # noqa: E402
from registry import Registry  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process, from /proc (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except FileNotFoundError:
        return 0.0


def run_monocri(registry, reference, workdir):
    """One cold pull through the CRI; returns (wall s, CPU s, peak RSS MiB of the larger of the
    daemon and the worker, daemon peak RSS MiB)."""
    conf = os.path.join(workdir, "registries.conf")
    with open(conf, "w") as f:
        f.write(f'[[registry]]\nlocation = "{registry.address}"\ninsecure = true\n')
    daemon = Daemon(workdir, args=["--registries-conf", conf]).start()
    try:
        cpu_before = cpu_seconds(daemon.pid)
        start = time.monotonic()
        with daemon.channel() as channel:
            unary(channel, "/runtime.v1.ImageService/PullImage",
                  api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=reference)),
                  api_pb2.PullImageResponse, timeout=600)
        wall = time.monotonic() - start
        workers = children_of(daemon.pid)  # the image worker lingers until idle: measure it now
        cpu = cpu_seconds(daemon.pid) - cpu_before + sum(cpu_seconds(w) for w in workers)
        worker_peak = max([status_kib_of(w, "VmHWM") for w in workers] or [0])
        daemon_peak = status_kib_of(daemon.pid, "VmHWM")
    finally:
        daemon.stop()
    return wall, cpu, max(worker_peak, daemon_peak) / 1024, daemon_peak / 1024


def run_peer(registry, reference, workdir):
    """skopeo copy to an OCI layout, then umoci unpack; returns (wall s, CPU s, peak RSS MiB).
    Each command's own rusage comes from wait4: RUSAGE_CHILDREN would mix in every child this
    process ever reaped (the daemons of earlier runs)."""
    layout = os.path.join(workdir, "layout")
    bundle = os.path.join(workdir, "bundle")
    cpu, peak = 0.0, 0
    start = time.monotonic()
    for command in (["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                     f"docker://{reference}", f"oci:{layout}:bench"],
                    ["umoci", "unpack", "--image", f"{layout}:bench", bundle]):
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise subprocess.CalledProcessError(child.returncode, command)
        cpu += usage.ru_utime + usage.ru_stime
        peak = max(peak, usage.ru_maxrss)
    wall = time.monotonic() - start
    return wall, cpu, peak / 1024


def measure(registry, reference, runs, scratch):
    """Alternates monocri and the peer `runs` times on one image; returns their results."""
    results = {"monocri": [], "peer": []}
    for run in range(runs):
        for name, runner in (("monocri", run_monocri), ("peer", run_peer)):
            workdir = os.path.join(scratch, f"{name}-{run}")
            os.makedirs(workdir)
            results[name].append(runner(registry, reference, workdir))
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def report(title, results, runs):
    def median(name, index):
        return statistics.median(r[index] for r in results[name])

    print(f"\n{title}, local registry, cold store, median of {runs} runs, "
          f"{os.cpu_count()} CPUs\n")
    print(f"{'':28}{'monocri':>16}{'skopeo + umoci':>18}{'ratio':>10}")
    for label, index in (("wall time (s)", 0), ("CPU time (s)", 1), ("peak RSS (MiB)", 2)):
        ours, theirs = median("monocri", index), median("peer", index)
        print(f"{label:28}{ours:>16.2f}{theirs:>18.2f}{ours / theirs:>10.2f}")
    print(f"{'monocri daemon peak RSS':28}{median('monocri', 3):>16.2f}")
    return median("monocri", 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--files", type=int, default=30000)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("image_pull_bench: needs root (umoci unpack, ownership of unpacked files)")

    scratch = tempfile.mkdtemp(prefix="monocri-pull-bench-")
    try:
        with Registry() as registry:
            print(f"building and pushing a {args.size_mb} MB image of {args.layers} gzip layers "
                  f"of random bytes and one of {args.files} small text files...", flush=True)
            big = testimage.sized_image(args.size_mb * 1_000_000, scratch, layers=args.layers)
            testimage.push(big, registry.address, "bench/big", "1")
            small = testimage.sized_image(args.size_mb * 1_000_000 // 4, scratch,
                                          layers=args.layers, seed="small")
            testimage.push(small, registry.address, "bench/small", "1")
            tree = testimage.tree_image(args.files, scratch, layers=args.layers)
            testimage.push(tree, registry.address, "bench/tree", "1")
            tree_bytes = sum(layer.blob.size for layer in tree.layers)

            big_results = measure(registry, f"{registry.address}/bench/big:1", args.runs, scratch)
            tree_results = measure(registry, f"{registry.address}/bench/tree:1", args.runs,
                                   scratch)
            # Peak RSS must not follow layer size: the same pull of a quarter-size image.
            workdir = os.path.join(scratch, "monocri-small")
            os.makedirs(workdir)
            small_run = run_monocri(registry, f"{registry.address}/bench/small:1", workdir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    big_peak = report(f"Pull and unpack, {args.size_mb} MB of random bytes in {args.layers} gzip "
                      f"layers", big_results, args.runs)
    report(f"Pull and unpack, {args.files} small text files in {args.layers} gzip layers "
           f"({tree_bytes / 1e6:.0f} MB compressed)", tree_results, args.runs)
    print(f"\npeak RSS, {args.size_mb} MB image {big_peak:.1f} MiB; "
          f"{args.size_mb // 4} MB image {small_run[2]:.1f} MiB (independent of layer size)")


if __name__ == "__main__":
    main()
