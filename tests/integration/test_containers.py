"""Containers through the CRI: real runc containers from a busybox image pulled from the test
registry, each test asserting what the container saw or wrote (its CRI log) and what runc and
the node hold afterwards."""
import json
import os
import re
import signal
import sys
import time

import grpc
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../tools/testimage"))

import testimage as ti  # noqa: E402
from monocri_harness import Daemon, api_pb2, assert_serving, unary  # noqa: E402
from registry import Registry  # noqa: E402
from cgroups import own_cgroup_dirs, remove_cgroups  # noqa: E402

RUNTIME = "/runtime.v1.RuntimeService/"
IMAGE = "/runtime.v1.ImageService/"
RECORD = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) ([PF]) (.*)$")


@pytest.fixture(scope="module")
def registry():
    with Registry() as r:
        ti.push(ti.busybox_image(), r.address, "test/busybox", "1")
        yield r


def pulled_daemon(directory, registry, extra_args=(), **kwargs):
    """A started daemon using the test registry, with the busybox image pulled (`d.image`) and
    a cgroup parent under this test's own cgroups. `extra_args` are more flags; `kwargs` go to
    Daemon (keeper, config, cni...)."""
    conf = directory / "registries.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f'[[registry]]\nlocation = "{registry.address}"\ninsecure = true\n')
    d = Daemon(str(directory / "d"), args=["--registries-conf", str(conf), *extra_args],
               **kwargs).start()
    d.image = f"{registry.address}/test/busybox:1"
    with d.channel() as channel:
        unary(channel, IMAGE + "PullImage",
              api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=d.image)),
              api_pb2.PullImageResponse, timeout=120)
    d.cgroup_parent = f"monocri-test-{os.getpid()}"  # relative: under this test's own cgroups
    return d


@pytest.fixture
def daemon(tmp_path, registry):
    d = pulled_daemon(tmp_path, registry)
    yield d
    remove_all_and_stop(d)


def remove_all_and_stop(d):
    """Removes every pod, stops the daemon and checks nothing is left: runc state, cgroups."""
    with d.channel() as channel:
        pods = unary(channel, RUNTIME + "ListPodSandbox", api_pb2.ListPodSandboxRequest(),
                     api_pb2.ListPodSandboxResponse).items
        for pod in pods:
            unary(channel, RUNTIME + "RemovePodSandbox",
                  api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id),
                  api_pb2.RemovePodSandboxResponse, timeout=60)
    code = d.stop()
    assert code == 0, d.log()
    runc_root = os.path.join(d.run_root, "runc")
    assert not os.path.isdir(runc_root) or os.listdir(runc_root) == [], "runc state left"
    for parent in own_cgroup_dirs(d.cgroup_parent):
        if os.path.isdir(parent):
            assert [e for e in os.listdir(parent) if e.startswith("monocri-")] == [], parent
    assert remove_cgroups(d.cgroup_parent) == []


def call(daemon, method, request, response_cls, timeout=60):
    with daemon.channel() as channel:
        return unary(channel, RUNTIME + method, request, response_cls, timeout=timeout)


def make_pod(daemon, tmp_path, name="pod", pid=api_pb2.CONTAINER):
    """A pod as kubelet asks for one by default: containers get their own pid namespace."""
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name, log_directory=str(tmp_path / "logs" / name),
        linux=api_pb2.LinuxPodSandboxConfig(
            cgroup_parent=daemon.cgroup_parent,
            security_context=api_pb2.LinuxSandboxSecurityContext(
                namespace_options=api_pb2.NamespaceOption(pid=pid))))
    pod_id = call(daemon, "RunPodSandbox", api_pb2.RunPodSandboxRequest(config=config),
                  api_pb2.RunPodSandboxResponse).pod_sandbox_id
    return pod_id, config


def create(daemon, pod, name, command, **fields):
    pod_id, pod_config = pod
    if "linux" not in fields:
        fields["linux"] = api_pb2.LinuxContainerConfig(
            security_context=api_pb2.LinuxContainerSecurityContext(
                namespace_options=pod_config.linux.security_context.namespace_options))
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name),
        image=api_pb2.ImageSpec(image=fields.pop("image", daemon.image)),
        command=command, log_path=fields.pop("log_path", f"{name}/0.log"), **fields)
    return call(daemon, "CreateContainer",
                api_pb2.CreateContainerRequest(pod_sandbox_id=pod_id, config=config,
                                               sandbox_config=pod_config),
                api_pb2.CreateContainerResponse).container_id


def start(daemon, container_id):
    call(daemon, "StartContainer", api_pb2.StartContainerRequest(container_id=container_id),
         api_pb2.StartContainerResponse)


def status(daemon, container_id, verbose=False):
    return call(daemon, "ContainerStatus",
                api_pb2.ContainerStatusRequest(container_id=container_id, verbose=verbose),
                api_pb2.ContainerStatusResponse)


def wait_exited(daemon, container_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = status(daemon, container_id).status
        if s.state == api_pb2.CONTAINER_EXITED:
            return s
        time.sleep(0.05)
    pytest.fail(f"container {container_id} did not exit:\n{daemon.log()[-3000:]}")


def log_records(path, settle=2.0):
    """The CRI log's records once the file stops growing (the writer finishes after the exit)."""
    deadline = time.monotonic() + settle
    last = None
    while time.monotonic() < deadline:
        size = os.path.getsize(path) if os.path.exists(path) else -1
        if size == last and size > 0:
            break
        last = size
        time.sleep(0.1)
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    assert lines[-1] == b"", "the file ends with a whole record"
    records = []
    for line in lines[:-1]:
        match = RECORD.match(line)
        assert match, line
        records.append((match.group(2).decode(), match.group(3).decode(), match.group(4)))
    return records


def run_to_exit(daemon, tmp_path, command, name="c", **fields):
    pod = make_pod(daemon, tmp_path, name=f"pod-{name}")
    container_id = create(daemon, pod, name, command, **fields)
    start(daemon, container_id)
    s = wait_exited(daemon, container_id)
    path = os.path.join(pod[1].log_directory, f"{name}/0.log")
    return container_id, s, log_records(path)


def test_a_container_runs_and_its_output_and_exit_code_are_recorded(daemon, tmp_path):
    container_id, s, records = run_to_exit(
        daemon, tmp_path, ["sh", "-c", "echo hello; echo oops >&2; printf partial; exit 3"])
    assert s.exit_code == 3 and s.reason == "Error"
    assert ("stdout", "F", b"hello") in records
    assert ("stderr", "F", b"oops") in records
    assert ("stdout", "F", b"partial") in records, "a last line without newline ends as F"
    assert s.started_at >= s.created_at > 0 and s.finished_at >= s.started_at
    assert s.image.image == daemon.image and s.image_id.startswith("sha256:")
    assert s.log_path.endswith("c/0.log")


def test_what_the_container_sees(daemon, tmp_path):
    _, s, records = run_to_exit(
        daemon, tmp_path,
        ["sh", "-c", "echo env=$GREETING; pwd; hostname; id -u; id -g; id -G; "
                     "cat /etc/resolv.conf"],
        envs=[api_pb2.KeyValue(key="GREETING", value=b"hi there")], working_dir="/tmp",
        linux=api_pb2.LinuxContainerConfig(security_context=api_pb2.LinuxContainerSecurityContext(
            run_as_user=api_pb2.Int64Value(value=1000),
            run_as_group=api_pb2.Int64Value(value=1000), supplemental_groups=[2000],
            namespace_options=api_pb2.NamespaceOption(pid=api_pb2.CONTAINER))))
    out = [content.decode() for stream, _, content in records if stream == "stdout"]
    assert s.exit_code == 0 and s.reason == "Completed", records
    assert out[:5] == ["env=hi there", "/tmp", "pod-c", "1000", "1000"], out
    assert sorted(out[5].split()) == ["1000", "2000"], out
    assert (s.user.linux.uid, s.user.linux.gid) == (1000, 1000)
    assert 2000 in s.user.linux.supplemental_groups, s.user


def test_stop_sends_the_signal_then_kills(daemon, tmp_path):
    pod = make_pod(daemon, tmp_path)
    # pid 1 ignores SIGTERM unless it handles it: the stop must end in SIGKILL.
    container_id = create(daemon, pod, "sleeper", ["sleep", "300"])
    start(daemon, container_id)
    assert status(daemon, container_id).status.state == api_pb2.CONTAINER_RUNNING
    begin = time.monotonic()
    call(daemon, "StopContainer", api_pb2.StopContainerRequest(container_id=container_id,
                                                              timeout=1),
         api_pb2.StopContainerResponse)
    took = time.monotonic() - begin
    s = status(daemon, container_id).status
    assert s.state == api_pb2.CONTAINER_EXITED and s.exit_code == 137, s
    assert 0.9 < took < 10, took
    # A container that handles SIGTERM stops at once with its own code.
    trapper = create(daemon, pod, "trapper",
                     ["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"])
    start(daemon, trapper)
    time.sleep(0.5)
    begin = time.monotonic()
    call(daemon, "StopContainer", api_pb2.StopContainerRequest(container_id=trapper, timeout=30),
         api_pb2.StopContainerResponse)
    assert time.monotonic() - begin < 5
    assert status(daemon, trapper).status.exit_code == 42
    # Stop and remove of what is stopped or gone succeed.
    call(daemon, "StopContainer", api_pb2.StopContainerRequest(container_id=trapper),
         api_pb2.StopContainerResponse)
    for cid in (container_id, trapper, trapper):
        call(daemon, "RemoveContainer", api_pb2.RemoveContainerRequest(container_id=cid),
             api_pb2.RemoveContainerResponse)
    with pytest.raises(grpc.RpcError) as error:
        status(daemon, trapper)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_filters_and_retries(daemon, tmp_path):
    pod = make_pod(daemon, tmp_path)
    a = create(daemon, pod, "a", ["sleep", "300"], labels={"tier": "web"})
    assert create(daemon, pod, "a", ["sleep", "300"], labels={"tier": "web"}) == a, \
        "kubelet's retry of CreateContainer gets the same container"
    b = create(daemon, pod, "b", ["true"])
    start(daemon, a)
    listed = lambda **f: sorted(c.id for c in call(  # noqa: E731
        daemon, "ListContainers",
        api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(**f)),
        api_pb2.ListContainersResponse).containers)
    assert listed() == sorted([a, b])
    assert listed(id=a[:10]) == [a]
    assert listed(pod_sandbox_id=pod[0]) == sorted([a, b])
    assert listed(label_selector={"tier": "web"}) == [a]
    assert listed(state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_RUNNING)) == [a]
    assert listed(state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_CREATED)) == [b]
    # Removing the pod stops and removes its containers.
    call(daemon, "RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod[0]),
         api_pb2.RemovePodSandboxResponse)
    assert listed() == []


@pytest.mark.parametrize("fields,code,words", [
    ({"name": "a/b"}, grpc.StatusCode.INVALID_ARGUMENT, "may not hold '/'"),
    ({"name": ".."}, grpc.StatusCode.INVALID_ARGUMENT, "'..'"),
    ({"log_path": "../../escape.log"}, grpc.StatusCode.INVALID_ARGUMENT, "inside the pod's log"),
    ({"image": "127.0.0.1:1/not/pulled:1"}, grpc.StatusCode.NOT_FOUND, "pull it first"),
], ids=["slash", "dotdot", "log-escape", "not-pulled"])
def test_bad_container_configs(daemon, tmp_path, fields, code, words):
    pod = make_pod(daemon, tmp_path)
    name = fields.pop("name", "bad")
    with pytest.raises(grpc.RpcError) as error:
        create(daemon, pod, name, ["true"], **fields)
    assert error.value.code() == code, error.value.details()
    assert words in error.value.details()
    assert len(call(daemon, "ListContainers", api_pb2.ListContainersRequest(),
                    api_pb2.ListContainersResponse).containers) == 0
    runc_root = os.path.join(daemon.run_root, "runc")
    assert not os.path.isdir(runc_root) or os.listdir(runc_root) == []
    assert_serving(daemon)


def test_containers_of_a_pod_share_its_pid_namespace(daemon, tmp_path):
    pod = make_pod(daemon, tmp_path, name="shared", pid=api_pb2.POD)
    first = create(daemon, pod, "first", ["sleep", "300"])
    start(daemon, first)
    second = create(daemon, pod, "second", ["sh", "-c", "ps -o pid,comm; ls -l /proc/1/exe"])
    start(daemon, second)
    wait_exited(daemon, second)
    records = log_records(os.path.join(pod[1].log_directory, "second/0.log"))
    out = b"\n".join(content for _, _, content in records)
    assert b"sleep" in out, out  # the other container's process is visible
    assert b"monocri-pod-init" in out or b"monocri-pod-ini" in out, out  # pid 1 is the pod's init


def test_a_tty_container_writes_through_its_terminal(daemon, tmp_path):
    """tty: true: the runtime makes a pty inside the container and sends its master over the
    console socket; the container's stdio is that terminal, its output the CRI log's stdout."""
    _, s, records = run_to_exit(
        daemon, tmp_path,
        ["sh", "-c", "test -t 0 && test -t 1 && test -t 2 && echo all-tty; tty; "
                     "echo to-stderr >&2; echo TERM=$TERM; exit 4"],
        tty=True, stdin=True)
    assert s.exit_code == 4
    streams = {stream for stream, _, _ in records}
    assert streams == {"stdout"}, records
    lines = [content for _, _, content in records]
    # The terminal's line discipline turns "\n" into "\r\n": the bytes are logged as they are.
    assert b"all-tty\r" in lines and b"/dev/pts/0\r" in lines, lines
    assert b"to-stderr\r" in lines and b"TERM=xterm\r" in lines, lines
    assert not os.listdir(os.path.join(daemon.run_root, "cs")), "console sockets removed"


def test_stdin_is_an_open_pipe_only_when_asked(daemon, tmp_path):
    pod = make_pod(daemon, tmp_path)
    # With stdin: a pipe that stays open (cat blocks on it) until someone attaches.
    reader = create(daemon, pod, "reader", ["sh", "-c", "readlink /proc/self/fd/0; cat; "
                                                        "echo stdin-ended"], stdin=True)
    closed = create(daemon, pod, "closed", ["sh", "-c", "readlink /proc/self/fd/0; cat; "
                                                        "echo stdin-ended"])
    start(daemon, reader)
    start(daemon, closed)
    s = wait_exited(daemon, closed)
    assert s.exit_code == 0
    records = log_records(os.path.join(pod[1].log_directory, "closed/0.log"))
    assert [c for _, _, c in records] == [b"/dev/null", b"stdin-ended"], records
    time.sleep(1.0)
    assert status(daemon, reader).status.state == api_pb2.CONTAINER_RUNNING
    records = log_records(os.path.join(pod[1].log_directory, "reader/0.log"))
    assert len(records) == 1 and re.match(rb"pipe:\[\d+\]$", records[0][2]), records
    call(daemon, "StopContainer", api_pb2.StopContainerRequest(container_id=reader, timeout=0),
         api_pb2.StopContainerResponse)
    assert status(daemon, reader).status.exit_code == 137


def test_memory_limit_in_the_cgroup_and_oom_killed(daemon, tmp_path):
    limit = 32 << 20
    linux = api_pb2.LinuxContainerConfig(
        resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=limit,
                                                  memory_swap_limit_in_bytes=limit),
        security_context=api_pb2.LinuxContainerSecurityContext(
            namespace_options=api_pb2.NamespaceOption(pid=api_pb2.CONTAINER)))
    # dd's 64 MiB buffer cannot fit in 32 MiB: the kernel's OOM killer ends the container's init.
    _, s, records = run_to_exit(
        daemon, tmp_path,
        ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                     "exec dd if=/dev/zero of=/dev/null bs=64M count=1"], linux=linux)
    assert ("stdout", "F", str(limit).encode()) in records, records
    assert s.exit_code == 137 and s.reason == "OOMKilled", s
    assert "OOM" in s.message

    # A SIGKILL that is not the OOM killer's is an Error, not an OOMKilled.
    pod = make_pod(daemon, tmp_path, name="pod-killed")
    killed = create(daemon, pod, "killed", ["sleep", "60"], linux=linux)
    start(daemon, killed)
    call(daemon, "StopContainer", api_pb2.StopContainerRequest(container_id=killed, timeout=0),
         api_pb2.StopContainerResponse)
    s = status(daemon, killed).status
    assert s.exit_code == 137 and s.reason == "Error", s


def test_update_container_resources(daemon, tmp_path):
    """UpdateContainerResources changes the cgroup the running container sees; unset fields keep
    their values; the status (and the pod's) reports what is in force."""
    from monocri_harness import run_monoctl
    pod = make_pod(daemon, tmp_path)
    linux = api_pb2.LinuxContainerConfig(
        resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=32 << 20,
                                                  cpu_shares=512),
        security_context=api_pb2.LinuxContainerSecurityContext(
            namespace_options=api_pb2.NamespaceOption(pid=api_pb2.CONTAINER)))
    watcher = create(daemon, pod, "watcher", [
        "sh", "-c", "while true; do echo $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) "
                    "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us); sleep 0.1; done"], linux=linux)
    start(daemon, watcher)
    log = os.path.join(pod[1].log_directory, "watcher/0.log")

    def seen(expected, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(log, "rb") as f:
                if f.read().rstrip(b"\n").split(b"\n")[-1].endswith(b" " + expected):
                    return True
            time.sleep(0.1)
        return False

    assert seen(f"{32 << 20} -1".encode())
    call(daemon, "UpdateContainerResources", api_pb2.UpdateContainerResourcesRequest(
        container_id=watcher, linux=api_pb2.LinuxContainerResources(
            memory_limit_in_bytes=48 << 20, cpu_period=100000, cpu_quota=50000)),
        api_pb2.UpdateContainerResourcesResponse)
    assert seen(f"{48 << 20} 50000".encode())
    r = status(daemon, watcher).status.resources.linux
    assert (r.memory_limit_in_bytes, r.cpu_quota, r.cpu_shares) == (48 << 20, 50000, 512)

    out = run_monoctl("-r", "unix://" + daemon.socket, "update", "--memory", "64m", watcher[:12])
    assert out.returncode == 0 and out.stdout.strip() == watcher, out.stderr
    assert seen(f"{64 << 20} 50000".encode())
    pod_status = call(daemon, "PodSandboxStatus",
                      api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod[0]),
                      api_pb2.PodSandboxStatusResponse)
    [listed] = pod_status.containers_statuses
    assert listed.id == watcher and listed.state == api_pb2.CONTAINER_RUNNING
    assert listed.resources.linux.memory_limit_in_bytes == 64 << 20

    with pytest.raises(grpc.RpcError) as failure:
        call(daemon, "UpdateContainerResources", api_pb2.UpdateContainerResourcesRequest(
            container_id=watcher, linux=api_pb2.LinuxContainerResources(cpu_quota=-5)),
            api_pb2.UpdateContainerResourcesResponse)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, failure.value.details()
    call(daemon, "StopContainer", api_pb2.StopContainerRequest(container_id=watcher, timeout=0),
         api_pb2.StopContainerResponse)
    for container_id, code in ((watcher, grpc.StatusCode.FAILED_PRECONDITION),
                               ("nope", grpc.StatusCode.NOT_FOUND)):
        with pytest.raises(grpc.RpcError) as failure:
            call(daemon, "UpdateContainerResources", api_pb2.UpdateContainerResourcesRequest(
                container_id=container_id,
                linux=api_pb2.LinuxContainerResources(memory_limit_in_bytes=64 << 20)),
                api_pb2.UpdateContainerResourcesResponse)
        assert failure.value.code() == code, failure.value.details()


def daemon_children(d):
    """The daemon processes under a keeper (d.pid)."""
    from monocri_harness import children_of
    found = []
    for child in children_of(d.pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"--listen" in f.read():
                    found.append(child)
        except FileNotFoundError:
            pass
    return found


def keeper_daemon(tmp_path, registry):
    return pulled_daemon(tmp_path, registry, keeper=True)


def test_sighup_restarts_the_daemon_and_loses_nothing(tmp_path, registry):
    """SIGHUP to the keeper: the daemon is replaced (an upgrade's path) while a container writes;
    the keeper's pipe and exit carry everything across."""
    d = keeper_daemon(tmp_path, registry)
    try:
        pod = make_pod(d, tmp_path)
        writer = create(d, pod, "writer", [
            "sh", "-c", "i=0; while [ $i -lt 4000 ]; do i=$((i+1)); echo n-$i; "
                        "[ $((i % 200)) -eq 0 ] && sleep 0.05; done; exit 3"])
        start(d, writer)
        time.sleep(0.3)
        [before] = daemon_children(d)
        os.kill(d.pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while daemon_children(d) in ([], [before]):
            assert time.monotonic() < deadline, d.log()[-2000:]
            time.sleep(0.05)
        d.wait_ready()
        s = wait_exited(d, writer)
        assert s.exit_code == 3, s
        records = log_records(os.path.join(pod[1].log_directory, "writer/0.log"))
        assert [c.decode() for _, _, c in records] == [f"n-{i}" for i in range(1, 4001)]
        assert "as asked (SIGHUP)" in d.log()
        call(d, "RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod[0]),
             api_pb2.RemovePodSandboxResponse)
    finally:
        code = d.stop()
    assert code == 0, d.log()[-3000:]


def test_a_pod_init_that_dies_during_an_outage_is_reported_and_acknowledged(tmp_path, registry):
    """The keeper records the exit of a pod's pid-namespace init that died while no daemon ran;
    the next daemon reports the pod NOTREADY and acknowledges that exit, so the keeper drops it."""
    d = keeper_daemon(tmp_path, registry)
    try:
        pod_id, _ = make_pod(d, tmp_path, pid=api_pb2.POD)
        info = json.loads(call(d, "PodSandboxStatus", api_pb2.PodSandboxStatusRequest(
            pod_sandbox_id=pod_id, verbose=True), api_pb2.PodSandboxStatusResponse).info["info"])
        init = info["pidNamespaceInit"]
        [daemon_pid] = daemon_children(d)
        os.kill(daemon_pid, signal.SIGSTOP)  # no daemon to see the init go
        os.kill(init, signal.SIGKILL)
        os.kill(daemon_pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while daemon_children(d) in ([], [daemon_pid]):
            assert time.monotonic() < deadline, d.log()[-2000:]
            time.sleep(0.05)
        d.wait_ready()
        s = call(d, "PodSandboxStatus", api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id),
                 api_pb2.PodSandboxStatusResponse).status
        assert s.state == api_pb2.SANDBOX_NOTREADY
        exits = os.path.join(d.run_root, "exits")
        deadline = time.monotonic() + 5
        while os.listdir(exits):
            assert time.monotonic() < deadline, ("exit records kept", os.listdir(exits))
            time.sleep(0.05)
        call(d, "RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
             api_pb2.RemovePodSandboxResponse)
    finally:
        code = d.stop()
    assert code == 0, d.log()[-3000:]


def test_a_daemon_killed_mid_output_loses_no_line_and_no_exit_code(tmp_path, registry):
    """Under the keeper: the daemon is SIGKILLed while a container writes; the keeper restarts
    it, hands back the container's pipe and its exit; every line reaches the log, in order (a tty
    container's at most one run of lines short: its output cannot be left in the pty)."""
    d = keeper_daemon(tmp_path, registry)
    try:
        pod = make_pod(d, tmp_path)
        writer = create(d, pod, "writer", [
            "sh", "-c", "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo line-$i; "
                        "[ $((i % 100)) -eq 0 ] && sleep 0.1; done; exit 7"])
        # The keeper holds a tty container's terminal and a stdin pipe's write end too.
        terminal = create(d, pod, "terminal", [
            "sh", "-c", "i=0; while [ $i -lt 1000 ]; do i=$((i+1)); echo tty-$i; "
                        "[ $((i % 50)) -eq 0 ] && sleep 0.1; done; exit 5"], tty=True)
        reader = create(d, pod, "reader", ["cat"], stdin=True)
        for container_id in (writer, terminal, reader):
            start(d, container_id)
        time.sleep(0.5)
        daemons = daemon_children(d)
        assert len(daemons) == 1, "the keeper's child is the daemon (and the container)"
        os.kill(daemons[0], 9)
        time.sleep(1.0)  # the container goes on writing into the pipe the keeper keeps open
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = daemon_children(d)
            if now and now != daemons:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the keeper did not restart the daemon:\n{d.log()[-2000:]}")
        d.wait_ready()
        deadline = time.monotonic() + 30
        while True:
            try:
                s = wait_exited(d, writer, timeout=30)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert s.exit_code == 7, (s, d.log()[-3000:])
        records = log_records(os.path.join(pod[1].log_directory, "writer/0.log"))
        lines = [content.decode() for stream, tag, content in records if stream == "stdout"]
        assert lines == [f"line-{i}" for i in range(1, 3001)], (len(lines), d.log()[-2000:])
        assert wait_exited(d, terminal).exit_code == 5
        records = log_records(os.path.join(pod[1].log_directory, "terminal/0.log"))
        lines = [content.decode() for _, _, content in records]
        # A pty cannot be teed (README, "Nothing is lost when the daemon dies"): what the dead
        # daemon had read and not yet written is lost, one run of lines at most; the rest is
        # all there, in order, none twice. The dead daemon's last read may have ended inside a
        # line: then the new one logs that line's tail, at the gap and nowhere else.
        expected = {f"tty-{i}\r": i for i in range(1, 1001)}
        tails = [k for k, line in enumerate(lines) if line not in expected]
        assert len(tails) <= 1, [lines[k] for k in tails]
        for k in tails:
            following = expected[lines[k + 1]]
            assert 0 < k and f"tty-{following - 1}\r".endswith(lines[k]), lines[k - 1:k + 2]
            del lines[k]
        numbers = [expected[line] for line in lines]
        gaps = [(a, b) for a, b in zip(numbers, numbers[1:]) if b != a + 1]
        assert numbers[0] == 1 and numbers[-1] == 1000 and len(gaps) <= 1, (gaps, d.log()[-2000:])
        assert all(a < b <= a + 101 for a, b in gaps), gaps
        # stdin never saw its end: the keeper's copy of the write end kept the pipe open.
        assert status(d, reader).status.state == api_pb2.CONTAINER_RUNNING
        call(d, "RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod[0]),
             api_pb2.RemovePodSandboxResponse)
    finally:
        code = d.stop()
    assert code == 0, d.log()[-3000:]


def test_a_stopped_daemon_leaves_containers_running_and_finds_them_again(daemon, tmp_path):
    """SIGTERM stops the daemon promptly even with running containers and pod inits; they keep
    running, and the next daemon reports them and can stop them."""
    pod = make_pod(daemon, tmp_path, pid=api_pb2.POD)
    sleeper = create(daemon, pod, "sleeper", ["sleep", "300"],
                     linux=api_pb2.LinuxContainerConfig(
                         security_context=api_pb2.LinuxContainerSecurityContext(
                             namespace_options=api_pb2.NamespaceOption(pid=api_pb2.POD))))
    start(daemon, sleeper)
    pid = status(daemon, sleeper, verbose=True)
    pid = json.loads(pid.info["info"])["pid"]
    began = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - began < 10, "a running container does not hold the daemon up"
    os.kill(pid, 0)  # still running
    daemon.start()
    s = status(daemon, sleeper).status
    assert s.state == api_pb2.CONTAINER_RUNNING, s
    pod_status = call(daemon, "PodSandboxStatus",
                      api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod[0]),
                      api_pb2.PodSandboxStatusResponse)
    assert pod_status.status.state == api_pb2.SANDBOX_READY
    call(daemon, "StopContainer", api_pb2.StopContainerRequest(container_id=sleeper, timeout=0),
         api_pb2.StopContainerResponse)
    assert status(daemon, sleeper).status.state == api_pb2.CONTAINER_EXITED


def test_host_network_container(daemon, tmp_path):
    pod = make_pod(daemon, tmp_path, name="hostnet")
    config = pod[1]
    config.linux.security_context.namespace_options.network = api_pb2.NODE
    pod_id = call(daemon, "RunPodSandbox", api_pb2.RunPodSandboxRequest(config=config),
                  api_pb2.RunPodSandboxResponse).pod_sandbox_id
    linux = api_pb2.LinuxContainerConfig(
        security_context=api_pb2.LinuxContainerSecurityContext(
            namespace_options=config.linux.security_context.namespace_options))
    for name, pod_ref in (("host", (pod_id, config)), ("own", pod)):
        container_id = create(daemon, pod_ref, name, ["sh", "-c", "readlink /proc/self/ns/net"],
                              linux=linux if name == "host" else None)
        start(daemon, container_id)
        assert wait_exited(daemon, container_id).exit_code == 0
    host = log_records(os.path.join(config.log_directory, "host/0.log"))
    own = log_records(os.path.join(pod[1].log_directory, "own/0.log"))
    ours = os.readlink("/proc/self/ns/net").encode()  # the harness's namespace, the "node's"
    assert host == [("stdout", "F", ours)], host
    assert own[0][2] != ours, "a pod without host network has its own namespace"


def test_a_hundred_containers_created_at_once(daemon, tmp_path):
    """100 CreateContainer calls at once over 10 pods: each gets its own container, all start,
    and removing the pods leaves nothing (the fixture checks runc's state and the cgroups)."""
    from concurrent.futures import ThreadPoolExecutor
    pods = [make_pod(daemon, tmp_path, name=f"crowd-{i}") for i in range(10)]

    def make(i):
        return create(daemon, pods[i % 10], f"c{i}", ["sleep", "300"])

    with ThreadPoolExecutor(max_workers=100) as pool:
        ids = list(pool.map(make, range(100)))
    assert len(set(ids)) == 100
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda container_id: start(daemon, container_id), ids))
    listed = call(daemon, "ListContainers", api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(state=api_pb2.ContainerStateValue(
            state=api_pb2.CONTAINER_RUNNING))), api_pb2.ListContainersResponse).containers
    assert {c.id for c in listed} == set(ids)
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda pod: call(daemon, "RemovePodSandbox",
                                       api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod[0]),
                                       api_pb2.RemovePodSandboxResponse, timeout=120), pods))
    assert len(call(daemon, "ListContainers", api_pb2.ListContainersRequest(),
                    api_pb2.ListContainersResponse).containers) == 0
    assert os.listdir(os.path.join(daemon.root, "containers")) == []


def test_monoctl_container_verbs(daemon, tmp_path):
    from monocri_harness import run_monoctl
    endpoint = ["-r", "unix://" + daemon.socket]
    pod_id, pod_config = make_pod(daemon, tmp_path, name="cli")
    config = tmp_path / "container.yaml"
    config.write_text(
        "metadata:\n  name: talker\n"
        f"image:\n  image: {daemon.image}\n"
        "command: [sh, -c, 'for i in 1 2 3; do echo out-$i; echo err-$i >&2; done; sleep 300']\n"
        "log_path: talker/0.log\n"
        "linux:\n  security_context:\n    namespace_options:\n      pid: CONTAINER\n")
    ran = run_monoctl(*endpoint, "run", pod_id[:10], str(config))
    assert ran.returncode == 0, ran.stderr
    container_id = ran.stdout.strip()
    assert len(container_id) == 64
    ps = run_monoctl(*endpoint, "ps")
    assert ps.returncode == 0
    assert any(container_id[:13] in line and "Running" in line and "talker" in line
               for line in ps.stdout.splitlines()), ps.stdout
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = run_monoctl(*endpoint, "logs", container_id[:8])
        if "out-3" in logs.stdout and "err-3" in logs.stderr:
            break
        time.sleep(0.1)
    assert logs.stdout == "out-1\nout-2\nout-3\n", logs
    assert logs.stderr == "err-1\nerr-2\nerr-3\n", logs
    # --tail counts lines of both streams, in the file's order (the order the daemon read them).
    last = log_records(os.path.join(pod_config.log_directory, "talker/0.log"))[-2:]
    tail = run_monoctl(*endpoint, "logs", "--tail", "2", container_id)
    assert tail.stdout == "".join(c.decode() + "\n" for s, _, c in last if s == "stdout"), tail
    assert tail.stderr == "".join(c.decode() + "\n" for s, _, c in last if s == "stderr"), tail
    stamped = run_monoctl(*endpoint, "logs", "--timestamps", container_id).stdout.splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z out-1$", stamped[0]), stamped
    inspected = json.loads(run_monoctl(*endpoint, "inspect", container_id).stdout)
    assert inspected["status"]["state"] == "CONTAINER_RUNNING"
    assert inspected["info"]["sandboxID"] == pod_id
    stopped = run_monoctl(*endpoint, "stop", "--timeout", "0", container_id)
    assert stopped.returncode == 0, stopped.stderr
    assert run_monoctl(*endpoint, "ps", "-q").stdout == ""
    assert run_monoctl(*endpoint, "ps", "-a", "-q", "--state", "exited").stdout.split() == \
        [container_id]
    assert run_monoctl(*endpoint, "rm", container_id).returncode == 0
    assert run_monoctl(*endpoint, "ps", "-a", "-q").stdout == ""
    missing = run_monoctl(*endpoint, "logs", "ffff")
    assert missing.returncode == 1 and "no container matches" in missing.stderr


def test_an_image_in_use_is_not_removed(daemon, tmp_path):
    pod = make_pod(daemon, tmp_path)
    container_id = create(daemon, pod, "user", ["true"])
    with daemon.channel() as channel:
        with pytest.raises(grpc.RpcError) as error:
            unary(channel, IMAGE + "RemoveImage",
                  api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=daemon.image)),
                  api_pb2.RemoveImageResponse)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert container_id in error.value.details()
    call(daemon, "RemoveContainer", api_pb2.RemoveContainerRequest(container_id=container_id),
         api_pb2.RemoveContainerResponse)
    with daemon.channel() as channel:
        unary(channel, IMAGE + "RemoveImage",
              api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=daemon.image)),
              api_pb2.RemoveImageResponse)


def test_security_settings_seen_from_inside(daemon, tmp_path, registry):
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "note").write_text("from the host")
    security = api_pb2.LinuxContainerSecurityContext(
        namespace_options=api_pb2.NamespaceOption(pid=api_pb2.CONTAINER),
        readonly_rootfs=True,
        capabilities=api_pb2.Capability(drop_capabilities=["NET_RAW", "CHOWN"]),
        seccomp=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault))
    _, s, records = run_to_exit(
        daemon, tmp_path,
        ["sh", "-c",
         "grep CapBnd /proc/self/status; grep Seccomp: /proc/self/status; "
         "touch /rootfs-write 2>/dev/null && echo rootfs=rw || echo rootfs=ro; "
         "cat /mnt/shared/note; echo; touch /mnt/shared/x 2>/dev/null && echo bind=rw || echo bind=ro; "
         "busybox unshare -U true 2>/dev/null && echo unshare=allowed || echo unshare=denied"],
        name="sec",
        mounts=[api_pb2.Mount(container_path="/mnt/shared", host_path=str(host_dir),
                              readonly=True)],
        linux=api_pb2.LinuxContainerConfig(security_context=security))
    out = [content.decode() for stream, _, content in records if stream == "stdout"]
    assert s.exit_code == 0, records
    cap_bnd = int(out[0].split()[1], 16)
    assert not cap_bnd & (1 << 13), "CAP_NET_RAW (13) dropped"
    assert not cap_bnd & (1 << 0), "CAP_CHOWN (0) dropped"
    assert cap_bnd & (1 << 6), "CAP_SETGID (6) of the default set kept"
    assert out[1].split() == ["Seccomp:", "2"], "a seccomp filter is on"
    assert out[2:6] == ["rootfs=ro", "from the host", "bind=ro", "unshare=denied"], out
    assert not (host_dir / "x").exists()
    # The control: unconfined, the same call works, so the denial above is the filter's.
    _, s, records = run_to_exit(
        daemon, tmp_path,
        ["sh", "-c", "busybox unshare -U true && echo unshare=allowed || echo unshare=denied"],
        name="unconfined", linux=api_pb2.LinuxContainerConfig(
            security_context=api_pb2.LinuxContainerSecurityContext(
                namespace_options=api_pb2.NamespaceOption(pid=api_pb2.CONTAINER),
                seccomp=api_pb2.SecurityProfile(
                    profile_type=api_pb2.SecurityProfile.Unconfined))))
    assert [c for st, _, c in records if st == "stdout"] == [b"unshare=allowed"], records


def test_bad_security_settings_fail_cleanly(daemon, tmp_path):
    pod = make_pod(daemon, tmp_path)
    for security, code, words in [
        (api_pb2.LinuxContainerSecurityContext(
            capabilities=api_pb2.Capability(add_capabilities=["NO_SUCH_CAP"])),
         grpc.StatusCode.INVALID_ARGUMENT, "NO_SUCH_CAP"),
        (api_pb2.LinuxContainerSecurityContext(seccomp=api_pb2.SecurityProfile(
            profile_type=api_pb2.SecurityProfile.Localhost,
            localhost_ref=str(tmp_path / "missing-profile.json"))),
         grpc.StatusCode.NOT_FOUND, "missing-profile.json"),
    ]:
        with pytest.raises(grpc.RpcError) as error:
            create(daemon, pod, "bad", ["true"],
                   linux=api_pb2.LinuxContainerConfig(security_context=security))
        assert error.value.code() == code, error.value.details()
        assert words in error.value.details()
    assert len(call(daemon, "ListContainers", api_pb2.ListContainersRequest(),
                    api_pb2.ListContainersResponse).containers) == 0
    assert os.listdir(os.path.join(daemon.root, "containers")) == []
