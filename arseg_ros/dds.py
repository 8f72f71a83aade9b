"""The DDS transport: the node, and a raw publisher for ``arseg-play``, on Cyclone DDS without ROS.

The only module that imports ``cyclonedds`` (PyPI, 11.x). It speaks the ROS 2 wire conventions, so it
interoperates with ROS 2 nodes running ``rmw_cyclonedds_cpp`` on the same DDS domain (``ROS_DOMAIN_ID``):

- topic ``rt<resolved ROS name>``; type ``<pkg>::msg::dds_::<Type>_`` (the IDL structs below mirror the ROS
  message definitions field for field, ``@final``, so Cyclone's XCDR1 encoding is ROS 2's CDR);
- payload CDR little-endian, encapsulation ``00 01 00 00``;
- QoS: KEEP_LAST ``depth``, reliability and durability as in ``arseg_ros.transport.node_qos``.

``rmw_cyclonedds_cpp`` registers its types without XTypes type information, so Cyclone matches ROS endpoints
with these by topic and type name. Input samples are taken as raw CDR and decoded here, so that a malformed
or oversized sample is dropped with a counted, throttled warning instead of an exception; structurally
invalid CDR is already rejected by Cyclone's own deserialiser before delivery. A publisher of another type on
the input topic never matches (the type names differ); it is seen through DDS discovery and counted.
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from cyclonedds._clayer import ddspy_take, ddspy_write
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
from cyclonedds.builtin_types import DcpsEndpoint
from cyclonedds.core import InstanceState, Policy, Qos, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t
from cyclonedds.idl._machinery import BytesMachine, PlainCdrV2SequenceOfPrimitiveMachine
from cyclonedds.idl.annotations import final
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from .messages import bytes_data
from .model import ARSeg, load_checkpoint
from .pipeline import MessageTypes, SegmentationPipeline
from .transport import (
    DIAGNOSTIC_TASK,
    DIAGNOSTICS_PERIOD_S,
    HARDWARE_ID,
    INPUT_MSGTYPES,
    LOOPBACK_URI,
    Names,
    QosSpec,
    TransportError,
    dds_topic,
    dds_type_name,
    domain_from_environment,
    load_parameters,
    node_qos,
    parse_ros_args,
)

log = logging.getLogger(__name__)

ANY_SAMPLE = SampleState.Any | ViewState.Any | InstanceState.Any
CDR_LE = b"\x00\x01"


def _ros(msgtype: str) -> str:
    return dds_type_name(msgtype)


# -- IDL of every message type the node reads or writes ------------------------------------------------------


@final
@dataclass
class Time(IdlStruct, typename=_ros("builtin_interfaces/msg/Time")):
    sec: t.int32
    nanosec: t.uint32


@final
@dataclass
class Header(IdlStruct, typename=_ros("std_msgs/msg/Header")):
    stamp: Time
    frame_id: str


@final
@dataclass
class CompressedImage(IdlStruct, typename=_ros("sensor_msgs/msg/CompressedImage")):
    header: Header
    format: str
    data: t.sequence[t.uint8]


@final
@dataclass
class FFMPEGPacket(IdlStruct, typename=_ros("ffmpeg_image_transport_msgs/msg/FFMPEGPacket")):
    header: Header
    width: t.int32
    height: t.int32
    encoding: str
    pts: t.uint64
    flags: t.uint8
    is_bigendian: bool
    data: t.sequence[t.uint8]


@final
@dataclass
class CompressedVideo(IdlStruct, typename=_ros("foxglove_msgs/msg/CompressedVideo")):
    timestamp: Time
    frame_id: str
    data: t.sequence[t.uint8]
    format: str


@final
@dataclass
class Image(IdlStruct, typename=_ros("sensor_msgs/msg/Image")):
    header: Header
    height: t.uint32
    width: t.uint32
    encoding: str
    is_bigendian: t.uint8
    step: t.uint32
    data: t.sequence[t.uint8]


@final
@dataclass
class VisionClass(IdlStruct, typename=_ros("vision_msgs/msg/VisionClass")):
    class_id: t.uint16
    class_name: str


@final
@dataclass
class LabelInfo(IdlStruct, typename=_ros("vision_msgs/msg/LabelInfo")):
    header: Header
    class_map: t.sequence[VisionClass]
    threshold: t.float32


@final
@dataclass
class KeyValue(IdlStruct, typename=_ros("diagnostic_msgs/msg/KeyValue")):
    key: str
    value: str


@final
@dataclass
class DiagnosticStatus(IdlStruct, typename=_ros("diagnostic_msgs/msg/DiagnosticStatus")):
    level: t.byte
    name: str
    message: str
    hardware_id: str
    values: t.sequence[KeyValue]


@final
@dataclass
class DiagnosticArray(IdlStruct, typename=_ros("diagnostic_msgs/msg/DiagnosticArray")):
    header: Header
    status: t.sequence[DiagnosticStatus]


# ROS type name -> IDL struct, for every type above.
MESSAGE_TYPES: dict[str, type[IdlStruct]] = {
    "builtin_interfaces/msg/Time": Time,
    "std_msgs/msg/Header": Header,
    "sensor_msgs/msg/CompressedImage": CompressedImage,
    "ffmpeg_image_transport_msgs/msg/FFMPEGPacket": FFMPEGPacket,
    "foxglove_msgs/msg/CompressedVideo": CompressedVideo,
    "sensor_msgs/msg/Image": Image,
    "vision_msgs/msg/VisionClass": VisionClass,
    "vision_msgs/msg/LabelInfo": LabelInfo,
    "diagnostic_msgs/msg/KeyValue": KeyValue,
    "diagnostic_msgs/msg/DiagnosticStatus": DiagnosticStatus,
    "diagnostic_msgs/msg/DiagnosticArray": DiagnosticArray,
}


def _byte_sequences_as_bytes(cls: type[IdlStruct]) -> None:
    """Encode ``sequence<uint8>`` members from and to ``bytes`` instead of lists of ints.

    The wire form is the same (uint32 length, then the bytes); the type description Cyclone announces still
    says ``sequence<uint8>``. A 230 kB rgb8 image then serialises in a copy instead of ~8 ms of packing.
    """
    idl = cls.__idl__
    idl.populate()
    for machine in (idl.v1_machine, idl.v2_machine):
        members = machine.members_machines
        for name, member in list(members.items()):
            if isinstance(member, PlainCdrV2SequenceOfPrimitiveMachine) and member.code == "B":
                members[name] = BytesMachine()


for _cls in (CompressedImage, FFMPEGPacket, CompressedVideo, Image):
    _byte_sequences_as_bytes(_cls)


# -- CDR ----------------------------------------------------------------------------------------------------


class CdrError(ValueError):
    """A received sample that is not the canonical CDR encoding of its type."""


def decode_cdr(cls: type[IdlStruct], raw: bytes) -> IdlStruct:
    """Decode a serialized ROS 2 message (encapsulation header included) into ``cls``.

    Strict: the encapsulation must be CDR little-endian, and re-encoding the message must give back the same
    bytes, so truncated sequences, trailing garbage and invalid UTF-8 are all rejected with ``CdrError``. Up to
    3 bytes of final padding (to a multiple of 4, of any content: Cyclone does not clear them) are allowed."""
    name = cls.__idl_typename__
    if len(raw) < 4 or raw[:2] != CDR_LE:
        raise CdrError(f"{name}: encapsulation {raw[:2].hex() or 'missing'}, expected 0001 (CDR little-endian)")
    try:
        msg = cls.deserialize(raw)
        canonical = msg.serialize()
    except Exception as exc:  # the IDL machinery raises struct, Unicode and type errors alike
        raise CdrError(f"{name}: not a valid encoding ({type(exc).__name__}: {exc})") from None
    size = len(canonical)
    if raw[4:size] != canonical[4:] or len(raw) - size > 3:
        raise CdrError(f"{name}: {len(raw)} bytes do not decode consistently (canonical encoding is {size} bytes)")
    return msg


def encode_cdr(msg: IdlStruct) -> bytes:
    """The CDR little-endian encoding of ``msg``, encapsulation header included, as ROS 2 sends it."""
    return msg.serialize()


# -- endpoints ------------------------------------------------------------------------------------------------


def dds_qos(spec: QosSpec) -> Qos:
    """The DDS QoS of a ROS 2 QoS profile (KEEP_LAST depth, reliability, durability)."""
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
    """A DDS participant on ``domain_id``; ``loopback`` confines this process's DDS traffic to 127.0.0.1
    (it must be set before the process's first participant)."""
    if loopback:
        os.environ["CYCLONEDDS_URI"] = LOOPBACK_URI
    return DomainParticipant(domain_id)


def message_type(msgtype: str) -> type[IdlStruct]:
    """The IDL struct of a ROS message type, or a ``TransportError`` naming the types there are."""
    cls = MESSAGE_TYPES.get(msgtype)
    if cls is None:
        raise TransportError(f"no DDS type for {msgtype}; known: {sorted(MESSAGE_TYPES)}")
    return cls


class Writer:
    """A DDS writer of one ROS topic."""

    def __init__(self, dp: DomainParticipant, topic: str, msgtype: str, qos: QosSpec) -> None:
        self.topic, self.msgtype = topic, msgtype
        self._writer = DataWriter(dp, Topic(dp, dds_topic(topic), message_type(msgtype)), qos=dds_qos(qos))

    def write(self, msg: IdlStruct) -> None:
        self._writer.write(msg)

    def write_cdr(self, raw: bytes) -> None:
        """Send an already serialized message as it is (Cyclone still refuses structurally invalid CDR)."""
        ret = ddspy_write(self._writer._ref, bytes(raw))
        if ret < 0:
            raise CdrError(f"{self.msgtype}: Cyclone DDS refused {len(raw)} bytes (error {ret})")

    def matched(self) -> int:
        """Number of matched subscriptions."""
        return len(self._writer.get_matched_subscriptions())

    def wait_for_acks(self, timeout_s: float) -> bool:
        return bool(self._writer.wait_for_acks(duration(seconds=timeout_s)))


class RawReader:
    """A DDS reader of one ROS topic that hands out the serialized samples."""

    def __init__(self, dp: DomainParticipant, topic: str, msgtype: str, qos: QosSpec) -> None:
        self.topic, self.msgtype, self.cls = topic, msgtype, message_type(msgtype)
        self.dds_topic = dds_topic(topic)
        self.reader = DataReader(dp, Topic(dp, self.dds_topic, self.cls), qos=dds_qos(qos))
        self._waitset = WaitSet(dp)
        self._waitset.attach(ReadCondition(self.reader, ANY_SAMPLE))

    def matched(self) -> int:
        """Number of matched publications."""
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


def diagnostic_array(pipeline: SegmentationPipeline, node: str, stamp_ns: int) -> DiagnosticArray:
    """The node's ``/diagnostics`` message: one status named as ``diagnostic_updater`` names it."""
    level, message, values = pipeline.diagnostics()
    status = DiagnosticStatus(
        level=level,
        name=f"{node}: {DIAGNOSTIC_TASK}",
        message=message,
        hardware_id=HARDWARE_ID,
        values=[KeyValue(key=k, value=v) for k, v in values],
    )
    stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return DiagnosticArray(header=Header(stamp=stamp, frame_id=""), status=[status])


class DdsNode:
    """``arseg_node`` on DDS: same parameters, topics, QoS and outputs as the rclpy node."""

    def __init__(self, params: Any, names: Names, dp: DomainParticipant) -> None:
        self.params, self.names, self.dp = params, names, dp
        model, ckpt = load_checkpoint(params.model)
        if not isinstance(model, ARSeg):
            raise TransportError(f"{params.model} holds a single network, not an AR-Seg model")
        qos = node_qos(params)
        outputs = ["mask"] + ["color_mask"] * params.publish_color_mask + ["overlay"] * params.publish_overlay
        self.writers = {
            name: Writer(dp, names.resolve(f"~/{name}"), "sensor_msgs/msg/Image", qos["output"]) for name in outputs
        }
        types = MessageTypes(
            image=Image, header=Header, time=Time, label_info=LabelInfo, vision_class=VisionClass, data=bytes_data
        )
        self.input_topic = names.resolve("packets")
        self.pipeline = SegmentationPipeline(params, model, ckpt.config.labels, types, self._publish, self.input_topic)
        self.label_info = Writer(dp, names.resolve("~/label_info"), "vision_msgs/msg/LabelInfo", qos["label_info"])
        self.label_info.write(self.pipeline.label_info(time.time_ns()))
        self.diagnostics = Writer(
            dp, names.resolve("/diagnostics"), "diagnostic_msgs/msg/DiagnosticArray", qos["diagnostics"]
        )
        self.reader = RawReader(dp, self.input_topic, INPUT_MSGTYPES[params.input_type], qos["input"])
        self._publications = BuiltinDataReader(dp, BuiltinTopicDcpsPublication)
        self._seen_publishers: set[Any] = set()
        self._stop = threading.Event()
        log.info(
            "segmenting %s on %s (DDS topic %s) with %s (%s, device %s)",
            params.input_type, self.input_topic, self.reader.dds_topic, ckpt.config.arch, params.mode,
            self.pipeline.engine.device,
        )  # fmt: skip

    def _publish(self, name: str, msg: Any) -> None:
        writer = self.writers.get(name)
        if writer is not None:
            writer.write(msg)

    def receive(self, raw: bytes) -> bool:
        """One serialized input sample: size check, strict decode, then the pipeline (False if dropped)."""
        limit = self.params.max_message_bytes
        if len(raw) > limit + 4096:
            self.pipeline.counts["received"] += 1
            self.pipeline.reject("oversized", f"sample of {len(raw)} bytes exceeds max_message_bytes={limit}")
            return False
        try:
            msg = decode_cdr(self.reader.cls, raw)
        except CdrError as exc:
            self.pipeline.counts["received"] += 1
            self.pipeline.reject("malformed", str(exc))
            return False
        return self.pipeline.submit(msg)

    def check_publishers(self) -> None:
        """Count new publishers on the input topic; a publisher of another type is counted and warned about
        (DDS never delivers its messages: the type names differ)."""
        expected = self.reader.cls.__idl_typename__
        for sample in self._publications.take(N=64):
            if not isinstance(sample, DcpsEndpoint) or sample.topic_name != self.reader.dds_topic:
                continue
            if sample.key in self._seen_publishers:
                continue
            self._seen_publishers.add(sample.key)
            if sample.type_name == expected:
                self.pipeline.counts["input_publishers"] += 1
            else:
                self.pipeline.reject(
                    "wrong_type",
                    f"a publisher sends {sample.type_name}, this node reads {expected} "
                    f"(input_type={self.params.input_type}); its messages are not delivered",
                )

    def publish_diagnostics(self) -> None:
        self.diagnostics.write(diagnostic_array(self.pipeline, self.names.node, time.time_ns()))

    def stop(self) -> None:
        """Ask ``spin`` to return (any thread, or a signal handler)."""
        self._stop.set()

    def spin(self, max_seconds: float = 0.0) -> None:
        """Receive, and publish diagnostics every second, until ``stop`` or ``max_seconds`` (0: no limit)."""
        start = time.monotonic()
        next_diagnostics = start
        self.pipeline.start()
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
            self.pipeline.stop()
            self.publish_diagnostics()


def run_node(args: argparse.Namespace, ros_argv: list[str]) -> int:
    """``arseg_node --transport dds``: parse ``--ros-args``, build the node, spin until ^C/SIGTERM."""
    try:
        ros_args = parse_ros_args(ros_argv)
        logging.basicConfig(
            level=(ros_args.log_level or "info").upper(), format="[%(levelname)s] [%(name)s]: %(message)s"
        )
        params = load_parameters(ros_args)
        if not params.model:
            raise TransportError("parameter 'model' is empty: pass --ros-args -p model:=/path/to/model.pt")
        domain = domain_from_environment() if args.domain_id is None else args.domain_id
        log.info("DDS domain %d%s", domain, ", loopback only" if args.loopback else "")
        node = DdsNode(params, ros_args.names, participant(domain, args.loopback))
    except (TransportError, ValueError, OSError) as exc:
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
        if topic not in self._writers:
            self._writers[topic] = Writer(self.dp, topic, msgtype, qos)

    def publish(self, topic: str, raw: bytes) -> None:
        self._writers[topic].write_cdr(raw)

    def matched(self, topic: str) -> int:
        return self._writers[topic].matched()

    def flush(self, timeout_s: float) -> None:
        for writer in self._writers.values():
            writer.wait_for_acks(timeout_s)

    def close(self) -> None:
        self._writers.clear()
