"""Interoperation both ways between the package's Cyclone DDS transport and rclpy on Fast DDS.

The node runs on one side in its own process, publisher and subscriber on the other: the DDS node serves an
rclpy probe (and rclpy's graph API sees it and its topics, through ``ros_discovery_info``), and the rclpy node
serves a Cyclone DDS writer and reader (``test_live_dds.py`` publishes with ``arseg-play --transport dds``).
Loopback only, each test on its own domain.
"""

import time

import pytest
from ros_required import import_or_skip

import_or_skip("rclpy")
import_or_skip("cyclonedds")

from ros_live import FRAMES, LATCHED, H, Probe, W, compressed_image, encode_street, node_command, stamp_ns, start_node
from sensor_msgs.msg import CompressedImage
from vision_msgs.msg import LabelInfo

from arseg_ros.demo import default_model
from arseg_ros.ros import dds_node, dds_types
from arseg_ros.ros.conventions import QosSpec

MODEL = str(default_model())
NODE_ARGS = ("-p", f"model:={MODEL}", "-p", "input_type:=compressed_image", "-p", "device:=cpu")
NODE_ARGS += ("-p", "lag_policy:=all", "-r", "packets:=/camera/video")


@pytest.fixture(scope="module")
def packets():
    """Return the street as HEVC packets."""
    return encode_street("hevc")


def test_dds_node_serves_an_rclpy_peer_and_shows_in_its_graph(packets, tmp_path):
    domain = 140
    node = start_node(node_command("dds", 120, *NODE_ARGS), domain, tmp_path / "node.log")
    probe = Probe(domain)
    try:
        publisher = probe.publisher(CompressedImage, "/camera/video")
        probe.wait_subscribed(publisher, 90)
        probe.wait_for_node()
        # Fast DDS reports the match before Cyclone has matched the writer: wait until the node reports it too.
        assert probe.latest_status(lambda v: v.get("matched input publishers") == "1") is not None, node.output()
        probe.play(publisher, [compressed_image(p, "h265") for p in packets])
        probe.spin_until(lambda: len(probe.masks) >= FRAMES, 60)
        latched = []
        probe.node.create_subscription(LabelInfo, "/arseg_node/label_info", latched.append, LATCHED)
        probe.spin_until(lambda: latched, 20)
        status = probe.latest_status(lambda v: v.get("published") == str(FRAMES))
        probe.spin_until(lambda: ("arseg_node", "/") in probe.node.get_node_names_and_namespaces(), 20)
        nodes = probe.node.get_node_names_and_namespaces()
        published = dict(probe.node.get_publisher_names_and_types_by_node("arseg_node", "/"))
        subscribed = dict(probe.node.get_subscriber_names_and_types_by_node("arseg_node", "/"))
    finally:
        probe.close()
        assert node.stop() == 0, node.output()
    assert [stamp_ns(m.header.stamp) for m in probe.masks] == [p.stamp_ns for p in packets], node.output()
    assert {(m.height, m.width, m.encoding, m.header.frame_id) for m in probe.masks} == {(H, W, "mono8", "camera")}
    assert len(probe.colour) == FRAMES and len(latched) == 1
    assert status is not None and status.level == b"\x00", node.output()
    assert ("arseg_node", "/") in nodes
    assert published["/arseg_node/mask"] == ["sensor_msgs/msg/Image"]
    assert published["/diagnostics"] == ["diagnostic_msgs/msg/DiagnosticArray"]
    assert subscribed == {"/camera/video": ["sensor_msgs/msg/CompressedImage"]}


def wait_for(predicate, timeout_s: float) -> bool:
    """Poll ``predicate`` every 0.05 s until it holds or ``timeout_s`` passed; return whether it held."""
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_rclpy_node_serves_cyclone_dds_peers(packets, tmp_path):
    domain = 141
    node = start_node(node_command("rclpy", 120, *NODE_ARGS), domain, tmp_path / "node.log")
    peer = dds_node.participant(domain, loopback=True)
    writer = dds_node.Writer(peer, "/camera/video", "sensor_msgs/msg/CompressedImage", QosSpec("reliable", 100))
    masks = dds_node.RawReader(peer, "/arseg_node/mask", "sensor_msgs/msg/Image", QosSpec("reliable", 100))
    diagnostics = dds_node.RawReader(
        peer, "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", QosSpec("reliable", 10)
    )
    statuses = []

    def node_matched_writer() -> bool:
        statuses.extend(s for msg in diagnostics.take(10) for s in msg.status)
        return any(kv.key == "matched input publishers" and kv.value == "1" for s in statuses for kv in s.values)

    received = []
    try:
        # Each side of a match is seen on its own schedule: wait until both sides of both topics report it.
        assert wait_for(lambda: writer.matched() > 0 and masks.matched() > 0, 90), node.output()
        assert wait_for(node_matched_writer, 30), node.output()
        start = time.monotonic()
        for i, p in enumerate(packets):
            stamp = dds_types.Time(sec=p.stamp_ns // 10**9, nanosec=p.stamp_ns % 10**9)
            header = dds_types.Header(stamp=stamp, frame_id="camera")
            writer.write(dds_types.CompressedImage(header=header, format="h265", data=p.data))
            time.sleep(max(0.0, start + (i + 1) / 30 - time.monotonic()))
        deadline = time.monotonic() + 60
        while len(received) < FRAMES and time.monotonic() < deadline:
            masks.wait(0.1)
            received += masks.take(100)
    finally:
        assert node.stop() == 0, node.output()
    assert [stamp_ns(m.header.stamp) for m in received] == [p.stamp_ns for p in packets], node.output()
    assert {(m.height, m.width, m.encoding) for m in received} == {(H, W, "mono8")}
