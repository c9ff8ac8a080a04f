"""Pod networks through CNI with Debian's real plugins (bridge, host-local, portmap, bandwidth,
tuning, loopback), inside the harness's network namespace: bridges, veths and iptables rules
exist only there. Each test has its own bridge, subnet and host-local data dir, and checks what
the pods, the node's namespace and host-local's allocations hold afterwards."""
import concurrent.futures
import ipaddress
import itertools
import json
import os
import subprocess
import time
import urllib.request

import grpc
import pytest

from monocri_harness import Daemon, api_pb2, assert_serving
from test_containers import (RUNTIME, call, create, log_records, pulled_daemon,  # noqa: F401
                             registry, remove_all_and_stop, start, wait_exited)

PLUGIN_DIR = "/usr/lib/cni"
_subnets = itertools.count(70)


class Net:
    """A bridge network of this test: its name, subnet, gateway, host-local's data dir."""

    def __init__(self, tmp_path, range_start=None, range_end=None, extra_plugins=(),
                 bridge_capabilities=None, subnet=None):
        n = next(_subnets)
        self.bridge = f"mcni{os.getpid() % 1000}x{n}"[:15]
        self.subnet = ipaddress.ip_network(subnet or f"10.{n}.0.0/24")
        self.gateway = str(next(self.subnet.hosts()))
        self.data_dir = str(tmp_path / "ipam")
        ipam = {"type": "host-local", "ranges": [[{"subnet": str(self.subnet)}]],
                "dataDir": self.data_dir, "routes": [{"dst": "0.0.0.0/0"}]}
        if range_start:
            ipam["ranges"][0][0].update(rangeStart=range_start, rangeEnd=range_end)
        bridge = {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False,
                  "hairpinMode": True, "ipam": ipam}
        if bridge_capabilities:
            bridge["capabilities"] = bridge_capabilities
        if (bridge_capabilities or {}).get("ipRanges"):
            # The ranges come from kubelet's pod CIDR alone: bridge 1.1.1 fails an ADD whose
            # config has ranges of its own besides (it wants both gateways on the bridge).
            del ipam["ranges"]
        self.conflist = {"cniVersion": "1.0.0", "name": f"podnet{n}",
                         "plugins": [bridge, *extra_plugins]}

    def files(self):
        return {"10-podnet.conflist": json.dumps(self.conflist)}

    def allocated(self):
        """host-local's allocations: one file per address in use."""
        directory = os.path.join(self.data_dir, self.conflist["name"])
        if not os.path.isdir(directory):
            return set()
        return {name for name in os.listdir(directory)
                if name[0].isdigit() and not name.startswith("last_reserved_ip")}


def veths_on(bridge):
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True,
                         text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def cache_records(d):
    directory = os.path.join(d.root, "cni", "results")
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def delete_bridge(net):
    subprocess.run(["ip", "link", "delete", net.bridge], capture_output=True)


@pytest.fixture
def bridge_net(tmp_path):
    net = Net(tmp_path, extra_plugins=[{"type": "portmap", "capabilities": {"portMappings": True}}])
    yield net
    delete_bridge(net)


def net_daemon(tmp_path, registry, net, **kwargs):
    return pulled_daemon(tmp_path, registry, cni=net.files() if net else {}, **kwargs)


def finish(d, net):
    """Removes every pod, stops the daemon, checks nothing of the network is left, and deletes
    the test's bridge."""
    remove_all_and_stop(d)
    assert cache_records(d) == [], "every DEL ran"
    if net:
        try:
            assert net.allocated() == set(), "every address went back to host-local"
            assert veths_on(net.bridge) == [], "every veth is gone"
        finally:
            delete_bridge(net)


def pod_config(d, tmp_path, name, **fields):
    linux = fields.pop("linux", None) or api_pb2.LinuxPodSandboxConfig()
    linux.cgroup_parent = d.cgroup_parent
    linux.security_context.namespace_options.pid = api_pb2.CONTAINER
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="cni", uid=f"uid-{name}"),
        hostname=name, log_directory=str(tmp_path / "logs" / name), linux=linux, **fields)


def run_pod(d, config, timeout=60):
    return call(d, "RunPodSandbox", api_pb2.RunPodSandboxRequest(config=config),
                api_pb2.RunPodSandboxResponse, timeout=timeout).pod_sandbox_id


def pod_status(d, pod_id):
    answer = call(d, "PodSandboxStatus",
                  api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True),
                  api_pb2.PodSandboxStatusResponse)
    return answer.status, json.loads(answer.info["info"])


def stop_pod(d, pod_id):
    call(d, "StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id),
         api_pb2.StopPodSandboxResponse)


def remove_pod(d, pod_id):
    call(d, "RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
         api_pb2.RemovePodSandboxResponse)


def network_condition(d):
    answer = call(d, "Status", api_pb2.StatusRequest(verbose=True), api_pb2.StatusResponse)
    condition = {c.type: c for c in answer.status.conditions}["NetworkReady"]
    return condition, json.loads(answer.info["network"])


def wait_until(predicate, timeout=10):
    """Polls `predicate` until it holds or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def rpc_error(fn):
    with pytest.raises(grpc.RpcError) as error:
        fn()
    return error.value


def output_of(d, tmp_path, pod_id, config, name, command):
    """Runs `command` in a new container of the pod to its exit; (exit code, stdout bytes)."""
    container_id = create(d, (pod_id, config), name, command)
    start(d, container_id)
    code = wait_exited(d, container_id, timeout=60).exit_code
    records = log_records(os.path.join(config.log_directory, f"{name}/0.log"))
    return code, b"\n".join(content for stream, _, content in records if stream == "stdout")


HTTPD = ["sh", "-c", "mkdir -p /www && echo hello from $(hostname) > /www/index.html && "
         "exec httpd -f -p 8080 -h /www"]


def test_two_pods_get_distinct_addresses_and_reach_each_other(tmp_path, registry, bridge_net):
    d = net_daemon(tmp_path, registry, bridge_net)
    try:
        condition, info = network_condition(d)
        assert condition.status is True, condition
        assert info["network"]["name"] == bridge_net.conflist["name"]
        assert info["network"]["plugins"] == ["bridge", "portmap"]

        server_config = pod_config(d, tmp_path, "server")
        client_config = pod_config(d, tmp_path, "client")
        server, client = run_pod(d, server_config), run_pod(d, client_config)
        server_status, server_info = pod_status(d, server)
        client_status, _ = pod_status(d, client)
        server_ip, client_ip = server_status.network.ip, client_status.network.ip
        assert server_ip != client_ip
        for ip in (server_ip, client_ip):
            assert ipaddress.ip_address(ip) in bridge_net.subnet and ip != bridge_net.gateway
        assert server_info["network"] == {"name": bridge_net.conflist["name"], "ips": [server_ip],
                                          "check": ""}
        assert bridge_net.allocated() == {server_ip, client_ip}
        assert len(veths_on(bridge_net.bridge)) == 2

        # The pod sees its address on eth0, and a default route through the bridge.
        code, out = output_of(d, tmp_path, client, client_config, "ip",
                              ["sh", "-c", "ip -4 -o addr show eth0; ip route"])
        assert code == 0 and f"inet {client_ip}/24".encode() in out, out
        assert f"default via {bridge_net.gateway}".encode() in out, out

        httpd = create(d, (server, server_config), "httpd", HTTPD)
        start(d, httpd)
        deadline = time.monotonic() + 20
        while True:
            # busybox's nc, not its wget: the static wget looks "http" up through NSS, which
            # a static glibc cannot load in the image (SIGSEGV).
            code, out = output_of(d, tmp_path, client, client_config,
                                  f"get{int(time.monotonic() * 1000)}",
                                  ["sh", "-c", "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | "
                                   f"nc -w 3 {server_ip} 8080"])
            if (code == 0 and out) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert code == 0 and out.startswith(b"HTTP/1.") and out.endswith(b"hello from server"), \
            (code, out, d.log()[-3000:])
    finally:
        finish(d, bridge_net)


def test_a_host_port_reaches_the_pod_from_the_node(tmp_path, registry, bridge_net):
    d = net_daemon(tmp_path, registry, bridge_net)
    try:
        config = pod_config(d, tmp_path, "web", port_mappings=[
            api_pb2.PortMapping(protocol=api_pb2.TCP, container_port=8080, host_port=18080),
            api_pb2.PortMapping(protocol=api_pb2.TCP, container_port=9090)])  # no host port
        pod = run_pod(d, config)
        start(d, create(d, (pod, config), "httpd", HTTPD))
        # portmap's DNAT in the node's namespace (here the harness's): to a node address.
        url = f"http://{bridge_net.gateway}:18080/index.html"
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url, timeout=3) as answer:
                    body = answer.read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert body == b"hello from web\n"
        rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True,
                               text=True).stdout
        assert "--dport 18080" in rules and "9090" not in rules, rules
        remove_pod(d, pod)
        rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True,
                               text=True).stdout
        assert "--dport 18080" not in rules, "portmap's DEL removed its rules"
    finally:
        finish(d, bridge_net)


def test_dns_settings_land_in_the_pods_resolv_conf(tmp_path, registry, bridge_net):
    d = net_daemon(tmp_path, registry, bridge_net)
    try:
        config = pod_config(d, tmp_path, "dns", dns_config=api_pb2.DNSConfig(
            servers=["10.96.0.10"], searches=["cni.svc.cluster.local", "svc.cluster.local"],
            options=["ndots:5", "timeout:2"]))
        pod = run_pod(d, config)
        code, out = output_of(d, tmp_path, pod, config, "cat", ["cat", "/etc/resolv.conf"])
        assert code == 0
        assert out.splitlines() == [b"search cni.svc.cluster.local svc.cluster.local",
                                    b"nameserver 10.96.0.10", b"options ndots:5 timeout:2"], out
    finally:
        finish(d, bridge_net)


def test_removal_gives_the_address_back_and_deletes_the_veth(tmp_path, registry):
    """A range of one address: a second pod cannot get one (host-local's error, whole, and
    nothing of that pod left), and once the first is removed the next pod gets it."""
    net = Net(tmp_path, range_start="10.69.0.10", range_end="10.69.0.10",
              subnet="10.69.0.0/24")
    d = net_daemon(tmp_path, registry, net)
    try:
        first = run_pod(d, pod_config(d, tmp_path, "first"))
        assert pod_status(d, first)[0].network.ip == "10.69.0.10"
        assert len(veths_on(net.bridge)) == 1
        error = rpc_error(lambda: run_pod(d, pod_config(d, tmp_path, "second")))
        assert error.code() == grpc.StatusCode.UNKNOWN, error
        assert "CNI plugin bridge (ADD) failed" in error.details(), error.details()
        assert "no IP addresses available in range set" in error.details(), error.details()
        assert [p.metadata.name for p in call(
            d, "ListPodSandbox", api_pb2.ListPodSandboxRequest(),
            api_pb2.ListPodSandboxResponse).items] == ["first"]
        assert len(veths_on(net.bridge)) == 1, "the failed pod's veth was deleted by DEL"
        assert len(cache_records(d)) == 1

        stop_pod(d, first)
        assert pod_status(d, first)[0].network.ip == "", "a stopped pod has no address"
        assert net.allocated() == set() and veths_on(net.bridge) == []
        stop_pod(d, first)  # again: nothing left to DEL, still fine
        remove_pod(d, first)
        third = run_pod(d, pod_config(d, tmp_path, "third"))
        assert pod_status(d, third)[0].network.ip == "10.69.0.10"
    finally:
        finish(d, net)


def test_a_failed_add_is_undone_with_del(tmp_path, registry):
    """The second plugin fails after the bridge gave an address: DEL of the list releases it."""
    net = Net(tmp_path, extra_plugins=[
        {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.no_such_sysctl": "1"}}])
    d = net_daemon(tmp_path, registry, net)
    try:
        error = rpc_error(lambda: run_pod(d, pod_config(d, tmp_path, "tuned")))
        assert "CNI plugin tuning (ADD) failed" in error.details(), error.details()
        assert "no_such_sysctl" in error.details(), error.details()
        assert net.allocated() == set(), "the bridge's address was released"
        assert veths_on(net.bridge) == [] and cache_records(d) == []
        assert not os.listdir(os.path.join(d.run_root, "pods")), "the pod's namespaces are gone"
    finally:
        finish(d, net)


def test_del_runs_after_a_kill_9_and_a_restart(tmp_path, registry, bridge_net):
    d = net_daemon(tmp_path, registry, bridge_net)
    try:
        pod = run_pod(d, pod_config(d, tmp_path, "survivor"))
        ip = pod_status(d, pod)[0].network.ip
        d.kill()
        d.start()
        status, info = pod_status(d, pod)
        assert status.state == api_pb2.SANDBOX_READY and status.network.ip == ip
        assert info["network"]["check"] == "", "CHECK of the surviving pod passed"
        assert bridge_net.allocated() == {ip}
        stop_pod(d, pod)
        assert bridge_net.allocated() == set() and veths_on(bridge_net.bridge) == []
    finally:
        finish(d, bridge_net)


def test_check_after_a_restart_reports_a_broken_attachment(tmp_path, registry, bridge_net):
    d = net_daemon(tmp_path, registry, bridge_net)
    try:
        pod = run_pod(d, pod_config(d, tmp_path, "checked"))
        assert d.stop() == 0
        for veth in veths_on(bridge_net.bridge):  # what an operator's mistake would do
            subprocess.run(["ip", "link", "delete", veth], check=True)
        d.start()
        check = wait_until(lambda: pod_status(d, pod)[1]["network"]["check"], timeout=20)
        assert "CNI plugin bridge (CHECK) failed" in check, check
    finally:
        finish(d, bridge_net)


def test_no_valid_config_means_not_ready_and_a_clear_error_until_one_comes(tmp_path, registry):
    plugins = tmp_path / "bin"  # plugins the test installs, before Debian's
    plugins.mkdir()
    d = pulled_daemon(tmp_path, registry, cni={"05-broken.conflist": '{"cniVersion": "1.0.0",'},
                      extra_args=["--cni-plugin-dir", str(plugins), "--cni-plugin-dir",
                                  PLUGIN_DIR])
    net = Net(tmp_path)
    try:
        condition, info = network_condition(d)
        assert condition.status is False and condition.reason == "NetworkPluginNotReady"
        assert d.cni_conf_dir in condition.message and "05-broken.conflist" in condition.message
        assert info["network"] is None and len(info["passedOver"]) == 1
        error = rpc_error(lambda: run_pod(d, pod_config(d, tmp_path, "early")))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "no valid CNI network config" in error.details(), error.details()

        # A host-network pod needs no CNI network.
        host = pod_config(d, tmp_path, "host")
        host.linux.security_context.namespace_options.network = api_pb2.NODE
        host_pod = run_pod(d, host)
        assert pod_status(d, host_pod)[0].network.ip == "" and cache_records(d) == []
        remove_pod(d, host_pod)

        # A network provider writes its config (the watch sees it), naming a plugin that is
        # not installed yet: still not ready, and the reason names the plugin.
        with_extra = dict(net.conflist, plugins=[net.conflist["plugins"][0],
                                                 {"type": "extra-plugin"}])
        with open(os.path.join(d.cni_conf_dir, "10-podnet.conflist.tmp"), "w") as f:
            json.dump(with_extra, f)
        os.rename(os.path.join(d.cni_conf_dir, "10-podnet.conflist.tmp"),
                  os.path.join(d.cni_conf_dir, "10-podnet.conflist"))
        wait_until(lambda: "extra-plugin" in network_condition(d)[0].message)
        condition = network_condition(d)[0]
        assert condition.status is False
        assert "plugin 'extra-plugin' is not in the plugin directories" in condition.message
        assert str(plugins) in condition.message, condition.message

        # Then it installs the plugin (the loopback one, under another name): the next Status
        # finds it, and pods get their network.
        os.symlink(os.path.join(PLUGIN_DIR, "loopback"), plugins / "extra-plugin")
        assert wait_until(lambda: network_condition(d)[0].status) is True
        pod = run_pod(d, pod_config(d, tmp_path, "ok"))
        assert pod_status(d, pod)[0].network.ip
        remove_pod(d, pod)

        # A plugin removed while in use: ADD fails, naming it; the bridge's part is undone.
        (plugins / "extra-plugin").unlink()
        error = rpc_error(lambda: run_pod(d, pod_config(d, tmp_path, "missing")))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
        assert "'extra-plugin'" in error.details() and str(plugins) in error.details()
        assert net.allocated() == set(), "the bridge's ADD was undone"
        assert veths_on(net.bridge) == []
        assert len(call(d, "ListPodSandbox", api_pb2.ListPodSandboxRequest(),
                        api_pb2.ListPodSandboxResponse).items) == 0
        assert_serving(d)
    finally:
        finish(d, None)
        delete_bridge(net)


def test_the_pod_cidr_from_kubelet_reaches_host_local(tmp_path, registry):
    net = Net(tmp_path, bridge_capabilities={"ipRanges": True})
    d = net_daemon(tmp_path, registry, net)
    try:
        call(d, "UpdateRuntimeConfig", api_pb2.UpdateRuntimeConfigRequest(
            runtime_config=api_pb2.RuntimeConfig(
                network_config=api_pb2.NetworkConfig(pod_cidr="10.68.5.0/24"))),
            api_pb2.UpdateRuntimeConfigResponse)
        pod = run_pod(d, pod_config(d, tmp_path, "cidr"))
        ip = ipaddress.ip_address(pod_status(d, pod)[0].network.ip)
        assert ip in ipaddress.ip_network("10.68.5.0/24"), ip
    finally:
        finish(d, net)


def test_bandwidth_annotations_reach_the_bandwidth_plugin(tmp_path, registry):
    net = Net(tmp_path, extra_plugins=[{"type": "bandwidth", "capabilities": {"bandwidth": True}}])
    d = net_daemon(tmp_path, registry, net)
    try:
        pod = run_pod(d, pod_config(d, tmp_path, "slow", annotations={
            "kubernetes.io/ingress-bandwidth": "2M"}))
        assert pod_status(d, pod)[0].network.ip
        qdiscs = subprocess.run(["tc", "qdisc", "show", "dev", veths_on(net.bridge)[0]],
                                capture_output=True, text=True).stdout
        assert "tbf" in qdiscs and "rate 2Mbit" in qdiscs, qdiscs
        error = rpc_error(lambda: run_pod(d, pod_config(d, tmp_path, "bad", annotations={
            "kubernetes.io/egress-bandwidth": "lots"})))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        assert "egress-bandwidth" in error.details(), error.details()
    finally:
        finish(d, net)


def test_fifty_pods_started_at_once_all_get_addresses(tmp_path, registry, bridge_net):
    d = net_daemon(tmp_path, registry, bridge_net)
    try:
        configs = [pod_config(d, tmp_path, f"many-{i}") for i in range(50)]
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            pods = list(pool.map(lambda c: run_pod(d, c, timeout=120), configs))
        ips = {pod_status(d, pod)[0].network.ip for pod in pods}
        assert len(ips) == 50 and all(ipaddress.ip_address(ip) in bridge_net.subnet for ip in ips)
        assert bridge_net.allocated() == ips
        assert len(veths_on(bridge_net.bridge)) == 50
    finally:
        finish(d, bridge_net)


def test_pod_metadata_that_cni_args_cannot_carry_is_refused_before_any_plugin(tmp_path, registry,
                                                                              bridge_net):
    """CNI_ARGS is "K=V;K=V": a name holding ';' or '=' would change the other arguments."""
    d = net_daemon(tmp_path, registry, bridge_net)
    try:
        for name in ("semi;colon", "k=v"):
            config = pod_config(d, tmp_path, name)
            config.hostname = "plain"
            error = rpc_error(lambda: run_pod(d, config))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
            assert "CNI argument" in error.details(), error.details()
        assert cache_records(d) == [] and bridge_net.allocated() == set()
        assert network_condition(d)[1]["pluginRuns"] == 0, "no plugin ran"
    finally:
        finish(d, bridge_net)


def test_del_missing_a_plugin_fails_and_keeps_the_record_until_it_is_back(tmp_path, registry):
    """A DEL that cannot run every plugin fails (as libcni's) and keeps the cache record: what
    the missing plugin made would be lost with it. kubelet's next StopPodSandbox finishes it."""
    plugins = tmp_path / "bin"
    plugins.mkdir()
    os.symlink(os.path.join(PLUGIN_DIR, "loopback"), plugins / "extra-plugin")
    net = Net(tmp_path, extra_plugins=[{"type": "extra-plugin"}])
    d = net_daemon(tmp_path, registry, net, extra_args=[
        "--cni-plugin-dir", str(plugins), "--cni-plugin-dir", PLUGIN_DIR])
    try:
        pod = run_pod(d, pod_config(d, tmp_path, "kept"))
        ip = pod_status(d, pod)[0].network.ip
        (plugins / "extra-plugin").unlink()  # a provider being reinstalled
        error = rpc_error(lambda: stop_pod(d, pod))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
        assert "'extra-plugin' (DEL)" in error.details(), error.details()
        assert len(cache_records(d)) == 1 and net.allocated() == {ip}
        os.symlink(os.path.join(PLUGIN_DIR, "loopback"), plugins / "extra-plugin")
        stop_pod(d, pod)
        assert cache_records(d) == [] and net.allocated() == set()
        assert pod_status(d, pod)[0].network.ip == ""
    finally:
        finish(d, net)


def test_a_daemon_killed_in_the_middle_of_an_add_leaves_nothing_after_its_restart(tmp_path,
                                                                                  registry):
    """The second plugin takes its time; the daemon is killed while it runs. The next daemon
    removes the unfinished pod's namespaces and runs DEL of what the bridge did."""
    plugins = tmp_path / "bin"
    plugins.mkdir()
    slow = plugins / "slow-plugin"  # a real plugin (loopback) behind a pause
    slow.write_text(f"#!/bin/sh\nsleep 2\nexec {PLUGIN_DIR}/loopback\n")
    slow.chmod(0o755)
    net = Net(tmp_path, extra_plugins=[{"type": "slow-plugin"}])
    d = net_daemon(tmp_path, registry, net, extra_args=[
        "--cni-plugin-dir", str(plugins), "--cni-plugin-dir", PLUGIN_DIR])
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            call_ = pool.submit(run_pod, d, pod_config(d, tmp_path, "cut"))
            assert wait_until(lambda: len(net.allocated()) == 1), "the bridge gave an address"
            d.kill()
            with pytest.raises(grpc.RpcError):
                call_.result()
        assert len(cache_records(d)) == 1
        pod_dirs = os.listdir(os.path.join(d.run_root, "pods"))
        assert len(pod_dirs) == 1, "the unfinished pod's namespaces are still pinned"
        d.start()
        assert wait_until(lambda: not cache_records(d)), d.log()[-2000:]
        assert wait_until(lambda: not net.allocated()), "DEL gave the address back"
        assert os.listdir(os.path.join(d.run_root, "pods")) == []
        with open("/proc/self/mountinfo") as f:
            assert [line for line in f if "/pods/" in line and d.run_root in line] == []
        assert wait_until(lambda: veths_on(net.bridge) == []), "the veth went with the namespace"
        assert len(call(d, "ListPodSandbox", api_pb2.ListPodSandboxRequest(),
                        api_pb2.ListPodSandboxResponse).items) == 0
    finally:
        finish(d, net)


def test_an_address_and_a_mac_asked_for_in_annotations(tmp_path, registry):
    """io.monocri.cni-ips and io.monocri.cni-mac reach the plugins declaring the `ips` (bridge,
    for host-local) and `mac` (tuning) capabilities."""
    net = Net(tmp_path, bridge_capabilities={"ips": True},
              extra_plugins=[{"type": "tuning", "capabilities": {"mac": True}}])
    d = net_daemon(tmp_path, registry, net)
    try:
        wanted_ip = str(net.subnet.network_address + 77)
        pod = run_pod(d, pod_config(d, tmp_path, "fixed", annotations={
            "io.monocri.cni-ips": wanted_ip, "io.monocri.cni-mac": "0a:58:0a:01:02:4d"}))
        status, info = pod_status(d, pod)
        assert status.network.ip == wanted_ip
        link = subprocess.run(["nsenter", f"--net={info['namespaces']['network']}", "ip", "-o",
                               "link", "show", "eth0"], capture_output=True, text=True).stdout
        assert "link/ether 0a:58:0a:01:02:4d" in link, link
        for annotations, words in (({"io.monocri.cni-ips": "10.0.0.300"}, "not an IP address"),
                                   ({"io.monocri.cni-mac": "0a:58"}, "not a MAC address")):
            error = rpc_error(lambda: run_pod(d, pod_config(d, tmp_path, "bad",
                                                            annotations=annotations)))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and words in error.details()
    finally:
        finish(d, net)


def test_the_shipped_example_network_gives_pods_addresses(tmp_path, registry):
    """config/cni/10-monocri-bridge.conflist, as an operator copies it to /etc/cni/net.d (here
    with its bridge renamed and host-local's data under the test's dir)."""
    with open(os.path.join(os.path.dirname(__file__), "../../config/cni/"
                           "10-monocri-bridge.conflist")) as f:
        example = json.load(f)
    bridge = f"mcni{os.getpid() % 1000}ex"
    example["plugins"][0]["bridge"] = bridge
    example["plugins"][0]["ipam"]["dataDir"] = str(tmp_path / "ipam")
    d = pulled_daemon(tmp_path, registry, cni={"10-monocri-bridge.conflist": json.dumps(example)})
    try:
        assert network_condition(d)[1]["network"]["plugins"] == ["bridge", "portmap", "bandwidth"]
        pod = run_pod(d, pod_config(d, tmp_path, "example", port_mappings=[
            api_pb2.PortMapping(protocol=api_pb2.TCP, container_port=80, host_port=18081)]))
        ip = ipaddress.ip_address(pod_status(d, pod)[0].network.ip)
        assert ip in ipaddress.ip_network("10.85.0.0/16"), ip
        assert len(veths_on(bridge)) == 1
    finally:
        remove_all_and_stop(d)
        assert cache_records(d) == [] and veths_on(bridge) == []
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True)


def test_del_runs_for_a_pod_whose_namespace_did_not_survive(tmp_path, registry, bridge_net):
    """A node reboot, as far as the pod is concerned: the run dir (a tmpfs) and the pinned
    namespaces are gone. StopPodSandbox still releases the address: DEL with no CNI_NETNS."""
    d = net_daemon(tmp_path, registry, bridge_net)
    try:
        pod = run_pod(d, pod_config(d, tmp_path, "rebooted"))
        ip = pod_status(d, pod)[0].network.ip
        assert d.stop() == 0
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f if line.split()[4].startswith(d.run_root)]
        for point in sorted(points, reverse=True):
            subprocess.run(["umount", "-l", point], check=True)
        subprocess.run(["rm", "-rf", os.path.join(d.run_root, "pods")], check=True)
        assert wait_until(lambda: veths_on(bridge_net.bridge) == []), "gone with its namespace"
        assert bridge_net.allocated() == {ip}, "host-local still holds the address"
        d.start()
        status, info = pod_status(d, pod)
        assert status.state == api_pb2.SANDBOX_NOTREADY and "did not survive" in info["stopReason"]
        stop_pod(d, pod)
        assert bridge_net.allocated() == set() and cache_records(d) == []
    finally:
        finish(d, bridge_net)
