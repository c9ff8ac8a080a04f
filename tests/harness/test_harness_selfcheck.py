"""Proves the image and registry test infrastructure against independent tools: images built by
testimage are pushed to real registries (anonymous, basic auth, token auth) and read back by
skopeo, unpacked by umoci; OCI layouts and docker-archives are read by skopeo; the hostile
registry's behaviours are observed with a plain HTTP client.

Run: /usr/bin/python3 -m pytest -q tests/harness/test_harness_selfcheck.py
"""
import hashlib
import http.client
import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTIMAGE_CLI = os.path.join(HERE, "../../tools/testimage/testimage.py")
sys.path[:0] = [HERE, os.path.dirname(TESTIMAGE_CLI)]

import testimage  # noqa: E402
from hostile_registry import (CorruptBody, HostileRegistry, IgnoreRange, Stall,  # noqa: E402
                              Status, TruncatedBody, unauthorized)
from registry import BasicAuthRegistry, Registry, TokenAuthRegistry  # noqa: E402


def skopeo(*args):
    result = subprocess.run(["skopeo", *args], capture_output=True, timeout=120)
    assert result.returncode == 0, f"skopeo {' '.join(args)}:\n{result.stderr.decode()}"
    return result.stdout


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def registries():
    with Registry() as anonymous, BasicAuthRegistry() as basic, TokenAuthRegistry() as token:
        yield {"anonymous": anonymous, "basic": basic, "token": token}


def credentials(registry):
    return getattr(registry, "username", None), getattr(registry, "password", None)


def creds_option(registry, option):
    username, password = credentials(registry)
    return [f"{option}={username}:{password}"] if username else []


def build(kind, format, tmp_path):
    if kind == "busybox":
        return testimage.busybox_image(format=format)
    if kind == "multilayer":
        return testimage.multilayer_image(format)
    if kind == "sized":
        return testimage.sized_image(3 << 20, str(tmp_path), layers=3, format=format)
    return testimage.multiplatform_image(format)


# --- testimage -------------------------------------------------------------------------------

def test_layer_holds_every_entry_kind_deterministically():
    entries = [
        testimage.Dir("d", mode=0o750, uid=7, gid=8),
        testimage.File("d/f", b"hello", mode=0o640, uid=1000, gid=1000,
                       xattrs={"user.monocri": b"test"}),
        testimage.Hardlink("d/a-link", "d/f"),  # sorts first by name, must still come last
        testimage.Symlink("d/s", "f"),
        testimage.Device("dev/null", "char", 1, 3),
        testimage.Device("dev/loop0", "block", 7, 0, mode=0o660),
        testimage.Fifo("d/fifo"),
        testimage.Whiteout("d/gone"),
        testimage.Opaque("d/emptied"),
    ]
    layers = {c: testimage.build_layer(entries, c) for c in testimage.COMPRESSIONS}
    assert testimage.build_layer(entries, "gzip").blob.digest == layers["gzip"].blob.digest
    assert len({layer.diff_id for layer in layers.values()}) == 1  # same tar inside
    assert len({layer.blob.digest for layer in layers.values()}) == 3

    with layers["zstd"].open_uncompressed() as raw:
        members = {m.name: m for m in tarfile.open(fileobj=raw, mode="r|")}
    assert list(members)[-1] == "d/a-link"
    assert members["d/a-link"].islnk() and members["d/a-link"].linkname == "d/f"
    assert (members["d"].mode, members["d"].uid, members["d"].gid) == (0o750, 7, 8)
    assert members["d/f"].pax_headers["SCHILY.xattr.user.monocri"] == "test"
    assert (members["d/f"].uid, members["d/f"].mode) == (1000, 0o640)
    assert members["d/s"].issym() and members["d/s"].linkname == "f"
    assert members["dev/null"].ischr() and (members["dev/null"].devmajor,
                                            members["dev/null"].devminor) == (1, 3)
    assert members["dev/loop0"].isblk()
    assert members["d/fifo"].isfifo()
    assert members["d/.wh.gone"].isfile() and members["d/.wh.gone"].size == 0
    assert members["d/emptied/.wh..wh..opq"].isfile()
    assert {m.mtime for m in members.values()} == {testimage.FIXED_MTIME}


def test_docker_format_has_no_zstd():
    with pytest.raises(ValueError, match="zstd"):
        testimage.busybox_image("zstd", format="docker")


def test_cli_digests_match_the_module(registries, tmp_path):
    registry = registries["anonymous"]
    expected = testimage.multilayer_image("docker").digests()
    result = subprocess.run([sys.executable, TESTIMAGE_CLI, "push", "--registry",
                             registry.address, "--name", "cli", "--tag", "v1", "--kind",
                             "multilayer", "--format", "docker"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(result.stdout) == expected
    archive = tmp_path / "busybox.tar"
    result = subprocess.run([sys.executable, TESTIMAGE_CLI, "docker-archive", str(archive),
                             "--name", "bb", "--tag", "v2"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(result.stdout)["diff_ids"] == testimage.busybox_image().digests()["diff_ids"]
    skopeo("inspect", f"docker-archive:{archive}:bb:v2")  # finds the image by its RepoTags


# --- registries, read back by skopeo ---------------------------------------------------------

@pytest.mark.parametrize("kind", ["busybox", "multilayer", "sized", "multiplatform"])
@pytest.mark.parametrize("format", testimage.FORMATS)
@pytest.mark.parametrize("auth", ["anonymous", "basic", "token"])
def test_push_then_skopeo_reads_it(registries, auth, format, kind, tmp_path):
    registry = registries[auth]
    image = build(kind, format, tmp_path)
    name = f"{kind}-{format}"
    digests = testimage.push(image, registry.address, name, "v1", *credentials(registry))
    reference = f"docker://{registry.address}/{name}:v1"

    raw = skopeo("inspect", "--tls-verify=false", "--raw", *creds_option(registry, "--creds"),
                 reference)
    assert raw == image.manifest.data and sha256(raw) == digests["manifest_digest"]
    inspected = json.loads(skopeo("inspect", "--tls-verify=false",
                                  *creds_option(registry, "--creds"), reference))
    amd64 = digests["manifests"][0] if kind == "multiplatform" else digests
    assert inspected["Layers"] == [layer["digest"] for layer in amd64["layers"]]
    assert inspected["Architecture"] == "amd64"
    # A copy fetches and verifies every blob against its digest.
    skopeo("copy", "--all", "--src-tls-verify=false", *creds_option(registry, "--src-creds"),
           reference, f"oci:{tmp_path}/copy:v1")


def test_basic_auth_registry_wants_credentials(registries):
    registry = registries["basic"]
    with pytest.raises(testimage.PushError, match="credentials"):
        testimage.push(testimage.busybox_image(), registry.address, "nocreds", "v1")
    with pytest.raises(testimage.PushError):
        testimage.push(testimage.busybox_image(), registry.address, "badcreds", "v1",
                       registry.username, "wrong")


def registry_get(registry, path, token):
    request = urllib.request.Request(registry.url + path,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Accept": testimage.OCI_MANIFEST})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def token_post(server, form):
    request = urllib.request.Request(server.realm, data=urllib.parse.urlencode(form).encode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_token_auth_signing_key_id_and_oauth2(registries):
    registry = registries["token"]
    server = registry.token_server
    testimage.push(testimage.busybox_image(), registry.address, "tokens", "v1",
                   registry.username, registry.password)
    scope = "repository:tokens:pull"
    path = "/v2/tokens/manifests/v1"

    # distribution 2.8 finds the signing key by the libtrust key ID in the JWT's `kid`.
    assert registry_get(registry, path, server.issue("monocri", [scope])) == 200
    assert registry_get(registry, path, server.issue(None, [scope])) == 401  # no anonymous pull
    good_kid = server.key_id
    server.key_id = "AAAA" + good_kid[4:]
    try:
        assert registry_get(registry, path, server.issue("monocri", [scope])) == 401
    finally:
        server.key_id = good_kid

    before = len(server.requests)
    status, answer = token_post(server, {"grant_type": "password", "username": "monocri",
                                         "password": registry.password, "service": server.SERVICE,
                                         "scope": scope, "access_type": "offline"})
    assert status == 200 and answer["token"] == answer["access_token"]
    assert answer["expires_in"] == 300 and answer["refresh_token"]
    assert registry_get(registry, path, answer["access_token"]) == 200
    status, answer = token_post(server, {"grant_type": "refresh_token",
                                         "refresh_token": server.identity_token,
                                         "service": server.SERVICE, "scope": scope})
    assert status == 200 and registry_get(registry, path, answer["token"]) == 200
    status, _ = token_post(server, {"grant_type": "password", "username": "monocri",
                                    "password": "wrong", "scope": scope})
    assert status == 401
    assert [(r.method, r.grant_type, r.username, r.status) for r in server.requests[before:]] == [
        ("POST", "password", "monocri", 200), ("POST", "refresh_token", "monocri", 200),
        ("POST", "password", None, 401)]


def test_token_auth_anonymous_pull():
    with TokenAuthRegistry(anonymous_pull=True) as registry:
        image = testimage.busybox_image()
        testimage.push(image, registry.address, "public", "v1", registry.username,
                       registry.password)
        raw = skopeo("inspect", "--tls-verify=false", "--raw",
                     f"docker://{registry.address}/public:v1")
        assert raw == image.manifest.data
        anonymous = [r for r in registry.token_server.requests if r.username is None]
        assert anonymous and anonymous[-1].scopes == ["repository:public:pull"]
        with pytest.raises(testimage.PushError, match="insufficient|UNAUTHORIZED|denied"):
            testimage.push(testimage.multilayer_image(), registry.address, "public", "v2")


# --- umoci, OCI layout, docker-archive -------------------------------------------------------

@pytest.mark.parametrize("format", testimage.FORMATS)
def test_umoci_unpacks_multilayer_with_whiteout_and_opaque_dir(registries, format, tmp_path):
    registry = registries["anonymous"]
    testimage.push(testimage.multilayer_image(format), registry.address, "unpack", format)
    # umoci 0.4.7 has no zstd: skopeo recompresses the zstd layer to gzip on the way.
    skopeo("copy", "--src-tls-verify=false", "--dest-compress-format", "gzip",
           f"docker://{registry.address}/unpack:{format}", f"oci:{tmp_path}/layout:x")
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path}/layout:x", f"{tmp_path}/bundle"],
                   check=True, capture_output=True, timeout=60)
    rootfs = tmp_path / "bundle" / "rootfs"
    data = rootfs / "data"
    assert sorted(os.listdir(data)) == ["hardlink", "keep", "opaque", "original", "symlink",
                                        "xattr"]
    assert os.listdir(data / "opaque") == ["new"]
    assert (data / "hardlink").stat().st_ino == (data / "original").stat().st_ino
    assert os.readlink(data / "symlink") == "keep"
    assert os.getxattr(data / "xattr", "user.monocri") == b"test"
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777
    assert (rootfs / "home" / "app").stat().st_uid == 1000
    assert b"app:x:1000:1000:" in (rootfs / "etc" / "passwd").read_bytes()


def test_oci_layout_and_archive_read_by_skopeo(tmp_path):
    image = testimage.multilayer_image("oci")
    digests = testimage.write_oci_layout(image, str(tmp_path / "layout"), "v1")
    raw = skopeo("inspect", "--raw", f"oci:{tmp_path}/layout:v1")
    assert sha256(raw) == digests["manifest_digest"]
    skopeo("copy", f"oci:{tmp_path}/layout:v1", f"dir:{tmp_path}/from-layout")

    index = testimage.multiplatform_image("oci")
    testimage.write_oci_archive(index, str(tmp_path / "archive.tar"), "multi")
    raw = skopeo("inspect", "--raw", f"oci-archive:{tmp_path}/archive.tar:multi")
    assert raw == index.manifest.data
    skopeo("copy", "--all", f"oci-archive:{tmp_path}/archive.tar:multi",
           f"oci:{tmp_path}/from-archive:multi")
    with pytest.raises(ValueError, match="OCI-format"):
        testimage.write_oci_layout(testimage.busybox_image(format="docker"), str(tmp_path), "d")


def test_docker_archive_read_by_skopeo(tmp_path):
    image = testimage.multilayer_image("docker")
    digests = testimage.write_docker_archive(image, str(tmp_path / "saved.tar"), ["ml:v1"])
    inspected = json.loads(skopeo("inspect", f"docker-archive:{tmp_path}/saved.tar:ml:v1"))
    assert inspected["Layers"] == digests["diff_ids"]  # the archive holds uncompressed tars
    skopeo("copy", f"docker-archive:{tmp_path}/saved.tar", f"oci:{tmp_path}/from-archive:v1")
    config = json.loads(skopeo("inspect", "--config", f"oci:{tmp_path}/from-archive:v1"))
    assert config["rootfs"]["diff_ids"] == digests["diff_ids"]


# --- hostile registry ------------------------------------------------------------------------

@pytest.fixture
def hostile():
    with HostileRegistry() as registry:
        registry.add_image("busybox", "v1", testimage.busybox_image())
        yield registry


BLOB = testimage.busybox_image().layers[0].blob


def fetch(registry, path, headers=None, method="GET", timeout=10):
    """(status, headers, body); a body cut short raises http.client.IncompleteRead."""
    connection = http.client.HTTPConnection(registry.address, timeout=timeout)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_hostile_serves_an_image(hostile):
    image = testimage.busybox_image()
    assert fetch(hostile, "/v2/")[0] == 200
    status, headers, body = fetch(hostile, "/v2/busybox/manifests/v1")
    assert status == 200 and body == image.manifest.data
    assert headers["Content-Type"] == testimage.OCI_MANIFEST
    assert headers["Docker-Content-Digest"] == image.manifest.digest
    assert fetch(hostile, f"/v2/busybox/manifests/{image.manifest.digest}")[2] == body
    status, headers, body = fetch(hostile, f"/v2/busybox/blobs/{BLOB.digest}", method="HEAD")
    assert status == 200 and int(headers["Content-Length"]) == BLOB.size and body == b""
    assert sha256(fetch(hostile, f"/v2/busybox/blobs/{BLOB.digest}")[2]) == BLOB.digest
    status, _, body = fetch(hostile, "/v2/busybox/manifests/nope")
    assert status == 404 and b"MANIFEST_UNKNOWN" in body


def test_hostile_ranges(hostile):
    path = f"/v2/busybox/blobs/{BLOB.digest}"
    status, headers, body = fetch(hostile, path, {"Range": "bytes=1000-"})
    assert status == 206 and body == BLOB.data[1000:]
    assert headers["Content-Range"] == f"bytes 1000-{BLOB.size - 1}/{BLOB.size}"
    assert fetch(hostile, path, {"Range": "bytes=10-19"})[2] == BLOB.data[10:20]
    assert fetch(hostile, path, {"Range": f"bytes={BLOB.size}-"})[0] == 416
    hostile.misbehave(IgnoreRange(), match=path, times=1)
    status, _, body = fetch(hostile, path, {"Range": "bytes=1000-"})
    assert status == 200 and body == BLOB.data
    assert [r.header("range") for r in hostile.requests_to(path)] == [
        "bytes=1000-", "bytes=10-19", f"bytes={BLOB.size}-", "bytes=1000-"]
    with HostileRegistry(range_requests=False) as plain:
        plain.add_image("busybox", "v1", testimage.busybox_image())
        assert fetch(plain, path, {"Range": "bytes=1000-"})[0] == 200


def test_hostile_statuses(hostile):
    path = "/v2/busybox/manifests/v1"
    hostile.misbehave(Status(503), match=path, times=2)
    assert [fetch(hostile, path)[0] for _ in range(3)] == [503, 503, 200]
    hostile.misbehave(unauthorized('Basic realm="hostile"'), match=path, times=1)
    status, headers, _ = fetch(hostile, path)
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="hostile"'
    fetch(hostile, path, {"Authorization": "Basic bW9ub2NyaTpwYXNz"})
    assert hostile.requests[-1].header("authorization") == "Basic bW9ub2NyaTpwYXNz"
    hostile.misbehave(Status(404), match="/blobs/", method="GET")
    assert fetch(hostile, f"/v2/busybox/blobs/{BLOB.digest}")[0] == 404
    assert fetch(hostile, f"/v2/busybox/blobs/{BLOB.digest}", method="HEAD")[0] == 200
    hostile.clear_faults()
    assert fetch(hostile, f"/v2/busybox/blobs/{BLOB.digest}")[0] == 200


def test_hostile_bodies(hostile):
    path = f"/v2/busybox/blobs/{BLOB.digest}"
    hostile.misbehave(CorruptBody(), match=path, times=1)
    status, _, body = fetch(hostile, path)
    assert status == 200 and len(body) == BLOB.size and sha256(body) != BLOB.digest

    hostile.misbehave(TruncatedBody(1000), match=path, times=1)
    with pytest.raises(http.client.IncompleteRead) as cut:
        fetch(hostile, path)
    assert len(cut.value.partial) == 1000

    hostile.misbehave(Stall(after_bytes=500, seconds=0.5), match=path, times=1)
    started = time.monotonic()
    with pytest.raises(http.client.IncompleteRead) as cut:
        fetch(hostile, path)
    assert len(cut.value.partial) == 500 and time.monotonic() - started >= 0.5


def test_hostile_manifests_a_puller_must_refuse(hostile):
    hostile.add_schema1_manifest("old", "v1")
    status, headers, body = fetch(hostile, "/v2/old/manifests/v1")
    assert json.loads(body)["schemaVersion"] == 1
    assert headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v1+prettyjws"
    hostile.add_unknown_manifest("odd", "v1")
    assert fetch(hostile, "/v2/odd/manifests/v1")[1]["Content-Type"].startswith(
        "application/vnd.example.")

    hostile.add_huge_manifest("huge", "v1")
    connection = http.client.HTTPConnection(hostile.address, timeout=10)
    connection.request("GET", "/v2/huge/manifests/v1")
    response = connection.getresponse()
    assert int(response.getheader("Content-Length")) == 100 << 20
    total, last = 0, b""
    while chunk := response.read(1 << 20):
        total, last = total + len(chunk), chunk
    connection.close()
    assert total == 100 << 20 and last.endswith(b'"layers": []}')


def test_hostile_records_concurrent_requests(hostile):
    path = f"/v2/busybox/blobs/{BLOB.digest}"
    hostile.misbehave(Stall(after_bytes=100, seconds=0.3), match=path)  # keeps both in flight
    received = []

    def pull():
        try:
            fetch(hostile, path, {"Authorization": "Bearer t"})
        except http.client.IncompleteRead as cut:
            received.append(len(cut.partial))

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert received == [100, 100]
    assert [(r.method, r.header("Authorization")) for r in hostile.requests_to(path)] == [
        ("GET", "Bearer t"), ("GET", "Bearer t")]


def test_skopeo_pulls_from_hostile(hostile, tmp_path):
    index = testimage.multiplatform_image("docker")
    hostile.add_image("multi", "v1", index)
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{hostile.address}/multi:v1",
           f"oci:{tmp_path}/copy:v1")
    manifest_get = hostile.requests_to("/v2/multi/manifests/v1")[0]
    assert testimage.DOCKER_MANIFEST_LIST in manifest_get.header("accept")
    shared = index.images[0].layers[0].blob.digest  # the busybox layer of all three images
    assert len(hostile.requests_to(f"/blobs/{shared}", method="GET")) == 1
