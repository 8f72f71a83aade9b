"""The rclpy node end to end: a publisher sends a generated HEVC stream, one mask per frame comes back.

Needs a ROS 2 installation (rclpy, sensor_msgs); skipped elsewhere for that reason only.
"""

import time

import numpy as np
import pytest
import torch

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed on this machine")
sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2) is not installed on this machine")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from test_engine import encode  # noqa: E402

from arseg_ros.data.synthetic import panning_clip  # noqa: E402
from arseg_ros.labels import CAMVID  # noqa: E402
from arseg_ros.model import ModelConfig, build_model, save_checkpoint  # noqa: E402
from arseg_ros.node import ArsegNode  # noqa: E402

N = 12


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def test_one_mask_per_frame_with_matching_stamps(context, tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(arch="bisenet18", labels=CAMVID)
    save_checkpoint(tmp_path / "model.pt", build_model(config), config)
    packets = encode(panning_clip(96, 64, N, seed=9).frames, codec="hevc", params="keyint=12:bframes=0")
    node = ArsegNode(
        context=context,
        parameter_overrides=[
            Parameter("model", value=str(tmp_path / "model.pt")),
            Parameter("input_type", value="compressed_image"),
            Parameter("device", value="cpu"),
            Parameter("lag_policy", value="all"),
        ],
    )
    peer = rclpy.create_node("arseg_test_peer", context=context)
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    publisher = peer.create_publisher(sensor_msgs.CompressedImage, "packets", qos)
    received = []
    peer.create_subscription(sensor_msgs.Image, "/arseg_node/mask", received.append, qos)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(peer)
    node.pipeline.start()
    try:
        deadline = time.monotonic() + 10
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        for p in packets:
            msg = sensor_msgs.CompressedImage(format="h265", data=np.frombuffer(p.data, np.uint8).tobytes())
            msg.header.stamp.sec, msg.header.stamp.nanosec = p.stamp_ns // 10**9, p.stamp_ns % 10**9
            msg.header.frame_id = "camera"
            publisher.publish(msg)
            executor.spin_once(timeout_sec=0.01)
        deadline = time.monotonic() + 60
        while len(received) < N and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        node.pipeline.stop()
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in received] == [p.stamp_ns for p in packets]
    assert all((m.encoding, m.height, m.width, m.header.frame_id) == ("mono8", 64, 96, "camera") for m in received)
