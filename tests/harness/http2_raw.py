"""A raw HTTP/2 peer for hostile and byte-exact tests: frames built and parsed with hyperframe,
header blocks with hpack (both from Debian's python3-h2), no client library deciding for us."""
import socket
import struct
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER = 9


def split_frames(data):
    """Splits bytes into whole frames (after an optional preface); returns (frames, rest)."""
    frames = []
    pos = 0
    if data.startswith(PREFACE):
        frames.append(("preface", PREFACE))
        pos = len(PREFACE)
    while len(data) - pos >= FRAME_HEADER:
        length = int.from_bytes(data[pos:pos + 3], "big")
        if len(data) - pos < FRAME_HEADER + length:
            break
        frames.append(("frame", data[pos:pos + FRAME_HEADER + length]))
        pos += FRAME_HEADER + length
    return frames, data[pos:]


def parse_frame(raw):
    frame, length = Frame.parse_frame_header(memoryview(raw[:FRAME_HEADER]))
    frame.parse_body(memoryview(raw[FRAME_HEADER:FRAME_HEADER + length]))
    return frame


def grpc_message(payload, compressed=False):
    return struct.pack(">BI", 1 if compressed else 0, len(payload)) + payload


class RawConnection:
    """Reads and decodes whatever the server sends; keeps the HPACK state of the connection."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buffer = b""
        self.frames = []  # decoded server frames, in order
        self.decoder = hpack.Decoder()
        self.encoder = hpack.Encoder()
        self.closed = False

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, frame):
        self.sock.sendall(frame.serialize())

    def handshake(self):
        """Client preface and SETTINGS, then the server's SETTINGS, which we acknowledge."""
        self.send(PREFACE + SettingsFrame(0).serialize())
        settings = self.wait_for(lambda f: isinstance(f, SettingsFrame) and "ACK" not in f.flags)
        self.send_frame(SettingsFrame(0, flags=["ACK"]))
        return settings

    def headers(self, stream_id, fields, end_stream=False):
        flags = ["END_HEADERS"] + (["END_STREAM"] if end_stream else [])
        frame = HeadersFrame(stream_id, self.encoder.encode(fields), flags=flags)
        self.send_frame(frame)

    def request(self, stream_id, path, message=None, end_stream=True, extra=()):
        fields = [(":method", "POST"), (":scheme", "http"), (":path", path),
                  (":authority", "localhost"), ("content-type", "application/grpc"),
                  ("te", "trailers"), *extra]
        self.headers(stream_id, fields, end_stream=message is None and end_stream)
        if message is not None:
            self.send_frame(DataFrame(stream_id, message,
                                      flags=["END_STREAM"] if end_stream else []))

    def read_some(self):
        """One recv; decodes every complete frame. Returns False once the server closed."""
        if self.closed:
            return False
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buffer += chunk
        raws, self.buffer = split_frames(self.buffer)
        for _, raw in raws:
            frame = parse_frame(raw)
            if isinstance(frame, (HeadersFrame, ContinuationFrame)):
                frame.decoded = self.decoder.decode(frame.data, raw=False)
            self.frames.append(frame)
        return True

    def wait_for(self, predicate, timeout=10):
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for frame in self.frames[checked:]:
                if predicate(frame):
                    return frame
            checked = len(self.frames)
            if time.monotonic() > deadline:
                raise TimeoutError("no matching frame from the server")
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self.read_some():
                    raise ConnectionError("the server closed the connection")
            except socket.timeout:
                pass

    def wait_closed(self, timeout=10):
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                self.read_some()
            except socket.timeout:
                pass
        return self.closed

    def stream_frames(self, stream_id):
        return [f for f in self.frames if f.stream_id == stream_id]

    def response(self, stream_id, timeout=10):
        """Waits for the end of a stream; returns (headers dict, data bytes, trailers dict, rst)."""
        def ended(frame):
            return frame.stream_id == stream_id and (
                isinstance(frame, RstStreamFrame) or "END_STREAM" in frame.flags)
        self.wait_for(ended, timeout=timeout)
        blocks = [dict(f.decoded) for f in self.stream_frames(stream_id)
                  if isinstance(f, HeadersFrame)]
        data = b"".join(f.data for f in self.stream_frames(stream_id) if isinstance(f, DataFrame))
        rst = [f for f in self.stream_frames(stream_id) if isinstance(f, RstStreamFrame)]
        headers = blocks[0] if blocks else {}
        trailers = blocks[-1] if blocks else {}
        return headers, data, trailers, rst[0] if rst else None

    def close(self):
        self.sock.close()


__all__ = ["PREFACE", "RawConnection", "split_frames", "parse_frame", "grpc_message",
           "DataFrame", "GoAwayFrame", "HeadersFrame", "PingFrame", "RstStreamFrame",
           "SettingsFrame", "WindowUpdateFrame"]
