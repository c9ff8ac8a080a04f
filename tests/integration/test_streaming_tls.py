"""The streaming server with TLS (stream_tls_cert/key/ca): the same sessions as
test_streaming.py, carried by https. Certificates are made here with python3-cryptography;
clients are Python's ssl module (a relay for the SPDY replays, websocket's own wss) and monoctl."""
import json
import os
import selectors
import socket
import ssl
import threading
import time
import urllib.parse

import pytest
import websocket
from monocri_harness import Daemon
from tls_certs import Issuer
from test_containers import (create, make_pod, pulled_daemon, registry,  # noqa: F401
                             remove_all_and_stop, start)
from test_streaming import (SUCCESS, Replay, assert_bounded_for_a_client_not_reading,
                            exec_url, exit_status, port_forward_url, recorded_stdin, stream_of,
                            wait_listening, ws_collect, ws_through_cat)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("pki"))
    servers = Issuer(directory, "stream-ca")
    clients = Issuer(directory, "client-ca")
    return {
        "ca": servers.path,
        "server": servers.issue("stream-server"),
        "rotated": servers.issue("stream-server-rotated"),
        "client_ca": clients.path,
        "client": clients.issue("kubelet-client", client=True),
        "stranger": Issuer(directory, "other-ca").issue("stranger-client", client=True),
    }


def tls_config(cert, key, ca=None):
    config = f'stream_tls_cert = "{cert}"\nstream_tls_key = "{key}"\n'
    return config + (f'stream_tls_ca = "{ca}"\n' if ca else "")


@pytest.fixture
def served(tmp_path, pki):
    """The server's certificate and key as files of their own, so a test may rotate them."""
    cert, key = tmp_path / "serving.crt", tmp_path / "serving.key"
    cert.write_bytes(open(pki["server"][0], "rb").read())
    key.write_bytes(open(pki["server"][1], "rb").read())
    return str(cert), str(key)


@pytest.fixture
def daemon(tmp_path, registry, served):  # noqa: F811
    d = pulled_daemon(tmp_path, registry, config=tls_config(*served))
    yield d
    remove_all_and_stop(d)


@pytest.fixture
def sleeper(daemon, tmp_path):
    pod = make_pod(daemon, tmp_path, name="pod-tls")
    container_id = create(daemon, pod, "sleeper", ["sleep", "3600"])
    start(daemon, container_id)
    return container_id


def client_context(pki, cert=None):
    context = ssl.create_default_context(cafile=pki["ca"])
    if cert:
        context.load_cert_chain(cert[0], cert[1])
    return context


def served_certificate(url, context):
    parsed = urllib.parse.urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=parsed.hostname) as tls:
            return tls.getpeercert(binary_form=True)


class TlsRelay:
    """Plain TCP on 127.0.0.1 in, TLS to the streaming server out: each connection's TLS
    handled by one thread (an SSL object is not for two threads at once), so the SPDY replays
    and the threaded WebSocket tests run over https unchanged."""

    def __init__(self, url, context):
        parsed = urllib.parse.urlparse(url)
        self.target = (parsed.hostname, parsed.port)
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.errors = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url):
        parsed = urllib.parse.urlparse(url)
        return f"http://127.0.0.1:{self.port}{parsed.path}"

    def _accept(self):
        while True:
            try:
                plain, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(plain,), daemon=True).start()

    def _pump(self, plain):
        try:
            raw = socket.create_connection(self.target, timeout=30)
            tls = self.context.wrap_socket(raw, server_hostname=self.target[0])
        except (OSError, ssl.SSLError) as e:
            self.errors.append(e)
            plain.close()
            return
        selector = selectors.DefaultSelector()
        selector.register(plain, selectors.EVENT_READ)
        selector.register(tls, selectors.EVENT_READ)
        try:
            while True:
                ready = [key.fileobj for key, _ in selector.select(timeout=60)]
                if not ready and not tls.pending():
                    return
                if plain in ready:
                    data = plain.recv(65536)
                    if not data:
                        return
                    tls.sendall(data)
                if tls in ready or tls.pending():
                    data = tls.recv(65536)
                    if not data:
                        return
                    plain.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            selector.close()
            tls.close()
            plain.close()

    def close(self):
        self.listener.close()


@pytest.fixture
def relay(daemon, pki):
    relays = []

    def make(url, cert=None):
        r = TlsRelay(url, client_context(pki, cert))
        relays.append(r)
        return r.url(url)
    yield make
    for r in relays:
        r.close()


# ---- tests ----

def test_urls_are_https_and_the_configured_certificate_is_served(daemon, sleeper, pki):
    url = exec_url(daemon, sleeper, ["true"])
    assert url.startswith("https://127.0.0.1:"), url
    # Checked against the CA and the address, as kubelet's proxy does.
    assert served_certificate(url, client_context(pki)) == pki["server"][2]
    with pytest.raises(ssl.SSLCertVerificationError):
        served_certificate(url, ssl.create_default_context())  # a CA the node does not trust


def test_wss_exec_output_and_exit_code(daemon, sleeper, pki):
    url = exec_url(daemon, sleeper, ["sh", "-c", "echo out; echo err >&2; exit 5"])
    ws = websocket.create_connection(url.replace("https://", "wss://", 1),
                                     subprotocols=["v4.channel.k8s.io"], timeout=30,
                                     sslopt={"ca_certs": pki["ca"]})
    out = ws_collect(ws)
    assert out.get(1) == b"out\n" and out.get(2) == b"err\n", out
    assert json.loads(out[3]) == exit_status(5)


@pytest.mark.parametrize("name, cmd, stdout, stderr, error", [
    ("exec-echo", ["echo", "hello"], b"hello\n", b"", SUCCESS),
    ("exec-stderr", ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"],
     b"to-stdout\n", b"to-stderr\n", exit_status(7)),
])
def test_spdy_replays_over_tls(daemon, sleeper, relay, name, cmd, stdout, stderr, error):
    replay = Replay(name, relay(exec_url(daemon, sleeper, cmd)))
    assert replay.head.startswith("HTTP/1.1 101 Switching Protocols\r\n"), replay.head
    assert replay.data(stream_of(name, "stdout")) == stdout
    assert replay.data(stream_of(name, "stderr")) == stderr
    assert json.loads(replay.data(stream_of(name, "error"))) == error


def test_spdy_256k_through_cat_over_tls_byte_exact(daemon, sleeper, relay):
    sent = recorded_stdin("exec-cat-256k")
    replay = Replay("exec-cat-256k", relay(exec_url(daemon, sleeper, ["cat"], stdin=True)))
    assert replay.data(stream_of("exec-cat-256k", "stdout")) == sent
    assert json.loads(replay.data(stream_of("exec-cat-256k", "error"))) == SUCCESS


def test_eight_mib_through_cat_over_tls_byte_exact(daemon, sleeper, relay):
    payload = os.urandom(8 * 1024 * 1024)
    url = relay(exec_url(daemon, sleeper, ["cat"], stdin=True))
    ws = websocket.create_connection(url.replace("http://", "ws://", 1),
                                     subprotocols=["v5.channel.k8s.io"], timeout=30)
    result = ws_through_cat(ws, payload)
    assert result.get(1) == payload
    assert json.loads(result[3]) == SUCCESS


def test_port_forward_over_tls(daemon, tmp_path, relay):
    pod = make_pod(daemon, tmp_path, name="pod-tls-forward")
    container_id = create(daemon, pod, "web", [
        "sh", "-c", "mkdir -p /www && echo 'hello over tls' > /www/hello.txt && "
                    "exec httpd -f -p 80 -h /www"])
    start(daemon, container_id)
    wait_listening(daemon, container_id, 80)
    url = relay(port_forward_url(daemon, pod[0]))
    ws = websocket.create_connection(url.replace("http://", "ws://", 1) + "?port=80",
                                     subprotocols=["v4.channel.k8s.io"], timeout=30)
    ws.send_binary(b"\x00GET /hello.txt HTTP/1.0\r\n\r\n")
    out = ws_collect(ws)
    assert out.get(0, b"")[2:].endswith(b"\r\n\r\nhello over tls\n"), out


def test_plain_http_to_the_tls_port_is_told_so_and_runs_nothing(daemon, sleeper, pki):
    url = exec_url(daemon, sleeper, ["sh", "-c", "echo ran >> /tmp/ran"])
    parsed = urllib.parse.urlparse(url)
    for request in (f"POST {parsed.path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                    "Upgrade: SPDY/3.1\r\n\r\n".encode(), os.urandom(4096)):
        with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as s:
            s.sendall(request)
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        if request.startswith(b"POST"):
            assert answer.startswith(b"HTTP/1.0 400 Bad Request\r\n"), answer
            assert b"HTTP request to an HTTPS server" in answer, answer
    # The token was never read: the same URL still runs its command, once, over TLS.
    ws = websocket.create_connection(url.replace("https://", "wss://", 1),
                                     subprotocols=["v4.channel.k8s.io"], timeout=30,
                                     sslopt={"ca_certs": pki["ca"]})
    assert json.loads(ws_collect(ws)[3]) == SUCCESS
    check = exec_url(daemon, sleeper, ["cat", "/tmp/ran"])
    ws = websocket.create_connection(check.replace("https://", "wss://", 1),
                                     subprotocols=["v4.channel.k8s.io"], timeout=30,
                                     sslopt={"ca_certs": pki["ca"]})
    assert ws_collect(ws).get(1) == b"ran\n"


def test_a_rotated_certificate_is_served_to_new_connections(daemon, sleeper, served, pki):
    url = exec_url(daemon, sleeper, ["true"])
    context = client_context(pki)
    assert served_certificate(url, context) == pki["server"][2]
    # A rotation half done (the certificate written, not yet its key) keeps the old pair.
    cert, key = served
    with open(pki["rotated"][0], "rb") as f:
        rotated_cert = f.read()
    with open(cert + ".new", "wb") as f:
        f.write(rotated_cert)
    os.rename(cert + ".new", cert)
    time.sleep(1.1)  # the files are looked at once a second at most
    assert served_certificate(url, context) == pki["server"][2]
    assert "do not load" in daemon.log()
    with open(pki["rotated"][1], "rb") as f, open(key + ".new", "wb") as out:
        out.write(f.read())
    os.rename(key + ".new", key)
    time.sleep(1.1)
    assert served_certificate(url, context) == pki["rotated"][2]
    assert "TLS certificate reloaded" in daemon.log()


@pytest.fixture
def mtls(tmp_path, registry, pki):  # noqa: F811
    """A daemon that asks clients for a certificate signed by the client CA, and a container
    running in it: (daemon, container id)."""
    d = pulled_daemon(tmp_path, registry,
                      config=tls_config(pki["server"][0], pki["server"][1], pki["client_ca"]))
    pod = make_pod(d, tmp_path, name="pod-mtls")
    container_id = create(d, pod, "sleeper", ["sleep", "3600"])
    start(d, container_id)
    yield d, container_id
    remove_all_and_stop(d)


def test_client_certificates_are_required_with_a_ca(mtls, pki):
    d, container_id = mtls
    url = exec_url(d, container_id, ["echo", "trusted"])
    for cert in (None, pki["stranger"]):
        with pytest.raises((ssl.SSLError, OSError)):
            # TLS 1.3: the refusal may only show at the first read.
            parsed = urllib.parse.urlparse(url)
            with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as raw:
                with client_context(pki, cert).wrap_socket(
                        raw, server_hostname=parsed.hostname) as tls:
                    tls.sendall(b"GET / HTTP/1.1\r\n\r\n")
                    if not tls.recv(1):
                        raise OSError("closed")
    # The token is still good for a client the CA vouches for.
    ws = websocket.create_connection(
        url.replace("https://", "wss://", 1), subprotocols=["v4.channel.k8s.io"], timeout=30,
        sslopt={"ca_certs": pki["ca"], "certfile": pki["client"][0],
                "keyfile": pki["client"][1]})
    assert ws_collect(ws).get(1) == b"trusted\n"


@pytest.mark.parametrize("files, message", [
    (lambda p: (p["server"][0], p["rotated"][1]), "is not the key of stream_tls_cert"),
    (lambda p: ("/no/such.crt", p["server"][1]), "stream_tls_cert /no/such.crt"),
    (lambda p: (p["server"][0], p["server"][1], "/no/such-ca.crt"), "stream_tls_ca"),
])
def test_tls_files_that_do_not_load_stop_the_daemon_with_a_reason(tmp_path, pki, files, message):
    d = Daemon(str(tmp_path / "d"), config=tls_config(*files(pki)))
    with pytest.raises(RuntimeError) as error:
        d.start()
    assert message in str(error.value)
    assert d.proc.returncode != 0


# ---- monoctl over https ----

def monoctl(daemon, *args, stdin=None):
    from test_monoctl_streams import monoctl as run
    return run(daemon, *args, stdin=stdin)


def test_monoctl_exec_checks_the_certificate(daemon, sleeper, pki):
    # Not trusted: refused before anything runs, saying how to fix it.
    result = monoctl(daemon, "exec", sleeper, "sh", "-c", "echo ran >> /tmp/ran")
    assert result.returncode == 1
    assert b"certificate is not trusted" in result.stderr, result.stderr
    assert b"--stream-ca" in result.stderr, result.stderr
    # With the CA: checked and run, output and exit code as over http.
    result = monoctl(daemon, "--stream-ca", pki["ca"], "exec", "-i", sleeper, "sh", "-c",
                     "cat; cat /tmp/ran 2>/dev/null; exit 4", stdin=b"through tls\n")
    assert result.returncode == 4, result.stderr
    assert result.stdout == b"through tls\n", result  # the untrusted attempt ran nothing
    # The check skipped, as crictl does.
    result = monoctl(daemon, "--stream-insecure-skip-verify", "exec", sleeper, "echo", "skipped")
    assert (result.returncode, result.stdout) == (0, b"skipped\n"), result.stderr


def test_monoctl_exec_moves_four_mib_over_tls_byte_exact(daemon, sleeper, pki):
    payload = os.urandom(4 * 1024 * 1024)
    result = monoctl(daemon, "--stream-ca", pki["ca"], "exec", "-i", sleeper, "cat",
                     stdin=payload)
    assert result.returncode == 0, result.stderr
    assert result.stdout == payload


def test_monoctl_presents_a_client_certificate(mtls, pki):
    d, container_id = mtls
    result = monoctl(d, "--stream-ca", pki["ca"], "exec", container_id, "echo", "hi")
    assert result.returncode == 1 and b"certificate required" in result.stderr, result
    result = monoctl(d, "--stream-ca", pki["ca"], "--stream-cert", pki["client"][0],
                     "--stream-key", pki["client"][1], "exec", container_id, "echo", "hi")
    assert (result.returncode, result.stdout) == (0, b"hi\n"), result.stderr


def test_a_slow_tls_client_does_not_make_the_daemon_buffer(daemon, sleeper, pki):
    """As over plain TCP: the command is paused while its output waits for the client; the
    TLS records in memory stay bounded too."""
    total = 64 * 1024 * 1024
    rss_before = daemon.rss_kib()
    url = exec_url(daemon, sleeper, ["head", "-c", str(total), "/dev/zero"])
    ws = websocket.create_connection(url.replace("https://", "wss://", 1),
                                     subprotocols=["v4.channel.k8s.io"], timeout=60,
                                     sslopt={"ca_certs": pki["ca"]})
    assert_bounded_for_a_client_not_reading(daemon, rss_before, ws, total)
