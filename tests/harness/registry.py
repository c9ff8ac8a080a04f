"""Real registries for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1 at a free
port with its storage in a temp dir, anonymous (Registry), behind basic auth
(BasicAuthRegistry) or behind token auth with a token server of its own (TokenAuthRegistry).

    with TokenAuthRegistry(anonymous_pull=True) as registry:
        testimage.push(image, registry.address, "busybox", "v1",
                       registry.username, registry.password)
        assert registry.token_server.requests  # who asked for which scopes, how
"""
import base64
import datetime
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import bcrypt
import jwt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

DOCKER_REGISTRY = "docker-registry"
START_TIMEOUT = 10  # seconds for /v2/ to answer
START_ATTEMPTS = 3  # a free port may be taken between our probe and the registry's bind


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RegistryStartError(RuntimeError):
    """docker-registry did not come up; the message carries its log."""


class Registry:
    """docker-registry without authentication."""

    def __init__(self, workdir=None):
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="monocri-registry-")
        self.port = None
        self.process = None
        self.log_path = os.path.join(self.workdir, "registry.log")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    @property
    def url(self):
        return f"http://{self.address}"

    def _auth_config(self):
        """The `auth:` section of the registry's configuration, if any."""
        return None

    def _write_config(self):
        config = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {"filesystem": {"rootdirectory": os.path.join(self.workdir, "storage")},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": self.address, "secret": secrets.token_hex(16)},
        }
        auth = self._auth_config()
        if auth:
            config["auth"] = auth
        path = os.path.join(self.workdir, "config.yml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        return path

    def start(self):
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            config = self._write_config()
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen([DOCKER_REGISTRY, "serve", config], stdout=log,
                                                stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL)
            if self._wait_ready():
                return self
            if "address already in use" not in self.log():
                break
        self.stop_process()
        raise RegistryStartError(f"docker-registry did not start on {self.address}:\n{self.log()}")

    def _wait_ready(self):
        """Polls /v2/ until the registry answers anything (401 included): True, or False if it
        exited or did not answer in time."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=1).close()
                return True
            except urllib.error.HTTPError:
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def stop_process(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self):
        self.stop_process()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class BasicAuthRegistry(Registry):
    """docker-registry behind `auth: htpasswd:` with one user (bcrypt, as distribution requires)."""

    def __init__(self, workdir=None, username="monocri", password="monocri-password"):
        super().__init__(workdir)
        self.username = username
        self.password = password

    def _auth_config(self):
        path = os.path.join(self.workdir, "htpasswd")
        # The registry checks the password on every request: the lowest cost keeps that quick.
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
        with open(path, "w") as f:
            f.write(f"{self.username}:{hashed}\n")
        return {"htpasswd": {"realm": "monocri-test", "path": path}}


class TokenAuthRegistry(Registry):
    """docker-registry behind `auth: token:` with its own TokenServer (`token_server`), which
    knows one user and may hand out anonymous pull tokens, as Docker Hub does."""

    def __init__(self, workdir=None, username="monocri", password="monocri-password",
                 anonymous_pull=False, expires_in=300):
        super().__init__(workdir)
        self.username = username
        self.password = password
        self.token_server = TokenServer(self.workdir, {username: password},
                                        anonymous_pull=anonymous_pull, expires_in=expires_in)

    def _auth_config(self):
        return {"token": {"realm": self.token_server.realm, "service": TokenServer.SERVICE,
                          "issuer": TokenServer.ISSUER,
                          "rootcertbundle": self.token_server.cert_path}}

    def start(self):
        self.token_server.start()
        try:
            return super().start()
        except Exception:
            self.token_server.stop()
            raise

    def stop(self):
        super().stop()
        self.token_server.stop()


# ---------------------------------------------------------------------------------------------
# Token server

def libtrust_key_id(public_key):
    """The key ID distribution 2.8 looks a token's `kid` up by: libtrust's fingerprint, the
    SHA-256 of the DER SubjectPublicKeyInfo cut to 240 bits, in base32 as 12 groups of 4
    characters joined by ':'."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))


@dataclass
class TokenRequest:
    """One request to the token server, as tests assert on it."""
    method: str                 # GET (Docker token protocol) or POST (OAuth2)
    grant_type: str             # "" for GET, else "password" or "refresh_token"
    username: Optional[str]     # None for an anonymous request
    scopes: list
    status: int                 # 200 when a token was issued


class TokenServer:
    """A token service on 127.0.0.1, after the Docker token spec: GET /token?service&scope with
    or without basic auth, and OAuth2 POST /token with grant_type=password or refresh_token.
    Known users get every action they ask for; anonymous requests get `pull` on repositories
    when `anonymous_pull`, else a token granting nothing (as Docker Hub does); wrong
    credentials get 401. Tokens are JWTs signed RS256 with a key made at start, whose
    self-signed certificate (`cert_path`) is the registry's rootcertbundle; the JWT header's
    `kid` is the key's libtrust ID. `identity_token` is a refresh token for the first user, as
    `docker login` stores it. Every request is recorded in `requests`."""

    SERVICE = "monocri-test-registry"
    ISSUER = "monocri-test-token-server"

    def __init__(self, workdir, users, anonymous_pull=False, expires_in=300):
        self.users = dict(users)
        self.anonymous_pull = anonymous_pull
        self.expires_in = expires_in
        self.cert_path = os.path.join(workdir, "token-signer.pem")
        self.requests = []
        self.identity_token = None
        self.key_id = None  # the signing key's libtrust ID, the JWTs' `kid`
        self._key = None
        self._refresh_tokens = {}  # refresh token -> username
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    @property
    def realm(self):
        return f"http://127.0.0.1:{self._server.server_port}/token"

    def start(self):
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = libtrust_key_id(self._key.public_key())
        with open(self.cert_path, "wb") as f:
            f.write(self._certificate().public_bytes(serialization.Encoding.PEM))
        self.identity_token = self._new_refresh_token(next(iter(self.users)))
        self._server = _QuietServer(("127.0.0.1", 0), _TokenHandler)
        self._server.token_server = self
        # A short poll interval: shutdown() waits up to one.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    def _certificate(self):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "monocri test token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self._key, hashes.SHA256()))

    def _new_refresh_token(self, username):
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[token] = username
        return token

    def _record(self, request):
        with self._lock:
            self.requests.append(request)

    def _grant(self, username, scopes):
        """The `access` claim: what `username` (None: anonymous) may do of what it asked."""
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")  # names may hold ':' (host:port/...)
            wanted = actions.split(",")
            if username is None:
                allowed = ["pull"] if self.anonymous_pull and kind == "repository" else []
                wanted = [action for action in wanted if action in allowed]
            if wanted:
                access.append({"type": kind, "name": name, "actions": wanted})
        return access

    def issue(self, username, scopes):
        """A signed token for `username` (None: anonymous) granting what _grant() allows of
        `scopes`. distribution 2.8 needs `aud` to be a string (a list is a malformed token)."""
        now = int(time.time())
        claims = {"iss": self.ISSUER, "sub": username or "", "aud": self.SERVICE,
                  "exp": now + self.expires_in, "nbf": now, "iat": now,
                  "jti": secrets.token_hex(8), "access": self._grant(username, scopes)}
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id})

    def answer(self, method, headers, params):
        """Decides a token request; returns (status, JSON document)."""
        grant_type = params.get("grant_type", [""])[0] if method == "POST" else ""
        # GET repeats `scope`; OAuth2 POST separates scopes with spaces.
        scopes = [scope for value in params.get("scope", []) for scope in value.split()]
        username, error = self._authenticate(grant_type, headers, params)
        self._record(TokenRequest(method, grant_type, username, scopes, 401 if error else 200))
        if error:
            return 401, {"error": error}
        token = self.issue(username, scopes)
        document = {"token": token, "access_token": token, "expires_in": self.expires_in,
                    "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        offline = (params.get("offline_token", [""])[0] == "true"
                   or params.get("access_type", [""])[0] == "offline")
        if username and offline:
            document["refresh_token"] = self._new_refresh_token(username)
        return 200, document

    def _authenticate(self, grant_type, headers, params):
        """(username or None for anonymous, error or None)."""
        if grant_type == "refresh_token":
            username = self._refresh_tokens.get(params.get("refresh_token", [""])[0])
            return (username, None) if username else (None, "invalid_grant")
        if grant_type == "password":
            username = params.get("username", [""])[0]
            password = params.get("password", [""])[0]
        elif grant_type:
            return None, "unsupported_grant_type"
        else:
            scheme, _, encoded = headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "basic":
                return None, None
            try:
                username, _, password = base64.b64decode(encoded).decode().partition(":")
            except ValueError:  # not base64, or not UTF-8
                return None, "invalid_grant"
        if self.users.get(username) != password:
            return None, "invalid_grant"
        return username, None


class _QuietServer(ThreadingHTTPServer):
    # Do not join handler threads at close: a client's idle keep-alive would hold stop() up.
    block_on_close = False


class _TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        self._reply(url.path, urllib.parse.parse_qs(url.query))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        form = self.rfile.read(length).decode()
        self._reply(urllib.parse.urlsplit(self.path).path, urllib.parse.parse_qs(form))

    def _reply(self, path, params):
        if path != "/token":
            status, document = 404, {"error": "not found"}
        else:
            status, document = self.server.token_server.answer(self.command, self.headers,
                                                               params)
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # tests read TokenServer.requests instead
