"""Images through the CRI ImageService, against real registries (Debian's docker-registry, with
and without basic or token auth) and a scripted hostile one, with real images built from
busybox-static by tools/testimage. Assertions are on what the store and the registry hold."""
import base64
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../tools/testimage"))

import testimage as ti  # noqa: E402
from hostile_registry import (CorruptBody, HostileRegistry, IgnoreRange, Stall,  # noqa: E402
                              TruncatedBody)
from hostile_registry import Status as Fault  # noqa: E402
from monocri_harness import (BIN, SANITIZED, Daemon, api_pb2, assert_serving,  # noqa: E402
                             children_of, run_monoctl, status_kib_of, unary)
from registry import BasicAuthRegistry, Registry, TokenAuthRegistry  # noqa: E402

IMAGE = "/runtime.v1.ImageService/"
PROBE = os.path.join(BIN, "rootfs-probe")


# ---- helpers ----

def insecure(*addresses, extra=""):
    """registries.conf naming test registries (plain HTTP on 127.0.0.1) as insecure."""
    entries = "".join(f'[[registry]]\nlocation = "{a}"\ninsecure = true\n\n' for a in addresses)
    return extra + "\n" + entries


@pytest.fixture
def make_daemon(tmp_path):
    started = []

    def make(conf="", args=(), config=None):
        work = tmp_path / f"daemon{len(started)}"
        work.mkdir()
        conf_path = work / "registries.conf"
        conf_path.write_text(conf)
        daemon = Daemon(str(work), args=["--registries-conf", str(conf_path), *args],
                        config=config)
        daemon.start()
        daemon.conf_path = conf_path
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        if daemon.alive():
            assert daemon.stop() == 0, daemon.log()


@pytest.fixture(scope="module")
def registry():
    with Registry() as r:
        yield r


def pull(daemon, image, auth=None, timeout=120):
    request = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image))
    if auth:
        request.auth.CopyFrom(auth)
    with daemon.channel() as ch:
        return unary(ch, IMAGE + "PullImage", request, api_pb2.PullImageResponse,
                     timeout=timeout).image_ref


def pull_error(daemon, image, auth=None, timeout=120):
    with pytest.raises(grpc.RpcError) as error:
        pull(daemon, image, auth, timeout)
    return error.value


def status(daemon, image, verbose=False):
    with daemon.channel() as ch:
        return unary(ch, IMAGE + "ImageStatus",
                     api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image),
                                                verbose=verbose),
                     api_pb2.ImageStatusResponse)


def images(daemon):
    with daemon.channel() as ch:
        return list(unary(ch, IMAGE + "ListImages", api_pb2.ListImagesRequest(),
                          api_pb2.ListImagesResponse).images)


def remove(daemon, image):
    with daemon.channel() as ch:
        unary(ch, IMAGE + "RemoveImage",
              api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=image)),
              api_pb2.RemoveImageResponse)


def fsinfo(daemon):
    with daemon.channel() as ch:
        return unary(ch, IMAGE + "ImageFsInfo", api_pb2.ImageFsInfoRequest(),
                     api_pb2.ImageFsInfoResponse).image_filesystems[0]


def store(daemon):
    return Path(daemon.root) / "image"


def layer_dirs(daemon):
    """Layers of the store (a removed one is renamed away at once, then deleted)."""
    return sorted(p.name for p in (store(daemon) / "layers").iterdir()
                  if p.is_dir() and ".removing" not in p.name)


def assert_store_clean(daemon):
    """Nothing half-written that a later pull or a restart would trust."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        leftovers = [p.name for p in (store(daemon) / "ingest").iterdir()]
        leftovers += [p.name for p in (store(daemon) / "layers").iterdir()
                      if ".unpacking" in p.name or ".removing" in p.name]
        if not leftovers:
            break
        time.sleep(0.1)
    assert not leftovers, leftovers
    layers = store(daemon) / "layers"
    dirs = {p.name for p in layers.iterdir() if p.is_dir()}
    records = {p.name[:-5] for p in layers.iterdir() if p.name.endswith(".json")}
    assert dirs == records, "every layer directory has its record and no record lacks one"


def hostile_layer(members):
    """A gzip layer from raw tar members (TarInfo, bytes or None): what testimage would refuse
    to build."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    tar_bytes = raw.getvalue()
    compressed = gzip.compress(tar_bytes, mtime=0)
    return ti.Layer(ti.Blob.from_bytes(compressed), "sha256:" + hashlib.sha256(tar_bytes).hexdigest(),
                    len(tar_bytes), "gzip", "hostile layer")


def tarinfo(name, kind=tarfile.REGTYPE, size=0, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.linkname = linkname
    info.mode = 0o644
    return info


# ---- pulls from a real registry ----

@pytest.fixture(scope="module")
def pushed(registry):
    """The images every pull test uses, pushed once: name -> digests()."""
    kinds = {
        "oci/gzip": ti.busybox_image(compression="gzip"),
        "oci/zstd": ti.busybox_image(compression="zstd"),
        "oci/none": ti.busybox_image(compression="none"),
        "docker/gzip": ti.busybox_image(compression="gzip", format="docker"),
        "docker/none": ti.busybox_image(compression="none", format="docker"),
        "multilayer": ti.multilayer_image(),
        "user-numeric": ti.busybox_image(container=ti.ContainerConfig(user="1000:1000")),
        "user-named": ti.busybox_image(container=ti.ContainerConfig(user="app")),
        "multiplatform": ti.multiplatform_image(),
        "multiplatform-docker": ti.multiplatform_image(format="docker"),
    }
    return {name: ti.push(target, registry.address, "test/" + name, "1.0")
            for name, target in kinds.items()}


@pytest.mark.parametrize("kind", ["oci/gzip", "oci/zstd", "oci/none", "docker/gzip",
                                  "docker/none", "multilayer"])
def test_pull_records_what_the_registry_has(make_daemon, registry, pushed, kind):
    daemon = make_daemon(insecure(registry.address))
    name = f"{registry.address}/test/{kind}"
    digests = pushed[kind]
    ref = pull(daemon, name + ":1.0")
    assert ref == digests["image_id"]
    image = status(daemon, name + ":1.0", verbose=True).image
    assert image.id == digests["config_digest"]
    assert list(image.repo_tags) == [name + ":1.0"]
    assert list(image.repo_digests) == [name + "@" + digests["manifest_digest"]]
    assert image.size == digests["config_size"] + sum(l["size"] for l in digests["layers"])
    info = json.loads(status(daemon, ref, verbose=True).info["info"])
    assert [l["diffId"] for l in info["layers"]] == digests["diff_ids"]
    assert [l["mediaType"] for l in info["layers"]] == [l["media_type"] for l in digests["layers"]]
    assert info["imageSpec"]["rootfs"]["diff_ids"] == digests["diff_ids"]
    # Every layer unpacked once, the downloaded blobs not kept.
    assert layer_dirs(daemon) == sorted({d.split(":")[1] for d in digests["diff_ids"]})
    for layer in info["layers"]:
        assert (Path(layer["path"]) / "bin" / "busybox").exists() or "busybox" not in kind
    assert_store_clean(daemon)


def test_the_unpacked_busybox_is_the_real_one(make_daemon, registry, pushed):
    daemon = make_daemon(insecure(registry.address))
    ref = pull(daemon, f"{registry.address}/test/oci/zstd:1.0")
    diff_id = pushed["oci/zstd"]["diff_ids"][0].split(":")[1]
    busybox = store(daemon) / "layers" / diff_id / "bin" / "busybox"
    assert busybox.read_bytes() == Path("/bin/busybox").read_bytes()
    assert os.stat(busybox).st_mode & 0o777 == 0o755
    assert os.readlink(store(daemon) / "layers" / diff_id / "bin" / "sh") in ("busybox",
                                                                               "/bin/busybox")
    assert status(daemon, ref).image.id == ref


def test_layers_are_shared_between_images(make_daemon, registry, pushed):
    daemon = make_daemon(insecure(registry.address))
    pull(daemon, f"{registry.address}/test/oci/gzip:1.0")
    assert len(layer_dirs(daemon)) == 1
    pull(daemon, f"{registry.address}/test/multilayer:1.0")  # same busybox base layer
    assert len(layer_dirs(daemon)) == 4
    remove(daemon, f"{registry.address}/test/multilayer:1.0")
    assert len(layer_dirs(daemon)) == 1, "the shared base layer stays with the other image"
    assert_store_clean(daemon)


def test_image_users(make_daemon, registry, pushed):
    daemon = make_daemon(insecure(registry.address))
    pull(daemon, f"{registry.address}/test/user-numeric:1.0")
    pull(daemon, f"{registry.address}/test/user-named:1.0")
    numeric = status(daemon, f"{registry.address}/test/user-numeric:1.0").image
    named = status(daemon, f"{registry.address}/test/user-named:1.0").image
    assert numeric.HasField("uid") and numeric.uid.value == 1000 and numeric.username == ""
    assert not named.HasField("uid") and named.username == "app"


def test_status_of_an_absent_image_is_empty_not_an_error(make_daemon):
    daemon = make_daemon()
    assert not status(daemon, "nothing/here:1").HasField("image")


@pytest.mark.parametrize("kind", ["multiplatform", "multiplatform-docker"])
def test_an_index_resolves_to_this_node(make_daemon, registry, pushed, kind):
    daemon = make_daemon(insecure(registry.address))
    name = f"{registry.address}/test/{kind}"
    ref = pull(daemon, name + ":1.0")
    amd64 = next(m for m in pushed[kind]["manifests"] if m["platform"] == "linux/amd64")
    assert ref == amd64["image_id"]
    image = status(daemon, ref).image
    # The repo digest is the index's: what the registry reports for the tag.
    assert list(image.repo_digests) == [name + "@" + pushed[kind]["manifest_digest"]]
    platform_file = store(daemon) / "layers" / amd64["diff_ids"][-1].split(":")[1] / "platform"
    assert platform_file.read_text().strip() == "linux/amd64"


def test_pull_by_digest(make_daemon, registry, pushed):
    daemon = make_daemon(insecure(registry.address))
    digest = pushed["oci/gzip"]["manifest_digest"]
    ref = pull(daemon, f"{registry.address}/test/oci/gzip@{digest}")
    image = status(daemon, ref).image
    assert list(image.repo_tags) == [], "a digest pins no tag"
    assert list(image.repo_digests) == [f"{registry.address}/test/oci/gzip@{digest}"]


# ---- registries.conf ----

def test_short_names_use_the_search_registries(make_daemon, registry, pushed):
    conf = insecure(registry.address,
                    extra=f'unqualified-search-registries = ["{registry.address}"]\n')
    daemon = make_daemon(conf)
    ref = pull(daemon, "test/oci/gzip:1.0")
    assert ref == pushed["oci/gzip"]["image_id"]
    assert status(daemon, "test/oci/gzip:1.0").image.id == ref  # resolved the same way
    assert list(status(daemon, ref).image.repo_tags) == [f"{registry.address}/test/oci/gzip:1.0"]


def test_mirrors_are_tried_first_then_the_primary(make_daemon, tmp_path):
    with Registry() as mirror, Registry() as primary:
        only_on_mirror = ti.push(ti.busybox_image(), mirror.address, "team/app", "1")
        only_on_primary = ti.push(ti.busybox_image(compression="zstd"), primary.address,
                                  "team/other", "1")
        conf = (f'[[registry]]\nprefix = "images.example.test"\nlocation = "{primary.address}"\n'
                f'insecure = true\n[[registry.mirror]]\nlocation = "{mirror.address}"\n'
                f'insecure = true\n')
        daemon = make_daemon(conf)
        assert pull(daemon, "images.example.test/team/app:1") == only_on_mirror["image_id"]
        # Not on the mirror: the primary has it.
        assert pull(daemon, "images.example.test/team/other:1") == only_on_primary["image_id"]
        # Names stay the image's own, not the mirror's.
        tags = sorted(t for i in images(daemon) for t in i.repo_tags)
        assert tags == ["images.example.test/team/app:1", "images.example.test/team/other:1"]


def test_a_blocked_registry_is_refused(make_daemon, registry):
    daemon = make_daemon(f'[[registry]]\nlocation = "{registry.address}"\nblocked = true\n')
    error = pull_error(daemon, f"{registry.address}/test/oci/gzip:1.0")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "blocked" in error.details()


def test_a_changed_registries_conf_is_used_without_restart(make_daemon, registry, pushed):
    daemon = make_daemon("")  # not insecure: TLS to a plain HTTP registry fails
    error = pull_error(daemon, f"{registry.address}/test/oci/gzip:1.0")
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    time.sleep(0.01)
    daemon.conf_path.write_text(insecure(registry.address))
    assert pull(daemon, f"{registry.address}/test/oci/gzip:1.0") == pushed["oci/gzip"]["image_id"]
    assert "reloaded" in daemon.log()


# ---- authentication ----

def test_basic_auth(make_daemon):
    with BasicAuthRegistry() as reg:
        pushed = ti.push(ti.busybox_image(), reg.address, "private/app", "1",
                         username=reg.username, password=reg.password)
        daemon = make_daemon(insecure(reg.address))
        name = f"{reg.address}/private/app:1"
        assert pull_error(daemon, name).code() == grpc.StatusCode.UNAUTHENTICATED
        wrong = api_pb2.AuthConfig(username=reg.username, password="wrong")
        error = pull_error(daemon, name, wrong)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "refused the credentials" in error.details()
        good = api_pb2.AuthConfig(username=reg.username, password=reg.password)
        assert pull(daemon, name, good) == pushed["image_id"]
        remove(daemon, name)
        encoded = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
        assert pull(daemon, name, api_pb2.AuthConfig(auth=encoded)) == pushed["image_id"]
        remove(daemon, name)
        # Credentials given for another registry are not sent to this one.
        elsewhere = api_pb2.AuthConfig(username=reg.username, password=reg.password,
                                       server_address="https://other.example.test")
        assert pull_error(daemon, name, elsewhere).code() == grpc.StatusCode.UNAUTHENTICATED
        assert_store_clean(daemon)


def test_token_auth(make_daemon):
    with TokenAuthRegistry() as reg:
        pushed = ti.push(ti.multilayer_image(), reg.address, "private/app", "1",
                         username=reg.username, password=reg.password)
        daemon = make_daemon(insecure(reg.address))
        name = f"{reg.address}/private/app:1"
        assert pull_error(daemon, name).code() == grpc.StatusCode.UNAUTHENTICATED
        before = len(reg.token_server.requests)
        creds = api_pb2.AuthConfig(username=reg.username, password=reg.password)
        assert pull(daemon, name, creds) == pushed["image_id"]
        # One token for the manifest, the config and all four layers.
        fetched = [r for r in reg.token_server.requests[before:] if r.username == reg.username]
        assert len(fetched) == 1, reg.token_server.requests[before:]
        remove(daemon, name)
        # docker login's identity token, exchanged with an OAuth2 refresh-token grant.
        assert pull(daemon, name, api_pb2.AuthConfig(
            identity_token=reg.token_server.identity_token)) == pushed["image_id"]
        assert any(r.grant_type == "refresh_token" for r in reg.token_server.requests)
        remove(daemon, name)
        # A registry token is used as the bearer token as is.
        token = reg.token_server.issue(reg.username, ["repository:private/app:pull"])
        assert pull(daemon, name, api_pb2.AuthConfig(registry_token=token)) == pushed["image_id"]


def test_anonymous_token_flow(make_daemon):
    with TokenAuthRegistry(anonymous_pull=True) as reg:
        pushed = ti.push(ti.busybox_image(), reg.address, "public/app", "1",
                         username=reg.username, password=reg.password)
        daemon = make_daemon(insecure(reg.address))
        assert pull(daemon, f"{reg.address}/public/app:1") == pushed["image_id"]
        assert any(r.username in ("", None) for r in reg.token_server.requests)


# ---- a registry that misbehaves ----

@pytest.fixture
def hostile():
    with HostileRegistry() as reg:
        yield reg


def test_two_pulls_at_once_share_the_downloads(make_daemon, hostile):
    target = ti.multilayer_image()
    hostile.add_image("team/app", "1", target)
    daemon = make_daemon(insecure(hostile.address))
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        pull(daemon, f"{hostile.address}/team/app:1"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [target.config.digest] * 3
    for layer in target.layers:
        assert len(hostile.requests_to(layer.blob.digest, "GET")) == 1, layer.blob.digest


def test_a_cut_download_is_resumed_with_range(make_daemon, hostile):
    target = ti.busybox_image()
    hostile.add_image("team/app", "1", target)
    blob = target.layers[0].blob
    hostile.misbehave(TruncatedBody(sent_bytes=300_000), match=blob.digest, times=1)
    daemon = make_daemon(insecure(hostile.address))
    assert pull(daemon, f"{hostile.address}/team/app:1") == target.config.digest
    gets = hostile.requests_to(blob.digest, "GET")
    assert len(gets) == 2
    assert gets[1].header("Range") == "bytes=300000-"
    assert "retrying" in daemon.log()


def test_a_registry_that_ignores_range_gets_a_fresh_start(make_daemon, hostile):
    target = ti.busybox_image()
    hostile.add_image("team/app", "1", target)
    blob = target.layers[0].blob
    hostile.misbehave(TruncatedBody(sent_bytes=300_000), match=blob.digest, times=1)
    hostile.misbehave(IgnoreRange(), match=blob.digest)
    daemon = make_daemon(insecure(hostile.address))
    assert pull(daemon, f"{hostile.address}/team/app:1") == target.config.digest


def test_transient_errors_are_retried(make_daemon, hostile):
    target = ti.busybox_image()
    hostile.add_image("team/app", "1", target)
    hostile.misbehave(Fault(503), match="/manifests/", times=2)
    hostile.misbehave(Fault(500), match=target.layers[0].blob.digest, times=2)
    daemon = make_daemon(insecure(hostile.address))
    assert pull(daemon, f"{hostile.address}/team/app:1") == target.config.digest


@pytest.mark.parametrize("fault,code,words", [
    (CorruptBody(), grpc.StatusCode.DATA_LOSS, "does not match its digest"),
    (TruncatedBody(sent_bytes=1000), grpc.StatusCode.UNAVAILABLE, ""),
    (Fault(404), grpc.StatusCode.NOT_FOUND, "not found"),
    (Fault(500), grpc.StatusCode.UNAVAILABLE, "HTTP 500"),
    (Fault(403), grpc.StatusCode.PERMISSION_DENIED, "denied"),
])
def test_bad_layer_downloads_fail_cleanly(make_daemon, hostile, fault, code, words):
    target = ti.busybox_image()
    hostile.add_image("team/app", "1", target)
    hostile.misbehave(fault, match=target.layers[0].blob.digest)
    daemon = make_daemon(insecure(hostile.address))
    error = pull_error(daemon, f"{hostile.address}/team/app:1")
    assert error.code() == code, error.details()
    assert words in error.details()
    assert images(daemon) == []
    assert layer_dirs(daemon) == []
    assert_store_clean(daemon)
    assert_serving(daemon)


@pytest.mark.parametrize("setup,code,words", [
    (lambda r: r.misbehave(Fault(404), match="/manifests/"), grpc.StatusCode.NOT_FOUND,
     "not found"),
    (lambda r: r.misbehave(Fault(401), match="/manifests/"), grpc.StatusCode.UNAUTHENTICATED,
     "requires authentication"),
    (lambda r: r.misbehave(Fault(500), match="/manifests/"), grpc.StatusCode.UNAVAILABLE,
     "HTTP 500"),
    (lambda r: r.add_unknown_manifest("team/app", "1"), grpc.StatusCode.FAILED_PRECONDITION,
     "unsupported manifest media type"),
    (lambda r: r.add_schema1_manifest("team/app", "1"), grpc.StatusCode.FAILED_PRECONDITION,
     "schema1"),
])
def test_bad_manifests_fail_cleanly(make_daemon, hostile, setup, code, words):
    hostile.add_image("team/app", "1", ti.busybox_image())
    setup(hostile)
    daemon = make_daemon(insecure(hostile.address))
    error = pull_error(daemon, f"{hostile.address}/team/app:1")
    assert error.code() == code, error.details()
    assert words in error.details()
    assert images(daemon) == []
    assert_store_clean(daemon)
    assert_serving(daemon)


def test_a_100_mib_manifest_is_refused_unread(make_daemon, hostile):
    hostile.add_huge_manifest("team/app", "1")
    daemon = make_daemon(insecure(hostile.address))
    before = daemon.status_kib("VmHWM")
    start = time.monotonic()
    error = pull_error(daemon, f"{hostile.address}/team/app:1")
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert time.monotonic() - start < 10
    # Growth, not level: under ASan the baseline is shadow memory. 100 MiB would show either way.
    assert daemon.status_kib("VmHWM") - before < (64 if SANITIZED else 16) * 1024, \
        "the daemon never held it"
    if not SANITIZED:
        for worker in children_of(daemon.pid):
            assert status_kib_of(worker, "VmHWM") < 32 * 1024, "the image worker never held it"
    assert_serving(daemon)


def test_a_registry_that_stalls_mid_blob_times_out(make_daemon, hostile):
    target = ti.busybox_image()
    hostile.add_image("team/app", "1", target)
    hostile.misbehave(Stall(after_bytes=50_000, seconds=30), match=target.layers[0].blob.digest)
    daemon = make_daemon(insecure(hostile.address), args=["--pull-progress-timeout-ms", "1000"])
    start = time.monotonic()
    error = pull_error(daemon, f"{hostile.address}/team/app:1")
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "stopped sending" in error.details()
    assert time.monotonic() - start < 25, "four attempts of about a second, and the backoff"
    assert len(hostile.requests_to(target.layers[0].blob.digest, "GET")) == 4
    assert_store_clean(daemon)


@pytest.mark.parametrize("members,words", [
    ([(tarinfo("../escape", size=3), b"bad")], "climbs out"),
    ([(tarinfo("ok/../../escape", size=3), b"bad")], "climbs out"),
    ([(tarinfo("link", tarfile.SYMTYPE, linkname="/"), None),
      (tarinfo("link/escape", size=3), b"bad")], "link out of the layer"),
    ([(tarinfo("up", tarfile.SYMTYPE, linkname="../../../.."), None),
      (tarinfo("up/escape", size=3), b"bad")], "link out of the layer"),
    ([(tarinfo("hard", tarfile.LNKTYPE, linkname="../../../../etc/passwd"), None)],
     "hardlink that leaves the layer"),
])
def test_malicious_layers_are_refused_and_touch_nothing_outside(make_daemon, hostile, tmp_path,
                                                               members, words):
    layer = hostile_layer([(tarinfo("bin", tarfile.DIRTYPE), None), *members])
    target = ti.build_image([layer])
    hostile.add_image("evil/app", "1", target)
    daemon = make_daemon(insecure(hostile.address))
    before = sorted(os.listdir(daemon.dir)), sorted(os.listdir("/"))
    error = pull_error(daemon, f"{hostile.address}/evil/app:1")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert words in error.details()
    assert (sorted(os.listdir(daemon.dir)), sorted(os.listdir("/"))) == before
    for place in (Path(daemon.dir), Path(daemon.root), Path(daemon.root) / "image",
                  Path("/escape")):
        assert not (place / "escape").exists()
    assert Path("/etc/passwd").stat().st_nlink == 1
    assert images(daemon) == [] and layer_dirs(daemon) == []
    assert_store_clean(daemon)
    assert_serving(daemon)


def test_an_interrupted_pull_leaves_nothing_trusted(make_daemon, hostile):
    target = ti.busybox_image()
    hostile.add_image("team/app", "1", target)
    hostile.misbehave(Stall(after_bytes=200_000, seconds=60), match=target.layers[0].blob.digest)
    daemon = make_daemon(insecure(hostile.address))
    puller = threading.Thread(target=lambda: pull_error(daemon, f"{hostile.address}/team/app:1"))
    puller.start()
    deadline = time.monotonic() + 20
    while not list((store(daemon) / "ingest").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list((store(daemon) / "ingest").iterdir()), "the download started"
    daemon.proc.send_signal(signal.SIGKILL)  # the daemon dies mid-download
    daemon.proc.wait()
    puller.join(30)
    hostile.clear_faults()
    daemon.start()
    assert list((store(daemon) / "ingest").iterdir()) == []
    assert images(daemon) == [] and layer_dirs(daemon) == []
    assert pull(daemon, f"{hostile.address}/team/app:1") == target.config.digest


# ---- removal, pinning, usage ----

def test_remove_semantics(make_daemon, registry, pushed):
    daemon = make_daemon(insecure(registry.address))
    name = f"{registry.address}/test/oci/gzip"
    ref = pull(daemon, name + ":1.0")
    ti.push(ti.busybox_image(compression="gzip"), registry.address, "test/oci/gzip", "latest")
    pull(daemon, name + ":latest")  # the same image, a second tag
    assert sorted(status(daemon, ref).image.repo_tags) == [name + ":1.0", name + ":latest"]
    remove(daemon, name + ":latest")  # one of two tags: only untagged
    assert list(status(daemon, ref).image.repo_tags) == [name + ":1.0"]
    remove(daemon, ref[7:19])  # a unique id prefix
    assert not status(daemon, ref).HasField("image")
    assert layer_dirs(daemon) == []
    remove(daemon, ref)  # idempotent
    remove(daemon, "never/pulled:1")
    assert_store_clean(daemon)


def test_pinned_images_are_kept(make_daemon, registry, pushed):
    name = f"{registry.address}/test/oci/zstd:1.0"
    daemon = make_daemon(insecure(registry.address),
                         config=f'pinned_images = ["{name}"]\n')
    ref = pull(daemon, name)
    assert status(daemon, ref).image.pinned
    with daemon.channel() as ch:
        with pytest.raises(grpc.RpcError) as error:
            unary(ch, IMAGE + "RemoveImage",
                  api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=ref)),
                  api_pb2.RemoveImageResponse)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "pinned" in error.value.details()
    assert status(daemon, ref).HasField("image")


def test_imagefsinfo_follows_the_store(make_daemon, registry, pushed):
    daemon = make_daemon(insecure(registry.address))
    empty = fsinfo(daemon)
    assert empty.fs_id.mountpoint == str(store(daemon))
    ref = pull(daemon, f"{registry.address}/test/multilayer:1.0")
    full = fsinfo(daemon)
    # busybox alone is 2 MB on disk and about 400 files and links.
    assert full.used_bytes.value - empty.used_bytes.value > 1_900_000
    assert full.inodes_used.value - empty.inodes_used.value > 30
    measured = int(subprocess.run(["du", "-sB1", str(store(daemon) / "layers")],
                                  capture_output=True, text=True).stdout.split()[0])
    assert abs(full.used_bytes.value - measured) < 200_000, (full.used_bytes.value, measured)
    remove(daemon, ref)
    assert fsinfo(daemon).used_bytes.value <= empty.used_bytes.value + 8192


def test_the_daemon_stays_small_while_pulling(make_daemon, registry, tmp_path):
    big = ti.sized_image(40_000_000, str(tmp_path), layers=4)
    ti.push(big, registry.address, "test/big", "1")
    daemon = make_daemon(insecure(registry.address))
    pull(daemon, f"{registry.address}/test/big:1")
    # The downloads and unpacking happened in the image worker, not in the daemon.
    if not SANITIZED:  # ASan's shadow and quarantine: LeakSanitizer checks the daemon instead
        assert daemon.status_kib("VmHWM") < 12 * 1024


# ---- container root filesystems (through rootfs-probe, with the daemon stopped) ----

def probe(daemon, *args):
    return subprocess.run([PROBE, daemon.root, daemon.run_root, *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("mode", ["overlay", "copy"])
def test_container_rootfs_shows_the_layers_as_overlayfs_would(make_daemon, registry, pushed, mode):
    daemon = make_daemon(insecure(registry.address))
    name = f"{registry.address}/test/multilayer:1.0"
    ref = pull(daemon, name)
    assert daemon.stop() == 0
    result = probe(daemon, "mount", "c1", ref, *(["--copy"] if mode == "copy" else []))
    assert result.returncode == 0, result.stderr
    rootfs = Path(result.stdout.strip())
    try:
        assert (rootfs / "data" / "keep").exists()
        assert not (rootfs / "data" / "remove-me").exists(), "whiteout"
        assert sorted(os.listdir(rootfs / "data" / "opaque")) == ["new"], "opaque directory"
        # The image runs: its own busybox, inside its own root.
        run = subprocess.run(["chroot", str(rootfs), "/bin/busybox", "sh", "-c",
                              "echo hello from $(id -u) && ls /data/opaque"],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == ["hello", "from", "0", "new"]
        (rootfs / "written").write_text("by the container")
        if mode == "overlay":
            upper = Path(daemon.root) / "containers" / "c1" / "upper"
            assert (upper / "written").read_text() == "by the container"
            layers = store(daemon) / "layers"
            assert not any((layers / d / "written").exists() for d in os.listdir(layers)
                           if (layers / d).is_dir()), "layers are never written"
        # (That an image a container uses cannot be removed is in test_containers.py, with a
        # real container: a rootfs without a container record is removed at start.)
    finally:
        removed = probe(daemon, "remove", "c1")
    assert removed.returncode == 0, removed.stderr
    assert not (Path(daemon.root) / "containers" / "c1").exists()
    daemon.start()
    remove(daemon, name)
    assert layer_dirs(daemon) == []


# ---- monoctl ----

def test_monoctl_image_verbs(make_daemon, registry, pushed, tmp_path):
    daemon = make_daemon(insecure(registry.address))
    endpoint = "unix://" + daemon.socket
    name = f"{registry.address}/test/multilayer:1.0"
    result = run_monoctl("-r", endpoint, "pull", name, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Image is up to date for {pushed['multilayer']['image_id']}"
    table = run_monoctl("-r", endpoint, "images").stdout.splitlines()
    assert table[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    row = table[1].split()
    assert row[:3] == [f"{registry.address}/test/multilayer", "1.0",
                       pushed["multilayer"]["image_id"][7:20]]
    assert run_monoctl("-r", endpoint, "images", "-q").stdout.split() == [
        pushed["multilayer"]["image_id"]]
    digests = run_monoctl("-r", endpoint, "images", "--digests").stdout.splitlines()
    assert digests[1].split()[2] == pushed["multilayer"]["manifest_digest"][7:20]
    listed = json.loads(run_monoctl("-r", endpoint, "images", "-o", "json").stdout)
    assert listed["images"][0]["repoTags"] == [name]
    inspected = json.loads(run_monoctl("-r", endpoint, "inspecti", name).stdout)
    assert inspected["status"]["id"] == pushed["multilayer"]["image_id"]
    assert len(inspected["info"]["layers"]) == 4
    usage = json.loads(run_monoctl("-r", endpoint, "imagefsinfo").stdout)
    assert int(usage["imageFilesystems"][0]["usedBytes"]["value"]) > 0
    result = run_monoctl("-r", endpoint, "rmi", name)
    assert result.returncode == 0 and result.stdout.strip() == f"Deleted: {name}"
    assert run_monoctl("-r", endpoint, "images", "-q").stdout.strip() == ""
    missing = run_monoctl("-r", endpoint, "pull", f"{registry.address}/test/nothing:1")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr


@pytest.mark.parametrize("form", ["oci-layout", "oci-archive", "docker-archive"])
def test_air_gapped_import(make_daemon, tmp_path, form):
    target = ti.multilayer_image(format="docker" if form == "docker-archive" else "oci")
    path = tmp_path / form
    if form == "oci-layout":
        ti.write_oci_layout(target, str(path), tag="2.0")
    elif form == "oci-archive":
        ti.write_oci_archive(target, str(path), tag="2.0")
    else:
        ti.write_docker_archive(target, str(path), repo_tags=["airgap.example/app:2.0"])
    daemon = make_daemon()
    args = ["-r", "unix://" + daemon.socket, "import", str(path)]
    if form != "docker-archive":
        args += ["--name", "airgap.example/app"]
    result = run_monoctl(*args, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Imported", target.config.digest, "airgap.example/app:2.0"]
    image = status(daemon, "airgap.example/app:2.0").image
    assert image.id == target.config.digest
    assert len(layer_dirs(daemon)) == 4
    assert_store_clean(daemon)


def test_importing_garbage_is_a_clear_error(make_daemon, tmp_path):
    daemon = make_daemon()
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(10_000))
    result = run_monoctl("-r", "unix://" + daemon.socket, "import", str(junk))
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr and "junk.tar" in result.stderr
    missing = run_monoctl("-r", "unix://" + daemon.socket, "import", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    assert images(daemon) == []
    assert_store_clean(daemon)
