"""Helpers for the live ROS 2 tests: streams, the node in its own process, and an rclpy probe.

Every process these helpers start runs on loopback only (``loopback_environment``: Cyclone DDS on ``lo``,
Fast DDS with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) on the caller's own DDS domain, and every wait has
a deadline. Importing this module needs rclpy (callers import it after ``import_or_skip("rclpy")``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from arseg_ros.codec.encode import EncoderSettings, encode_frames
from arseg_ros.codec.packets import Packet
from arseg_ros.data.synthetic import driving_clip
from arseg_ros.ros.conventions import loopback_environment
from arseg_ros.ros.play import video_packets

W, H, FRAMES = 128, 96, 24
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
DIAGNOSTIC_NAME = "arseg_node: arseg segmentation"


def encode_street(codec: str, seed: int = 3) -> list[Packet]:
    """Return two 12-frame GOPs of the procedural street (``W`` x ``H``, no B-frames) as packets.

    Stamped at 30 fps exactly as ``arseg-play --fps 30`` stamps the same stream written to a file.
    """
    clip = driving_clip(W, H, FRAMES, seed=seed)
    encoded = encode_frames(clip.frames, EncoderSettings(codec=codec, keyint=12, bframes=0, preset="ultrafast"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"street.{'h265' if codec == 'hevc' else 'h264'}"
        path.write_bytes(b"".join(p.data for p in encoded))
        return list(video_packets(path, "camera", 30.0))


def stamp_ns(stamp: Any) -> int:
    """Return a ``builtin_interfaces/Time`` in nanoseconds."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def set_stamp(stamp: Any, ns: int) -> None:
    """Set a ``builtin_interfaces/Time`` from nanoseconds."""
    stamp.sec, stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000


def node_command(transport: str, max_seconds: float, *ros_args: str) -> list[str]:
    """Return the command line of ``arseg_node`` on ``transport`` that stops itself after ``max_seconds``."""
    loopback = ["--loopback"] if transport == "dds" else []
    return [
        sys.executable, "-m", "arseg_ros.ros.node", "--transport", transport, *loopback,
        "--max-seconds", str(max_seconds), "--ros-args", *ros_args,
    ]  # fmt: skip


@dataclass
class NodeProcess:
    """``arseg_node`` running in its own process, its output in ``log``."""

    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        """Return everything the node printed so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """Stop the node (SIGINT, then SIGKILL after 20 s) and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_node(command: list[str], domain: int, log: Path) -> NodeProcess:
    """Start ``command`` on ``domain`` (loopback only), its output going to ``log``."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=loopback_environment(domain), stdout=out, stderr=subprocess.STDOUT)
    return NodeProcess(process, log)


@dataclass
class Probe:
    """An rclpy node in the test process that publishes input and collects what ``arseg_node`` publishes."""

    domain: int
    prefix: str = "/arseg_node"
    masks: list[Image] = field(default_factory=list)
    colour: list[Image] = field(default_factory=list)
    overlays: list[Image] = field(default_factory=list)
    diagnostics: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain)
        self.node = rclpy.create_node("arseg_test_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.mask_subscription = self.node.create_subscription(
            Image, f"{self.prefix}/mask", self.masks.append, RELIABLE
        )
        self.node.create_subscription(Image, f"{self.prefix}/color_mask", self.colour.append, RELIABLE)
        self.node.create_subscription(Image, f"{self.prefix}/overlay", self.overlays.append, RELIABLE)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diagnostics, RELIABLE)

    def _diagnostics(self, msg: DiagnosticArray) -> None:
        self.diagnostics += [s for s in msg.status if s.name == DIAGNOSTIC_NAME]

    def publisher(self, msg_type: type, topic: str) -> Any:
        """Return a reliable publisher of ``msg_type`` on ``topic``."""
        return self.node.create_publisher(msg_type, topic, RELIABLE)

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Spin until ``predicate()`` holds or ``timeout_s`` passed; return whether it held."""
        deadline = time.monotonic() + timeout_s
        while not predicate() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def wait_subscribed(self, publisher: Any, timeout_s: float = 60.0) -> None:
        """Spin until ``publisher`` has a subscriber; ``AssertionError`` after ``timeout_s``."""
        assert self.spin_until(lambda: publisher.get_subscription_count() > 0, timeout_s), "no subscriber matched"

    def wait_for_node(self, timeout_s: float = 60.0) -> None:
        """Spin until the node's mask publisher matched this probe; ``AssertionError`` after ``timeout_s``."""
        matched = self.spin_until(lambda: self.mask_subscription.get_publisher_count() > 0, timeout_s)
        assert matched, f"no publisher of {self.prefix}/mask matched"

    def play(self, publisher: Any, messages: list[Any], fps: float = 30.0) -> None:
        """Publish ``messages`` at ``fps``, spinning between them."""
        start = time.monotonic()
        for i, msg in enumerate(messages):
            publisher.publish(msg)
            due = start + (i + 1) / fps
            while time.monotonic() < due:
                self.executor.spin_once(timeout_sec=max(0.0, due - time.monotonic()))

    def latest_status(self, predicate: Callable[[dict[str, str]], bool], timeout_s: float = 20.0) -> Any:
        """Return the first diagnostics status (from now) whose values satisfy ``predicate``, or None."""
        seen = len(self.diagnostics)

        def found() -> bool:
            return any(predicate(values(s)) for s in self.diagnostics[seen:])

        self.spin_until(found, timeout_s)
        return next((s for s in self.diagnostics[seen:] if predicate(values(s))), None)

    def close(self) -> None:
        """Destroy the probe and shut its context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def values(status: Any) -> dict[str, str]:
    """Return the key-value pairs of a ``DiagnosticStatus``."""
    return {kv.key: kv.value for kv in status.values}


def compressed_image(packet: Packet, fmt: str, frame_id: str = "camera") -> CompressedImage:
    """Return a ``sensor_msgs/CompressedImage`` carrying ``packet`` with ``format`` ``fmt``."""
    msg = CompressedImage(format=fmt, data=bytes(packet.data))
    set_stamp(msg.header.stamp, packet.stamp_ns)
    msg.header.frame_id = frame_id
    return msg
