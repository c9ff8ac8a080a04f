"""monocri-runtime against runc: the same OCI bundles run under both, and what the container
observes must be the same.

Every test runs once per runtime (the `runtime` fixture: runc, monocri-runtime). A scenario is a
function of a runtime returning its observations, already normalised (container ids, pids,
bundle paths, namespace inodes, mount ids and device numbers replaced by what they stand for).
`lab.observe(scenario)` runs it under the runtime of the test and, for monocri-runtime, under
runc as well, and asserts both saw the same; each test then asserts the expected values
themselves, so that it also fails when both runtimes are wrong (or runc changes).

The containers are real: a busybox rootfs from tools/testimage, `create` with the container's
stdout/stderr on pipes, `start`, the init's exit status from os.waitpid (this process is a child
subreaper), `delete`. Cgroups nest under this process's own (relative cgroupsPath
ocirt-test-<pid>/<id>) and are removed at the end; each runtime has a --root of its own.

Run: /tmp/pt.sh tests/integration/test_oci_runtime.py [-k runc] (inside tests/harness/in-namespace;
MONOCRI_BIN locates monocri-runtime, which must exist: a missing binary fails, never skips).
"""
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../harness"))

from cgroups import own_cgroup_dirs, remove_cgroups  # noqa: E402
from oci_bundle import (DEFAULT_CAPS, PATH_ENV, TMPFS_TMP, Bundle, ConsoleSocket, Container, Runtime,  # noqa: E402
                        extract_busybox_rootfs, set_child_subreaper)

RUNC = shutil.which("runc") or "/usr/sbin/runc"
MONOCRI_RUNTIME = os.path.join(
    os.environ.get("MONOCRI_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin")),
    "monocri-runtime")
BINARIES = {"runc": RUNC, "monocri-runtime": MONOCRI_RUNTIME}
CGROUP_PARENT = f"ocirt-test-{os.getpid()}"
MARKER = "ocirt-rootfs-marker"
# CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29).
DEFAULT_CAP_MASK = f"{(1 << 5) | (1 << 10) | (1 << 29):016x}"
NAMESPACES = ["cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time",
              "time_for_children", "user", "uts"]
STATUS_FIELDS = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Seccomp", "NoNewPrivs",
                 "Uid", "Gid", "Groups"]


# ---- fixtures ----

@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    """The busybox rootfs, extracted once; bundles copy it. A marker file at its top tells its
    root from the host's."""
    directory = extract_busybox_rootfs(str(tmp_path_factory.mktemp("ocirt") / "rootfs"))
    with open(os.path.join(directory, MARKER), "w") as f:
        f.write("inside\n")
    return directory


@pytest.fixture(scope="module")
def subreaper():
    """This process as a child subreaper for the module (container inits are re-parented to
    it), and the module's cgroup parent removed at the end: nothing may be left in it."""
    set_child_subreaper(True)
    yield
    set_child_subreaper(False)
    assert remove_cgroups(CGROUP_PARENT) == []


def make_runtime(name, tmp_path):
    """`name` with a --root and --log of its own. monocri-runtime missing is a failure: this file
    exists to check it."""
    binary = BINARIES[name]
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{name} not found at {binary} (build monocri-runtime)")
    return Runtime(name, binary, str(tmp_path / name))


@pytest.fixture(params=["runc", "monocri-runtime"])
def runtime(request, tmp_path):
    """The runtime under test."""
    return make_runtime(request.param, tmp_path)


class Lab:
    """One test's containers: bundles under tmp_path/<runtime>, every container cleaned up
    (delete --force, its processes reaped) and checked gone at the end: state in --root,
    cgroups, and any process under this one (a zombie never reaped included) that was not there
    before the test."""

    def __init__(self, runtime, tmp_path, rootfs):
        self.runtime = runtime
        self.tmp_path = tmp_path
        self.rootfs = rootfs
        self.runtimes = {runtime.name: runtime}
        self.containers = []
        self.count = 0
        self.processes_before = processes_under(os.getpid())

    def other(self, name):
        if name not in self.runtimes:
            self.runtimes[name] = Runtime(name, BINARIES[name], str(self.tmp_path / name))
        return self.runtimes[name]

    def bundle(self, runtime, args, copy_rootfs=True):
        """A bundle with the default spec and `args`, named for a new container id; returns
        (bundle, container) with bundle.spec to edit and write()."""
        self.count += 1
        container_id = f"ocirt-{runtime.name}-{self.count}"
        bundle = Bundle(str(self.tmp_path / runtime.name / container_id), self.rootfs, args,
                        f"{CGROUP_PARENT}/{container_id}", copy_rootfs=copy_rootfs)
        container = Container(runtime, bundle, container_id)
        self.containers.append(container)
        return bundle, container

    def observe(self, scenario):
        """scenario(runtime) for the runtime under test; for monocri-runtime also for runc,
        and both must have seen the same."""
        got = scenario(self.runtime)
        if self.runtime.name != "runc":
            expected = scenario(self.other("runc"))
            assert got == expected, (f"{self.runtime.name} saw (first) what runc did not "
                                     f"(second):\n{got!r}\n{expected!r}")
        return got

    def cleanup(self):
        problems = []
        for container in self.containers:
            problems += container.cleanup()
            problems += [f"cgroup left: {d}" for d in cgroup_dirs(container) if os.path.isdir(d)]
        for runtime in self.runtimes.values():
            left = runtime.state_ids()
            if left:
                problems.append(f"{runtime.name} state left in --root: {left}")
        for pid in sorted(processes_under(os.getpid()) - self.processes_before):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    command = f.read().replace(b"\0", b" ")
                problems.append(f"process left: {pid} {command!r}")
            except FileNotFoundError:
                pass
        return problems


@pytest.fixture
def lab(runtime, tmp_path, rootfs, subreaper):
    lab = Lab(runtime, tmp_path, rootfs)
    yield lab
    problems = lab.cleanup()
    assert problems == [], problems


@pytest.fixture
def monocri_lab(tmp_path, rootfs, subreaper):
    """A Lab for what monocri-runtime does and runc 1.1.5 does not (nothing to compare with)."""
    lab = Lab(make_runtime("monocri-runtime", tmp_path), tmp_path, rootfs)
    yield lab
    problems = lab.cleanup()
    assert problems == [], problems


# ---- helpers ----

def cgroup_dirs(container):
    """The container's cgroup in every hierarchy (relative cgroupsPath: under our own)."""
    return own_cgroup_dirs(container.bundle.spec["linux"]["cgroupsPath"])


def hierarchy_of(directory):
    """/sys/fs/cgroup/memory/a/b -> "memory"."""
    return os.path.relpath(directory, "/sys/fs/cgroup").split("/")[0]


def normalise(text, *containers):
    """Container ids, bundle paths, this module's cgroup parent and our own pid replaced."""
    for container in containers:
        text = text.replace(container.bundle.path, "<bundle>").replace(container.id, "<id>")
    return text.replace(CGROUP_PARENT, "<parent>")


def status_fields(text):
    """The STATUS_FIELDS of a /proc/<pid>/status text, whitespace collapsed."""
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in STATUS_FIELDS:
            fields[name] = " ".join(value.split())
    return fields


def host_namespaces():
    return {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in NAMESPACES
            if os.path.exists(f"/proc/self/ns/{ns}")}


NS_SCRIPT = ("for n in " + " ".join(NAMESPACES) +
             "; do [ -e /proc/self/ns/$n ] && echo $n $(readlink /proc/self/ns/$n); done")


def classify_namespaces(output, joined=None):
    """`ns target` lines -> {ns: "host" | "new" | the name given in `joined` for a target}."""
    host, joined = host_namespaces(), joined or {}
    seen = {}
    for line in output.splitlines():
        ns, target = line.split()
        seen[ns] = joined.get(target) or ("host" if host.get(ns) == target else "new")
    return seen


def run_script(lab, runtime, script, edit=None):
    """sh -c `script` in a default bundle (edited by edit(spec, bundle)): the normalised
    (exit code, stdout, stderr)."""
    bundle, container = lab.bundle(runtime, ["sh", "-c", script])
    if edit:
        edit(bundle.spec, bundle)
    bundle.write()
    code, out, err = container.run()
    return code, normalise(out, container), normalise(err, container)


def processes_under(pid):
    """Every descendant of `pid` (by /proc/*/stat ppid)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                pass
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def log_messages(runtime):
    return [entry.get("msg", entry.get("raw", "")) for entry in runtime.log_entries()]


# ---- the process: credentials, capabilities, rlimits ----

def test_status_of_default_process(lab):
    """The default spec's process as /proc/self/status shows it: the three default
    capabilities in the bounding, permitted and effective sets; the inheritable set empty (the
    spec lists none) and therefore the ambient set empty too: the kernel refuses to raise an
    ambient capability that is not inheritable, and runc ignores that failure rather than fail
    the container. No seccomp, no_new_privs set, root with no supplementary groups."""
    def scenario(runtime):
        code, out, err = run_script(lab, runtime, "cat /proc/self/status")
        assert code == 0, err
        return status_fields(out)

    seen = lab.observe(scenario)
    assert seen == {"CapInh": "0" * 16, "CapPrm": DEFAULT_CAP_MASK, "CapEff": DEFAULT_CAP_MASK,
                    "CapBnd": DEFAULT_CAP_MASK, "CapAmb": "0" * 16, "Seccomp": "0",
                    "NoNewPrivs": "1", "Uid": "0 0 0 0", "Gid": "0 0 0 0", "Groups": ""}


def test_status_of_non_root_user(lab):
    """user 1000:1000 with additionalGids: every uid/gid (real, effective, saved, fs) is the
    user's, the groups are exactly the additional ones, and the capabilities given survive
    the switch from root (keep-caps) while the bounding set is cut to them."""
    def scenario(runtime):
        def edit(spec, bundle):
            spec["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [2000, 10]}
            spec["process"]["capabilities"] = {
                "bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"],
                "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}
        code, out, err = run_script(lab, runtime, "cat /proc/self/status; id -u; id -G", edit)
        assert code == 0, err
        return status_fields(out), out.splitlines()[-2:]

    fields, ids = lab.observe(scenario)
    kill, chown = f"{1 << 5:016x}", f"{(1 << 5) | (1 << 0):016x}"
    assert fields == {"CapInh": kill, "CapPrm": kill, "CapEff": kill, "CapBnd": chown,
                      "CapAmb": kill, "Seccomp": "0", "NoNewPrivs": "1",
                      "Uid": "1000 1000 1000 1000", "Gid": "1000 1000 1000 1000",
                      "Groups": "10 2000"}
    assert ids == ["1000", "1000 10 2000"]


def test_rlimits(lab):
    """process.rlimits are set (soft and hard) and the others inherited: `ulimit -n` soft and
    hard, and /proc/self/limits whole."""
    def scenario(runtime):
        def edit(spec, bundle):
            spec["process"]["rlimits"] = [
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
                {"type": "RLIMIT_CORE", "soft": 1048576, "hard": 2097152}]
        code, out, err = run_script(lab, runtime,
                                    "ulimit -Sn; ulimit -Hn; cat /proc/self/limits", edit)
        assert code == 0, err
        return [" ".join(line.split()) for line in out.splitlines()]

    lines = lab.observe(scenario)
    assert lines[:2] == ["512", "1000"]
    assert "Max open files 512 1000 files" in lines
    assert "Max core file size 1048576 2097152 bytes" in lines


# ---- namespaces and hostname ----

def test_new_namespaces_and_hostname(lab):
    """The default spec's pid/net/ipc/uts/mnt namespaces are new (their /proc/self/ns links
    differ from ours), cgroup/user/time are ours; the hostname is the spec's; the init is pid
    1 of its pid namespace."""
    def scenario(runtime):
        code, out, err = run_script(lab, runtime, NS_SCRIPT + "; hostname; echo $$")
        assert code == 0, err
        lines = out.splitlines()
        return classify_namespaces("\n".join(lines[:-2])), lines[-2:]

    namespaces, rest = lab.observe(scenario)
    expected = {"ipc": "new", "mnt": "new", "net": "new", "pid": "new",
                "pid_for_children": "new", "uts": "new", "cgroup": "host", "user": "host"}
    if "time" in host_namespaces():
        expected.update(time="host", time_for_children="host")
    assert namespaces == expected
    assert rest == ["ocirt", "1"]


def test_joined_namespaces(lab, tmp_path):
    """A namespace with a path is joined, not made: a network namespace bind-mounted on a file
    (`unshare --net=FILE`) and the uts namespace of a process of ours (/proc/<pid>/ns/uts), whose
    hostname the container then sees."""
    netns = str(tmp_path / "netns")
    open(netns, "w").close()
    subprocess.run(["unshare", f"--net={netns}", "true"], check=True)
    sleeper = subprocess.Popen(["unshare", "--uts", "sh", "-c",
                                "hostname joined-uts && echo ready && exec sleep 60"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout.readline() == "ready\n"
        joined = {f"net:[{os.stat(netns).st_ino}]": "joined-net",
                  os.readlink(f"/proc/{sleeper.pid}/ns/uts"): "joined-uts"}

        def scenario(runtime):
            def edit(spec, bundle):
                del spec["hostname"]
                spec["linux"]["namespaces"] = [
                    {"type": "pid"}, {"type": "ipc"}, {"type": "mount"},
                    {"type": "network", "path": netns},
                    {"type": "uts", "path": f"/proc/{sleeper.pid}/ns/uts"}]
            code, out, err = run_script(lab, runtime, NS_SCRIPT + "; hostname", edit)
            assert code == 0, err
            lines = out.splitlines()
            return classify_namespaces("\n".join(lines[:-1]), joined), lines[-1]

        namespaces, hostname = lab.observe(scenario)
        assert namespaces["net"] == "joined-net" and namespaces["uts"] == "joined-uts"
        assert namespaces["pid"] == namespaces["ipc"] == namespaces["mnt"] == "new"
        assert hostname == "joined-uts"
    finally:
        sleeper.kill()
        sleeper.wait()
        subprocess.run(["umount", netns], check=True)


# ---- mounts ----

MOUNT_SCRIPT = ("cat /proc/self/mountinfo; echo ==; wc -c < /proc/keys; wc -c < /proc/timer_list; "
                "ls -A /proc/acpi /sys/firmware; echo ==; "
                "(echo x > /proc/sys/kernel/hostname) 2>&1; touch /x 2>&1; true")


def mount_table(mountinfo, container):
    """mountinfo lines as (mount point, options, optional fields without their peer group
    numbers, fs type, source, super options, root), mount ids and device numbers dropped."""
    table = []
    for line in normalise(mountinfo, container).splitlines():
        before, after = line.split(" - ")
        fields = before.split()
        fstype, source, superopts = after.split()
        optional = [re.sub(r":\d+$", "", field) for field in fields[6:]]
        table.append((fields[4], fields[5], " ".join(optional), fstype, source, superopts,
                      fields[3]))
    return table


def test_mountinfo(lab):
    """/proc/self/mountinfo inside: the default mounts in order with their options, the rootfs
    read-only, masked paths hidden (files such as /proc/keys a bind of the container's /dev/null
    reading empty, directories such as /proc/acpi an empty read-only tmpfs; masked paths the
    kernel lacks, /proc/kcore here, skipped), readonly paths remounted ro, the cgroup mount a
    tmpfs with a read-only bind of the container's own cgroup per v1 hierarchy, and the
    propagation of every mount. Compared whole (ids and device numbers aside)."""
    def scenario(runtime):
        bundle, container = lab.bundle(runtime, ["sh", "-c", MOUNT_SCRIPT])
        bundle.write()
        code, out, err = container.run()
        assert code == 0, err
        mountinfo, masked, writes = out.split("==\n")
        return mount_table(mountinfo, container), masked, normalise(writes, container)

    table, masked, writes = lab.observe(scenario)
    by_point = {row[0]: row for row in table}
    points = [row[0] for row in table]
    for point in ["/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                  "/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/proc/sys", "/proc/keys",
                  "/proc/timer_list", "/proc/acpi", "/sys/firmware"]:
        assert point in points, (point, table)
    assert "/proc/kcore" not in points or os.path.exists("/proc/kcore")
    assert points[0] == "/" and by_point["/"][1].split(",")[0] == "ro", table[0]
    assert by_point["/proc"][3] == "proc" and by_point["/dev/pts"][3] == "devpts"
    assert by_point["/dev/mqueue"][3] == "mqueue" and by_point["/sys"][3] == "sysfs"
    assert by_point["/sys"][1].split(",")[0] == "ro"
    for readonly in ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]:
        if readonly in by_point:
            assert by_point[readonly][1].split(",")[0] == "ro", by_point[readonly]
    for masked_file in ["/proc/keys", "/proc/timer_list"]:
        assert by_point[masked_file][6] == "/null", by_point[masked_file]
    for masked_dir in ["/proc/acpi", "/sys/firmware"]:
        assert by_point[masked_dir][3] == "tmpfs", by_point[masked_dir]
        assert by_point[masked_dir][1].split(",")[0] == "ro", by_point[masked_dir]
    cgroup = by_point["/sys/fs/cgroup/memory"]
    assert cgroup[3] == "cgroup" and cgroup[1].startswith("ro,"), cgroup
    assert cgroup[6].endswith("/<parent>/<id>"), cgroup
    assert masked == "0\n0\n/proc/acpi:\n\n/sys/firmware:\n"
    assert writes == ("sh: can't create /proc/sys/kernel/hostname: Read-only file system\n"
                      "touch: /x: Read-only file system\n")
    # Nothing is shared with our namespace (no shared:N) after the runtime's rslave of "/".
    assert all("shared" not in row[2] for row in table), table


def test_bind_mounts_and_tmpfs(lab, tmp_path):
    """A read-write bind of a host directory, a read-only bind of a host file and a tmpfs with
    options: what the container writes lands in the host directory, the ro bind refuses
    writes, the tmpfs has its size and mode. Except on a directory the image has: runc gives
    the tmpfs root the mode of the directory it covers (/tmp stays 1777 despite mode=1770),
    while a new mount point (/scratch) gets mode=1770."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (tmp_path / "ro-file").write_text("read only\n")

    def scenario(runtime):
        def edit(spec, bundle):
            spec["mounts"] += [
                {"destination": "/shared", "type": "bind", "source": str(shared),
                 "options": ["rbind", "rw"]},
                {"destination": "/etc/ro-file", "type": "bind", "source": str(tmp_path / "ro-file"),
                 "options": ["bind", "ro"]},
                dict(TMPFS_TMP, options=["nosuid", "nodev", "mode=1770", "size=2m"]),
                dict(TMPFS_TMP, destination="/scratch",
                     options=["nosuid", "nodev", "mode=1770", "size=2m"])]
        name = f"from-{runtime.name}"
        code, out, err = run_script(
            lab, runtime, f"echo written > /shared/{name}; cat /etc/ro-file; "
            "(echo x >> /etc/ro-file) 2>&1; stat -c %a /tmp /scratch; "
            "grep ' /tmp ' /proc/self/mountinfo | sed 's/.* - //'", edit)
        assert code == 0, err
        written = (shared / name).read_text()
        (shared / name).unlink()
        return out, written

    out, written = lab.observe(scenario)
    assert written == "written\n"
    assert out.splitlines()[:4] == ["read only", "sh: can't create /etc/ro-file: Read-only "
                                    "file system", "1777", "1770"]
    assert out.splitlines()[4] == "tmpfs tmpfs rw,size=2048k,mode=1770"


# ---- cgroups ----

def test_cgroup_limits(lab):
    """linux.resources written to the container's cgroup: memory limit, cpu shares and CFS
    quota/period, pids limit, read from the host side (the container's dir under our own
    cgroup, in every hierarchy, holding the init) and from inside (/sys/fs/cgroup, which the
    cgroup mount shows as the container's own cgroup) and /proc/self/cgroup. The cgroup dirs
    are gone after delete (runc, on this hybrid host: in every hierarchy, the unified one
    too)."""
    files = ["memory/memory.limit_in_bytes", "cpu/cpu.shares", "cpu/cpu.cfs_quota_us",
             "cpu/cpu.cfs_period_us", "pids/pids.max"]
    script = ("cat /proc/self/cgroup; echo ==; for f in " + " ".join(files) +
              "; do echo $f $(cat /sys/fs/cgroup/$f); done")

    def scenario(runtime):
        bundle, container = lab.bundle(runtime, ["sh", "-c", script])
        bundle.spec["linux"]["resources"].update(
            memory={"limit": 64 << 20}, cpu={"shares": 512, "quota": 50000, "period": 100000},
            pids={"limit": 32})
        bundle.write()
        container.create()
        outside = {}
        for directory in cgroup_dirs(container):
            if os.path.isdir(directory):
                with open(os.path.join(directory, "cgroup.procs")) as f:
                    holds_init = str(container.pid) in f.read().split()
                outside[hierarchy_of(directory)] = holds_init
        values = {}
        for name in files:
            directory = [d for d in cgroup_dirs(container)
                         if hierarchy_of(d) == name.split("/")[0]][0]
            with open(os.path.join(directory, name.split("/")[1])) as f:
                values[name] = f.read().strip()
        container.start()
        assert container.wait() == 0, container.output()
        out, _ = container.output()
        container.delete()
        left = [d for d in cgroup_dirs(container) if os.path.isdir(d)]
        proc_cgroup = normalise(out.split("==\n")[0], container)
        inside = dict(line.split() for line in out.split("==\n")[1].splitlines())
        return outside, values, inside, proc_cgroup, left

    outside, values, inside, proc_cgroup, left = lab.observe(scenario)
    expected = {"memory/memory.limit_in_bytes": str(64 << 20), "cpu/cpu.shares": "512",
                "cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000",
                "pids/pids.max": "32"}
    assert values == expected
    assert inside == expected
    # Every hierarchy we are in (v1 controllers, name=systemd, the unified one of a hybrid
    # host) has the container's cgroup, holding the init.
    assert outside == {hierarchy_of(d): True for d in own_cgroup_dirs()}
    assert left == []
    for line in proc_cgroup.splitlines():
        assert line.endswith("/<parent>/<id>"), proc_cgroup


# ---- seccomp ----

def test_seccomp_errno(lab):
    """A seccomp filter allowing all but mkdir/mkdirat, which fail with errnoRet 38 (ENOSYS),
    and chmod/fchmodat to mode 0700 only (an argument rule), failing with 13 (EACCES):
    busybox reports the errno's message, other modes pass, /proc/self/status shows mode 2."""
    script = ("mkdir /tmp/x; echo mkdir=$?; touch /tmp/f; chmod 700 /tmp/f; echo chmod700=$?; "
              "chmod 750 /tmp/f; echo chmod750=$?; stat -c %a /tmp/f; ls -A /tmp; "
              "grep '^Seccomp:' /proc/self/status")

    def scenario(runtime):
        def edit(spec, bundle):
            spec["mounts"].append(TMPFS_TMP)
            spec["linux"]["seccomp"] = {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                    {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                     "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
                    {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                     "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]}]}
        return run_script(lab, runtime, script, edit)

    code, out, err = lab.observe(scenario)
    assert code == 0
    assert err == ("mkdir: can't create directory '/tmp/x': Function not implemented\n"
                   "chmod: /tmp/f: Permission denied\n")
    assert out.split() == ["mkdir=1", "chmod700=1", "chmod750=0", "750", "f", "Seccomp:", "2"]


# ---- hooks ----

HOOK_STAGES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
               "poststop"]


def test_hooks(lab, tmp_path):
    """Every hook stage runs once, in the spec's order, with the state JSON on its stdin;
    createContainer and startContainer in the container's mount namespace, the others in the
    runtime's. The log's directory is bind-mounted at the same path in the container and /bin/sh
    and /bin/cat exist on both sides, so the hooks work wherever their paths are resolved (runc
    runs createContainer before pivot_root, the spec says after).

    What runc does and this asserts: the states of the container-side hooks
    (createContainer, startContainer) carry pid 1 (the init's pid in its own namespace), the
    runtime-side ones the init's pid as we see it; poststop's has no pid. runc runs poststart
    once `start` has released the init, concurrently with startContainer and the process
    itself, and its state may still say "created": so poststart's place among those and its
    status ("created" or "running") are not compared."""
    def scenario(runtime):
        logdir = tmp_path / f"hooks-{runtime.name}"
        logdir.mkdir()
        log = str(logdir / "log")

        def hook(stage):
            return {"path": "/bin/sh", "env": ["PATH=/usr/bin:/bin"],
                    "args": ["sh", "-c", f"{{ /bin/cat; echo; echo @@ {stage} "
                             f"$(readlink /proc/self/ns/mnt); }} >> {log}"]}

        bundle, container = lab.bundle(runtime, ["sh", "-c", "echo ran >> " + log])
        bundle.spec["hooks"] = {stage: [hook(stage)] for stage in HOOK_STAGES}
        bundle.spec["mounts"].append({"destination": str(logdir), "type": "bind",
                                      "source": str(logdir), "options": ["rbind", "rw"]})
        bundle.write()
        container.create()
        container_mnt = os.readlink(f"/proc/{container.pid}/ns/mnt")
        container.start()
        assert container.wait() == 0, container.output()
        container.delete()
        with open(log) as f:
            text = f.read()
        seen, state = [], None
        for line in text.splitlines():
            if line.startswith("@@ "):
                _, stage, mnt = line.split()
                where = {container_mnt: "container",
                         os.readlink("/proc/self/ns/mnt"): "runtime"}.get(mnt, mnt)
                fields = {key: state.get(key) for key in ("ociVersion", "id", "status", "bundle")}
                fields["pid"] = "init" if state.get("pid") == container.pid else state.get("pid")
                seen.append((stage, where, normalise(json.dumps(fields, sort_keys=True),
                                                     container)))
            elif line == "ran":
                seen.append(("container process",))
            elif line:
                state = json.loads(line)
        return seen

    def ordered(runtime):
        seen = scenario(runtime)
        poststart = [entry for entry in seen if entry[0] == "poststart"]
        assert len(poststart) == 1, seen
        state = json.loads(poststart[0][2])
        assert state["status"] in ("created", "running"), state
        state["status"] = "created or running"
        rest = [entry for entry in seen if entry[0] != "poststart"]
        stages = [entry[0] for entry in seen]
        # poststart after createContainer (start comes after create), before poststop.
        assert stages.index("createContainer") < stages.index("poststart") < \
            stages.index("poststop"), seen
        return rest, (poststart[0][:2] + (json.dumps(state, sort_keys=True),))

    rest, poststart = lab.observe(ordered)
    assert [entry[0] for entry in rest] == ["prestart", "createRuntime", "createContainer",
                                            "startContainer", "container process",
                                            "poststop"], rest
    seen = rest + [poststart]
    where = {entry[0]: entry[1] for entry in seen if len(entry) > 1}
    assert where == {"prestart": "runtime", "createRuntime": "runtime",
                     "createContainer": "container", "startContainer": "container",
                     "poststart": "runtime", "poststop": "runtime"}
    states = {entry[0]: json.loads(entry[2]) for entry in seen if len(entry) > 1}
    for stage, state in states.items():
        assert state["id"] == "<id>" and state["bundle"] == "<bundle>", (stage, state)
        assert state["ociVersion"].startswith("1."), state
    assert {stage: (state["status"], state["pid"]) for stage, state in states.items()} == {
        "prestart": ("creating", "init"), "createRuntime": ("creating", "init"),
        "createContainer": ("creating", 1), "startContainer": ("created", 1),
        "poststart": ("created or running", "init"), "poststop": ("stopped", None)}


def test_failing_hook_leaves_nothing(lab, tmp_path):
    """A createRuntime hook exiting 1 fails create; nothing is left behind: no state, no
    cgroup, no process."""
    def scenario(runtime):
        bundle, container = lab.bundle(runtime, ["true"])
        bundle.spec["hooks"] = {"createRuntime": [{"path": "/bin/sh",
                                                   "args": ["sh", "-c", "exit 1"]}]}
        bundle.write()
        before = processes_under(os.getpid())
        code = container.create(check=False)
        container.output()
        return (code != 0, runtime.state_ids(),
                [d for d in cgroup_dirs(container) if os.path.isdir(d)],
                sorted(processes_under(os.getpid()) - before))

    assert lab.observe(scenario) == (True, [], [], [])


# ---- exit, kill, state ----

def test_exit_code(lab):
    """The init's exit code reaches its parent (us, as subreaper) unchanged, and its output
    reaches the pipes create was given."""
    code, out, err = lab.observe(
        lambda runtime: run_script(lab, runtime, "echo out; echo err >&2; exit 3"))
    assert (code, out, err) == (3, "out\n", "err\n")


def sleeping_container(lab, runtime, script, edit=None):
    """A started container running `script`, which prints "ready" when set; `edit(spec,
    bundle)` changes its spec first."""
    bundle, container = lab.bundle(runtime, ["sh", "-c", script])
    if edit:
        edit(bundle.spec, bundle)
    bundle.write()
    container.create()
    container.start()
    deadline = time.monotonic() + 10
    while b"ready" not in container.stdout.data:
        assert time.monotonic() < deadline, "the container never said ready"
        time.sleep(0.01)
    return container


def test_kill_term_and_kill(lab):
    """`kill ID 15` reaches an init that traps TERM (the kernel drops signals without a
    handler to a pid namespace's init), which exits 143; `kill ID KILL` kills a sleeping init,
    seen by waitpid as killed by signal 9; `state` says stopped after either."""
    def scenario(runtime):
        trapping = sleeping_container(lab, runtime,
                                      "trap 'exit 143' TERM; echo ready; sleep 60 & wait")
        trapping.kill(15)
        term = trapping.wait()
        term_state = trapping.state()["status"]
        trapping.delete()
        sleeping = sleeping_container(lab, runtime, "echo ready; exec sleep 60")
        sleeping.kill("KILL")
        killed = sleeping.wait()
        killed_state = sleeping.state()["status"]
        sleeping.delete()
        return term, term_state, killed, killed_state

    assert lab.observe(scenario) == (143, "stopped", -signal.SIGKILL, "stopped")


def test_state(lab):
    """`state` JSON through the life of a container: created (pid = the --pid-file's, bundle
    the absolute bundle path), running, stopped; after delete the container is unknown."""
    def scenario(runtime):
        bundle, container = lab.bundle(runtime, ["sleep", "60"])
        bundle.write()
        container.create()
        states = []

        def record():
            state = container.state()
            fields = {key: state.get(key) for key in ("ociVersion", "id", "status", "bundle")}
            fields["ociVersion"] = fields["ociVersion"][:2]
            fields["pid"] = "init" if state.get("pid") == container.pid else state.get("pid")
            states.append(json.loads(normalise(json.dumps(fields), container)))

        record()
        container.start()
        record()
        container.kill("KILL")
        container.wait()
        record()
        container.delete()
        gone = runtime.call("state", container.id, check=False)
        return states, gone.returncode != 0

    states, unknown_after_delete = lab.observe(scenario)
    base = {"ociVersion": "1.", "id": "<id>", "bundle": "<bundle>"}
    assert states == [dict(base, status="created", pid="init"),
                      dict(base, status="running", pid="init"),
                      dict(base, status="stopped", pid=0)]
    assert unknown_after_delete


# ---- exec ----

EXEC_PROCESS = {
    "terminal": False,
    "user": {"uid": 1000, "gid": 1000, "additionalGids": [3000]},
    "args": ["sh", "-c", "cat /proc/self/status; echo err >&2; exit 7"],
    "env": ["PATH=/bin"],
    "cwd": "/home",
    "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"],
                     "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"],
                     "ambient": ["CAP_KILL"]},
    "noNewPrivileges": True,
}


@pytest.mark.parametrize("detach", [False, True], ids=["attached", "detached"])
def test_exec_process_file(lab, detach):
    """`exec --process FILE` into a running container, with and without --detach: the process
    has its own user, groups and capabilities (not the init's), its output on exec's stdio, its
    exit code from exec (attached) or from waitpid (detached: re-parented to us). CAP_KILL is
    also ambient so that it survives the execve of a non-root user."""
    def scenario(runtime):
        container = sleeping_container(lab, runtime, "echo ready; exec sleep 60")
        code, out, err = container.exec(EXEC_PROCESS, detach=detach)
        init_status = open(f"/proc/{container.pid}/status").read()
        container.kill("KILL")
        container.wait()
        container.delete()
        return code, status_fields(out), err, status_fields(init_status)["CapEff"]

    code, fields, err, init_caps = lab.observe(scenario)
    kill = f"{1 << 5:016x}"
    assert (code, err) == (7, "err\n")
    assert fields == {"CapInh": kill, "CapPrm": kill, "CapEff": kill,
                      "CapBnd": f"{(1 << 5) | 1:016x}", "CapAmb": kill, "Seccomp": "0",
                      "NoNewPrivs": "1",
                      "Uid": "1000 1000 1000 1000", "Gid": "1000 1000 1000 1000",
                      "Groups": "3000"}
    assert init_caps == DEFAULT_CAP_MASK


# ---- terminal ----

@pytest.mark.parametrize("size_from", ["ioctl", "consoleSize"])
def test_console_socket_tty(lab, tmp_path, size_from):
    """terminal: true with --console-socket: the runtime sends the pty master over the socket
    (SCM_RIGHTS) during create; the container's stdio is the pty slave /dev/pts/0 of its own
    devpts (/dev/ptmx a link to pts/ptmx). The window size is the one we set on the master
    (TIOCSWINSZ) before start, or process.consoleSize (runc 1.1.5 applies it)."""
    def scenario(runtime):
        bundle, container = lab.bundle(runtime, ["sh", "-c", "tty; stty size; ls -l /dev/ptmx"])
        bundle.spec["process"]["terminal"] = True
        if size_from == "consoleSize":
            bundle.spec["process"]["consoleSize"] = {"height": 31, "width": 97}
        bundle.write()
        console = ConsoleSocket(str(tmp_path / f"console-{runtime.name}.sock"))
        try:
            container.create(console_socket=console.path)
            master = console.wait_master()
            if size_from == "ioctl":
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 31, 97, 0, 0))
            console.read_all()
            container.start()
            code = container.wait()
            text = console.reader.text()
            container.output()
            container.delete()
        finally:
            console.close()
        return code, [" ".join(line.split()[:1] + line.split()[-3:]) if "ptmx" in line
                      else line for line in text.splitlines()]

    code, lines = lab.observe(scenario)
    assert code == 0
    assert lines[:2] == ["/dev/pts/0", "31 97"], lines
    assert lines[2].endswith("/dev/ptmx -> pts/ptmx"), lines


# ---- escapes: must fail, or stay inside the rootfs ----

def test_proc_symlink_to_host_root(lab):
    """A rootfs whose /proc is a symlink to "/": create must fail rather than mount proc over
    the host's root (runc: 'error mounting "proc" to rootfs at "/proc": filesystem "proc" must
    be mounted on ordinary directory'); the symlink is untouched and nothing is left behind."""
    def scenario(runtime):
        bundle, container = lab.bundle(runtime, ["true"])
        os.symlink("/", os.path.join(bundle.rootfs, "proc"))
        bundle.write()
        before = processes_under(os.getpid())
        code = container.create(check=False)
        container.output()
        return (code != 0, os.readlink(os.path.join(bundle.rootfs, "proc")), runtime.state_ids(),
                [d for d in cgroup_dirs(container) if os.path.isdir(d)],
                sorted(processes_under(os.getpid()) - before))

    failed, link, state, cgroups, processes = lab.observe(scenario)
    messages = log_messages(lab.runtime)
    assert failed and link == "/" and state == [] and cgroups == [] and processes == []
    assert any('"proc"' in m or "/proc" in m for m in messages), messages


def test_mount_destination_symlink_to_host_etc(lab, tmp_path):
    """A mount whose destination goes through a rootfs symlink to the host's /etc
    (rootfs/etc2 -> /etc, destination /etc2/hostname-test): the symlink is resolved inside the
    rootfs, so the file lands on rootfs/etc/hostname-test; the host's /etc is untouched."""
    host_file = "/etc/hostname-test"
    assert not os.path.lexists(host_file), f"{host_file} exists before the test"
    source = tmp_path / "bound"
    source.write_text("bound content\n")

    def scenario(runtime):
        bundle, container = lab.bundle(runtime, ["sh", "-c", "cat /etc2/hostname-test; "
                                                 "cat /etc/hostname-test"])
        os.symlink("/etc", os.path.join(bundle.rootfs, "etc2"))
        bundle.spec["mounts"].append({"destination": "/etc2/hostname-test", "type": "bind",
                                      "source": str(source), "options": ["bind", "ro"]})
        bundle.write()
        try:
            code, out, err = container.run()
        finally:
            escaped = os.path.lexists(host_file)
            if escaped:
                os.unlink(host_file)
        return (code, out, err, escaped,
                os.path.isfile(os.path.join(bundle.rootfs, "etc/hostname-test")))

    code, out, err, escaped, inside = lab.observe(scenario)
    assert not escaped, f"{lab.runtime} created {host_file} on the host"
    assert (code, out, err, inside) == (0, "bound content\n" * 2, "", True)


@pytest.mark.parametrize("cwd", ["/../../..", "/escape-abs", "/escape-rel", "/escape-abs/etc"])
def test_cwd_outside_rootfs(lab, cwd):
    """A cwd that climbs out of the rootfs ("/../../..", or a rootfs symlink to "/" or to
    "../../../../../..") resolves inside the container: the process sees the rootfs there (the
    marker file), never the host's root."""
    def scenario(runtime):
        bundle, container = lab.bundle(runtime, ["sh", "-c", "pwd; ls"])
        os.symlink("/", os.path.join(bundle.rootfs, "escape-abs"))
        os.symlink("../../../../../../../..", os.path.join(bundle.rootfs, "escape-rel"))
        bundle.spec["process"]["cwd"] = cwd
        bundle.write()
        code, out, err = container.run()
        return code, out.splitlines(), err

    code, lines, err = lab.observe(scenario)
    assert (code, err) == (0, "")
    if cwd.endswith("/etc"):
        assert "passwd" in lines and "hostname-test" not in lines, lines
    else:
        assert lines[0] == "/" and MARKER in lines and "usr" not in lines, lines


def test_relative_cwd_fails(lab):
    """A relative cwd ("../../..") is refused at create (runc: the cwd must be absolute), with
    nothing left behind."""
    def scenario(runtime):
        bundle, container = lab.bundle(runtime, ["true"])
        bundle.spec["process"]["cwd"] = "../../.."
        bundle.write()
        code = container.create(check=False)
        container.output()
        return code != 0, runtime.state_ids()

    assert lab.observe(scenario) == (True, [])
    assert any("cwd" in m.lower() and "absolute" in m for m in log_messages(lab.runtime)), \
        log_messages(lab.runtime)


# ---- a failing create leaves nothing ----

@pytest.mark.parametrize("program", ["/no/such/binary", "no-such-binary"])
def test_missing_program(lab, program):
    """process.args[0] that does not exist (a path, or a name not on PATH): create fails (runc
    looks the program up before reporting the container created) with a --log message naming
    it (runc also writes it to create's stderr); afterwards no state entry in --root, no cgroup
    dir, no process of the container."""
    def scenario(runtime):
        bundle, container = lab.bundle(runtime, [program, "arg"])
        bundle.write()
        before = processes_under(os.getpid())
        code = container.create(check=False)
        out, err = container.output()
        return (code != 0, program in err, out, runtime.state_ids(),
                [d for d in cgroup_dirs(container) if os.path.isdir(d)],
                sorted(processes_under(os.getpid()) - before))

    assert lab.observe(scenario) == (True, True, "", [], [], [])
    messages = log_messages(lab.runtime)
    assert any(program in m for m in messages), messages


def test_no_runtime_fd_reaches_the_container(lab):
    """The container's process holds its stdio and nothing else of the runtime's (the bundle's
    config, the state directory, exec.fifo, the sync socket, the log file): /proc/self/fd of the
    init and of an exec'd process list 0, 1, 2 and the listing's own directory fd only."""
    def scenario(runtime):
        container = sleeping_container(
            lab, runtime, "ls /proc/self/fd; echo ready; exec sleep 60")
        exec_code, exec_out, _ = container.exec({"args": ["ls", "/proc/self/fd"], "cwd": "/",
                                                 "env": [PATH_ENV]})
        container.kill("KILL")
        container.wait()
        first = container.stdout.data.decode().split("ready")[0].split()
        return sorted(first), exec_code, sorted(exec_out.split())

    init_fds, exec_code, exec_fds = lab.observe(scenario)
    assert init_fds == ["0", "1", "2", "3"], init_fds
    assert (exec_code, exec_fds) == (0, ["0", "1", "2", "3"])


def test_init_runs_from_a_sealed_copy_of_the_runtime(monocri_lab):
    """CVE-2019-5736: a process of the container that reaches the runtime's binary through
    /proc/<pid>/exe must not be able to write it. While a container is created, its init is
    the runtime's own code: /proc/<init>/exe is a sealed memfd copy, which opens read-only and
    refuses writes, never the binary on the host (runc 1.1 does the same with its memfd clone)."""
    bundle, container = monocri_lab.bundle(monocri_lab.runtime, ["true"])
    bundle.write()
    container.create()
    try:
        exe = os.readlink(f"/proc/{container.pid}/exe")
        assert exe.startswith("/memfd:monocri-runtime"), exe
        with pytest.raises(OSError) as refused:
            open(f"/proc/{container.pid}/exe", "r+b")
        assert refused.value.errno in (errno.EPERM, errno.EACCES, errno.ETXTBSY), refused.value
        binary = MONOCRI_RUNTIME
        with open(f"/proc/{container.pid}/exe", "rb") as copy, open(binary, "rb") as original:
            assert copy.read() == original.read()
    finally:
        container.start()
        container.wait()
        container.delete()


def test_user_and_cgroup_namespaces(lab):
    """New user (with the spec's uid/gid mappings) and cgroup namespaces on top of the default
    ones: uid_map/gid_map hold the spec's ranges (root maps to root here, since the bundle sits
    in the test's 0700 temp dir; a range the host has no user for would not reach it), and
    /proc/self/cgroup shows "/" in every hierarchy (the cgroup namespace is rooted at the
    container's own cgroup)."""
    def edit(spec, bundle):
        spec["linux"]["namespaces"] += [{"type": "user"}, {"type": "cgroup"}]
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]

    def scenario(runtime):
        code, out, err = run_script(
            lab, runtime, "cat /proc/self/uid_map /proc/self/gid_map; id -u; "
            "grep -v ':/$' /proc/self/cgroup | wc -l", edit)
        assert code == 0, err
        return out.split()

    assert lab.observe(scenario) == ["0", "0", "65536", "0", "0", "65536", "0", "0"]


def test_time_namespace_offsets(monocri_lab):
    """A new time namespace with linux.timeOffsets: the container's CLOCK_BOOTTIME (uptime) is
    a year ahead of the host's. runc 1.1 has no time namespaces ("namespace time does not
    exist"): tested for monocri-runtime only."""
    def edit(spec, bundle):
        spec["linux"]["namespaces"].append({"type": "time"})
        spec["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}

    code, out, err = run_script(monocri_lab, monocri_lab.runtime, "cut -d. -f1 /proc/uptime",
                                edit)
    assert code == 0, err
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert 86400 * 365 - 1 <= int(out) - host <= 86400 * 365 + 60, (out, host)


def test_no_pivot_moves_the_rootfs_instead(lab):
    """`create --no-pivot` (for a rootfs pivot_root cannot take, such as one on the initramfs):
    the rootfs is moved onto / and chrooted into; the container sees the same files as with
    pivot_root, and its root is still the rootfs."""
    def scenario(runtime):
        bundle, container = lab.bundle(runtime, ["sh", "-c", "ls /"])
        bundle.write()
        container.create(flags=["--no-pivot"])
        container.start()
        code = container.wait()
        out, err = container.output()
        container.delete()
        return code, out.split(), err

    code, listing, err = lab.observe(scenario)
    assert code == 0, err
    assert {"bin", "etc", "proc", "dev", "sys"} <= set(listing), listing


def test_pause_resume_update_ps_list(lab, tmp_path):
    """The verbs around a running container: `pause` freezes it (state "paused", the freezer
    says FROZEN, a ticking loop stops), `resume` thaws it; `update --resources` changes the
    memory and pids limits in its cgroup; `ps --format json` lists the init; `list --format
    json` and `list -q` show the container."""
    def scenario(runtime):
        container = sleeping_container(
            lab, runtime, "echo ready; while :; do echo t; sleep 0.02; done")
        try:
            seen = {}
            freezer = next(d for d in cgroup_dirs(container) if hierarchy_of(d) == "freezer")
            runtime.call("pause", container.id)
            seen["paused"] = container.state()["status"]
            with open(os.path.join(freezer, "freezer.state")) as f:
                seen["freezer"] = f.read().strip()
            time.sleep(0.1)  # what was on its way is in
            before = len(container.stdout.data)
            time.sleep(0.2)
            seen["ticked while paused"] = len(container.stdout.data) != before
            runtime.call("resume", container.id)
            seen["resumed"] = container.state()["status"]
            time.sleep(0.2)
            seen["ticks after resume"] = len(container.stdout.data) != before
            resources = tmp_path / f"resources-{runtime.name}.json"
            resources.write_text(json.dumps({"memory": {"limit": 48 * 1024 * 1024},
                                             "pids": {"limit": 77}}))
            runtime.call("update", "--resources", str(resources), container.id)
            for directory in cgroup_dirs(container):
                name = hierarchy_of(directory)
                if name == "memory":
                    with open(os.path.join(directory, "memory.limit_in_bytes")) as f:
                        seen["memory"] = int(f.read())
                if name == "pids":
                    with open(os.path.join(directory, "pids.max")) as f:
                        seen["pids"] = f.read().strip()
            seen["ps"] = container.pid in json.loads(
                runtime.call("ps", "--format", "json", container.id).stdout)
            listed = json.loads(runtime.call("list", "--format", "json").stdout)
            seen["list"] = [(c["id"] == container.id, c["status"], c["pid"] == container.pid)
                            for c in listed]
            seen["list -q"] = runtime.call("list", "-q").stdout.split() == [container.id]
            return seen
        finally:
            container.kill("KILL")
            container.wait()

    assert lab.observe(scenario) == {
        "paused": "paused", "freezer": "FROZEN", "ticked while paused": False,
        "resumed": "running", "ticks after resume": True, "memory": 48 * 1024 * 1024,
        "pids": "77", "ps": True, "list": [(True, "running", True)], "list -q": True}


def test_a_created_init_is_out_of_reach_of_the_container(monocri_lab):
    """Between create and start the init holds what the runtime gave it (exec.fifo, its log,
    the pipes): a process exec'd into the container, root with the default capabilities, must
    not follow /proc/1/fd/* to them nor through them to the host's directories (the init is not
    dumpable until it execs). runc 1.1.5 fails this (its created init's fds lead to the host's
    files), so it is asserted for monocri-runtime only."""
    bundle, container = monocri_lab.bundle(monocri_lab.runtime, ["true"])
    bundle.write()
    container.create()
    try:
        code, out, err = container.exec({
            "args": ["sh", "-c", "for f in /proc/1/fd/*; do ls $f/../.. 2>&1; done"],
            "cwd": "/", "env": [PATH_ENV],
            "capabilities": {kind: DEFAULT_CAPS for kind in ("bounding", "effective",
                                                             "permitted")}})
    finally:
        container.start()
        container.wait()
        container.delete()
    lines = out.splitlines()
    assert len(lines) >= 3, out  # at least stdio, all refused
    assert all(line.endswith("Permission denied") for line in lines), out


def test_cgroup_namespace_sees_only_its_own_cgroup(lab):
    """With a cgroup namespace the container's /sys/fs/cgroup hierarchies are its own cgroup
    (mountinfo root "/"), not the host's whole tree: no other cgroup is listed in them."""
    def edit(spec, bundle):
        spec["linux"]["namespaces"].append({"type": "cgroup"})

    def scenario(runtime):
        code, out, err = run_script(
            lab, runtime, "grep ' /sys/fs/cgroup/memory ' /proc/self/mountinfo | cut -d' ' -f4;"
            " ls /sys/fs/cgroup/memory | grep -c -v '^memory\\.\\|^cgroup\\.\\|^tasks\\|^notify'; true",
            edit)
        return code, out.split()

    assert lab.observe(scenario) == (0, ["/", "0"])


def test_shared_rootfs_propagation_leaves_nothing_on_the_host(lab):
    """linux.rootfsPropagation "rshared" (containerd sets it for Bidirectional volumes): the
    container runs and none of its mounts (rootfs, proc, /dev...) appear in the caller's mount
    namespace, during or after."""
    def edit(spec, bundle):
        spec["linux"]["rootfsPropagation"] = "rshared"

    def scenario(runtime):
        with open("/proc/self/mountinfo") as f:
            before = len(f.readlines())
        code, out, err = run_script(lab, runtime, "grep -c . /proc/self/mountinfo", edit)
        with open("/proc/self/mountinfo") as f:
            after = len(f.readlines())
        return code, after - before

    assert lab.observe(scenario) == (0, 0)


def test_a_non_root_process_reopens_its_stdout(lab):
    """The process's stdio pipes become its user's (runc's fixStdioPermissions): uid 1000 can
    write to /dev/stdout, as nginx-style images do for their logs."""
    def edit(spec, bundle):
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}

    assert lab.observe(lambda runtime: run_script(
        lab, runtime, "echo through-dev-stdout > /dev/stdout", edit)) == \
        (0, "through-dev-stdout\n", "")


def test_joined_user_namespace_with_new_namespaces(lab):
    """A user namespace joined by path (a pod's, as kubelet's user-namespaced pods have) with
    new pid, mount, uts, ipc and network namespaces made inside it: the container is in the
    joined user namespace, pid 1 of a new pid namespace, and root there."""
    def with_user_namespace(spec, bundle):
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]

    def scenario(runtime):
        holder = sleeping_container(lab, runtime, "echo ready; exec sleep 60",
                                    with_user_namespace)
        try:
            user_ns = f"/proc/{holder.pid}/ns/user"

            def edit(spec, bundle):
                spec["linux"]["namespaces"].append({"type": "user", "path": user_ns})
                # runc wants the joined namespace's mappings restated; they are its own.
                spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
                spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]

            code, out, err = run_script(
                lab, runtime, "readlink /proc/self/ns/user; echo $$; id -u", edit)
            assert code == 0, err
            lines = out.split()
            return lines[0] == os.readlink(user_ns), lines[1:]
        finally:
            holder.kill("KILL")
            holder.wait()

    assert lab.observe(scenario) == (True, ["1", "0"])


def test_new_user_namespace_with_a_joined_network_namespace(lab, tmp_path):
    """A new user namespace (mapped) together with a network namespace joined by path that the
    host's user namespace owns (a CNI-made netns): the network namespace is joined before the
    user namespace is made, as runc does, so the join is allowed; the container is in both."""
    netns = str(tmp_path / "netns")
    open(netns, "w").close()
    subprocess.run(["unshare", f"--net={netns}", "true"], check=True)
    try:
        def edit(spec, bundle):
            spec["linux"]["namespaces"] = [
                {"type": "pid"}, {"type": "ipc"}, {"type": "mount"}, {"type": "uts"},
                {"type": "user"}, {"type": "network", "path": netns}]
            spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
            spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
            # sysfs needs a network namespace the container's user namespace owns.
            spec["mounts"] = [m for m in spec["mounts"] if m["type"] != "sysfs"]

        def scenario(runtime):
            code, out, err = run_script(
                lab, runtime, "readlink /proc/self/ns/net; cat /proc/self/uid_map; echo $$", edit)
            assert code == 0, err
            return out.split()

        assert lab.observe(scenario) == [f"net:[{os.stat(netns).st_ino}]", "0", "0", "65536", "1"]
    finally:
        subprocess.run(["umount", netns], check=True)
