"""Interoperation both ways between the package's Cyclone DDS transport and rclpy on Fast DDS.

The node runs on one side in its own process, publisher and subscriber on the other: the DDS node serves an
rclpy probe (and rclpy's graph API sees it and its topics, through ``ros_discovery_info``), and the rclpy node
serves ``arseg-play --transport dds`` and a Cyclone DDS reader. Loopback only, each test on its own domain.
"""

import subprocess
import sys
import time

import pytest
from ros_required import import_or_skip

import_or_skip("rclpy")
import_or_skip("cyclonedds")

from ros_live import FRAMES, LATCHED, H, Probe, W, compressed_image, encode_street, node_command, stamp_ns, start_node
from sensor_msgs.msg import CompressedImage
from vision_msgs.msg import LabelInfo

from arseg_ros.demo import default_model
from arseg_ros.ros import dds_node
from arseg_ros.ros.conventions import QosSpec, loopback_environment

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
        # Fast DDS reports the match before Cyclone has discovered the writer: wait until the node counts it.
        assert probe.latest_status(lambda v: v.get("input_publishers") == "1") is not None, node.output()
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


def test_rclpy_node_serves_cyclone_dds_peers(packets, tmp_path):
    domain = 141
    stream = tmp_path / "street.h265"
    stream.write_bytes(b"".join(p.data for p in packets))
    node = start_node(node_command("rclpy", 120, *NODE_ARGS), domain, tmp_path / "node.log")
    env = loopback_environment(domain)
    reader = dds_node.RawReader(
        dds_node.participant(domain, loopback=True),
        "/arseg_node/mask",
        "sensor_msgs/msg/Image",
        QosSpec("reliable", 100),
    )
    try:
        play = subprocess.run(
            [
                sys.executable, "-m", "arseg_ros.ros.play", str(stream), "--transport", "dds", "--loopback",
                "--domain-id", str(domain), "--topic", "/camera/video", "--type", "compressed_image", "--fps", "30",
                "--wait-subscribers", "1", "--wait-timeout", "90", "--max-seconds", "30",
            ],
            env=env, capture_output=True, text=True, timeout=150,
        )  # fmt: skip
        masks = []
        deadline = time.monotonic() + 60
        while len(masks) < FRAMES and time.monotonic() < deadline:
            reader.wait(0.1)
            masks += reader.take(100)
    finally:
        assert node.stop() == 0, node.output()
    assert play.returncode == 0, play.stdout + play.stderr
    assert [stamp_ns(m.header.stamp) for m in masks] == [p.stamp_ns for p in packets], node.output()
    assert {(m.height, m.width, m.encoding) for m in masks} == {(H, W, "mono8")}
