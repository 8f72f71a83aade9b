"""launch_testing: the node starts from its launch description and latches its class list.

Needs ROS 2 with launch_testing; skipped elsewhere for that reason only.
"""

import tempfile
import time
import unittest
from pathlib import Path

import pytest

launch_testing = pytest.importorskip("launch_testing", reason="launch_testing (ROS 2) is not installed")
launch = pytest.importorskip("launch", reason="launch (ROS 2) is not installed")
launch_ros = pytest.importorskip("launch_ros", reason="launch_ros (ROS 2) is not installed")
vision_msgs = pytest.importorskip("vision_msgs.msg", reason="vision_msgs (ROS 2) is not installed")

import rclpy  # noqa: E402
import torch  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from arseg_ros.labels import CAMVID  # noqa: E402
from arseg_ros.model import ModelConfig, build_model, save_checkpoint  # noqa: E402

CHECKPOINT = Path(tempfile.mkdtemp()) / "model.pt"


@pytest.mark.launch_test
def generate_test_description():
    torch.manual_seed(0)
    config = ModelConfig(arch="bisenet18", labels=CAMVID)
    save_checkpoint(CHECKPOINT, build_model(config), config)
    node = launch_ros.actions.Node(
        package="arseg_ros",
        executable="arseg_node",
        name="arseg_node",
        parameters=[{"model": str(CHECKPOINT), "input_type": "compressed_image", "device": "cpu"}],
    )
    return launch.LaunchDescription([node, launch_testing.actions.ReadyToTest()]), {"arseg_node": node}


class TestLabelInfo(unittest.TestCase):
    def test_label_info_is_latched(self):
        rclpy.init()
        try:
            probe = rclpy.create_node("arseg_label_info_probe")
            qos = QoSProfile(
                depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
            )
            received = []
            probe.create_subscription(vision_msgs.LabelInfo, "/arseg_node/label_info", received.append, qos)
            deadline = time.monotonic() + 60
            while not received and time.monotonic() < deadline:
                rclpy.spin_once(probe, timeout_sec=0.1)
            probe.destroy_node()
        finally:
            rclpy.shutdown()
        self.assertTrue(received, "no LabelInfo on /arseg_node/label_info within 60 s")
        self.assertEqual([c.class_name for c in received[0].class_map], CAMVID.names)
