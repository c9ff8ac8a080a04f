"""A scripted registry for error-handling tests: serves images built by testimage over the read
side of the Registry HTTP API v2 (GET /v2/, GET/HEAD manifests and blobs, Range requests on
blobs), misbehaves where a test tells it to, and records every request.

    with HostileRegistry() as registry:
        image = testimage.busybox_image()
        registry.add_image("busybox", "v1", image)
        layer = f"/blobs/{image.layers[0].blob.digest}"
        registry.misbehave(Status(503), match=layer, times=2)  # then served whole
        ... pull ...
        assert len(registry.requests_to(layer, method="GET")) == 3

A fault applies to requests whose path contains `match` (and of `method`, if given), `times`
times or forever; the earliest rule that matches wins.
"""
import contextlib
import hashlib
import io
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

CHUNK = 64 * 1024
SCHEMA1_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v1+prettyjws"
UNKNOWN_MEDIA_TYPE = "application/vnd.example.unknown.manifest.v1+json"
HUGE_MANIFEST_SIZE = 100 << 20


# ---------------------------------------------------------------------------------------------
# Faults

@dataclass
class Status:
    """Answers `code` (with `headers`) instead of the content; the body is a registry error
    document unless given."""
    code: int
    headers: dict = field(default_factory=dict)
    body: Optional[bytes] = None


def unauthorized(challenge='Bearer realm="http://127.0.0.1:9/token",service="hostile"'):
    """A 401 carrying `challenge` in WWW-Authenticate."""
    return Status(401, {"WWW-Authenticate": challenge})


@dataclass
class CorruptBody:
    """Serves bytes that do not match the digest: same length, first byte flipped."""


@dataclass
class TruncatedBody:
    """Announces the full Content-Length, sends `sent_bytes` of the body, closes."""
    sent_bytes: int


@dataclass
class Stall:
    """Sends `after_bytes` of the body, goes silent for `seconds`, then closes."""
    after_bytes: int
    seconds: float


@dataclass
class IgnoreRange:
    """Answers a Range request 200 with the whole body, as servers without ranges do."""


@dataclass
class _Rule:
    fault: object
    match: str
    method: Optional[str]
    times: Optional[int]  # None: forever


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict  # lower-case names; a repeated header's values joined by ", "

    def header(self, name):
        return self.headers.get(name.lower())


@dataclass
class _Content:
    size: int
    chunks: Callable       # (start offset) -> iterator over the body's bytes from there
    media_type: str
    digest: Optional[str]  # None: no Docker-Content-Digest header


def _file_chunks(opener):
    def chunks(start):
        with opener() as source:
            source.seek(start)
            while chunk := source.read(CHUNK):
                yield chunk
    return chunks


def _bytes_content(body, media_type):
    return _Content(len(body), _file_chunks(lambda: io.BytesIO(body)), media_type,
                    "sha256:" + hashlib.sha256(body).hexdigest())


def _padded_json_chunks(prefix, suffix, size):
    """`size` bytes of JSON: `prefix`, spaces, `suffix`; made while sent (ranges not served)."""
    def chunks(start):
        yield prefix
        spaces = size - len(prefix) - len(suffix)
        while spaces:
            yield b" " * min(CHUNK, spaces)
            spaces -= min(CHUNK, spaces)
        yield suffix
    return chunks


# ---------------------------------------------------------------------------------------------
# The registry

class HostileRegistry:
    """The scripted registry on 127.0.0.1. `range_requests`: answer Range on blobs with 206."""

    def __init__(self, range_requests=True):
        self.range_requests = range_requests
        self.requests = []  # RecordedRequest, in arrival order
        self._manifests = {}  # (name, tag or digest) -> _Content
        self._blobs = {}  # digest -> _Content, for any repository name
        self._rules = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = None
        self._thread = None

    @property
    def address(self):
        return f"127.0.0.1:{self._server.server_port}"

    @property
    def url(self):
        return f"http://{self.address}"

    def start(self):
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.registry = self
        # A short poll interval: shutdown() waits up to one.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server:
            self._stopping.set()  # ends stalls early
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- content

    def add_image(self, name, tag, target):
        """Serves a testimage Image or Index as NAME:TAG (and its manifests by digest)."""
        images = getattr(target, "images", (target,))
        for image in images:
            for blob in (image.config, *(layer.blob for layer in image.layers)):
                self._blobs[blob.digest] = _Content(blob.size, _file_chunks(blob.open),
                                                    "application/octet-stream", blob.digest)
            self.add_manifest(name, image.manifest.digest, image.manifest.data, image.media_type)
        self.add_manifest(name, tag, target.manifest.data, target.media_type)
        self.add_manifest(name, target.manifest.digest, target.manifest.data, target.media_type)

    def add_manifest(self, name, reference, body, media_type):
        """Serves `body` as manifest NAME:REFERENCE with Content-Type `media_type`; returns its
        digest."""
        content = _bytes_content(body, media_type)
        self._manifests[(name, reference)] = content
        return content.digest

    def add_schema1_manifest(self, name, tag):
        """A Docker schema1 manifest (unsigned) that a modern puller must refuse."""
        body = json.dumps({
            "schemaVersion": 1, "name": name, "tag": tag, "architecture": "amd64",
            "fsLayers": [{"blobSum": "sha256:" + "a" * 64}],
            "history": [{"v1Compatibility": json.dumps({"id": "0" * 64})}],
        }, indent=3).encode()
        return self.add_manifest(name, tag, body, SCHEMA1_MEDIA_TYPE)

    def add_unknown_manifest(self, name, tag, media_type=UNKNOWN_MEDIA_TYPE):
        """A well-formed JSON document under a media type no puller knows."""
        body = json.dumps({"schemaVersion": 2, "mediaType": media_type}).encode()
        return self.add_manifest(name, tag, body, media_type)

    def add_huge_manifest(self, name, tag, size=HUGE_MANIFEST_SIZE):
        """A `size`-byte manifest (JSON, mostly spaces), generated while it is sent and never
        held in memory; served without Docker-Content-Digest."""
        prefix = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
        suffix = b'"layers": []}'
        self._manifests[(name, tag)] = _Content(size, _padded_json_chunks(prefix, suffix, size),
                                                "application/vnd.oci.image.manifest.v1+json",
                                                None)

    # --- faults and records

    def misbehave(self, fault, match="", method=None, times=None):
        """Applies `fault` to requests whose path contains `match` (of `method` if given),
        `times` times or, if None, until clear_faults()."""
        with self._lock:
            self._rules.append(_Rule(fault, match, method, times))

    def clear_faults(self):
        with self._lock:
            self._rules.clear()

    def requests_to(self, match, method=None):
        """The recorded requests whose path contains `match` (of `method` if given)."""
        with self._lock:
            return [request for request in self.requests
                    if match in request.path and method in (None, request.method)]

    def _record(self, method, path, headers):
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers))

    def _take_fault(self, method, path):
        with self._lock:
            for rule in self._rules:
                if rule.match in path and rule.method in (None, method):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times == 0:
                            self._rules.remove(rule)
                    return rule.fault
        return None

    def _lookup(self, path):
        """(content, is_blob) for a /v2/<name>/manifests|blobs/<reference> path, or (None, _)."""
        found = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", path)
        if not found:
            return None, False
        name, kind, reference = found.groups()
        if kind == "blobs":
            return self._blobs.get(reference), True
        return self._manifests.get((name, reference)), False


class _Server(ThreadingHTTPServer):
    # Do not join handler threads at close: a client's idle keep-alive would hold stop() up.
    block_on_close = False


def _error_document(code, message):
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection's thread ends eventually

    def do_GET(self):
        self._serve(send_body=True)

    def do_HEAD(self):
        self._serve(send_body=False)

    def log_message(self, *args):
        pass  # tests read HostileRegistry.requests instead

    def _serve(self, send_body):
        registry = self.server.registry
        path = self.path.split("?", 1)[0]
        headers = {}
        for name, value in self.headers.items():  # repeated headers (Accept) join as in HTTP
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        registry._record(self.command, path, headers)
        fault = registry._take_fault(self.command, path)
        if isinstance(fault, Status):
            body = fault.body
            if body is None:
                body = _error_document("UNKNOWN", f"hostile registry: status {fault.code}")
            return self._send_simple(fault.code, body, fault.headers, send_body)
        if path in ("/v2", "/v2/"):
            return self._send_simple(200, b"{}", {}, send_body)
        content, is_blob = registry._lookup(path)
        if content is None:
            code = "BLOB_UNKNOWN" if is_blob else "MANIFEST_UNKNOWN"
            return self._send_simple(404, _error_document(code, "unknown to hostile registry"),
                                     {}, send_body)
        ranged = is_blob and registry.range_requests and not isinstance(fault, IgnoreRange)
        try:
            self._send_content(content, fault, ranged, send_body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up: fine, it is a test of that

    def _send_simple(self, status, body, headers, send_body):
        self.send_response(status)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _send_content(self, content, fault, ranged, send_body):
        start, end = 0, content.size - 1
        requested = self.headers.get("Range") if ranged else None
        if requested:
            found = re.fullmatch(r"bytes=(\d+)-(\d*)", requested.strip())
            if not found or int(found[1]) >= content.size:
                return self._send_simple(416, b"", {"Content-Range": f"bytes */{content.size}"},
                                         send_body)
            start = int(found[1])
            end = min(int(found[2]), end) if found[2] else end
        self.send_response(206 if requested else 200)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", content.media_type)
        self.send_header("Content-Length", str(end - start + 1))
        if content.digest:
            self.send_header("Docker-Content-Digest", content.digest)
        if ranged:
            self.send_header("Accept-Ranges", "bytes")
        if requested:
            self.send_header("Content-Range", f"bytes {start}-{end}/{content.size}")
        self.end_headers()
        if send_body:
            self._send_body(content, start, end - start + 1, fault)

    def _send_body(self, content, start, length, fault):
        limit = length
        if isinstance(fault, TruncatedBody):
            limit = min(fault.sent_bytes, length)
        elif isinstance(fault, Stall):
            limit = min(fault.after_bytes, length)
        sent = 0
        with contextlib.closing(content.chunks(start)) as chunks:
            for chunk in chunks:
                chunk = chunk[:limit - sent]
                if not chunk:
                    break
                if sent == 0 and isinstance(fault, CorruptBody):
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                self.wfile.write(chunk)
                sent += len(chunk)
        if sent < length:
            self.wfile.flush()
            if isinstance(fault, Stall):
                self.server.registry._stopping.wait(fault.seconds)
            self.close_connection = True  # the rest of the promised body never comes
