"""``arseg_node``: the AR-Seg node on one of two transports, chosen before ``--ros-args``.

    arseg_node [--transport auto|rclpy|dds] [--max-seconds S] [dds options] --ros-args -p model:=... -r packets:=...

- ``rclpy`` (``arseg_ros.ros.rclpy_node``): a ROS 2 node; the default wherever rclpy imports.
- ``dds`` (``arseg_ros.ros.dds_node``): Cyclone DDS directly, speaking the ROS 2 wire conventions, so the node
  runs without a ROS installation and still talks to ROS 2 nodes.

Both run the same node core (``arseg_ros.ros.core``) with the same parameters, topic names and QoS. A user
error (bad parameter, missing model, unknown transport) prints one line and exits with status 2. This module
imports neither rclpy nor cyclonedds.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from .conventions import TransportError

TRANSPORTS = ("auto", "rclpy", "dds")


def choose_transport(requested: str) -> str:
    """Return ``rclpy`` or ``dds`` for ``requested`` (``auto``: rclpy where it imports); clear error if missing."""
    if requested not in TRANSPORTS:
        raise TransportError(f"unknown transport {requested!r}; choose one of {list(TRANSPORTS)}")
    has_rclpy = importlib.util.find_spec("rclpy") is not None
    has_dds = importlib.util.find_spec("cyclonedds") is not None
    if requested == "auto":
        requested = "rclpy" if has_rclpy else "dds"
    if requested == "rclpy" and not has_rclpy:
        raise TransportError(
            "transport rclpy needs ROS 2 (source its setup script, or `make setup-ros` for the venv), or use dds"
        )
    if requested == "dds" and not has_dds:
        raise TransportError("transport dds needs the cyclonedds package: pip install 'arseg_ros[dds]'")
    return requested


def node_argument_parser() -> argparse.ArgumentParser:
    """Return the parser of the options of ``arseg_node`` that come before ``--ros-args``."""
    parser = argparse.ArgumentParser(
        prog="arseg_node",
        description="AR-Seg node: compressed video in, semantic masks out. "
        "Parameters, remaps and namespace go after --ros-args, as for any ROS 2 node.",
    )
    parser.add_argument("--transport", default="auto", choices=TRANSPORTS, help="auto: rclpy where it imports")
    parser.add_argument("--max-seconds", type=float, default=0.0, help="stop after this long (0: run until ^C)")
    parser.add_argument("--domain-id", type=int, default=None, help="dds: DDS domain (default: ROS_DOMAIN_ID or 0)")
    parser.add_argument("--loopback", action="store_true", help="dds: keep all traffic on 127.0.0.1")
    return parser


def split_ros_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split a command line into ``(node options, ["--ros-args", ...])``."""
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        return argv[:i], argv[i:]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    """Run ``arseg_node`` with ``argv`` (default: the process's arguments); returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    own, ros = split_ros_args(argv)
    args = node_argument_parser().parse_args(own)
    if args.max_seconds < 0:
        print("arseg_node: error: --max-seconds must be 0 (no limit) or more", file=sys.stderr)
        return 2
    try:
        transport = choose_transport(args.transport)
    except TransportError as exc:
        print(f"arseg_node: error: {exc}", file=sys.stderr)
        return 2
    if transport == "rclpy":
        from .rclpy_node import run_node as run_rclpy  # imports rclpy

        return run_rclpy(args, ros)
    from .dds_node import run_node as run_dds  # imports cyclonedds

    return run_dds(args, ros)


if __name__ == "__main__":
    sys.exit(main())
