"""The ROS 2 message types the DDS transport reads and writes, as Cyclone DDS IDL, and their CDR codec.

The IDL structs mirror the ROS message definitions field for field, ``@final``, under the DDS type names ROS 2
registers (``<pkg>::msg::dds_::<Type>_``), so Cyclone's XCDR1 encoding is ROS 2's CDR and they interoperate
with ROS 2 nodes on any rmw. ``ParticipantEntitiesInfo`` is the graph message of ``ros_discovery_info``,
through which ROS 2 tools see which nodes own which endpoints. Imports cyclonedds.
"""

from dataclasses import dataclass

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t
from cyclonedds.idl._machinery import BytesMachine, PlainCdrV2SequenceOfPrimitiveMachine
from cyclonedds.idl.annotations import final

from .conventions import TransportError, dds_type_name

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


@final
@dataclass
class Gid(IdlStruct, typename=_ros("rmw_dds_common/msg/Gid")):
    data: t.array[t.uint8, 16]


@final
@dataclass
class NodeEntitiesInfo(IdlStruct, typename=_ros("rmw_dds_common/msg/NodeEntitiesInfo")):
    node_namespace: t.bounded_str[256]
    node_name: t.bounded_str[256]
    reader_gid_seq: t.sequence[Gid]
    writer_gid_seq: t.sequence[Gid]


@final
@dataclass
class ParticipantEntitiesInfo(IdlStruct, typename=_ros("rmw_dds_common/msg/ParticipantEntitiesInfo")):
    gid: Gid
    node_entities_info_seq: t.sequence[NodeEntitiesInfo]


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
    "rmw_dds_common/msg/Gid": Gid,
    "rmw_dds_common/msg/NodeEntitiesInfo": NodeEntitiesInfo,
    "rmw_dds_common/msg/ParticipantEntitiesInfo": ParticipantEntitiesInfo,
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
    3 bytes of final padding (to a multiple of 4, of any content: Cyclone does not clear them) are allowed.
    """
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
    """Return the CDR little-endian encoding of ``msg``, encapsulation header included, as ROS 2 sends it."""
    return msg.serialize()


def message_type(msgtype: str) -> type[IdlStruct]:
    """Return the IDL struct of a ROS message type, or raise ``TransportError`` naming the types there are."""
    cls = MESSAGE_TYPES.get(msgtype)
    if cls is None:
        raise TransportError(f"no DDS type for {msgtype}; known: {sorted(MESSAGE_TYPES)}")
    return cls
