"""Pod sandboxes through the CRI RuntimeService: namespaces made and pinned without a pause image
(checked from the outside with nsenter), the pod's files, its /dev/shm, the pid namespace's init,
kubelet's retries, idempotent stop and remove, filters, restarts, bad input, and nothing leaked."""
import concurrent.futures
import json
import os
import subprocess
import time

import grpc
import pytest

from monocri_harness import Daemon, api_pb2, assert_serving, unary

RUNTIME = "/runtime.v1.RuntimeService/"


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(str(tmp_path)).start()
    yield d
    for pod in list_pods(d):  # what a failed test left: its namespaces, mounts and inits
        remove(d, pod.id)
    code = d.stop()
    assert code == 0, f"monocri exited with {code}:\n{d.log()}"
    assert mounts_under(d.dir) == [], "every pod mount is gone once its pod is"


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


def pod_mounts_under(path):
    """The mounts under `path` but the daemon's pool of ready network namespaces (held while it
    runs; the daemon fixture checks after the stop that they are gone too)."""
    return [m for m in mounts_under(path) if "/netns-pool/" not in m]


def netns_pool(daemon):
    answer = unary(daemon.channel(), RUNTIME + "Status", api_pb2.StatusRequest(verbose=True),
                   api_pb2.StatusResponse)
    return json.loads(answer.info["netnsPool"])


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def pod_config(name="web", namespace="default", uid="uid-1", attempt=0, **kwargs):
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace=namespace, uid=uid,
                                            attempt=attempt),
        hostname=kwargs.pop("hostname", name),
        **kwargs)
    return config


def run_pod(daemon, config, timeout=20):
    with daemon.channel() as channel:
        return unary(channel, RUNTIME + "RunPodSandbox",
                     api_pb2.RunPodSandboxRequest(config=config),
                     api_pb2.RunPodSandboxResponse, timeout=timeout).pod_sandbox_id


def call(daemon, method, request, response_cls, timeout=20):
    with daemon.channel() as channel:
        return unary(channel, RUNTIME + method, request, response_cls, timeout=timeout)


def status(daemon, pod_id, verbose=False):
    return call(daemon, "PodSandboxStatus",
                api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose),
                api_pb2.PodSandboxStatusResponse)


def info(daemon, pod_id):
    return json.loads(status(daemon, pod_id, verbose=True).info["info"])


def stop(daemon, pod_id):
    call(daemon, "StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id),
         api_pb2.StopPodSandboxResponse)


def remove(daemon, pod_id):
    call(daemon, "RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
         api_pb2.RemovePodSandboxResponse)


def list_pods(daemon, **filter_fields):
    return call(daemon, "ListPodSandbox",
                api_pb2.ListPodSandboxRequest(filter=api_pb2.PodSandboxFilter(**filter_fields)),
                api_pb2.ListPodSandboxResponse).items


def nsenter(*args):
    return subprocess.run(["nsenter", *args], check=True, capture_output=True,
                          text=True).stdout


def error_of(fn):
    with pytest.raises(grpc.RpcError) as error:
        fn()
    return error.value


def test_a_pod_gets_its_own_pinned_namespaces_and_files(daemon):
    config = pod_config(
        hostname="web-0",
        dns_config=api_pb2.DNSConfig(servers=["10.96.0.10"], searches=["default.svc", "svc"],
                                     options=["ndots:5"]),
        linux=api_pb2.LinuxPodSandboxConfig(
            sysctls={"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmni": "2048"},
            security_context=api_pb2.LinuxSandboxSecurityContext(
                namespace_options=api_pb2.NamespaceOption(pid=api_pb2.CONTAINER))),
        labels={"app": "web"}, annotations={"note": "hi"})
    pod_id = run_pod(daemon, config)
    assert len(pod_id) == 64 and int(pod_id, 16) >= 0

    answer = status(daemon, pod_id, verbose=True)
    s = answer.status
    assert s.id == pod_id and s.state == api_pb2.SANDBOX_READY
    assert s.metadata.name == "web" and s.metadata.uid == "uid-1"
    assert s.labels["app"] == "web" and s.annotations["note"] == "hi"
    assert abs(s.created_at / 1e9 - time.time()) < 60
    assert s.linux.namespaces.options.pid == api_pb2.CONTAINER
    details = json.loads(answer.info["info"])
    net, ipc, uts = (details["namespaces"][k] for k in ("network", "ipc", "uts"))

    # Each namespace is a new one, pinned by a mount, and set up as asked.
    for path, mine in ((net, "/proc/self/ns/net"), (ipc, "/proc/self/ns/ipc"),
                       (uts, "/proc/self/ns/uts")):
        assert os.stat(path).st_ino != os.stat(mine).st_ino, path
        assert path in mounts_under(daemon.dir)
    assert nsenter(f"--uts={uts}", "hostname").strip() == "web-0"
    links = nsenter(f"--net={net}", "ip", "-o", "link").splitlines()
    assert len(links) == 1 and ": lo:" in links[0] and "UP" in links[0], links
    assert nsenter(f"--net={net}", "cat",
                   "/proc/sys/net/ipv4/ip_unprivileged_port_start").strip() == "0"
    assert nsenter(f"--ipc={ipc}", "cat", "/proc/sys/kernel/shmmni").strip() == "2048"

    with open(details["resolvConf"]) as f:
        assert f.read() == ("search default.svc svc\nnameserver 10.96.0.10\n"
                            "options ndots:5\n")
    with open(details["hostname"]) as f:
        assert f.read() == "web-0\n"
    with open(details["hosts"]) as f:
        hosts = f.read()
    assert "127.0.0.1\tlocalhost" in hosts and "web-0" in hosts
    with open("/proc/self/mountinfo") as f:
        shm = [line for line in f if line.split()[4] == details["shm"]]
    assert len(shm) == 1 and " - tmpfs " in shm[0] and "size=65536k" in shm[0], shm

    stop(daemon, pod_id)
    assert status(daemon, pod_id).status.state == api_pb2.SANDBOX_NOTREADY
    remove(daemon, pod_id)
    assert pod_mounts_under(daemon.dir) == []
    assert not os.path.exists(details["runDir"])
    assert error_of(lambda: status(daemon, pod_id)).code() == grpc.StatusCode.NOT_FOUND


def test_the_node_values_stay_untouched(daemon):
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        before = f.read()
    pod_id = run_pod(daemon, pod_config(linux=api_pb2.LinuxPodSandboxConfig(
        sysctls={"net.ipv4.ip_unprivileged_port_start": "7"})))
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        assert f.read() == before
    net = info(daemon, pod_id)["namespaces"]["network"]
    assert nsenter(f"--net={net}", "cat",
                   "/proc/sys/net/ipv4/ip_unprivileged_port_start").strip() == "7"
    remove(daemon, pod_id)


def test_shared_pid_namespace_is_held_by_the_pod_init(daemon):
    pod_id = run_pod(daemon, pod_config(linux=api_pb2.LinuxPodSandboxConfig(
        security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=api_pb2.NamespaceOption(pid=api_pb2.POD)))))
    details = info(daemon, pod_id)
    init = details["pidNamespaceInit"]
    assert init > 0
    with open(f"/proc/{init}/comm") as f:
        assert f.read().strip() == "monocri-pod-init"[:15]  # TASK_COMM_LEN
    assert os.stat(f"/proc/{init}/ns/pid").st_ino != os.stat("/proc/self/ns/pid").st_ino
    # pid 1 of its namespace: what nsenter starts there sees it as 1.
    out = nsenter(f"--pid=/proc/{init}/ns/pid", "--", "/bin/sh", "-c", "echo $$")
    assert int(out) > 1
    stop(daemon, pod_id)
    # The daemon (the subreaper here, without a keeper) reaps it: no zombie stays.
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{init}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{init}"), "the pod's init was reaped"
    assert info(daemon, pod_id)["pidNamespaceInit"] == 0
    remove(daemon, pod_id)


def test_a_pod_whose_pid_namespace_init_dies_is_not_ready(daemon):
    pod_id = run_pod(daemon, pod_config(linux=api_pb2.LinuxPodSandboxConfig(
        security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=api_pb2.NamespaceOption(pid=api_pb2.POD)))))
    init = info(daemon, pod_id)["pidNamespaceInit"]
    os.kill(init, 9)
    deadline = time.monotonic() + 5
    while status(daemon, pod_id).status.state == api_pb2.SANDBOX_READY:
        assert time.monotonic() < deadline, "the pod is still ready without its pid namespace"
        time.sleep(0.05)
    details = info(daemon, pod_id)
    assert "pid namespace exited" in details["stopReason"] and details["pidNamespaceInit"] == 0
    assert not os.path.exists(f"/proc/{init}"), "reaped"
    remove(daemon, pod_id)


def test_host_namespaces(daemon):
    pod_id = run_pod(daemon, pod_config(linux=api_pb2.LinuxPodSandboxConfig(
        security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=api_pb2.NamespaceOption(network=api_pb2.NODE, ipc=api_pb2.NODE,
                                                      pid=api_pb2.NODE)))))
    details = info(daemon, pod_id)
    assert details["namespaces"] == {}
    assert details["shm"] == ""
    s = status(daemon, pod_id).status
    assert s.linux.namespaces.options.network == api_pb2.NODE
    with open(details["hosts"]) as f, open("/etc/hosts") as host:
        assert f.read() == host.read()
    with open(details["hostname"]) as f:
        assert f.read().strip() == os.uname().nodename
    assert [m for m in mounts_under(daemon.dir) if pod_id in m] == []
    remove(daemon, pod_id)


def test_dns_defaults_to_the_node_resolv_conf(daemon):
    pod_id = run_pod(daemon, pod_config())
    with open(info(daemon, pod_id)["resolvConf"]) as f, open("/etc/resolv.conf") as host:
        assert f.read() == host.read()
    remove(daemon, pod_id)


def test_kubelet_retries_get_the_same_pod(daemon):
    config = pod_config(name="retry", uid="u-retry")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: run_pod(daemon, config), range(8)))
    assert len(set(ids)) == 1
    assert run_pod(daemon, config) == ids[0]  # after it finished, too
    assert [p.id for p in list_pods(daemon)] == [ids[0]]
    # A new attempt is a new pod.
    other = run_pod(daemon, pod_config(name="retry", uid="u-retry", attempt=1))
    assert other != ids[0]
    for pod_id in (ids[0], other):
        remove(daemon, pod_id)


def test_stop_and_remove_are_idempotent(daemon):
    pod_id = run_pod(daemon, pod_config())
    stop(daemon, pod_id)
    stop(daemon, pod_id)
    remove(daemon, pod_id)
    remove(daemon, pod_id)
    stop(daemon, pod_id)
    stop(daemon, "0" * 64)
    remove(daemon, "f" * 64)
    assert len(list_pods(daemon)) == 0


def test_remove_of_a_ready_pod_stops_it_first(daemon):
    pod_id = run_pod(daemon, pod_config(linux=api_pb2.LinuxPodSandboxConfig(
        security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=api_pb2.NamespaceOption(pid=api_pb2.POD)))))
    init = info(daemon, pod_id)["pidNamespaceInit"]
    remove(daemon, pod_id)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{init}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the pod's init survived RemovePodSandbox")
    assert pod_mounts_under(daemon.dir) == []


def test_list_filters(daemon):
    a = run_pod(daemon, pod_config(name="a", uid="ua", labels={"app": "x", "tier": "1"}))
    b = run_pod(daemon, pod_config(name="b", uid="ub", labels={"app": "x", "tier": "2"}))
    c = run_pod(daemon, pod_config(name="c", uid="uc", labels={"app": "y"}))
    stop(daemon, c)
    ids = lambda items: sorted(p.id for p in items)  # noqa: E731
    assert ids(list_pods(daemon)) == sorted([a, b, c])
    assert ids(list_pods(daemon, id=a[:8])) == [a]
    assert ids(list_pods(daemon, id=a)) == [a]
    assert ids(list_pods(daemon, label_selector={"app": "x"})) == sorted([a, b])
    assert ids(list_pods(daemon, label_selector={"app": "x", "tier": "2"})) == [b]
    assert ids(list_pods(daemon, label_selector={"app": "z"})) == []
    ready = api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_READY)
    notready = api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_NOTREADY)
    assert ids(list_pods(daemon, state=ready)) == sorted([a, b])
    assert ids(list_pods(daemon, state=notready)) == [c]
    item = [p for p in list_pods(daemon, id=b)][0]
    assert item.metadata.name == "b" and item.labels["tier"] == "2"
    assert item.state == api_pb2.SANDBOX_READY
    for pod_id in (a, b, c):
        remove(daemon, pod_id)


@pytest.mark.parametrize("config,code,words", [
    (pod_config(name=""), grpc.StatusCode.INVALID_ARGUMENT, "name is required"),
    (pod_config(namespace="a/b"), grpc.StatusCode.INVALID_ARGUMENT, "may not hold '/'"),
    (pod_config(hostname="bad_host!"), grpc.StatusCode.INVALID_ARGUMENT, "not a valid host name"),
    (pod_config(linux=api_pb2.LinuxPodSandboxConfig(sysctls={"kernel.panic": "1"})),
     grpc.StatusCode.INVALID_ARGUMENT, "not namespaced"),
    (pod_config(linux=api_pb2.LinuxPodSandboxConfig(
        sysctls={"net.ipv4.ip_forward": "1"},
        security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=api_pb2.NamespaceOption(network=api_pb2.NODE)))),
     grpc.StatusCode.INVALID_ARGUMENT, "node's network namespace"),
    (pod_config(linux=api_pb2.LinuxPodSandboxConfig(
        sysctls={"net.ipv4.no_such_sysctl": "1"})),
     grpc.StatusCode.INTERNAL, "no_such_sysctl"),
    (pod_config(dns_config=api_pb2.DNSConfig(servers=["1.1.1.1\nnameserver 6.6.6.6"])),
     grpc.StatusCode.INVALID_ARGUMENT, "dns_config"),
    (pod_config(log_directory="relative/logs"), grpc.StatusCode.INVALID_ARGUMENT,
     "not an absolute path"),
    # Made while the namespaces are: they are undone when it fails.
    (pod_config(log_directory="/proc/version/logs"), grpc.StatusCode.INTERNAL,
     "/proc/version"),
    (pod_config(linux=api_pb2.LinuxPodSandboxConfig(
        security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=api_pb2.NamespaceOption(pid=api_pb2.TARGET)))),
     grpc.StatusCode.INVALID_ARGUMENT, "TARGET"),
], ids=["no-name", "slash", "hostname", "sysctl", "host-net-sysctl", "unknown-sysctl", "dns",
        "log-dir", "log-dir-under-a-file", "pid-target"])
def test_bad_pod_configs_fail_cleanly(daemon, config, code, words):
    error = error_of(lambda: run_pod(daemon, config))
    assert error.code() == code, error.details()
    assert words in error.details()
    assert len(list_pods(daemon)) == 0
    assert pod_mounts_under(daemon.dir) == []
    assert os.listdir(os.path.join(daemon.run_root, "pods")) == []
    assert os.listdir(os.path.join(daemon.root, "pods")) == []
    assert_serving(daemon)


def test_unknown_runtime_handler(daemon):
    with daemon.channel() as channel:
        error = error_of(lambda: unary(channel, RUNTIME + "RunPodSandbox",
                                       api_pb2.RunPodSandboxRequest(config=pod_config(),
                                                                    runtime_handler="kata"),
                                       api_pb2.RunPodSandboxResponse))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "kata" in error.details()


def test_pods_survive_a_daemon_restart_and_a_kill(tmp_path):
    d = Daemon(str(tmp_path)).start()
    try:
        shared = run_pod(d, pod_config(name="p", uid="up", linux=api_pb2.LinuxPodSandboxConfig(
            security_context=api_pb2.LinuxSandboxSecurityContext(
                namespace_options=api_pb2.NamespaceOption(pid=api_pb2.POD)))))
        plain = run_pod(d, pod_config(name="q", uid="uq"))
        stopped = run_pod(d, pod_config(name="r", uid="ur"))
        stop(d, stopped)
        assert d.stop() == 0
        d.start()
        assert status(d, shared).status.state == api_pb2.SANDBOX_READY
        assert status(d, plain).status.state == api_pb2.SANDBOX_READY
        assert status(d, stopped).status.state == api_pb2.SANDBOX_NOTREADY
        d.kill()
        d.start()
        assert {p.id: p.state for p in list_pods(d)} == {
            shared: api_pb2.SANDBOX_READY, plain: api_pb2.SANDBOX_READY,
            stopped: api_pb2.SANDBOX_NOTREADY}
        # Same metadata after the restart: the same pod.
        assert run_pod(d, pod_config(name="q", uid="uq")) == plain
        net = info(d, plain)["namespaces"]["network"]
        assert "UP" in nsenter(f"--net={net}", "ip", "-o", "link")

        # The node restarts: the run dir (a tmpfs) is gone with its namespaces and the init.
        init = info(d, shared)["pidNamespaceInit"]
        assert d.stop() == 0
        os.kill(init, 9)
        for mount in sorted(mounts_under(d.run_root), reverse=True):
            subprocess.run(["umount", "-l", mount], check=True)
        subprocess.run(["rm", "-rf", os.path.join(d.run_root, "pods")], check=True)
        d.start()
        for pod_id in (shared, plain):
            s = status(d, pod_id, verbose=True)
            assert s.status.state == api_pb2.SANDBOX_NOTREADY
            assert "did not survive" in json.loads(s.info["info"])["stopReason"]
        for pod_id in (shared, plain, stopped):
            remove(d, pod_id)
        assert len(list_pods(d)) == 0
    finally:
        d.kill()
    # A killed daemon leaves only its pool of ready network namespaces, which the next start
    # removes (and a stop unpins the new one's).
    assert pod_mounts_under(str(tmp_path)) == []
    d.start()
    assert d.stop() == 0
    assert mounts_under(str(tmp_path)) == []


def test_fifty_pods_at_once(daemon):
    configs = [pod_config(name=f"p{i}", uid=f"u{i}") for i in range(50)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda c: run_pod(daemon, c, timeout=60), configs))
    assert len(set(ids)) == 50
    nets = {os.stat(info(daemon, i)["namespaces"]["network"]).st_ino for i in ids}
    assert len(nets) == 50
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: remove(daemon, i), ids))
    assert len(list_pods(daemon)) == 0
    assert pod_mounts_under(daemon.dir) == []


def test_monoctl_pod_verbs(daemon, tmp_path):
    from monocri_harness import run_monoctl
    endpoint = ["-r", "unix://" + daemon.socket]
    # crictl's pod-config.json, field names as crictl writes them.
    json_config = tmp_path / "pod.json"
    json_config.write_text(json.dumps({
        "metadata": {"name": "nginx-sandbox", "namespace": "default", "attempt": 1,
                     "uid": "hdishd83djaidwnduwk28bcsb"},
        "log_directory": str(tmp_path / "logs"),
        "hostname": "nginx",
        "labels": {"app": "nginx"},
        "linux": {"security_context": {"namespace_options": {"pid": 1}}},
    }))
    yaml_config = tmp_path / "pod.yaml"
    yaml_config.write_text("metadata:\n  name: other\n  namespace: team\n  uid: u2\n"
                           "linux:\n  security_context:\n    namespace_options:\n"
                           "      network: NODE\n")
    first = run_monoctl(*endpoint, "runp", str(json_config))
    assert first.returncode == 0, first.stderr
    pod_a = first.stdout.strip()
    second = run_monoctl(*endpoint, "runp", str(yaml_config))
    assert second.returncode == 0, second.stderr
    pod_b = second.stdout.strip()
    assert os.path.isdir(tmp_path / "logs"), "the pod's log directory is made"

    listed = run_monoctl(*endpoint, "pods")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["POD", "ID", "CREATED"]
    assert any(pod_a[:13] in line and "nginx-sandbox" in line and "Ready" in line
               for line in lines)
    assert run_monoctl(*endpoint, "pods", "-q", "--label", "app=nginx").stdout.split() == [pod_a]
    assert run_monoctl(*endpoint, "pods", "-q", "--namespace", "team").stdout.split() == [pod_b]

    inspected = run_monoctl(*endpoint, "inspectp", pod_a[:12])
    assert inspected.returncode == 0, inspected.stderr
    document = json.loads(inspected.stdout)
    assert document["status"]["id"] == pod_a
    assert document["status"]["metadata"]["name"] == "nginx-sandbox"
    assert document["info"]["namespaceModes"]["pid"] == "CONTAINER"
    assert json.loads(run_monoctl(*endpoint, "inspectp", pod_b).stdout)[
        "info"]["namespaceModes"]["network"] == "NODE"

    assert run_monoctl(*endpoint, "stopp", pod_a).stdout.strip() == f"Stopped sandbox {pod_a}"
    assert run_monoctl(*endpoint, "pods", "-q", "--state", "notready").stdout.split() == [pod_a]
    removed = run_monoctl(*endpoint, "rmp", "-a")
    assert removed.returncode == 0 and len(removed.stdout.splitlines()) == 2
    assert run_monoctl(*endpoint, "pods", "-q").stdout == ""

    bad = tmp_path / "bad.json"
    bad.write_text('{"metadata": {"name": "x"}, "no_such_field": 1}')
    answer = run_monoctl(*endpoint, "runp", str(bad))
    assert answer.returncode == 2 and "no_such_field" in answer.stderr
    missing = run_monoctl(*endpoint, "inspectp", "ffff")
    assert missing.returncode == 1 and "no pod matches" in missing.stderr


def test_pods_take_network_namespaces_made_ahead(daemon):
    # The daemon keeps a few network namespaces ready (netns_pool_size, 4 by default), pinned
    # under its run root with the loopback up.
    wait_for(lambda: netns_pool(daemon)["ready"] == 4)
    pool_dir = os.path.join(daemon.run_root, "netns-pool")
    ready = {os.stat(os.path.join(pool_dir, name)).st_ino for name in os.listdir(pool_dir)}
    assert len(ready) == 4 and os.stat("/proc/self/ns/net").st_ino not in ready

    # A pod gets one of them, set up for it all the same.
    pod_id = run_pod(daemon, pod_config(name="pooled", hostname="pooled-0"))
    details = info(daemon, pod_id)
    net, uts = details["namespaces"]["network"], details["namespaces"]["uts"]
    assert os.stat(net).st_ino in ready
    links = nsenter(f"--net={net}", "ip", "-o", "link").splitlines()
    assert len(links) == 1 and ": lo:" in links[0] and "UP" in links[0], links
    assert nsenter(f"--uts={uts}", "hostname").strip() == "pooled-0"
    pool = netns_pool(daemon)
    assert pool["taken"] == 1 and pool["missed"] == 0, pool

    # The pool is made full again behind it, with a new namespace; the pod's is no longer the
    # pool's, and goes with the pod.
    wait_for(lambda: netns_pool(daemon)["ready"] == 4)
    now = {os.stat(os.path.join(pool_dir, name)).st_ino for name in os.listdir(pool_dir)}
    assert os.stat(net).st_ino not in now and len(now - ready) == 1
    remove(daemon, pod_id)
    assert pod_mounts_under(daemon.dir) == []
    assert len(mounts_under(pool_dir)) == 4

    # A pod setting net sysctls makes them in a pooled namespace before its network starts.
    pod_id = run_pod(daemon, pod_config(name="sysctl", uid="u-sysctl", linux=api_pb2.LinuxPodSandboxConfig(
        sysctls={"net.ipv4.ip_unprivileged_port_start": "7"})))
    net = info(daemon, pod_id)["namespaces"]["network"]
    assert os.stat(net).st_ino in now
    assert nsenter(f"--net={net}", "cat",
                   "/proc/sys/net/ipv4/ip_unprivileged_port_start").strip() == "7"
    assert netns_pool(daemon)["taken"] == 2
    remove(daemon, pod_id)


def test_without_a_pool_each_pod_makes_its_own_network_namespace(tmp_path):
    d = Daemon(str(tmp_path), config="netns_pool_size = 0\n").start()
    try:
        pod_id = run_pod(d, pod_config())
        assert netns_pool(d) == {"size": 0, "ready": 0, "made": 0, "taken": 0, "missed": 0}
        net = info(d, pod_id)["namespaces"]["network"]
        assert "UP" in nsenter(f"--net={net}", "ip", "-o", "link")
        assert not os.listdir(os.path.join(d.run_root, "netns-pool"))
        remove(d, pod_id)
    finally:
        assert d.stop() == 0
    assert mounts_under(str(tmp_path)) == []
