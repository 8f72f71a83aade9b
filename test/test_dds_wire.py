"""Wire compatibility of the DDS transport with ROS 2, for every message type the node reads or writes.

Each encodes to the bytes ``rosbags`` (the ROS 2 message definitions) gives, and ``rosbags``' bytes decode to
the same message, both in memory and through a real DDS writer and reader on loopback.
"""

from __future__ import annotations

import time
from dataclasses import fields, is_dataclass

import numpy as np
import pytest
from rosbags.typesys import Stores

pytest.importorskip("cyclonedds", reason="the DDS transport needs the cyclonedds package (extra 'dds')")

from arseg_ros.data.bags import typestore
from arseg_ros.ros import dds_node, dds_types
from arseg_ros.ros.conventions import QosSpec, dds_topic, dds_type_name

DOMAIN = 71
# Jazzy's definitions: the graph messages (rmw_dds_common) changed their Gid from 24 to 16 bytes after Humble.
STORE = typestore(Stores.ROS2_JAZZY)
T = STORE.types
PAYLOAD = bytes(range(256)) * 3 + b"\x00\x00\x01\x26\x01"


def header(sec=1_700_000_000, nanosec=123_456_789, frame_id="camera_optical"):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id)


def ros_messages() -> dict[str, object]:
    """One message of each type, with odd lengths so that alignment and padding are exercised."""
    data = np.frombuffer(PAYLOAD, np.uint8)
    status = T["diagnostic_msgs/msg/DiagnosticStatus"]
    key_value = T["diagnostic_msgs/msg/KeyValue"]
    vision_class = T["vision_msgs/msg/VisionClass"]

    def gid(seed):
        return T["rmw_dds_common/msg/Gid"](data=np.arange(seed, seed + 16, dtype=np.uint8))

    node_info = T["rmw_dds_common/msg/NodeEntitiesInfo"](
        node_namespace="/cam", node_name="arseg_node", reader_gid_seq=[gid(2)], writer_gid_seq=[gid(4), gid(5)]
    )
    return {
        "builtin_interfaces/msg/Time": T["builtin_interfaces/msg/Time"](sec=-5, nanosec=999_999_999),
        "std_msgs/msg/Header": header(frame_id="a"),
        "sensor_msgs/msg/CompressedImage": T["sensor_msgs/msg/CompressedImage"](
            header=header(), format="h265", data=data
        ),
        "ffmpeg_image_transport_msgs/msg/FFMPEGPacket": T["ffmpeg_image_transport_msgs/msg/FFMPEGPacket"](
            header=header(frame_id="cam"),
            width=320,
            height=240,
            encoding="hevc;yuv420p;rgb8;rgb8",
            pts=2**40 + 3,
            flags=1,
            is_bigendian=False,
            data=data,
        ),
        "foxglove_msgs/msg/CompressedVideo": T["foxglove_msgs/msg/CompressedVideo"](
            timestamp=T["builtin_interfaces/msg/Time"](sec=7, nanosec=8), frame_id="cam", data=data, format="h265"
        ),
        "sensor_msgs/msg/Image": T["sensor_msgs/msg/Image"](
            header=header(),
            height=3,
            width=5,
            encoding="rgb8",
            is_bigendian=0,
            step=15,
            data=np.arange(45, dtype=np.uint8),
        ),
        "vision_msgs/msg/VisionClass": vision_class(class_id=65_000, class_name="Bicyclist"),
        "vision_msgs/msg/LabelInfo": T["vision_msgs/msg/LabelInfo"](
            header=header(),
            class_map=[vision_class(class_id=i, class_name=n) for i, n in enumerate(["Sky", "Road", "Void"])],
            threshold=0.25,
        ),
        "diagnostic_msgs/msg/KeyValue": key_value(key="HR frames", value="3"),
        "diagnostic_msgs/msg/DiagnosticStatus": status(
            level=1,
            name="arseg_node: arseg segmentation",
            message="input problems",
            hardware_id="arseg_ros",
            values=[key_value(key="received", value="12"), key_value(key="rejected_malformed", value="1")],
        ),
        "diagnostic_msgs/msg/DiagnosticArray": T["diagnostic_msgs/msg/DiagnosticArray"](
            header=header(),
            status=[
                status(level=0, name="x", message="running", hardware_id="h", values=[]),
                status(level=2, name="y", message="é ünïcode", hardware_id="", values=[key_value(key="k", value="")]),
            ],
        ),
        "rmw_dds_common/msg/Gid": gid(3),
        "rmw_dds_common/msg/NodeEntitiesInfo": node_info,
        "rmw_dds_common/msg/ParticipantEntitiesInfo": T["rmw_dds_common/msg/ParticipantEntitiesInfo"](
            gid=gid(1), node_entities_info_seq=[node_info, node_info]
        ),
    }


def to_idl(cls, ros_msg):
    """Return the IDL struct ``cls`` holding the same values as the rosbags message ``ros_msg``."""
    values = {}
    for f in fields(cls):
        value = getattr(ros_msg, f.name)
        nested = dds_types.MESSAGE_TYPES.get(getattr(value, "__msgtype__", ""))
        if nested is not None:
            value = to_idl(nested, value)
        elif isinstance(value, np.ndarray):
            value = value.tobytes()
        elif isinstance(value, list):
            value = [to_idl(dds_types.MESSAGE_TYPES[v.__msgtype__], v) for v in value]
        values[f.name] = value
    return cls(**values)


def normalised(msg):
    """Return a comparable form of an IDL struct: nested structs as dicts, byte payloads as bytes."""
    if is_dataclass(msg):
        return {f.name: normalised(getattr(msg, f.name)) for f in fields(msg)}
    if isinstance(msg, list):
        return [normalised(v) for v in msg]
    if isinstance(msg, bytearray | bytes):
        return bytes(msg)
    return msg


CASES = sorted(ros_messages())


def test_every_node_type_is_covered():
    assert set(CASES) == set(dds_types.MESSAGE_TYPES)
    for msgtype, cls in dds_types.MESSAGE_TYPES.items():
        assert cls.__idl_typename__ == dds_type_name(msgtype)
        assert [f.name for f in fields(cls)] == [name for name, _ in STORE.fielddefs[msgtype][1]]


@pytest.mark.parametrize("msgtype", CASES)
def test_dds_encoding_equals_rosbags_cdr(msgtype):
    ros = ros_messages()[msgtype]
    expected = bytes(STORE.serialize_cdr(ros, msgtype))
    assert expected[:4] == b"\x00\x01\x00\x00"
    assert dds_types.encode_cdr(to_idl(dds_types.MESSAGE_TYPES[msgtype], ros)) == expected


@pytest.mark.parametrize("msgtype", CASES)
def test_rosbags_cdr_decodes_to_the_same_message(msgtype):
    ros = ros_messages()[msgtype]
    cls = dds_types.MESSAGE_TYPES[msgtype]
    decoded = dds_types.decode_cdr(cls, bytes(STORE.serialize_cdr(ros, msgtype)))
    assert normalised(decoded) == normalised(to_idl(cls, ros))
    back = STORE.deserialize_cdr(dds_types.encode_cdr(decoded), msgtype)
    assert bytes(STORE.serialize_cdr(back, msgtype)) == bytes(STORE.serialize_cdr(ros, msgtype))


def test_decode_rejects_what_is_not_canonical_cdr():
    good = bytes(
        STORE.serialize_cdr(ros_messages()["sensor_msgs/msg/CompressedImage"], "sensor_msgs/msg/CompressedImage")
    )
    cls = dds_types.CompressedImage
    assert dds_types.decode_cdr(cls, good + b"\x12\xb5\x78").format == "h265"  # final padding, of any content
    bad = {
        "big-endian": b"\x00\x00" + good[2:],
        "truncated": good[:-10],
        "trailing garbage": good + b"\xaa" * 8,
        "sequence longer than the data": good[:-len(PAYLOAD) - 4] + (len(PAYLOAD) + 9).to_bytes(4, "little") + PAYLOAD,
        "invalid UTF-8": good.replace(b"h265", b"\xff\xfe65"),
        "empty": b"",
    }  # fmt: skip
    for name, raw in bad.items():
        with pytest.raises(dds_types.CdrError, match="CompressedImage_"):
            dds_types.decode_cdr(cls, raw)
            pytest.fail(f"{name} was accepted")


def test_qos_mapping_follows_ros():
    reliable = dds_node.dds_qos(QosSpec("reliable", 24))
    latched = dds_node.dds_qos(QosSpec("reliable", 1, "transient_local"))
    best_effort = dds_node.dds_qos(QosSpec("best_effort", 5))
    assert reliable[dds_node.Policy.History] == dds_node.Policy.History.KeepLast(24)
    assert isinstance(reliable[dds_node.Policy.Reliability], dds_node.Policy.Reliability.Reliable)
    assert reliable[dds_node.Policy.Durability] == dds_node.Policy.Durability.Volatile
    assert latched[dds_node.Policy.Durability] == dds_node.Policy.Durability.TransientLocal
    assert best_effort[dds_node.Policy.Reliability] == dds_node.Policy.Reliability.BestEffort


@pytest.fixture(scope="module")
def participants():
    return dds_node.participant(DOMAIN, loopback=True), dds_node.participant(DOMAIN, loopback=True)


def wait_matched(writer, count=1, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while writer.matched() < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.matched() >= count, "DDS discovery on loopback did not match the reader"


@pytest.mark.parametrize(
    "msgtype",
    [m for m in CASES if m.split("/")[-1] not in ("Time", "Header", "VisionClass", "KeyValue", "DiagnosticStatus")],
)
def test_bytes_on_the_wire_equal_rosbags_cdr(participants, msgtype):
    """A DDS writer sends rosbags' bytes (plus Cyclone's padding to a multiple of 4 bytes), on ``rt/<name>``."""
    sender, receiver = participants
    topic = f"/wire/{msgtype.split('/')[-1].lower()}"
    qos = QosSpec("reliable", 10)
    reader = dds_node.RawReader(receiver, topic, msgtype, qos)
    writer = dds_node.Writer(sender, topic, msgtype, qos)
    assert reader.dds_topic == dds_topic(topic) == "rt" + topic
    wait_matched(writer)
    ros = ros_messages()[msgtype]
    expected = bytes(STORE.serialize_cdr(ros, msgtype))
    writer.write(to_idl(dds_types.MESSAGE_TYPES[msgtype], ros))
    writer.write_cdr(expected)
    received: list[bytes] = []
    deadline = time.monotonic() + 10
    while len(received) < 2 and time.monotonic() < deadline:
        reader.wait(0.1)
        received += reader.take_raw()
    assert len(received) == 2
    for raw in received:
        assert raw[: len(expected)] == expected
        assert len(raw) - len(expected) < 4
        back = STORE.deserialize_cdr(raw, msgtype)
        assert bytes(STORE.serialize_cdr(back, msgtype)) == expected
