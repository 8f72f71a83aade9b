"""The transport seam under the node: what both bindings share, and ``arseg_node``'s entry point.

``arseg_node`` runs the same node logic (``arseg_ros.pipeline``) over one of two transports:

- ``rclpy`` (``arseg_ros.node``): a ROS 2 node; the default wherever rclpy imports.
- ``dds`` (``arseg_ros.dds``): Cyclone DDS directly, speaking the ROS 2 wire conventions, so the node runs
  without a ROS installation and still talks to ROS 2 nodes that use ``rmw_cyclonedds_cpp``.

Both take the same parameters (``NodeParameters``, from ``--ros-args --params-file``/``-p``), resolve the same
topic names (``-r`` remaps, namespace, ``~/``) and use the same QoS (``node_qos``). This module imports
neither rclpy nor cyclonedds.

ROS 2 wire conventions used by the DDS transport: topic ``rt<resolved name>`` (``/arseg_node/mask`` ->
``rt/arseg_node/mask``), type ``<pkg>::msg::dds_::<Type>_``, payload CDR little-endian (encapsulation
``00 01 00 00``), DDS domain = ``ROS_DOMAIN_ID``.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .pipeline import INPUT_TYPES, NodeParameters

log = logging.getLogger(__name__)

NODE_NAME = "arseg_node"
TRANSPORTS = ("auto", "rclpy", "dds")
DIAGNOSTICS_PERIOD_S = 1.0
DIAGNOSTIC_TASK = "arseg segmentation"
HARDWARE_ID = "arseg_ros"

# ROS message type of each ``input_type`` parameter value.
INPUT_MSGTYPES = {
    "compressed_image": "sensor_msgs/msg/CompressedImage",
    "ffmpeg_packet": "ffmpeg_image_transport_msgs/msg/FFMPEGPacket",
    "compressed_video": "foxglove_msgs/msg/CompressedVideo",
}
assert set(INPUT_MSGTYPES) == set(INPUT_TYPES)

# Cyclone DDS confined to the loopback interface, unicast discovery of 127.0.0.1 only.
LOOPBACK_URI = (
    '<CycloneDDS><Domain><General><Interfaces><NetworkInterface name="lo"/></Interfaces>'
    '<AllowMulticast>false</AllowMulticast></General><Discovery><Peers><Peer address="127.0.0.1"/></Peers>'
    "</Discovery></Domain></CycloneDDS>"
)
# Built-in parameters every ROS 2 node has; accepted and ignored by the DDS transport.
ROS_BUILTIN_PARAMETERS = ("use_sim_time",)


class TransportError(RuntimeError):
    """A transport that is not available, or a command line it cannot run."""


def loopback_environment(domain_id: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) that confines DDS to loopback on ``domain_id``.

    Sets ``CYCLONEDDS_URI`` to ``LOOPBACK_URI`` and ``ROS_DOMAIN_ID``; pass it as ``env`` to child processes.
    """
    if not 0 <= domain_id <= 232:
        raise ValueError(f"DDS domain id {domain_id} is out of range: use 0..232")
    env = dict(os.environ if base is None else base)
    env["CYCLONEDDS_URI"] = LOOPBACK_URI
    env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def domain_from_environment() -> int:
    """The DDS domain id of ``ROS_DOMAIN_ID`` (0 when unset), as rmw implementations map it."""
    value = os.environ.get("ROS_DOMAIN_ID", "").strip()
    if not value:
        return 0
    if not value.isdigit() or int(value) > 232:
        raise TransportError(f"ROS_DOMAIN_ID={value!r} is not a domain id: use an integer in 0..232")
    return int(value)


# -- QoS -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QosSpec:
    """A ROS 2 QoS profile as both transports need it: KEEP_LAST ``depth`` messages."""

    reliability: str
    depth: int
    durability: str = "volatile"


def node_qos(params: NodeParameters) -> dict[str, QosSpec]:
    """The QoS of every endpoint of the node: ``input``, ``output`` (the images), ``label_info``,
    ``diagnostics``."""
    return {
        "input": QosSpec(params.input_reliability, params.input_depth),
        "output": QosSpec(params.output_reliability, params.output_depth),
        "label_info": QosSpec("reliable", 1, "transient_local"),
        "diagnostics": QosSpec("reliable", 1),  # as diagnostic_updater publishes
    }


# -- names -----------------------------------------------------------------------------------------


def _namespace(ns: str) -> str:
    ns = "/" + ns.strip("/")
    return ns


def expand_name(name: str, namespace: str = "/", node: str = NODE_NAME) -> str:
    """The fully qualified ROS name: ``~`` is the node's private namespace, a relative name joins the node's
    namespace, an absolute name stays. Raises ``ValueError`` for an empty name or one ending in ``/``."""
    if not name or (name != "/" and name.endswith("/")):
        raise ValueError(f"invalid ROS name {name!r}")
    ns = _namespace(namespace)
    base = ns.rstrip("/")
    if name == "~":
        return f"{base}/{node}"
    if name.startswith("~/"):
        return f"{base}/{node}/{name[2:]}"
    if name.startswith("/"):
        return name
    return f"{base}/{name}"


@dataclass
class Names:
    """Node name, namespace and remap rules (``from -> to``, as given on the command line)."""

    node: str = NODE_NAME
    namespace: str = "/"
    remaps: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str:
        """The resolved topic name of ``name`` after remapping (``rcl`` semantics: rules match the expanded name)."""
        expanded = expand_name(name, self.namespace, self.node)
        for source, target in self.remaps.items():
            if expand_name(source, self.namespace, self.node) == expanded:
                return expand_name(target, self.namespace, self.node)
        return expanded


def dds_topic(resolved: str) -> str:
    """The DDS topic name of a resolved ROS topic name: ``rt`` + name."""
    if not resolved.startswith("/"):
        raise ValueError(f"{resolved!r} is not a resolved (absolute) ROS name")
    return "rt" + resolved


def dds_type_name(msgtype: str) -> str:
    """``pkg/msg/Type`` -> ``pkg::msg::dds_::Type_``, the DDS type name ROS 2 registers."""
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise ValueError(f"{msgtype!r} is not a ROS message type name (pkg/msg/Type)")
    return f"{parts[0]}::msg::dds_::{parts[2]}_"


# -- ROS command-line arguments ------------------------------------------------------------------------------


@dataclass
class RosArgs:
    """The subset of ``--ros-args`` the DDS transport understands."""

    names: Names = field(default_factory=Names)
    params_files: list[Path] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    log_level: str | None = None


def _assignment(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.partition(":=")
    if not sep or not name:
        raise TransportError(f"{flag} {text!r}: expected name:=value")
    return name, value


def parse_ros_args(argv: list[str]) -> RosArgs:
    """Parse ``--ros-args -p name:=value --params-file f -r from:=to -r __ns:=/ns -r __node:=name --log-level l``
    (several ``--ros-args`` sections allowed, each ended by ``--`` or the end). Anything else is an error that
    names the argument."""
    out = RosArgs()
    i, inside = 0, False
    while i < len(argv):
        arg = argv[i]
        if arg == "--ros-args":
            inside, i = True, i + 1
            continue
        if arg == "--" and inside:
            inside, i = False, i + 1
            continue
        if not inside:
            raise TransportError(f"unexpected argument {arg!r}; node options go before --ros-args")
        if arg in ("-p", "--param", "-r", "--remap", "--params-file", "--log-level"):
            if i + 1 >= len(argv):
                raise TransportError(f"{arg} needs a value")
            value = argv[i + 1]
            if arg in ("-p", "--param"):
                name, text = _assignment(value, arg)
                out.overrides[name] = yaml.safe_load(text) if text else ""
            elif arg in ("-r", "--remap"):
                source, target = _assignment(value, arg)
                source = source.split(":", 1)[1] if ":" in source else source  # node-targeted rule
                if source == "__ns":
                    out.names.namespace = _namespace(target)
                elif source in ("__node", "__name"):
                    out.names.node = target
                else:
                    out.names.remaps[source] = target
            elif arg == "--params-file":
                out.params_files.append(Path(value))
            else:
                out.log_level = value
            i += 2
            continue
        raise TransportError(
            f"--ros-args option {arg!r} is not supported by the DDS transport "
            "(supported: -p, --params-file, -r, --log-level)"
        )
    return out


def _node_block(document: dict[str, Any], names: Names) -> dict[str, Any]:
    full = f"{names.namespace.rstrip('/')}/{names.node}"
    values: dict[str, Any] = {}
    for key in ("/**", "**", names.node, full, full.lstrip("/")):
        block = document.get(key)
        if isinstance(block, dict):
            values.update(block.get("ros__parameters") or {})
    return values


def load_parameters(ros_args: RosArgs) -> NodeParameters:
    """``NodeParameters`` from the params files (blocks ``/**``, ``<node>``, ``/<ns>/<node>``) then ``-p``."""
    values: dict[str, Any] = {}
    for path in ros_args.params_files:
        if not path.is_file():
            raise TransportError(f"--params-file {path}: no such file")
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(document, dict):
            raise TransportError(f"--params-file {path}: expected a mapping of node names to ros__parameters")
        values.update(_node_block(document, ros_args.names))
    values.update(ros_args.overrides)
    for name in ROS_BUILTIN_PARAMETERS:
        if values.pop(name, None) is not None:
            log.info("parameter %s does not apply to the DDS transport: ignored", name)
    return NodeParameters.from_dict(values)


# -- transport choice and entry point --------------------------------------------------------------------------


def choose_transport(requested: str) -> str:
    """``rclpy`` or ``dds`` for ``requested`` (``auto``: rclpy where it imports); a clear error if missing."""
    if requested not in TRANSPORTS:
        raise TransportError(f"unknown transport {requested!r}; choose one of {list(TRANSPORTS)}")
    has_rclpy = importlib.util.find_spec("rclpy") is not None
    has_dds = importlib.util.find_spec("cyclonedds") is not None
    if requested == "auto":
        requested = "rclpy" if has_rclpy else "dds"
    if requested == "rclpy" and not has_rclpy:
        raise TransportError("transport rclpy needs a ROS 2 installation (source its setup script), or use dds")
    if requested == "dds" and not has_dds:
        raise TransportError("transport dds needs the cyclonedds package: pip install 'arseg_ros[dds]'")
    return requested


def node_argument_parser() -> argparse.ArgumentParser:
    """The options of ``arseg_node`` that come before ``--ros-args``."""
    parser = argparse.ArgumentParser(
        prog="arseg_node",
        description="AR-Seg node: compressed video in, semantic masks out. "
        "Parameters, remaps and namespace go after --ros-args, as for any ROS 2 node.",
    )
    parser.add_argument("--transport", default="auto", choices=TRANSPORTS, help="auto: rclpy where it imports")
    parser.add_argument("--domain-id", type=int, default=None, help="DDS domain (dds; default: ROS_DOMAIN_ID or 0)")
    parser.add_argument("--loopback", action="store_true", help="dds: keep all traffic on 127.0.0.1")
    parser.add_argument("--max-seconds", type=float, default=0.0, help="dds: stop after this long (0: run until ^C)")
    return parser


def split_ros_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(node options, --ros-args ...)``."""
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        return argv[:i], argv[i:]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    """``arseg_node [--transport auto|rclpy|dds] [dds options] [--ros-args ...]``."""
    argv = sys.argv[1:] if argv is None else argv
    own, ros = split_ros_args(argv)
    args = node_argument_parser().parse_args(own)
    try:
        transport = choose_transport(args.transport)
    except TransportError as exc:
        print(f"arseg_node: error: {exc}", file=sys.stderr)
        return 2
    if transport == "rclpy":
        from .node import main as rclpy_main

        rclpy_main([sys.argv[0], *ros])
        return 0
    from .dds import run_node

    return run_node(args, ros)


if __name__ == "__main__":
    sys.exit(main())
