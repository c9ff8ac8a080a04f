"""OCI bundles run by hand with a runc-compatible runtime (runc itself, monocri-runtime): what
tests/integration/test_oci_runtime.py uses to run the same bundle under both and compare what the
container saw.

- `extract_busybox_rootfs`: the testimage busybox layer unpacked, plus the applet links the
  tests call (readlink, tty, stty...);
- `default_spec`: the config.json `runc spec` writes (non-tty), to be edited by each test;
- `Bundle`: a bundle directory with its own copy of the rootfs and its config.json;
- `Runtime`: one runtime binary with a --root and a --log of its own;
- `Container`: create (the container inherits create's stdio: two pipes read by threads),
  start, wait for the init's exit (this process is made a child subreaper, so the init is
  re-parented to it when `create` exits, and os.waitpid gives its exit status), exec, state,
  kill, delete;
- `ConsoleSocket`: the --console-socket receiver, taking the pty master by SCM_RIGHTS.
"""
import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "../../tools/testimage"))

import testimage  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Applets of the image's busybox that have no link in its /bin.
EXTRA_APPLETS = ["readlink", "tty", "stty", "pwd", "realpath", "uname", "cut", "tr", "sort"]


def read_log_entries(path):
    """A runtime's --log file (`--log-format json`) as its JSON objects; a line that is not JSON
    is kept as {"raw": line}; a missing file is no entries."""
    entries = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if line.strip():
                    try:
                        entries.append(json.loads(line))
                    except ValueError:
                        entries.append({"raw": line.rstrip("\n")})
    except FileNotFoundError:
        pass
    return entries


def set_child_subreaper(on):
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants (a container's init once `create`
    has exited, a `exec --detach` process) are re-parented to this process, which can then
    os.waitpid them for their exit status."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def extract_busybox_rootfs(directory):
    """The busybox image's layer unpacked into `directory` (as the daemon's overlay shows it),
    with links for the EXTRA_APPLETS."""
    os.makedirs(directory)
    for layer in testimage.busybox_image().layers:
        with layer.open_uncompressed() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            tar.extractall(directory, numeric_owner=True)
    for applet in EXTRA_APPLETS:
        link = os.path.join(directory, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    return directory


def default_spec(args, cgroups_path, hostname="ocirt"):
    """`runc spec` (runc 1.1.5) made non-tty, with `args`, a hostname and a cgroupsPath:
    pid/network/ipc/uts/mount namespaces, the default mounts, masked and read-only paths,
    CAP_AUDIT_WRITE/CAP_KILL/CAP_NET_BIND_SERVICE, RLIMIT_NOFILE 1024, noNewPrivileges, a
    read-only rootfs "rootfs" and every device denied (the runtime adds the default ones)."""
    caps = {name: list(DEFAULT_CAPS) for name in ("bounding", "effective", "permitted", "ambient")}
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": [PATH_ENV, "TERM=xterm"],
            "cwd": "/",
            "capabilities": caps,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


TMPFS_TMP = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777", "size=1m"]}


class Bundle:
    """A bundle directory: its own copy of the rootfs (tests may change it before or after the
    run) and `spec`, a default_spec to edit before write()."""

    def __init__(self, directory, rootfs_template, args, cgroups_path, copy_rootfs=True):
        self.path = directory
        os.makedirs(directory)
        self.rootfs = os.path.join(directory, "rootfs")
        if copy_rootfs:
            shutil.copytree(rootfs_template, self.rootfs, symlinks=True)
        self.spec = default_spec(args, cgroups_path)

    def write(self):
        with open(os.path.join(self.path, "config.json"), "w") as f:
            json.dump(self.spec, f, indent=1)
        return self


class RuntimeFailed(AssertionError):
    pass


class Runtime:
    """One runtime binary, its state under `workdir`/root and its JSON log `workdir`/log.json."""

    def __init__(self, name, binary, workdir):
        self.name, self.binary = name, binary
        self.root = os.path.join(workdir, "root")
        self.log = os.path.join(workdir, "log.json")
        os.makedirs(workdir, exist_ok=True)

    def __repr__(self):
        return self.name

    def command(self, *args):
        return [self.binary, "--root", self.root, "--log", self.log, "--log-format", "json",
                *args]

    def call(self, *args, check=True, timeout=30):
        done = subprocess.run(self.command(*args), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeFailed(f"{self.name} {' '.join(args)} exited {done.returncode}\n"
                                f"stderr: {done.stderr}\nlog: {self.log_tail()}")
        return done

    def log_entries(self):
        """The --log file's JSON lines (non-JSON lines kept as {"raw": line})."""
        return read_log_entries(self.log)
    
    def log_tail(self, count=8):
        return "\n".join(json.dumps(e) for e in self.log_entries()[-count:])

    def state_ids(self):
        """The container ids with a state entry under --root."""
        if not os.path.isdir(self.root):
            return []
        return sorted(os.listdir(self.root))


class Reader(threading.Thread):
    """Reads a fd to EOF (or EIO: a pty master whose slave is gone) into `data`."""

    def __init__(self, fd):
        super().__init__(daemon=True)
        self.fd, self.data = fd, bytearray()
        self.start()

    def run(self):
        try:
            while True:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError as error:
                    if error.errno == errno.EIO:
                        break
                    raise
                if not chunk:
                    break
                self.data += chunk
        finally:
            os.close(self.fd)

    def text(self, timeout=10):
        self.join(timeout)
        assert not self.is_alive(), "a container's output stayed open (a process left?)"
        return self.data.decode(errors="replace")


def wait_pid(pid, timeout=20):
    """os.waitpid on a child (or re-parented orphan) with a timeout; its exit code, negative
    for a signal as subprocess has it."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} still running after {timeout}s")
        time.sleep(0.005)


def alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Container:
    """One container of a runtime. Its stdout and stderr are the pipes `create` was given."""

    def __init__(self, runtime, bundle, container_id):
        self.runtime, self.bundle, self.id = runtime, bundle, container_id
        self.pid = None
        self.exit_code = None
        self.stdout = self.stderr = None
        self.pid_file = os.path.join(bundle.path, f"{container_id}.pid")
        self.waited = set()
        self.exec_pids = []

    def create(self, check=True, console_socket=None, timeout=30, flags=()):
        """`create [flags]`; returns its exit code. With check, a failure raises with the log."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        extra = ["--console-socket", console_socket] if console_socket else []
        extra += list(flags)
        try:
            process = subprocess.Popen(
                self.runtime.command("create", "--bundle", self.bundle.path, "--pid-file",
                                     self.pid_file, *extra, self.id),
                stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
        self.stdout, self.stderr = Reader(out_r), Reader(err_r)
        code = process.wait(timeout)
        if code == 0:
            with open(self.pid_file) as f:
                self.pid = int(f.read())
        elif check:
            raise RuntimeFailed(f"{self.runtime} create {self.id} exited {code}\n"
                                f"stderr: {self.stderr.text()}\nlog: {self.runtime.log_tail()}")
        return code

    def start(self, check=True):
        return self.runtime.call("start", self.id, check=check)

    def state(self):
        return json.loads(self.runtime.call("state", self.id).stdout)

    def kill(self, sig):
        return self.runtime.call("kill", self.id, str(sig))

    def delete(self, force=False, check=True):
        return self.runtime.call("delete", *(["--force"] if force else []), self.id, check=check)

    def wait(self, timeout=20):
        """The init's exit code (negative: killed by that signal), from os.waitpid: the init
        must have been re-parented to this process (a subreaper) when `create` exited."""
        try:
            self.exit_code = wait_pid(self.pid, timeout)
        except ChildProcessError:
            raise AssertionError(f"{self.runtime}: container init {self.pid} is not a child of "
                                 "the test process once create has exited (runc leaves no "
                                 "process of its own as its parent)") from None
        self.waited.add(self.pid)
        return self.exit_code

    def output(self):
        """The container's (stdout, stderr), read to EOF."""
        return self.stdout.text(), self.stderr.text()

    def run(self, timeout=20):
        """create, start, wait, delete: (exit code, stdout, stderr)."""
        self.create()
        self.start()
        code = self.wait(timeout)
        out, err = self.output()
        self.delete()
        return code, out, err

    def exec(self, process, detach=False, name="process"):
        """`exec --process FILE [--detach --pid-file P]`: (exit code, stdout, stderr) of the
        exec'd process; without --detach the code is exec's own, which is the process's."""
        path = os.path.join(self.bundle.path, f"{self.id}-{name}.json")
        with open(path, "w") as f:
            json.dump(process, f)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid_file = path + ".pid"
        extra = ["--detach", "--pid-file", pid_file] if detach else []
        try:
            command = subprocess.Popen(
                self.runtime.command("exec", "--process", path, *extra, self.id),
                stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
        out, err = Reader(out_r), Reader(err_r)
        code = command.wait(30)
        if detach and code == 0:
            with open(pid_file) as f:
                pid = int(f.read())
            self.exec_pids.append(pid)
            try:
                code = wait_pid(pid)
            except ChildProcessError:
                raise AssertionError(f"{self.runtime}: exec --detach process {pid} is not a "
                                     "child of the test process once exec has exited") from None
            self.waited.add(pid)
        return code, out.text(), err.text()

    def cleanup(self):
        """delete --force, then reap the init and any detached exec process; kill by pid (and
        report) what is still alive."""
        problems = []
        done = self.runtime.call("delete", "--force", self.id, check=False)
        if done.returncode != 0 and "does not exist" not in done.stderr + self.runtime.log_tail(2):
            problems.append(f"delete --force {self.id}: {done.stderr.strip()}")
        for pid in [self.pid, *self.exec_pids]:
            if pid is None or pid in self.waited:
                continue
            try:
                wait_pid(pid, timeout=5)
            except ChildProcessError:
                if alive(pid):
                    problems.append(f"process {pid} of {self.id} is alive and not our child")
            except TimeoutError:
                problems.append(f"process {pid} of {self.id} outlived delete --force")
                os.kill(pid, signal.SIGKILL)
                wait_pid(pid, timeout=5)
            self.waited.add(pid)
        return problems


class ConsoleSocket:
    """The --console-socket: a listening unix socket whose first connection sends the pty
    master with SCM_RIGHTS; read from it by a thread once received."""

    def __init__(self, path):
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.listener.settimeout(30)
        self.master = None
        self.reader = None
        self.error = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        try:
            connection, _ = self.listener.accept()
            with connection:
                _, fds, _, _ = socket.recv_fds(connection, 4096, 4)
            assert len(fds) == 1, f"expected one fd over the console socket, got {fds}"
            self.master = fds[0]
        except Exception as error:  # noqa: BLE001  (reported by wait_master)
            self.error = error

    def wait_master(self, timeout=10):
        self.thread.join(timeout)
        if self.error:
            raise self.error
        assert self.master is not None, "no pty master received on the console socket"
        return self.master

    def read_all(self):
        """Starts reading the master (call after any ioctl on it)."""
        self.reader = Reader(os.dup(self.master))

    def close(self):
        self.listener.close()
        if self.master is not None:
            os.close(self.master)
            self.master = None
