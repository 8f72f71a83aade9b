"""The ROS 2 conventions both transports follow: names, remapping, ``--ros-args``, parameter files, QoS, domains.

The rclpy node gets all of this from rcl; the DDS node (``arseg_ros.ros.dds_node``) implements it here, so
that both resolve the same topic names (``-r`` remaps, namespace, ``~/``), read the same parameters and use the
same QoS (``node_qos``). ROS 2 wire conventions used on DDS: topic ``rt<resolved name>`` (``/arseg_node/mask``
-> ``rt/arseg_node/mask``), type ``<pkg>::msg::dds_::<Type>_``, payload CDR little-endian (encapsulation
``00 01 00 00``), DDS domain = ``ROS_DOMAIN_ID``. This module imports neither rclpy nor cyclonedds.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .parameters import NodeParameters

log = logging.getLogger(__name__)

NODE_NAME = "arseg_node"
DIAGNOSTIC_TASK = "arseg segmentation"
HARDWARE_ID = "arseg_ros"
DIAGNOSTICS_PERIOD_S = 1.0

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
    """Return a copy of ``base`` (default ``os.environ``) that confines DDS to loopback on ``domain_id``.

    Sets ``CYCLONEDDS_URI`` to ``LOOPBACK_URI`` (Cyclone DDS), ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``
    (rclpy on Fast DDS) and ``ROS_DOMAIN_ID``; pass it as ``env`` to child processes.
    """
    if not 0 <= domain_id <= 232:
        raise ValueError(f"DDS domain id {domain_id} is out of range: use 0..232")
    env = dict(os.environ if base is None else base)
    env["CYCLONEDDS_URI"] = LOOPBACK_URI
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def domain_from_environment() -> int:
    """Return the DDS domain id of ``ROS_DOMAIN_ID`` (0 when unset), as rmw implementations map it."""
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
    """Return the QoS of every endpoint of the node.

    Keys: ``input``, ``output`` (the images), ``label_info``, ``diagnostics``.
    """
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
    """Return the fully qualified ROS name of ``name``.

    ``~`` is the node's private namespace, a relative name joins the node's namespace, an absolute name stays.
    Raises ``ValueError`` for an empty name or one ending in ``/``.
    """
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
        """Return the resolved name of ``name`` after remapping (``rcl`` semantics: rules match the expanded name)."""
        expanded = expand_name(name, self.namespace, self.node)
        for source, target in self.remaps.items():
            if expand_name(source, self.namespace, self.node) == expanded:
                return expand_name(target, self.namespace, self.node)
        return expanded


def dds_topic(resolved: str) -> str:
    """Return the DDS topic name of a resolved ROS topic name: ``rt`` + name."""
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
    """Parse the ``--ros-args`` sections of a command line.

    Understood: ``-p name:=value``, ``--params-file f``, ``-r from:=to``, ``-r __ns:=/ns``, ``-r __node:=name``
    and ``--log-level l``; several ``--ros-args`` sections are allowed, each ended by ``--`` or the end.
    Anything else is an error that names the argument.
    """
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
    """Read ``NodeParameters`` from the params files (blocks ``/**``, ``<node>``, ``/<ns>/<node>``), then ``-p``."""
    values: dict[str, Any] = {}
    for path in ros_args.params_files:
        if not path.is_file():
            raise TransportError(f"--params-file {path}: no such file")
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise TransportError(f"--params-file {path} is not valid YAML: {exc}") from None
        if not isinstance(document, dict):
            raise TransportError(f"--params-file {path}: expected a mapping of node names to ros__parameters")
        values.update(_node_block(document, ros_args.names))
    values.update(ros_args.overrides)
    for name in ROS_BUILTIN_PARAMETERS:
        if values.pop(name, None) is not None:
            log.info("parameter %s does not apply to the DDS transport: ignored", name)
    return NodeParameters.from_dict(values)
