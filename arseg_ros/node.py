"""The ROS 2 node: ``ros2 run arseg_ros arseg_node --ros-args --params-file config/arseg.yaml``.

Subscribes to one compressed-video topic (``packets``, remap it to the camera topic; the message type is the
``input_type`` parameter) and publishes, with the input's header: ``~/mask`` (mono8 class ids, 255 = no
label), ``~/color_mask`` (rgb8), optionally ``~/overlay`` (rgb8), ``~/label_info`` (vision_msgs/LabelInfo,
transient local, where vision_msgs is installed) and ``/diagnostics``. Decoding and inference run on a
worker thread (``arseg_ros.pipeline``), so the executor never blocks. This is the only module that imports
rclpy.
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from .messages import array_data
from .model import ARSeg, load_checkpoint
from .pipeline import MessageTypes, NodeParameters, SegmentationPipeline

RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


def input_message_type(input_type: str) -> type:
    """The message class of an ``input_type`` parameter value; a clear error if its package is missing."""
    try:
        if input_type == "compressed_image":
            from sensor_msgs.msg import CompressedImage

            return CompressedImage
        if input_type == "ffmpeg_packet":
            from ffmpeg_image_transport_msgs.msg import FFMPEGPacket

            return FFMPEGPacket
        from foxglove_msgs.msg import CompressedVideo

        return CompressedVideo
    except ImportError as exc:
        raise RuntimeError(f"input_type {input_type!r} needs a ROS package that is not installed: {exc}") from None


def resolve_model_path(path: str) -> str:
    """``package://<pkg>/<rel>`` -> the file in that package's share folder; other paths are kept."""
    if not path:
        raise RuntimeError("parameter 'model' is empty: set it to an AR-Seg checkpoint (.pt)")
    if path.startswith("package://"):
        from ament_index_python.packages import get_package_share_directory

        package, _, rel = path[len("package://") :].partition("/")
        path = os.path.join(get_package_share_directory(package), rel)
    return path


class ArsegNode(Node):
    """Parameters -> model -> pipeline; the subscription only queues, the pipeline's worker publishes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("arseg_node", **kwargs)
        self.params = self._declare_parameters()
        model, ckpt = load_checkpoint(resolve_model_path(self.params.model))
        if not isinstance(model, ARSeg):
            raise RuntimeError(f"{self.params.model} holds a single network, not an AR-Seg model")
        out_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=self.params.output_depth,
            reliability=RELIABILITY[self.params.output_reliability],
        )
        self._image_publishers = {"mask": self.create_publisher(Image, "~/mask", out_qos)}
        if self.params.publish_color_mask:
            self._image_publishers["color_mask"] = self.create_publisher(Image, "~/color_mask", out_qos)
        if self.params.publish_overlay:
            self._image_publishers["overlay"] = self.create_publisher(Image, "~/overlay", out_qos)
        types = MessageTypes(image=Image, header=Header, time=Time, data=array_data)
        types.label_info, types.vision_class = self._vision_msgs()
        topic = self.resolve_topic_name("packets")
        self.pipeline = SegmentationPipeline(self.params, model, ckpt.config.labels, types, self._publish, topic)
        self._publish_label_info()
        in_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=self.params.input_depth,
            reliability=RELIABILITY[self.params.input_reliability],
        )
        msg_type = input_message_type(self.params.input_type)
        self._subscription = self.create_subscription(msg_type, "packets", self.pipeline.submit, in_qos)
        self._diagnostics = self._make_diagnostics()
        self.get_logger().info(
            f"segmenting {self.params.input_type} on {topic} with {ckpt.config.arch} "
            f"({self.params.mode}, device {self.pipeline.engine.device})"
        )

    def _declare_parameters(self) -> NodeParameters:
        values = {}
        for f in fields(NodeParameters):
            choices = f.metadata.get("choices") or ()
            descriptor = ParameterDescriptor(
                description=f.metadata["description"],
                additional_constraints=f"one of {list(choices)}" if choices else "",
            )
            values[f.name] = self.declare_parameter(f.name, f.default, descriptor).value
        return NodeParameters(**values)

    def _vision_msgs(self) -> tuple[type | None, type | None]:
        try:
            from vision_msgs.msg import LabelInfo, VisionClass
        except ImportError:
            self.get_logger().warning("vision_msgs is not installed: ~/label_info is not published")
            return None, None
        return LabelInfo, VisionClass

    def _publish_label_info(self) -> None:
        msg = self.pipeline.label_info(self.get_clock().now().nanoseconds)
        if msg is None:
            return
        latched = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._label_info_publisher = self.create_publisher(type(msg), "~/label_info", latched)
        self._label_info_publisher.publish(msg)

    def _make_diagnostics(self) -> Any:
        try:
            from diagnostic_updater import Updater
        except ImportError:
            self.get_logger().warning("diagnostic_updater is not installed: no /diagnostics")
            return None
        updater = Updater(self)
        updater.setHardwareID("arseg_ros")
        updater.add("arseg segmentation", self._diagnose)
        return updater

    def _diagnose(self, stat: Any) -> Any:
        level, message, values = self.pipeline.diagnostics()
        stat.summary(level, message)
        for key, value in values:
            stat.add(key, value)
        return stat

    def _publish(self, name: str, msg: Any) -> None:
        publisher = self._image_publishers.get(name)
        if publisher is not None:
            publisher.publish(msg)


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = ArsegNode()
        node.pipeline.start()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.pipeline.stop()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
