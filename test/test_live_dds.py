"""The node live on DDS, end to end, on loopback, with bad input; the node keeps running and counts it.

``arseg-play`` publishes a generated 320x240 HEVC stream at 30 fps, ``arseg_node --transport dds`` runs as a
separate process with the demo model, and this test subscribes to its masks and diagnostics like any ROS 2
node would. Then a burst, a publisher restart mid-stream, corrupted packets and bad input (another type on the
topic, malformed CDR, an oversized payload): the node keeps running and its diagnostics count what happened.

Bounded: every wait has a deadline, publishing loops are finite, the node stops itself after ``NODE_SECONDS``.
"""

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cyclonedds", reason="the DDS transport needs the cyclonedds package (extra 'dds')")

from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final
from rosbags.rosbag2 import Reader

from arseg_ros.codec.encode import EncoderSettings, encode_frames
from arseg_ros.data.bags import BagWriter
from arseg_ros.data.synthetic import driving_clip
from arseg_ros.demo import default_model
from arseg_ros.ros import dds_node as dds
from arseg_ros.ros import dds_types
from arseg_ros.ros.conventions import QosSpec, loopback_environment
from arseg_ros.ros.play import main as play_main
from arseg_ros.ros.play import video_packets

DOMAIN = 73
ENV = loopback_environment(DOMAIN)
TOPIC = "/camera/image_raw/compressed"
FRAMES, W, H = 24, 320, 240
NODE_SECONDS = 150
MAX_BYTES = 1_000_000


@final
@dataclass
class String(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    """Two 12-frame GOPs of the procedural street, HEVC without B-frames, as an Annex B file (30 fps)."""
    clip = driving_clip(W, H, FRAMES, seed=3)
    packets = encode_frames(clip.frames, EncoderSettings(codec="hevc", keyint=12, bframes=0))
    path = tmp_path_factory.mktemp("live") / "street.h265"
    path.write_bytes(b"".join(p.data for p in packets))
    return path


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """``arseg_node --transport dds`` in its own process, on the test's domain, loopback only."""
    log = tmp_path_factory.mktemp("node") / "node.log"
    command = [
        sys.executable, "-m", "arseg_ros.ros.node", "--transport", "dds", "--max-seconds", str(NODE_SECONDS),
        "--ros-args", "-p", f"model:={default_model()}", "-p", "input_type:=compressed_image", "-p", "device:=cpu",
        "-p", "lag_policy:=all", "-p", f"max_message_bytes:={MAX_BYTES}", "-r", f"packets:={TOPIC}",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, env=ENV, stdout=out, stderr=subprocess.STDOUT)
    yield process, log
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class Listener:
    """Masks and diagnostics of the node, read over DDS as a ROS 2 subscriber would."""

    def __init__(self) -> None:
        self.dp = dds.participant(DOMAIN, loopback=True)
        self.masks = dds.RawReader(self.dp, "/arseg_node/mask", "sensor_msgs/msg/Image", QosSpec("reliable", 200))
        self.diagnostics = dds.RawReader(
            self.dp, "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", QosSpec("reliable", 10)
        )
        self.stamps: list[int] = []
        self.shapes: set[tuple[int, int, str, str]] = set()
        self.status: dict[str, str] = {}

    def poll(self) -> None:
        for msg in self.masks.take(200):
            self.stamps.append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
            self.shapes.add((msg.height, msg.width, msg.encoding, msg.header.frame_id))
        for msg in self.diagnostics.take(10):
            self.status = {kv.key: kv.value for kv in msg.status[0].values}

    def wait_masks(self, count: int, timeout_s: float) -> list[int]:
        """Return the stamps of the next ``count`` masks (fewer if ``timeout_s`` passes first)."""
        start = len(self.stamps)
        deadline = time.monotonic() + timeout_s
        while len(self.stamps) - start < count and time.monotonic() < deadline:
            self.masks.wait(0.1)
            self.poll()
        return self.stamps[start:]

    def wait_until(self, predicate, timeout_s: float) -> bool:
        """Poll until ``predicate()`` holds; whether it did before ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not predicate() and time.monotonic() < deadline:
            self.masks.wait(0.1)
            self.poll()
        return predicate()

    def wait_status(self, predicate, timeout_s: float = 15.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while not (self.status and predicate(self.status)) and time.monotonic() < deadline:
            self.diagnostics.wait(0.2)
            self.poll()
        return self.status


def count(status: dict[str, str], key: str) -> int:
    return int(status.get(key, "0"))


def play(stream: Path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "arseg_ros.ros.play", str(stream), "--transport", "dds", "--topic", TOPIC,
        "--type", "compressed_image", "--fps", "30", "--wait-subscribers", "1", "--wait-timeout", "60",
        "--max-seconds", "30", *extra,
    ]  # fmt: skip
    return subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=90)
    assert process.returncode == 0, out
    return out


def test_live_stream_burst_restart_and_bad_input(stream, node):
    process, log = node
    stamps = [p.stamp_ns for p in video_packets(stream, "camera", 30.0)]
    assert len(stamps) == FRAMES and stamps[1] - stamps[0] == 33_333_333
    listener = Listener()
    deadline = time.monotonic() + 90
    while listener.masks.matched() == 0 and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        time.sleep(0.1)
    assert listener.masks.matched() == 1, log.read_text()

    # 1. The stream at its recorded 30 fps: one mask per frame, stamps copied from the input.
    started = time.monotonic()
    out = finish(play(stream))
    assert f"published {FRAMES} messages" in out
    assert time.monotonic() - started >= (FRAMES - 1) / 30
    assert listener.wait_masks(FRAMES, 60) == stamps, log.read_text()
    assert listener.shapes == {(H, W, "mono8", "camera")}

    # 2. A burst: the same stream as fast as possible; every frame still gets its mask (lag_policy all).
    finish(play(stream, "--rate", "0"))
    assert listener.wait_masks(FRAMES, 60) == stamps, log.read_text()

    # 3. The publisher dies mid-stream (SIGKILL) and a new one starts over.
    dying = play(stream, "--rate", "0.25")
    listener.wait_status(lambda s: count(s, "received") >= 2 * FRAMES + 6, timeout_s=60)
    dying.kill()
    dying.communicate(timeout=30)
    assert dying.returncode == -signal.SIGKILL
    finish(play(stream))
    assert listener.wait_until(lambda: listener.stamps[-FRAMES:] == stamps, 60), log.read_text()

    # 4. Bad input and corrupted packets from a peer, then the stream again.
    peer = dds.participant(DOMAIN, loopback=True)
    writer = dds.Writer(peer, TOPIC, "sensor_msgs/msg/CompressedImage", QosSpec("reliable", 100))
    other_type = dds.DataWriter(peer, dds.Topic(peer, "rt" + TOPIC, String))
    deadline = time.monotonic() + 30
    while writer.matched() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    other_type.write(String(data="not video"))

    def image(data: bytes, stamp_ns: int, fmt: str = "h265") -> dds_types.CompressedImage:
        stamp = dds_types.Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
        return dds_types.CompressedImage(header=dds_types.Header(stamp=stamp, frame_id="camera"), format=fmt, data=data)

    packets = list(video_packets(stream, "camera", 30.0))
    base = 100 * 10**9
    writer.write(image(packets[0].data, base, fmt="jpeg"))  # unsupported format
    writer.write(image(b"", base))  # empty payload
    writer.write(image(bytes(MAX_BYTES + 1), base))  # oversized
    valid = dds_types.encode_cdr(image(packets[0].data, base))
    writer.write_cdr(valid.replace(b"h265", b"\xff\xfe65", 1))  # malformed: invalid UTF-8
    writer.write_cdr(valid + b"\xaa" * 16)  # malformed: trailing bytes
    rng = np.random.default_rng(0)
    for i, packet in enumerate(packets):
        data = bytearray(packet.data)
        if i == 5:  # corrupted slice data in a P-frame
            data[len(data) // 2 : len(data) // 2 + 200] = rng.bytes(200)
        writer.write(image(bytes(data), base + packet.stamp_ns))
        time.sleep(1 / 30)
    last_gop = {base + s for s in stamps[12:]}
    assert listener.wait_until(lambda: last_gop <= set(listener.stamps), 60), log.read_text()
    status = listener.wait_status(
        lambda s: count(s, "published") == len(listener.stamps) and count(s, "rejected_wrong_type") >= 1
    )
    assert process.poll() is None, log.read_text()

    assert count(status, "rejected_unsupported") == 1
    assert count(status, "rejected_no_nal_unit") == 1
    assert count(status, "rejected_oversized") == 1
    assert count(status, "rejected_malformed") == 2
    assert count(status, "rejected_wrong_type") == 1
    assert count(status, "parse_error") + count(status, "decode_error") >= 1
    assert count(status, "stamp_regression") >= 3  # the burst, the restart and the second full pass start over
    assert count(status, "input_publishers") >= 5  # four arseg-play processes and the peer
    assert count(status, "received") >= 4 * FRAMES + 6 + 5
    assert count(status, "published") == len(listener.stamps)
    text = log.read_text()
    # One warning per kind (the second malformed one is throttled); the engine drops the empty payload.
    assert text.count("dropped input") == 4 and text.count("holds no NAL unit") == 1, text

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_play_sends_a_bag_as_recorded(tmp_path):
    """``arseg-play`` on a bag: every message of the topic, byte for byte as stored, in recording order."""
    bag = tmp_path / "bag"
    clip = driving_clip(64, 48, 6, seed=1)
    encoded = encode_frames(clip.frames, EncoderSettings(codec="hevc", keyint=6, bframes=0))
    with BagWriter(bag) as writer:
        for p in encoded:
            stamp = p.index * 33_333_333
            writer.write_packet(
                "/cam/h265", "ffmpeg_packet", "hevc", p.data, stamp, stamp, "cam", p.key, 64, 48, p.index
            )
    with Reader(bag) as reader:
        recorded = [bytes(raw) for _, _, raw in reader.messages()]
    listener = dds.RawReader(
        dds.participant(DOMAIN, loopback=True), "/cam/h265", "ffmpeg_image_transport_msgs/msg/FFMPEGPacket",
        QosSpec("reliable", 50),
    )  # fmt: skip
    argv = [str(bag), "--transport", "dds", "--domain-id", str(DOMAIN), "--loopback", "--rate", "0"]
    assert play_main([*argv, "--wait-subscribers", "1", "--loop", "2"]) == 0
    received: list[bytes] = []
    assert_until = time.monotonic() + 20
    while len(received) < 2 * len(recorded) and time.monotonic() < assert_until:
        listener.wait(0.1)
        received += listener.take_raw()
    assert [raw[: len(r)] for raw, r in zip(received, recorded * 2, strict=True)] == recorded * 2
