"""Replays of real clients: the exact bytes crictl 1.26 and kubelet 1.26 (grpc-go) sent to a CRI
runtime, fed to the daemon. Every call must get a well-formed gRPC answer on the stream the
client opened, within the flow-control windows the client granted.

One adaptation, and only one: the recorded client acknowledged the two SETTINGS frames that the
recorded server (CRI-O) sent. The replay drops those recorded ACKs and acknowledges each SETTINGS
frame that monocri actually sends, as the client would have; nghttp2 (like RFC 9113 peers
generally) treats an ACK for a SETTINGS frame never sent as a protocol error. Every other byte -
preface, SETTINGS, HEADERS with their HPACK state, DATA, WINDOW_UPDATE, PING - is sent verbatim.
"""
import glob
import os
import socket
import time

import hpack
import pytest
from hyperframe.frame import (DataFrame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame,
                              SettingsFrame, WindowUpdateFrame)

from http2_raw import RawConnection, parse_frame, split_frames
from monocri_harness import FIXTURES, api_pb2, unary

FIXTURE_FILES = sorted(glob.glob(os.path.join(FIXTURES, "grpc", "*.c2s.bin")))
# The RPCs this issue implements, with the message type of their answers.
IMPLEMENTED = {
    "/runtime.v1.RuntimeService/Version": api_pb2.VersionResponse,
    "/runtime.v1.RuntimeService/Status": api_pb2.StatusResponse,
    "/runtime.v1.RuntimeService/RuntimeConfig": api_pb2.RuntimeConfigResponse,
    "/runtime.v1.RuntimeService/UpdateRuntimeConfig": api_pb2.UpdateRuntimeConfigResponse,
    "/runtime.v1.ImageService/ImageFsInfo": api_pb2.ImageFsInfoResponse,
    "/runtime.v1.ImageService/ListImages": api_pb2.ListImagesResponse,
    "/runtime.v1.ImageService/ImageStatus": api_pb2.ImageStatusResponse,
    "/runtime.v1.RuntimeService/ListPodSandbox": api_pb2.ListPodSandboxResponse,
    "/runtime.v1.RuntimeService/RunPodSandbox": api_pb2.RunPodSandboxResponse,
    "/runtime.v1.RuntimeService/StopPodSandbox": api_pb2.StopPodSandboxResponse,
    "/runtime.v1.RuntimeService/RemovePodSandbox": api_pb2.RemovePodSandboxResponse,
    "/runtime.v1.RuntimeService/ListContainers": api_pb2.ListContainersResponse,
    # Of containers this node never had: done, as the CRI asks of stop and remove.
    "/runtime.v1.RuntimeService/StopContainer": api_pb2.StopContainerResponse,
    "/runtime.v1.RuntimeService/RemoveContainer": api_pb2.RemoveContainerResponse,
}
# Implemented, but the request names a pod or container of the recorded node: NOT_FOUND here.
ABOUT_RECORDED_OBJECTS = {"/runtime.v1.RuntimeService/PodSandboxStatus",
                          "/runtime.v1.RuntimeService/ContainerStatus",
                          "/runtime.v1.RuntimeService/CreateContainer",
                          "/runtime.v1.RuntimeService/StartContainer",
                          "/runtime.v1.RuntimeService/ExecSync",
                          "/runtime.v1.RuntimeService/Exec"}
DEFAULT_WINDOW = 65535


def client_frames(path):
    with open(path, "rb") as f:
        data = f.read()
    frames, rest = split_frames(data)
    assert rest == b"", f"{path}: trailing partial frame"
    return frames


def replay(daemon, path):
    frames = client_frames(path)
    conn = RawConnection(daemon.socket, timeout=20)
    # What the client asked for and allowed, tracked as its bytes are sent.
    requests = {}  # stream id -> :path
    client_pings = []
    client_settings = 0
    conn_window = DEFAULT_WINDOW
    stream_window_base = DEFAULT_WINDOW
    stream_window_extra = {}
    hpack_decoder = hpack.Decoder()
    sent_settings_acks = 0
    first_settings_sent = False

    def ack_server_settings():
        nonlocal sent_settings_acks
        server_settings = [f for f in conn.frames
                           if isinstance(f, SettingsFrame) and "ACK" not in f.flags]
        while sent_settings_acks < len(server_settings):
            conn.send_frame(SettingsFrame(0, flags=["ACK"]))
            sent_settings_acks += 1

    def read_and_ack(timeout):
        conn.sock.settimeout(timeout)
        try:
            conn.read_some()
        except socket.timeout:
            pass
        ack_server_settings()

    for kind, raw in frames:
        if kind == "preface":
            conn.send(raw)
            continue
        frame = parse_frame(raw)
        if isinstance(frame, SettingsFrame):
            if "ACK" in frame.flags:
                continue  # recorded ACK of CRI-O's SETTINGS: replaced by ours below
            client_settings += 1
            for key, value in frame.settings.items():
                if key == SettingsFrame.INITIAL_WINDOW_SIZE:
                    stream_window_base = value
        elif isinstance(frame, HeadersFrame):
            fields = dict(hpack_decoder.decode(frame.data, raw=False))
            requests[frame.stream_id] = fields[":path"]
        elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
            client_pings.append(frame.opaque_data)
        elif isinstance(frame, WindowUpdateFrame):
            if frame.stream_id == 0:
                conn_window += frame.window_increment
            else:
                stream_window_extra[frame.stream_id] = (
                    stream_window_extra.get(frame.stream_id, 0) + frame.window_increment)
        conn.send(raw)
        if not first_settings_sent:
            # grpc-go waits for the server's SETTINGS before its first request.
            first_settings_sent = True
            conn.wait_for(lambda f: isinstance(f, SettingsFrame) and "ACK" not in f.flags)
        # Keep reading so that the server never blocks on a full socket.
        read_and_ack(0.001)

    # Every request answered: its stream ended by the server.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ended = {f.stream_id for f in conn.frames
                 if f.stream_id in requests and
                 (isinstance(f, RstStreamFrame) or "END_STREAM" in f.flags)}
        if ended == set(requests):
            break
        read_and_ack(0.2)
    conn.close()
    return conn, requests, client_pings, client_settings, conn_window, stream_window_base, \
        stream_window_extra


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[os.path.basename(p) for p in FIXTURE_FILES])
def test_replay(daemon, path):
    assert FIXTURE_FILES, "no fixtures found"
    (conn, requests, pings, client_settings, conn_window, stream_window,
     stream_extra) = replay(daemon, path)
    frames = conn.frames
    assert requests, "the fixture holds calls"

    # No connection error. A stream may be reset only with NO_ERROR after its complete answer
    # (RFC 9113 §8.1, as grpc-go servers do when they answer before the request ended).
    errors = [f for f in frames if isinstance(f, GoAwayFrame) and f.error_code != 0]
    assert not errors, errors
    for index, frame in enumerate(frames):
        if isinstance(frame, RstStreamFrame):
            assert frame.error_code == 0, frame
            assert any(f.stream_id == frame.stream_id and isinstance(f, HeadersFrame) and
                       "END_STREAM" in f.flags for f in frames[:index]), frame

    # The server speaks only on streams the client opened.
    for frame in frames:
        if frame.stream_id != 0:
            assert frame.stream_id in requests, f"frame on unknown stream {frame.stream_id}"

    # Every SETTINGS of the client acknowledged, every PING answered with its opaque data.
    acks = [f for f in frames if isinstance(f, SettingsFrame) and "ACK" in f.flags]
    assert len(acks) == client_settings
    pongs = [f.opaque_data for f in frames if isinstance(f, PingFrame) and "ACK" in f.flags]
    assert sorted(pongs) == sorted(pings)

    # Flow control: never more DATA than the client's windows allowed.
    data = [f for f in frames if isinstance(f, DataFrame)]
    assert sum(len(f.data) for f in data) <= conn_window
    for stream_id in requests:
        sent = sum(len(f.data) for f in data if f.stream_id == stream_id)
        assert sent <= stream_window + stream_extra.get(stream_id, 0)

    # Each call: a well-formed gRPC response with the right status.
    created = set()
    answered = {}
    for stream_id, rpc in requests.items():
        stream = [f for f in frames if f.stream_id == stream_id]
        blocks = [dict(f.decoded) for f in stream if isinstance(f, HeadersFrame)]
        assert blocks, f"{rpc} on stream {stream_id}: no answer"
        assert blocks[0][":status"] == "200"
        assert blocks[0]["content-type"] == "application/grpc"
        trailers = blocks[-1]
        assert "END_STREAM" in [f for f in stream if isinstance(f, HeadersFrame)][-1].flags
        body = b"".join(f.data for f in stream if isinstance(f, DataFrame))
        code = trailers["grpc-status"]
        answered[rpc] = answered.get(rpc, 0) + 1
        if rpc in IMPLEMENTED:
            assert code == "0", f"{rpc}: {trailers}"
            assert len(blocks) == 2, "headers, then trailers"
            assert body[0] == 0 and int.from_bytes(body[1:5], "big") == len(body) - 5
            message = IMPLEMENTED[rpc].FromString(body[5:])
            if rpc.endswith("/Version"):
                assert message.runtime_name == "monocri"
            if rpc.endswith("/ImageFsInfo"):
                assert message.image_filesystems[0].fs_id.mountpoint.endswith("/image")
            if rpc.endswith("/ImageStatus"):
                assert not message.HasField("image"), "an image this node lacks: no image, no error"
            if rpc.endswith("/RunPodSandbox"):
                assert len(message.pod_sandbox_id) == 64, "kubelet's pod config runs"
                created.add(message.pod_sandbox_id)
            if rpc.endswith("/Status"):
                assert {c.type for c in message.status.conditions} == {"RuntimeReady",
                                                                      "NetworkReady"}
        elif rpc in ABOUT_RECORDED_OBJECTS:
            assert code == "5", f"{rpc}: {trailers}"
            assert "not found" in trailers["grpc-message"]
        else:
            assert code == "12", f"{rpc}: {trailers}"
            assert len(blocks) == 1 and not body, "trailers-only answer"
            assert "does not implement" in trailers["grpc-message"]
    assert sum(answered.values()) == len(requests)
    with daemon.channel() as channel:  # the pods kubelet's calls made: gone with the test
        for pod_id in created:
            unary(channel, "/runtime.v1.RuntimeService/RemovePodSandbox",
                  api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
                  api_pb2.RemovePodSandboxResponse)


def test_the_kubelet_session_holds_130_calls():
    path = os.path.join(FIXTURES, "grpc", "kubelet-runtime.c2s.bin")
    headers = [parse_frame(raw) for kind, raw in client_frames(path) if kind == "frame"]
    assert sum(isinstance(f, HeadersFrame) for f in headers) == 130
