#!/usr/bin/python3
"""Real OCI and Docker images for monocri's tests and benchmarks, built from Debian's
busybox-static, and the ways to hand them over: a push to a registry (Registry HTTP API v2), an
OCI image layout (directory or tarball), a docker-archive (`docker save`) tarball.

Everything is deterministic (fixed mtimes, sorted tar entries, seeded random content, fixed
JSON), so the same call gives the same bytes and digests on a machine (compressed bytes depend
on the zlib and zstd versions): tests assert on the digests these functions return.

    import testimage
    image = testimage.multilayer_image(format="oci")
    digests = testimage.push(image, "127.0.0.1:5000", "multilayer", "v1")
    digests["manifest_digest"], digests["config_digest"], digests["layers"][0]["diff_id"]

As a command (prints the digests as JSON):

    testimage.py push --registry 127.0.0.1:5000 --name busybox --tag v1 [--format docker]
    testimage.py oci-layout DIR --kind multilayer
    testimage.py docker-archive FILE --kind sized --size 200000000
"""
import argparse
import base64
import contextlib
import functools
import gzip
import hashlib
import http.client
import io
import json
import os
import posixpath
import random
import re
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import BinaryIO, Optional

import zstandard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
# Docker schema2 has no zstd layer type.
DOCKER_LAYER = {
    "none": "application/vnd.docker.image.rootfs.diff.tar",
    "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
}
MEDIA_TYPES = {
    "oci": {"manifest": OCI_MANIFEST, "index": OCI_INDEX, "config": OCI_CONFIG, "layer": OCI_LAYER},
    "docker": {"manifest": DOCKER_MANIFEST, "index": DOCKER_MANIFEST_LIST, "config": DOCKER_CONFIG,
               "layer": DOCKER_LAYER},
}
FORMATS = tuple(MEDIA_TYPES)
COMPRESSIONS = tuple(OCI_LAYER)
REF_NAME = "org.opencontainers.image.ref.name"

# One instant for every timestamp (tar mtimes, config "created"): same input, same digests.
CREATED = "2024-01-01T00:00:00Z"
FIXED_MTIME = 1704067200
BUSYBOX = "/bin/busybox"
BUSYBOX_APPLETS = (
    "sh", "ls", "cat", "echo", "sleep", "true", "false", "id", "env", "wget", "httpd", "nc",
    "mkdir", "rm", "touch", "stat", "head", "tail", "sync", "printf", "test", "grep", "sed", "wc",
    "date", "ps", "kill", "hostname", "mount", "chown", "chmod",
)
PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
          b"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
          b"app:x:1000:1000:app:/home/app:/bin/sh\n"
          b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = b"root:x:0:\ndaemon:x:1:\napp:x:1000:\nnogroup:x:65534:\n"
DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
COPY_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------------
# Layer entries: what a layer's tar holds, one class per kind of tar member.

def _tar_path(path):
    return posixpath.normpath(path).lstrip("/")


def _tarinfo(path, kind, mode, uid=0, gid=0):
    info = tarfile.TarInfo(_tar_path(path))
    info.type = kind
    info.mode = mode
    info.uid = uid
    info.gid = gid
    info.uname = info.gname = ""  # ownership is numeric only: the image's /etc/passwd decides names
    info.mtime = FIXED_MTIME
    return info


@dataclass
class File:
    """A regular file; `xattrs` are stored as PAX `SCHILY.xattr.<name>` records."""
    path: str
    content: bytes = field(default=b"", repr=False)
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    xattrs: dict = field(default_factory=dict)  # name -> bytes

    def tar_member(self):
        info = _tarinfo(self.path, tarfile.REGTYPE, self.mode, self.uid, self.gid)
        info.size = len(self.content)
        # tarfile takes PAX values as str; surrogateescape carries arbitrary bytes through.
        info.pax_headers = {f"SCHILY.xattr.{name}": value.decode("utf-8", "surrogateescape")
                            for name, value in self.xattrs.items()}
        return info, io.BytesIO(self.content)


@dataclass
class RandomFile:
    """A regular file of `size` incompressible bytes from a generator seeded with `seed`,
    streamed into the layer, never held in memory whole."""
    path: str
    size: int
    seed: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0

    def tar_member(self):
        info = _tarinfo(self.path, tarfile.REGTYPE, self.mode, self.uid, self.gid)
        info.size = self.size
        return info, _RandomReader(self.size, self.seed)


@dataclass
class Dir:
    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0

    def tar_member(self):
        return _tarinfo(self.path, tarfile.DIRTYPE, self.mode, self.uid, self.gid), None


@dataclass
class Symlink:
    path: str
    target: str
    uid: int = 0
    gid: int = 0

    def tar_member(self):
        info = _tarinfo(self.path, tarfile.SYMTYPE, 0o777, self.uid, self.gid)
        info.linkname = self.target
        return info, None


@dataclass
class Hardlink:
    """A second name for `target`, a file earlier in the same layer (layers are unpacked into
    directories of their own, where a link to a lower layer's file could not be made)."""
    path: str
    target: str

    def tar_member(self):
        info = _tarinfo(self.path, tarfile.LNKTYPE, 0o644)
        info.linkname = _tar_path(self.target)
        return info, None


@dataclass
class Device:
    path: str
    kind: str  # "char" or "block"
    major: int
    minor: int
    mode: int = 0o666
    uid: int = 0
    gid: int = 0

    def tar_member(self):
        kinds = {"char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE}
        info = _tarinfo(self.path, kinds[self.kind], self.mode, self.uid, self.gid)
        info.devmajor = self.major
        info.devminor = self.minor
        return info, None


@dataclass
class Fifo:
    path: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0

    def tar_member(self):
        return _tarinfo(self.path, tarfile.FIFOTYPE, self.mode, self.uid, self.gid), None


@dataclass
class Whiteout:
    """Deletes `path` of a lower layer: an empty file `.wh.<name>` next to it (OCI image spec)."""
    path: str

    def tar_member(self):
        parent, name = posixpath.split(_tar_path(self.path))
        return _tarinfo(posixpath.join(parent, ".wh." + name), tarfile.REGTYPE, 0o644), None


@dataclass
class Opaque:
    """Hides everything lower layers put in directory `path`: the marker `.wh..wh..opq` in it."""
    path: str

    def tar_member(self):
        return _tarinfo(posixpath.join(_tar_path(self.path), ".wh..wh..opq"), tarfile.REGTYPE,
                        0o644), None


class _RandomReader:
    """A read-only file of `size` seeded random bytes. They are drawn in fixed blocks, so the
    bytes do not depend on how the reader is read."""
    BLOCK = 1 << 20

    def __init__(self, size, seed):
        self.remaining = size
        self.random = random.Random(seed)
        self.block = b""
        self.offset = 0

    def read(self, n=-1):
        n = self.remaining if n < 0 else min(n, self.remaining)
        parts = []
        while n:
            if self.offset == len(self.block):
                self.block = self.random.randbytes(self.BLOCK)
                self.offset = 0
            part = self.block[self.offset:self.offset + n]
            self.offset += len(part)
            self.remaining -= len(part)
            n -= len(part)
            parts.append(part)
        return b"".join(parts)


# ---------------------------------------------------------------------------------------------
# Blobs and layers

@dataclass(frozen=True)
class Blob:
    """Content-addressed bytes: in memory (`data`) or, for big layers, in a file (`path`)."""
    digest: str
    size: int
    data: Optional[bytes] = field(default=None, repr=False)
    path: Optional[str] = None

    @classmethod
    def from_bytes(cls, data):
        return cls("sha256:" + hashlib.sha256(data).hexdigest(), len(data), data=data)

    @property
    def hex(self):
        return self.digest.split(":", 1)[1]

    def open(self) -> BinaryIO:
        return open(self.path, "rb") if self.path else io.BytesIO(self.data)

    def descriptor(self, media_type):
        return {"mediaType": media_type, "digest": self.digest, "size": self.size}


class _HashingWriter:
    """A write-only file passing bytes on to `sink` while hashing and counting them."""

    def __init__(self, sink):
        self.sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha256.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self):
        self.sink.flush()

    @property
    def digest(self):
        return "sha256:" + self.sha256.hexdigest()


@contextlib.contextmanager
def _compressor(compression, sink):
    if compression == "gzip":
        # mtime=0 and no file name: the gzip header carries nothing that varies between builds.
        with gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=sink, mtime=0) as out:
            yield out
    elif compression == "zstd":
        with zstandard.ZstdCompressor(level=3).stream_writer(sink, closefd=False) as out:
            yield out
    elif compression == "none":
        yield sink
    else:
        raise ValueError(f"unknown compression {compression!r}, expected one of {COMPRESSIONS}")


@dataclass(frozen=True)
class Layer:
    blob: Blob               # the (compressed) tar as a registry stores it
    diff_id: str             # sha256 of the uncompressed tar, as the image config lists it
    uncompressed_size: int
    compression: str         # gzip, zstd or none
    comment: str             # the image history's "created_by" for this layer

    def media_type(self, format):
        try:
            return MEDIA_TYPES[format]["layer"][self.compression]
        except KeyError:
            raise ValueError(f"a {format} image cannot hold a {self.compression} layer") from None

    @contextlib.contextmanager
    def open_uncompressed(self):
        with self.blob.open() as raw:
            if self.compression == "gzip":
                with gzip.GzipFile(fileobj=raw) as tar:
                    yield tar
            elif self.compression == "zstd":
                with zstandard.ZstdDecompressor().stream_reader(raw) as tar:
                    yield tar
            else:
                yield raw


def build_layer(entries, compression="gzip", directory=None, comment="testimage layer"):
    """Builds a layer from entries (File, RandomFile, Dir, Symlink, Hardlink, Device, Fifo,
    Whiteout, Opaque) as a PAX tar, sorted by path with hardlinks last (their targets must come
    first), compressed with `compression`. The layer stays in memory, or with `directory` is
    streamed into a file there named by its digest (for big layers)."""
    members = sorted((entry.tar_member() for entry in entries),
                     key=lambda member: (member[0].type == tarfile.LNKTYPE, member[0].name))

    def write(sink):
        compressed = _HashingWriter(sink)
        with _compressor(compression, compressed) as compressing:
            uncompressed = _HashingWriter(compressing)
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT,
                              copybufsize=COPY_CHUNK) as tar:
                for info, content in members:
                    tar.addfile(info, content)
        return compressed, uncompressed

    if directory is None:
        buffer = io.BytesIO()
        compressed, uncompressed = write(buffer)
        blob = Blob(compressed.digest, compressed.size, data=buffer.getvalue())
    else:
        with tempfile.NamedTemporaryFile(dir=directory, delete=False) as out:
            compressed, uncompressed = write(out)
        path = os.path.join(directory, compressed.digest.split(":", 1)[1])
        os.replace(out.name, path)
        blob = Blob(compressed.digest, compressed.size, path=path)
    return Layer(blob, uncompressed.digest, uncompressed.size, compression, comment)


# ---------------------------------------------------------------------------------------------
# Images and indexes

@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: Optional[str] = None

    def __str__(self):
        return "/".join(filter(None, (self.os, self.architecture, self.variant)))

    def to_json(self):
        fields = {"architecture": self.architecture, "os": self.os, "variant": self.variant}
        return {key: value for key, value in fields.items() if value}


AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
ARM = Platform("linux", "arm", "v7")


@dataclass
class ContainerConfig:
    """The image config's "config" object: how a container of the image runs by default."""
    env: list = field(default_factory=lambda: list(DEFAULT_ENV))
    entrypoint: Optional[list] = None
    cmd: Optional[list] = field(default_factory=lambda: ["sh"])
    user: str = ""
    working_dir: str = ""
    labels: dict = field(default_factory=dict)
    stop_signal: str = ""
    exposed_ports: list = field(default_factory=list)  # e.g. ["8080/tcp"]

    def to_json(self):
        fields = {"User": self.user, "ExposedPorts": {port: {} for port in self.exposed_ports},
                  "Env": self.env, "Entrypoint": self.entrypoint, "Cmd": self.cmd,
                  "WorkingDir": self.working_dir, "Labels": self.labels,
                  "StopSignal": self.stop_signal}
        return {key: value for key, value in fields.items() if value}


def _json_blob(document):
    # Indented on purpose: a puller must hash the bytes it got, not a re-serialisation.
    return Blob.from_bytes(json.dumps(document, indent=2).encode() + b"\n")


@dataclass(frozen=True)
class Image:
    """One platform's image: its layers, config and manifest (exact bytes, as pushed)."""
    format: str              # "oci" or "docker"
    platform: Platform
    layers: tuple
    config: Blob             # its digest is the image ID
    manifest: Blob           # its digest is what a registry reports for the image

    @property
    def media_type(self):
        return MEDIA_TYPES[self.format]["manifest"]

    def digests(self):
        """What tests assert on: manifest and config digests, and per layer the blob digest,
        size and media type, the diff_id and uncompressed size."""
        return {
            "media_type": self.media_type,
            "manifest_digest": self.manifest.digest,
            "manifest_size": self.manifest.size,
            "config_digest": self.config.digest,
            "image_id": self.config.digest,
            "config_size": self.config.size,
            "platform": str(self.platform),
            "layers": [{"digest": layer.blob.digest, "size": layer.blob.size,
                        "media_type": layer.media_type(self.format), "diff_id": layer.diff_id,
                        "uncompressed_size": layer.uncompressed_size}
                       for layer in self.layers],
            "diff_ids": [layer.diff_id for layer in self.layers],
        }


@dataclass(frozen=True)
class Index:
    """A multi-platform image: an OCI index or a Docker manifest list over images."""
    format: str
    images: tuple
    manifest: Blob

    @property
    def media_type(self):
        return MEDIA_TYPES[self.format]["index"]

    def digests(self):
        return {"media_type": self.media_type, "manifest_digest": self.manifest.digest,
                "manifest_size": self.manifest.size,
                "manifests": [image.digests() for image in self.images]}


def build_image(layers, container=None, platform=AMD64, format="oci", created=CREATED):
    """An image of `layers` (bottom first) in `format` ("oci" or "docker" schema2)."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}, expected one of {FORMATS}")
    media_types = MEDIA_TYPES[format]
    config = _json_blob({
        "created": created,
        **platform.to_json(),
        "config": (container or ContainerConfig()).to_json(),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": created, "created_by": layer.comment} for layer in layers],
    })
    manifest = _json_blob({
        "schemaVersion": 2,
        "mediaType": media_types["manifest"],
        "config": config.descriptor(media_types["config"]),
        "layers": [layer.blob.descriptor(layer.media_type(format)) for layer in layers],
    })
    return Image(format, platform, tuple(layers), config, manifest)


def build_index(images, format="oci"):
    """An OCI index (format "oci") or Docker manifest list ("docker") over `images`."""
    if any(image.format != format for image in images):
        raise ValueError(f"a {format} index must list {format} manifests")
    manifest = _json_blob({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPES[format]["index"],
        "manifests": [{**image.manifest.descriptor(image.media_type),
                       "platform": image.platform.to_json()} for image in images],
    })
    return Index(format, tuple(images), manifest)


def _images_of(target):
    return target.images if isinstance(target, Index) else (target,)


def _blobs_of(target):
    """Every blob of `target` (layers, configs, manifests), each once."""
    blobs = {}
    for image in _images_of(target):
        for blob in (*(layer.blob for layer in image.layers), image.config, image.manifest):
            blobs.setdefault(blob.digest, blob)
    blobs.setdefault(target.manifest.digest, target.manifest)
    return list(blobs.values())


# ---------------------------------------------------------------------------------------------
# Ready-made images

def busybox_entries():
    """The busybox base filesystem: /bin/busybox and applet symlinks, /etc/passwd and /etc/group
    (root 0, daemon 1, app 1000, nobody 65534), /tmp (1777), /root, /home/app (owned by 1000)."""
    with open(BUSYBOX, "rb") as f:
        binary = f.read()
    return [
        Dir("bin"), File("bin/busybox", binary, mode=0o755),
        *(Symlink(f"bin/{applet}", "busybox") for applet in BUSYBOX_APPLETS),
        Dir("etc"), File("etc/passwd", PASSWD), File("etc/group", GROUP),
        Dir("tmp", mode=0o1777), Dir("root", mode=0o700),
        Dir("home"), Dir("home/app", uid=1000, gid=1000),
    ]


@functools.lru_cache(maxsize=None)
def busybox_layer(compression="gzip"):
    """The busybox base layer (cached: many images share it)."""
    return build_layer(busybox_entries(), compression, comment="testimage: busybox base")


def busybox_image(compression="gzip", format="oci", container=None):
    """A one-layer busybox image for linux/amd64; the default command is `sh`."""
    return build_image([busybox_layer(compression)], container, format=format)


def multilayer_image(format="oci"):
    """Four layers exercising what a puller must apply, bottom to top:
    1. busybox base (gzip);
    2. (zstd; gzip in the docker format, which has no zstd) /data/keep, /data/remove-me,
       /data/opaque/old1, /data/opaque/old2;
    3. (uncompressed) a whiteout of /data/remove-me, /data/opaque made opaque, /data/opaque/new;
    4. (gzip) /data/original and its hardlink /data/hardlink, /data/symlink -> keep, and
       /data/xattr with the xattr user.monocri=test.
    Unpacked, /data holds keep, opaque/new, original, hardlink, symlink and xattr."""
    second = [Dir("data"), File("data/keep", b"keep\n"), File("data/remove-me", b"remove me\n"),
              Dir("data/opaque"), File("data/opaque/old1", b"old1\n"),
              File("data/opaque/old2", b"old2\n")]
    third = [Dir("data"), Whiteout("data/remove-me"), Dir("data/opaque"), Opaque("data/opaque"),
             File("data/opaque/new", b"new\n")]
    fourth = [Dir("data"), File("data/original", b"linked\n"),
              Hardlink("data/hardlink", "data/original"), Symlink("data/symlink", "keep"),
              File("data/xattr", b"xattr\n", xattrs={"user.monocri": b"test"})]
    layers = [
        busybox_layer("gzip"),
        build_layer(second, "zstd" if format == "oci" else "gzip",
                    comment="testimage: /data files"),
        build_layer(third, "none", comment="testimage: whiteout and opaque directory"),
        build_layer(fourth, "gzip", comment="testimage: hardlink, symlink, xattr"),
    ]
    return build_image(layers, format=format)


def sized_image(total_bytes, directory, layers=5, compression="gzip", format="oci", seed="0"):
    """`total_bytes` of incompressible random content (seeded: same arguments, same digests)
    split evenly over `layers` layers, the first of which also carries busybox so the image
    runs. Layers are streamed into files in `directory`, never held in memory: 200 MB over 5
    gzip layers builds in about 6 s on a 2-core VM."""
    built = []
    for number in range(layers):
        size = total_bytes // layers + (total_bytes % layers if number == layers - 1 else 0)
        entries = [Dir("data"), RandomFile(f"data/random-{number}", size, seed=f"{seed}/{number}")]
        if number == 0:
            entries += busybox_entries()
        built.append(build_layer(entries, compression, directory,
                                 comment=f"testimage: {size} random bytes"))
    return build_image(built, format=format)


def tree_image(file_count, directory, layers=5, compression="gzip", format="oci", seed="0"):
    """A rootfs-like image: `file_count` small files (256 B to 16 KiB of text-like, gzip-
    compressible content) in directories of 100, split evenly over `layers` layers, the first
    of which also carries busybox. Unpacking it is metadata-bound, as a distro image's is,
    where sized_image's few big random files are bound by bytes."""
    chooser = random.Random(f"tree/{seed}")
    words = ["".join(chooser.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(chooser.randint(2, 9)))
             for _ in range(2000)]
    built = []
    per_layer = file_count // layers
    for number in range(layers):
        count = per_layer + (file_count % layers if number == layers - 1 else 0)
        entries = []
        for index in range(count):
            if index % 100 == 0:
                entries.append(Dir(f"tree/{number}/{index // 100}"))
            size = chooser.randint(256, 16384)
            text = bytearray()
            while len(text) < size:
                text += " ".join(chooser.choices(words, k=12)).encode() + b"\n"
            entries.append(File(f"tree/{number}/{index // 100}/file-{index}", bytes(text[:size])))
        entries += [Dir("tree"), Dir(f"tree/{number}")]
        if number == 0:
            entries += busybox_entries()
        built.append(build_layer(entries, compression, directory,
                                 comment=f"testimage: {count} small files"))
    return build_image(built, format=format)


def multiplatform_image(format="oci", compression="gzip"):
    """An index over linux/amd64, linux/arm64/v8 and linux/arm/v7 images: each is the busybox
    layer (an amd64 binary in all three) plus a layer with /platform holding the platform's
    name, e.g. "linux/arm64/v8"."""
    images = []
    for platform in (AMD64, ARM64, ARM):
        marker = build_layer([File("platform", str(platform).encode())], compression,
                             comment=f"testimage: /platform {platform}")
        images.append(build_image([busybox_layer(compression), marker], platform=platform,
                                  format=format))
    return build_index(images, format)


# ---------------------------------------------------------------------------------------------
# Output: push to a registry

class PushError(Exception):
    """A registry or token server refused or failed a request of a push."""


class _RegistryClient:
    """Just enough of the Registry HTTP API v2 (plain HTTP) to push. Authenticates when a
    request is answered 401, answering the challenge (Basic, or Bearer through the token server
    it names) with the given credentials, and keeps that Authorization for the next requests."""

    def __init__(self, address, username=None, password=None):
        self.address = address
        self.credentials = None
        if username is not None:
            self.credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.authorization = None

    def request(self, method, target, body=None, headers=()):
        """Sends one request (`body`: bytes or a Blob, streamed); returns (response, content)."""
        response, content = self._send(method, target, body, dict(headers))
        if response.status == 401:
            self.authorization = self._answer(response.getheader("WWW-Authenticate", ""))
            response, content = self._send(method, target, body, dict(headers))
        return response, content

    def _send(self, method, target, body, headers):
        if self.authorization:
            headers["Authorization"] = self.authorization
        connection = http.client.HTTPConnection(self.address, timeout=120, blocksize=COPY_CHUNK)
        with contextlib.closing(connection), contextlib.ExitStack() as stack:
            if isinstance(body, Blob):
                headers["Content-Length"] = str(body.size)  # else a file body goes chunked
                body = stack.enter_context(body.open())
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            return response, response.read()

    def _answer(self, challenge):
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if self.credentials is None:
                raise PushError(f"{self.address} wants credentials: {challenge}")
            return "Basic " + self.credentials
        if scheme.lower() != "bearer":
            raise PushError(f"{self.address}: unsupported challenge {challenge!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        query = urllib.parse.urlencode({key: fields[key] for key in ("service", "scope")
                                        if key in fields})
        request = urllib.request.Request(f"{fields['realm']}?{query}")
        if self.credentials:
            request.add_header("Authorization", "Basic " + self.credentials)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            raise PushError(f"token server {fields['realm']}: {error.code} {error.read()!r}")
        return "Bearer " + (answer.get("token") or answer["access_token"])

    @staticmethod
    def _expect(response, content, status, what):
        if response.status != status:
            raise PushError(f"{what}: {response.status} {response.reason} {content[:500]!r}")

    def upload_blob(self, name, blob):
        """Monolithic upload (POST, then PUT ?digest=) unless the registry has the blob."""
        response, _ = self.request("HEAD", f"/v2/{name}/blobs/{blob.digest}")
        if response.status == 200:
            return
        response, content = self.request("POST", f"/v2/{name}/blobs/uploads/")
        self._expect(response, content, 202, f"starting the upload of {blob.digest}")
        location = urllib.parse.urlsplit(response.getheader("Location"))
        query = "&".join(filter(None, (location.query,
                                       urllib.parse.urlencode({"digest": blob.digest}))))
        response, content = self.request("PUT", f"{location.path}?{query}", body=blob,
                                         headers={"Content-Type": "application/octet-stream"})
        self._expect(response, content, 201, f"uploading {blob.digest}")

    def put_manifest(self, name, reference, manifest, media_type):
        response, content = self.request("PUT", f"/v2/{name}/manifests/{reference}",
                                         body=manifest.data, headers={"Content-Type": media_type})
        self._expect(response, content, 201, f"putting manifest {name}:{reference}")
        reported = response.getheader("Docker-Content-Digest")
        if reported != manifest.digest:
            raise PushError(f"{name}:{reference}: registry computed {reported}, "
                            f"expected {manifest.digest}")


def push(target, registry, name, tag, username=None, password=None):
    """Pushes `target` (an Image or Index) to `registry` ("127.0.0.1:PORT", plain HTTP) as
    NAME:TAG, with credentials if given (basic or bearer-token auth); returns its digests()."""
    client = _RegistryClient(registry, username, password)
    for image in _images_of(target):
        for blob in (*(layer.blob for layer in image.layers), image.config):
            client.upload_blob(name, blob)  # shared layers: the registry already has them
        if isinstance(target, Index):
            client.put_manifest(name, image.manifest.digest, image.manifest, image.media_type)
    client.put_manifest(name, tag, target.manifest, target.media_type)
    return target.digests()


# ---------------------------------------------------------------------------------------------
# Output: OCI image layout and docker-archive

def _layout_files(target, tag):
    """The files of an OCI image layout holding `target` as `tag`: {relative path: Blob}.
    Only OCI-format targets: skopeo (1.9) finds no image under a Docker media type there."""
    if target.format != "oci":
        raise ValueError("an OCI image layout holds OCI-format images only")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{**target.manifest.descriptor(target.media_type),
                            "annotations": {REF_NAME: tag}}]}
    files = {"oci-layout": _json_blob({"imageLayoutVersion": "1.0.0"}),
             "index.json": _json_blob(index)}
    for blob in _blobs_of(target):
        files[f"blobs/sha256/{blob.hex}"] = blob
    return files


def write_oci_layout(target, directory, tag="latest"):
    """Writes an OCI image layout directory (oci-layout, index.json naming `tag`,
    blobs/sha256/...) holding `target`, an OCI-format Image or Index; returns its digests()."""
    for relative, blob in _layout_files(target, tag).items():
        path = os.path.join(directory, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with blob.open() as source, open(path, "wb") as out:
            while chunk := source.read(COPY_CHUNK):
                out.write(chunk)
    return target.digests()


def _add_to_tar(tar, name, size, content):
    info = _tarinfo(name, tarfile.REGTYPE, 0o644)
    info.size = size
    tar.addfile(info, content)


def write_oci_archive(target, path, tag="latest"):
    """Writes the OCI image layout of write_oci_layout() as a tarball (skopeo's oci-archive:)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT, copybufsize=COPY_CHUNK) as tar:
        for directory in ("blobs", "blobs/sha256"):
            tar.addfile(_tarinfo(directory, tarfile.DIRTYPE, 0o755))
        for relative, blob in _layout_files(target, tag).items():
            with blob.open() as content:
                _add_to_tar(tar, relative, blob.size, content)
    return target.digests()


def write_docker_archive(image, path, repo_tags=("testimage:latest",)):
    """Writes `image` as `docker save` does: manifest.json (Config, RepoTags, Layers), the
    config as <image id>.json and each layer uncompressed as <diff_id>/layer.tar."""
    if not isinstance(image, Image):
        raise ValueError("a docker-archive holds a single platform's image, not an index")
    layer_names = [f"{layer.diff_id.split(':', 1)[1]}/layer.tar" for layer in image.layers]
    manifest = _json_blob([{"Config": f"{image.config.hex}.json", "RepoTags": list(repo_tags),
                            "Layers": layer_names}])
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT, copybufsize=COPY_CHUNK) as tar:
        _add_to_tar(tar, f"{image.config.hex}.json", image.config.size,
                    io.BytesIO(image.config.data))
        for name, layer in dict(zip(layer_names, image.layers)).items():
            with layer.open_uncompressed() as content:
                _add_to_tar(tar, name, layer.uncompressed_size, content)
        _add_to_tar(tar, "manifest.json", manifest.size, io.BytesIO(manifest.data))
    return image.digests()


# ---------------------------------------------------------------------------------------------
# Command line

KINDS = ("busybox", "multilayer", "sized", "multiplatform")


def _build_from_args(args, workdir):
    if args.kind == "busybox":
        return busybox_image(args.compression, args.format)
    if args.kind == "multilayer":
        return multilayer_image(args.format)
    if args.kind == "sized":
        return sized_image(args.size, workdir, args.layers, args.compression, args.format)
    return multiplatform_image(args.format, args.compression)


def main(argv=None):
    image_options = argparse.ArgumentParser(add_help=False)
    image_options.add_argument("--kind", choices=KINDS, default="busybox")
    image_options.add_argument("--size", type=int, help="content bytes of a sized image")
    image_options.add_argument("--layers", type=int, default=5, help="layers of a sized image")
    image_options.add_argument("--format", choices=FORMATS, default="oci")
    image_options.add_argument("--compression", choices=COMPRESSIONS, default="gzip",
                               help="layer compression (busybox, sized, multiplatform)")
    image_options.add_argument("--tag", default="latest")

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    push_command = commands.add_parser("push", parents=[image_options],
                                       help="push to a registry over plain HTTP")
    push_command.add_argument("--registry", required=True, help="127.0.0.1:PORT")
    push_command.add_argument("--name", required=True)
    push_command.add_argument("--username")
    push_command.add_argument("--password")
    commands.add_parser("oci-layout", parents=[image_options],
                        help="write an OCI image layout directory").add_argument("directory")
    commands.add_parser("oci-archive", parents=[image_options],
                        help="write an OCI image layout tarball").add_argument("file")
    docker_command = commands.add_parser("docker-archive", parents=[image_options],
                                         help="write a `docker save` tarball")
    docker_command.add_argument("file")
    docker_command.add_argument("--name", default="testimage", help="repository of RepoTags")
    args = parser.parse_args(argv)
    if args.kind == "sized" and not args.size:
        parser.error("--kind sized needs --size BYTES")
    if args.command == "docker-archive" and args.kind == "multiplatform":
        parser.error("a docker-archive cannot hold a multi-platform image")
    if args.command in ("oci-layout", "oci-archive") and args.format != "oci":
        parser.error("an OCI image layout holds OCI-format images only")

    with tempfile.TemporaryDirectory(prefix="testimage-") as workdir:
        target = _build_from_args(args, workdir)
        if args.command == "push":
            digests = push(target, args.registry, args.name, args.tag, args.username,
                           args.password)
        elif args.command == "oci-layout":
            digests = write_oci_layout(target, args.directory, args.tag)
        elif args.command == "oci-archive":
            digests = write_oci_archive(target, args.file, args.tag)
        else:
            digests = write_docker_archive(target, args.file, [f"{args.name}:{args.tag}"])
    json.dump(digests, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
