"""monoctl against the real daemon, as an operator types it."""
import json

import yaml

from monocri_harness import Daemon, run_monoctl


def endpoint(daemon):
    return "unix://" + daemon.socket


def test_version_table(daemon):
    result = run_monoctl("-r", endpoint(daemon), "version")
    assert result.returncode == 0, result.stderr
    fields = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert fields == {"Version:": "0.1.0", "RuntimeName:": "monocri",
                      "RuntimeVersion:": "0.1.0", "RuntimeApiVersion:": "v1"}


def test_version_json_and_yaml(daemon):
    as_json = json.loads(run_monoctl("-r", endpoint(daemon), "-o", "json", "version").stdout)
    assert as_json == {"version": "0.1.0", "runtimeName": "monocri", "runtimeVersion": "0.1.0",
                       "runtimeApiVersion": "v1"}
    as_yaml = yaml.safe_load(run_monoctl("-r", endpoint(daemon), "-o", "yaml", "version").stdout)
    assert as_yaml == as_json


def test_info_is_verbose_status_as_json(daemon):
    result = run_monoctl("-r", endpoint(daemon), "info")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    conditions = {c["type"]: c for c in info["status"]["conditions"]}
    assert conditions["RuntimeReady"]["status"] is True
    assert conditions["NetworkReady"]["status"] is True  # the harness's loopback network
    assert info["network"]["network"]["name"] == "monocri-test-lo"
    assert info["network"]["network"]["plugins"] == ["loopback"]
    assert info["config"]["listen"] == daemon.socket
    assert info["daemon"]["pid"] == daemon.pid


def test_info_table_and_yaml(daemon, tmp_path):
    table = run_monoctl("-r", endpoint(daemon), "-o", "table", "info").stdout.splitlines()
    assert table[0].split() == ["CONDITION", "STATUS", "REASON", "MESSAGE"]
    assert table[1].split()[:2] == ["RuntimeReady", "true"]
    assert table[2].split()[:2] == ["NetworkReady", "true"]
    assert f"CNI network: monocri-test-lo ({daemon.cni_conf_dir}/99-loopback.conflist), " \
        "cniVersion 1.0.0, plugins: loopback" in table, table
    empty = Daemon(tmp_path / "no-net", cni={}).start()
    try:
        table = run_monoctl("-r", endpoint(empty), "-o", "table", "info").stdout.splitlines()
        assert table[2].split()[:3] == ["NetworkReady", "false", "NetworkPluginNotReady"]
        assert f"CNI network: none in {empty.cni_conf_dir}" in table, table
    finally:
        assert empty.stop() == 0
    as_yaml = yaml.safe_load(run_monoctl("-r", endpoint(daemon), "-o", "yaml", "info").stdout)
    assert as_yaml["config"]["runRoot"] == daemon.run_root


def test_runtime_config_and_health(daemon):
    assert run_monoctl("-r", endpoint(daemon), "runtime-config").stdout.split() == [
        "CgroupDriver:", "cgroupfs"]
    assert json.loads(run_monoctl("-r", endpoint(daemon), "-o", "json",
                                  "runtime-config").stdout) == {
        "linux": {"cgroupDriver": "CGROUPFS"}}
    result = run_monoctl("-r", endpoint(daemon), "health")
    assert (result.returncode, result.stdout) == (0, "SERVING\n")
    result = run_monoctl("-r", endpoint(daemon), "health", "no.such.Service")
    assert result.returncode == 1 and "NOT_FOUND" in result.stderr


def test_endpoint_from_environment_and_bare_path(daemon):
    result = run_monoctl("version", env={"MONOCRI_ENDPOINT": endpoint(daemon)})
    assert result.returncode == 0 and "monocri" in result.stdout
    result = run_monoctl("-r", daemon.socket, "version")
    assert result.returncode == 0 and "monocri" in result.stdout


def test_daemon_down_gives_a_clear_message_and_exit_code(tmp_path):
    result = run_monoctl("-r", f"unix://{tmp_path}/nothing.sock", "version")
    assert result.returncode == 1
    assert "cannot reach the runtime" in result.stderr
    assert "is monocri running?" in result.stderr
    assert result.stdout == ""


def test_bad_arguments(daemon):
    result = run_monoctl("-r", "tcp://127.0.0.1:1", "version")
    assert result.returncode == 2 and "unix:///path" in result.stderr
    result = run_monoctl("-r", endpoint(daemon), "--timeout", "soon", "version")
    assert result.returncode == 2 and "duration" in result.stderr
    result = run_monoctl("-r", endpoint(daemon), "-o", "xml", "version")
    assert result.returncode != 0
    result = run_monoctl("-r", endpoint(daemon))
    assert result.returncode != 0


def test_timeout_units(daemon):
    for value in ("1500ms", "2s", "2", "1m", "0.5"):
        result = run_monoctl("-r", endpoint(daemon), "--timeout", value, "version")
        assert result.returncode == 0, (value, result.stderr)
    for value in ("0", "-1s", "5d", "ms"):
        result = run_monoctl("-r", endpoint(daemon), "--timeout", value, "version")
        assert result.returncode == 2, value
