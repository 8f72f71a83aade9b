"""The ROS 2 node (the rclpy transport): ``ros2 run arseg_ros arseg_node --ros-args --params-file config/arseg.yaml``.

Subscribes to one compressed-video topic (``packets``, remap it to the camera topic; the message type is the
``input_type`` parameter) and publishes, with the input's header: ``~/mask`` (mono8 class ids, 255 = no
label), ``~/color_mask`` (rgb8), optionally ``~/overlay`` (rgb8), ``~/label_info`` (vision_msgs/LabelInfo,
transient local, where vision_msgs is installed) and ``/diagnostics``. Decoding and inference run on a
worker thread (``arseg_ros.pipeline``), so the executor never blocks. This is the only module that imports
rclpy; ``arseg_ros.transport`` chooses between it and the DDS transport (``arseg_ros.dds``), which share
parameters, topic names and QoS.
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from .messages import array_data
from .model import ARSeg, load_checkpoint
from .pipeline import MessageTypes, NodeParameters, SegmentationPipeline
from .transport import DIAGNOSTIC_TASK, HARDWARE_ID, QosSpec, node_qos

RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
DURABILITY = {"volatile": DurabilityPolicy.VOLATILE, "transient_local": DurabilityPolicy.TRANSIENT_LOCAL}


def qos_profile(spec: QosSpec) -> QoSProfile:
    """The rclpy profile of a shared ``QosSpec``."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=spec.depth,
        reliability=RELIABILITY[spec.reliability],
        durability=DURABILITY[spec.durability],
    )


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
        self._qos = {name: qos_profile(spec) for name, spec in node_qos(self.params).items()}
        out_qos = self._qos["output"]
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
        in_qos = self._qos["input"]
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
        self._label_info_publisher = self.create_publisher(type(msg), "~/label_info", self._qos["label_info"])
        self._label_info_publisher.publish(msg)

    def _make_diagnostics(self) -> Any:
        try:
            from diagnostic_updater import Updater
        except ImportError:
            self.get_logger().warning("diagnostic_updater is not installed: no /diagnostics")
            return None
        updater = Updater(self)
        updater.setHardwareID(HARDWARE_ID)
        updater.add(DIAGNOSTIC_TASK, self._diagnose)
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


class RclpyPlayer:
    """Publishes serialized ROS messages with rclpy (``arseg-play --transport rclpy``)."""

    def __init__(self) -> None:
        from rosidl_runtime_py.utilities import get_message

        self._get_message = get_message
        self._context = rclpy.Context()
        rclpy.init(context=self._context)
        self._node = rclpy.create_node("arseg_play", context=self._context)
        self._publishers: dict[str, Any] = {}

    def add(self, topic: str, msgtype: str, qos: QosSpec) -> None:
        if topic not in self._publishers:
            self._publishers[topic] = self._node.create_publisher(self._get_message(msgtype), topic, qos_profile(qos))

    def publish(self, topic: str, raw: bytes) -> None:
        self._publishers[topic].publish(raw)

    def matched(self, topic: str) -> int:
        return self._publishers[topic].get_subscription_count()

    def flush(self, timeout_s: float) -> None:
        for publisher in self._publishers.values():
            publisher.wait_for_all_acked(Duration(seconds=timeout_s))

    def close(self) -> None:
        self._node.destroy_node()
        rclpy.try_shutdown(context=self._context)


def main(args: list[str] | None = None) -> None:
    """Run the rclpy node (``args``: the full command line, ``--ros-args`` included)."""
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
