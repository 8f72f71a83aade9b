"""The Cyclone DDS adapter: ``NodeCore`` on DDS without ROS, and a raw publisher for ``arseg-play``.

The only module besides ``dds_types`` that imports ``cyclonedds`` (PyPI, 11.x). It speaks the ROS 2 wire
conventions (``arseg_ros.ros.conventions``), so it interoperates with ROS 2 nodes on the same DDS domain
(``ROS_DOMAIN_ID``), rclpy on Fast DDS included:

- topic ``rt<resolved ROS name>``; type ``<pkg>::msg::dds_::<Type>_`` (``arseg_ros.ros.dds_types``);
- payload CDR little-endian, encapsulation ``00 01 00 00``;
- QoS: KEEP_LAST ``depth``, reliability and durability as ``node_qos`` gives them;
- the node announces itself and its endpoints on ``ros_discovery_info``, as every rmw does, so that
  ``ros2 node list`` and rclpy's graph API see it.

Input samples are taken as raw CDR and decoded here, so that a malformed or oversized sample is dropped with
a counted, throttled warning instead of an exception; structurally invalid CDR is already rejected by
Cyclone's own deserialiser before delivery. A publisher of another type on the input topic never matches (the
type names differ); it is seen through DDS discovery and counted.
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from cyclonedds._clayer import ddspy_take, ddspy_write
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
from cyclonedds.builtin_types import DcpsEndpoint
from cyclonedds.core import InstanceState, Policy, Qos, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from ..model import CheckpointError
from .conventions import (
    DIAGNOSTIC_TASK,
    DIAGNOSTICS_PERIOD_S,
    HARDWARE_ID,
    LOOPBACK_URI,
    Names,
    QosSpec,
    TransportError,
    dds_topic,
    domain_from_environment,
    load_parameters,
    parse_ros_args,
)
from .core import MessageTypes, NodeCore
from .dds_types import (
    CdrError,
    DiagnosticArray,
    DiagnosticStatus,
    Gid,
    Header,
    Image,
    KeyValue,
    LabelInfo,
    NodeEntitiesInfo,
    ParticipantEntitiesInfo,
    Time,
    VisionClass,
    decode_cdr,
    message_type,
)
from .messages import bytes_data, header

log = logging.getLogger(__name__)

ANY_SAMPLE = SampleState.Any | ViewState.Any | InstanceState.Any
# The graph topic of ROS 2 (rmw_dds_common): a DDS topic name without the ``rt`` prefix.
DISCOVERY_TOPIC = "ros_discovery_info"


# -- endpoints ------------------------------------------------------------------------------------------------


def dds_qos(spec: QosSpec) -> Qos:
    """Return the DDS QoS of a ROS 2 QoS profile (KEEP_LAST depth, reliability, durability)."""
    reliability = (
        Policy.Reliability.Reliable(duration(seconds=1))
        if spec.reliability == "reliable"
        else Policy.Reliability.BestEffort
    )
    durability = (
        Policy.Durability.TransientLocal if spec.durability == "transient_local" else Policy.Durability.Volatile
    )
    return Qos(reliability, durability, Policy.History.KeepLast(spec.depth))


def participant(domain_id: int, loopback: bool = False) -> DomainParticipant:
    """Return a DDS participant on ``domain_id``.

    ``loopback`` confines this process's DDS traffic to 127.0.0.1; it must be set before the process's first
    participant.
    """
    if loopback:
        os.environ["CYCLONEDDS_URI"] = LOOPBACK_URI
    return DomainParticipant(domain_id)


class Writer:
    """A DDS writer of one ROS topic."""

    def __init__(self, dp: DomainParticipant, topic: str, msgtype: str, qos: QosSpec) -> None:
        self.topic, self.msgtype = topic, msgtype
        self.writer = DataWriter(dp, Topic(dp, dds_topic(topic), message_type(msgtype)), qos=dds_qos(qos))

    def write(self, msg: IdlStruct) -> None:
        self.writer.write(msg)

    def write_cdr(self, raw: bytes) -> None:
        """Send an already serialized message as it is (Cyclone still refuses structurally invalid CDR)."""
        ret = ddspy_write(self.writer._ref, bytes(raw))
        if ret < 0:
            raise CdrError(f"{self.msgtype}: Cyclone DDS refused {len(raw)} bytes (error {ret})")

    def matched(self) -> int:
        """Return the number of matched subscriptions."""
        return len(self.writer.get_matched_subscriptions())

    def wait_for_acks(self, timeout_s: float) -> bool:
        return bool(self.writer.wait_for_acks(duration(seconds=timeout_s)))


class RawReader:
    """A DDS reader of one ROS topic that hands out the serialized samples."""

    def __init__(self, dp: DomainParticipant, topic: str, msgtype: str, qos: QosSpec) -> None:
        self.topic, self.msgtype, self.cls = topic, msgtype, message_type(msgtype)
        self.dds_topic = dds_topic(topic)
        self.reader = DataReader(dp, Topic(dp, self.dds_topic, self.cls), qos=dds_qos(qos))
        self._waitset = WaitSet(dp)
        self._waitset.attach(ReadCondition(self.reader, ANY_SAMPLE))

    def matched(self) -> int:
        """Return the number of matched publications."""
        return len(self.reader.get_matched_publications())

    def wait(self, timeout_s: float) -> None:
        """Block until data is available or ``timeout_s`` passed."""
        self._waitset.wait(duration(seconds=timeout_s))

    def take_raw(self, max_samples: int = 64) -> list[bytes]:
        """Take up to ``max_samples`` valid samples as CDR bytes (encapsulation header included)."""
        ret = ddspy_take(self.reader._ref, ANY_SAMPLE, max_samples)
        if isinstance(ret, int):
            raise TransportError(f"taking samples from {self.dds_topic} failed (DDS error {ret})")
        return [bytes(data) for data, info in ret if info.valid_data]

    def take(self, max_samples: int = 64) -> list[IdlStruct]:
        """Take up to ``max_samples`` samples, decoded (``CdrError`` for an invalid one)."""
        return [decode_cdr(self.cls, raw) for raw in self.take_raw(max_samples)]


# -- the node -------------------------------------------------------------------------------------------------


def diagnostic_array(core: NodeCore, node: str, stamp_ns: int) -> DiagnosticArray:
    """Return the node's ``/diagnostics`` message: one status named as ``diagnostic_updater`` names it."""
    report = core.diagnostic_status()
    status = DiagnosticStatus(
        level=int(report.level),
        name=f"{node}: {DIAGNOSTIC_TASK}",
        message=report.message,
        hardware_id=HARDWARE_ID,
        values=[KeyValue(key=k, value=v) for k, v in report.values],
    )
    return DiagnosticArray(header=header(Header, Time, stamp_ns, ""), status=[status])


def gid(entity: Any) -> Gid:
    """Return the ROS graph id of a DDS entity: its 16-byte RTPS GUID."""
    return Gid(data=list(entity.guid.bytes))


class DdsNode:
    """``arseg_node`` on DDS: ``NodeCore`` with one DDS reader or writer per core endpoint."""

    def __init__(self, params: Any, names: Names, dp: DomainParticipant) -> None:
        self.names, self.dp = names, dp
        types = MessageTypes(
            image=Image, header=Header, time=Time, label_info=LabelInfo, vision_class=VisionClass, data=bytes_data
        )
        self.core = NodeCore(params, types, self._publish, names.resolve("packets"))
        self.writers: dict[str, Writer] = {}
        for endpoint in self.core.endpoints():
            topic = names.resolve(endpoint.name)
            if endpoint.key == "input":
                self.reader = RawReader(dp, topic, endpoint.msgtype, endpoint.qos)
                self.core.matched_publishers = self.reader.matched
            else:
                self.writers[endpoint.key] = Writer(dp, topic, endpoint.msgtype, endpoint.qos)
        self.writers["label_info"].write(self.core.label_info(time.time_ns()))
        self._graph = DataWriter(
            dp,
            Topic(dp, DISCOVERY_TOPIC, ParticipantEntitiesInfo),
            qos=dds_qos(QosSpec("reliable", 1, "transient_local")),
        )
        self._graph.write(self.graph_info())
        self._publications = BuiltinDataReader(dp, BuiltinTopicDcpsPublication)
        self._seen_publishers: set[Any] = set()
        self._stop = threading.Event()
        log.info(
            "segmenting %s on %s (DDS topic %s) with %s (%s, device %s)",
            params.input_type, self.core.input_topic, self.reader.dds_topic, self.core.arch, params.mode,
            self.core.engine.device,
        )  # fmt: skip

    def graph_info(self) -> ParticipantEntitiesInfo:
        """Return this participant's ``ros_discovery_info`` message: the node and its readers and writers."""
        node = NodeEntitiesInfo(
            node_namespace=self.names.namespace,
            node_name=self.names.node,
            reader_gid_seq=[gid(self.reader.reader)],
            writer_gid_seq=[gid(w.writer) for w in self.writers.values()],
        )
        return ParticipantEntitiesInfo(gid=gid(self.dp), node_entities_info_seq=[node])

    def _publish(self, key: str, msg: Any) -> None:
        writer = self.writers.get(key)
        if writer is not None:
            writer.write(msg)

    def receive(self, raw: bytes) -> bool:
        """Take one serialized input sample: size check, strict decode, then the core (False if dropped)."""
        limit = self.core.params.max_message_bytes
        if len(raw) > limit + 4096:
            self.core.counts["received"] += 1
            self.core.reject("oversized", f"sample of {len(raw)} bytes exceeds max_message_bytes={limit}")
            return False
        try:
            msg = decode_cdr(self.reader.cls, raw)
        except CdrError as exc:
            self.core.counts["received"] += 1
            self.core.reject("malformed", str(exc))
            return False
        return self.core.submit(msg)

    def check_publishers(self) -> None:
        """Count new publishers on the input topic; one of another type is counted and warned about.

        DDS never delivers the messages of a publisher of another type: the type names differ.
        """
        expected = self.reader.cls.__idl_typename__
        for sample in self._publications.take(N=64):
            if not isinstance(sample, DcpsEndpoint) or sample.topic_name != self.reader.dds_topic:
                continue
            if sample.key in self._seen_publishers:
                continue
            self._seen_publishers.add(sample.key)
            if sample.type_name == expected:
                self.core.counts["input_publishers"] += 1
            else:
                self.core.reject(
                    "wrong_type",
                    f"a publisher sends {sample.type_name}, this node reads {expected} "
                    f"(input_type={self.core.params.input_type}); its messages are not delivered",
                )

    def publish_diagnostics(self) -> None:
        """Publish the current ``/diagnostics`` message."""
        self.writers["diagnostics"].write(diagnostic_array(self.core, self.names.node, time.time_ns()))

    def stop(self) -> None:
        """Ask ``spin`` to return (any thread, or a signal handler)."""
        self._stop.set()

    def spin(self, max_seconds: float = 0.0) -> None:
        """Receive, and publish diagnostics every second, until ``stop`` or ``max_seconds`` (0: no limit)."""
        start = time.monotonic()
        next_diagnostics = start
        self.core.start()
        try:
            while not self._stop.is_set() and (max_seconds <= 0 or time.monotonic() - start < max_seconds):
                self.reader.wait(0.1)
                for raw in self.reader.take_raw():
                    self.receive(raw)
                now = time.monotonic()
                if now >= next_diagnostics:
                    self.check_publishers()
                    self.publish_diagnostics()
                    next_diagnostics = now + DIAGNOSTICS_PERIOD_S
        finally:
            self.core.stop()
            self.publish_diagnostics()


def run_node(args: argparse.Namespace, ros_argv: list[str]) -> int:
    """Run ``arseg_node --transport dds``: parse ``--ros-args``, build the node, spin until ^C or SIGTERM."""
    try:
        ros_args = parse_ros_args(ros_argv)
        logging.basicConfig(
            level=(ros_args.log_level or "info").upper(), format="[%(levelname)s] [%(name)s]: %(message)s"
        )
        params = load_parameters(ros_args)
        domain = domain_from_environment() if args.domain_id is None else args.domain_id
        log.info("DDS domain %d%s", domain, ", loopback only" if args.loopback else "")
        node = DdsNode(params, ros_args.names, participant(domain, args.loopback))
    except (TransportError, CheckpointError, ValueError, OSError) as exc:
        print(f"arseg_node: error: {exc}", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: node.stop())
    node.spin(args.max_seconds)
    return 0


# -- raw publishing for arseg-play --------------------------------------------------------------------------


class DdsPlayer:
    """Publishes serialized ROS messages on DDS topics (``arseg-play --transport dds``)."""

    def __init__(self, domain_id: int, loopback: bool = False) -> None:
        self.dp = participant(domain_id, loopback)
        self._writers: dict[str, Writer] = {}

    def add(self, topic: str, msgtype: str, qos: QosSpec) -> None:
        """Create the writer of ``topic`` (once)."""
        if topic not in self._writers:
            self._writers[topic] = Writer(self.dp, topic, msgtype, qos)

    def publish(self, topic: str, raw: bytes) -> None:
        """Publish one serialized message (CDR with its encapsulation header) on ``topic``."""
        self._writers[topic].write_cdr(raw)

    def matched(self, topic: str) -> int:
        """Return the number of subscriptions matched on ``topic``."""
        return self._writers[topic].matched()

    def flush(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` per writer until its reliable readers acknowledged everything."""
        for writer in self._writers.values():
            writer.wait_for_acks(timeout_s)

    def close(self) -> None:
        """Drop the writers."""
        self._writers.clear()
