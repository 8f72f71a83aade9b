"""The rclpy adapter: ``NodeCore`` as a ROS 2 node, and rclpy publishers for ``arseg-play``.

    ros2 run arseg_ros arseg_node --ros-args --params-file config/arseg.yaml -r packets:=/camera/image_raw/ffmpeg

It declares the parameters of ``NodeParameters`` (descriptions, choices, read-only where they cannot change
while running), creates one endpoint for each of the core's, publishes ``/diagnostics`` through
``diagnostic_updater`` and moves messages; everything else is the core's. The subscription callback only
queues, the core's worker publishes, so the executor never blocks. The only module that imports rclpy.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import fields
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.duration import Duration
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ..model import CheckpointError
from .conventions import DIAGNOSTIC_TASK, DIAGNOSTICS_PERIOD_S, HARDWARE_ID, NODE_NAME, QosSpec, TransportError
from .core import Endpoint, MessageTypes, NodeCore
from .messages import array_data
from .parameters import NodeParameters

RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
DURABILITY = {"volatile": DurabilityPolicy.VOLATILE, "transient_local": DurabilityPolicy.TRANSIENT_LOCAL}


def qos_profile(spec: QosSpec) -> QoSProfile:
    """Return the rclpy profile of a shared ``QosSpec``."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=spec.depth,
        reliability=RELIABILITY[spec.reliability],
        durability=DURABILITY[spec.durability],
    )


def message_class(msgtype: str) -> type:
    """Return the rclpy class of ``pkg/msg/Type``; ``TransportError`` naming the package if it is not installed."""
    package, _, name = msgtype.partition("/msg/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        raise TransportError(f"{msgtype} needs the ROS package {package}, which is not installed") from None


class ArsegNode(Node):
    """Parameters -> ``NodeCore`` -> one rclpy endpoint per core endpoint; the worker publishes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        params = self._declare_parameters()
        types = MessageTypes(image=Image, header=Header, time=Time, data=array_data)
        types.label_info, types.vision_class = self._vision_msgs()
        self.core = NodeCore(params, types, self._publish, self.resolve_topic_name("packets"))
        self._image_publishers: dict[str, Any] = {}
        self._diagnostics = None
        for endpoint in self.core.endpoints():
            self._create(endpoint)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(
            f"segmenting {params.input_type} on {self.core.input_topic} with {self.core.arch} "
            f"({params.mode}, device {self.core.engine.device})"
        )

    def _declare_parameters(self) -> NodeParameters:
        dynamic = NodeParameters.dynamic_names()
        values = {}
        for f in fields(NodeParameters):
            choices = f.metadata["choices"]
            descriptor = ParameterDescriptor(
                description=f.metadata["description"],
                additional_constraints=f"one of {list(choices)}" if choices else "",
                read_only=f.name not in dynamic,
            )
            values[f.name] = self.declare_parameter(f.name, f.default, descriptor).value
        return NodeParameters(**values)

    def _vision_msgs(self) -> tuple[type | None, type | None]:
        try:
            from vision_msgs.msg import LabelInfo, VisionClass  # optional: ~/label_info needs it
        except ImportError:
            self.get_logger().warning("vision_msgs is not installed: ~/label_info is not published")
            return None, None
        return LabelInfo, VisionClass

    def _create(self, endpoint: Endpoint) -> None:
        qos = qos_profile(endpoint.qos)
        if endpoint.key == "input":
            self._subscription = self.create_subscription(
                message_class(endpoint.msgtype), endpoint.name, self.core.submit, qos
            )
            self.core.matched_publishers = self._subscription.get_publisher_count
        elif endpoint.key == "label_info":
            msg = self.core.label_info(self.get_clock().now().nanoseconds)
            if msg is not None:
                self._label_info_publisher = self.create_publisher(type(msg), endpoint.name, qos)
                self._label_info_publisher.publish(msg)
        elif endpoint.key == "diagnostics":
            self._diagnostics = self._make_diagnostics()
        else:
            self._image_publishers[endpoint.key] = self.create_publisher(Image, endpoint.name, qos)

    def _make_diagnostics(self) -> Any:
        try:
            from diagnostic_updater import Updater  # optional: /diagnostics needs it
        except ImportError:
            self.get_logger().warning("diagnostic_updater is not installed: no /diagnostics")
            return None
        updater = Updater(self, period=DIAGNOSTICS_PERIOD_S)
        updater.setHardwareID(HARDWARE_ID)
        updater.add(DIAGNOSTIC_TASK, self._diagnose)
        return updater

    def _diagnose(self, stat: Any) -> Any:
        report = self.core.diagnostic_status()
        stat.summary(report.level.as_byte(), report.message)
        for key, value in report.values:
            stat.add(key, value)
        return stat

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        ours = set(NodeParameters.names())
        values = {p.name: p.value for p in parameters if p.name in ours}
        if not values:
            return SetParametersResult(successful=True)
        try:
            self.core.set_parameters(values)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _publish(self, key: str, msg: Any) -> None:
        publisher = self._image_publishers.get(key)
        if publisher is not None:
            publisher.publish(msg)


class RclpyPlayer:
    """Publishes serialized ROS messages with rclpy (``arseg-play --transport rclpy``)."""

    def __init__(self) -> None:
        self._context = rclpy.Context()
        rclpy.init(context=self._context)
        self._node = rclpy.create_node("arseg_play", context=self._context)
        self._publishers: dict[str, Any] = {}

    def add(self, topic: str, msgtype: str, qos: QosSpec) -> None:
        """Create the publisher of ``topic`` (once)."""
        if topic not in self._publishers:
            self._publishers[topic] = self._node.create_publisher(message_class(msgtype), topic, qos_profile(qos))

    def publish(self, topic: str, raw: bytes) -> None:
        """Publish one serialized message (CDR with its encapsulation header) on ``topic``."""
        self._publishers[topic].publish(raw)

    def matched(self, topic: str) -> int:
        """Return the number of subscriptions matched on ``topic``."""
        return self._publishers[topic].get_subscription_count()

    def flush(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` per publisher until its reliable subscribers acknowledged everything."""
        for publisher in self._publishers.values():
            publisher.wait_for_all_acked(Duration(seconds=timeout_s))

    def close(self) -> None:
        """Destroy the node and shut its context down."""
        self._node.destroy_node()
        rclpy.try_shutdown(context=self._context)


def spin(node: ArsegNode, max_seconds: float) -> None:
    """Spin ``node`` with the core's worker running until shutdown, ^C or ``max_seconds`` (0: no limit)."""
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    node.core.start()
    deadline = time.monotonic() + max_seconds if max_seconds > 0 else None
    try:
        while node.context.ok() and (deadline is None or time.monotonic() < deadline):
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.core.stop()
        executor.shutdown()


def run_node(args: argparse.Namespace, ros_argv: list[str]) -> int:
    """Run ``arseg_node --transport rclpy``: build the node from ``--ros-args`` and spin; return the exit status."""
    rclpy.init(args=[sys.argv[0], *ros_argv])
    node = None
    try:
        node = ArsegNode()
        spin(node, args.max_seconds)
    except (ValueError, ParameterException, CheckpointError, TransportError) as exc:
        print(f"arseg_node: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
