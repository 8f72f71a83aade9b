"""Packet adapters on real ROS 2 message classes (rosbags), through a CDR round trip."""

import numpy as np
import pytest

from arseg_ros.codec.packets import PacketError, codec_from_name, has_nal_unit, packet_from_message, to_annexb
from arseg_ros.data.bags import typestore

STORE = typestore()
T = STORE.types
ANNEXB = b"\x00\x00\x00\x01\x40\x01\x0c\x01" + b"\x00\x00\x01\x26\x01\xaf"


def cdr_round_trip(msg):
    name = msg.__msgtype__
    return STORE.deserialize_cdr(STORE.serialize_cdr(msg, name), name)


def header(sec=12, nanosec=345, frame_id="cam"):
    stamp = T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    return T["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def payload(data=ANNEXB):
    return np.frombuffer(data, np.uint8)


@pytest.mark.parametrize(("fmt", "codec"), [("h265", "hevc"), ("hevc", "hevc"), ("H264", "h264"), ("h264", "h264")])
def test_compressed_image(fmt, codec):
    msg = cdr_round_trip(T["sensor_msgs/msg/CompressedImage"](header=header(), format=fmt, data=payload()))
    p = packet_from_message(msg)
    assert (p.codec, p.data, p.stamp_ns, p.frame_id, p.key_hint) == (codec, ANNEXB, 12_000_000_345, "cam", None)


@pytest.mark.parametrize(
    ("encoding", "codec"),
    [
        ("hevc;yuv420p;bgr8;bgr8", "hevc"),
        ("h264;yuv420p;rgb8;rgb8", "h264"),
        ("hevc_nvenc", "hevc"),
        ("libx264", "h264"),
    ],
)
@pytest.mark.parametrize("flags", [0, 1])
def test_ffmpeg_packet_both_encoding_generations(encoding, codec, flags):
    cls = T["ffmpeg_image_transport_msgs/msg/FFMPEGPacket"]
    msg = cls(
        header=header(), width=64, height=48, encoding=encoding, pts=7, flags=flags, is_bigendian=False, data=payload()
    )
    p = packet_from_message(cdr_round_trip(msg))
    assert (p.codec, p.key_hint, p.stamp_ns) == (codec, bool(flags), 12_000_000_345)


def test_foxglove_compressed_video():
    cls = T["foxglove_msgs/msg/CompressedVideo"]
    stamp = T["builtin_interfaces/msg/Time"](sec=3, nanosec=5)
    msg = cdr_round_trip(cls(timestamp=stamp, frame_id="front", data=payload(), format="h265"))
    p = packet_from_message(msg)
    assert (p.codec, p.frame_id, p.stamp_ns) == ("hevc", "front", 3_000_000_005)


def test_length_prefixed_payload_is_converted():
    nal1, nal2 = b"\x40\x01\x0c\x01", b"\x26\x01\xaf"
    prefixed = len(nal1).to_bytes(4, "big") + nal1 + len(nal2).to_bytes(4, "big") + nal2
    assert to_annexb(prefixed) == b"\x00\x00\x00\x01" + nal1 + b"\x00\x00\x00\x01" + nal2


@pytest.mark.parametrize("data", [b"\x12\x34", b"\x00\x00\x00\x09abc"])
def test_unrecognised_payloads_are_rejected(data):
    with pytest.raises(PacketError):
        to_annexb(data)


def test_unknown_format_names_topic_and_value():
    msg = T["sensor_msgs/msg/CompressedImage"](header=header(), format="jpeg", data=payload())
    with pytest.raises(PacketError, match=r"unknown video format 'jpeg' on /camera/image"):
        packet_from_message(msg, "/camera/image")


def test_empty_payload_gives_an_empty_packet_the_engine_drops():
    msg = T["sensor_msgs/msg/CompressedImage"](header=header(), format="h265", data=payload(b""))
    packet = packet_from_message(msg, "/cam")
    assert (packet.codec, packet.data) == ("hevc", b"")
    assert not has_nal_unit(packet.data, "hevc")


@pytest.mark.parametrize(
    ("data", "codec", "expected"),
    [
        (b"", "hevc", False),
        (b"\x00\x00\x01", "hevc", False),
        (b"\x00\x00\x00\x01", "h264", False),
        (b"\x00\x00\x01\x40", "hevc", False),  # a one-byte HEVC header is cut short
        (b"\x00\x00\x01\xc0\x01\xff", "hevc", False),  # forbidden_zero_bit set
        (b"\x00\x00\x01\x40\x00\xff", "hevc", False),  # nuh_temporal_id_plus1 = 0
        (b"\x00\x00\x01\x00\xff", "h264", False),  # nal_unit_type 0
        (bytes(range(3, 200)), "hevc", False),  # no start code at all
        (b"\x00\x00\x01\x40\x01\x0c", "hevc", True),  # VPS header
        (b"\xff\x00\x00\x01\x80\x00\x00\x01\x26\x01", "hevc", True),  # the second unit is valid
        (b"\x00\x00\x00\x01\x67\x42", "h264", True),  # SPS
    ],
)
def test_has_nal_unit(data, codec, expected):
    assert has_nal_unit(data, codec) is expected


def test_other_message_types_are_rejected():
    with pytest.raises(PacketError, match="unsupported message type"):
        packet_from_message(header())


@pytest.mark.parametrize(
    ("name", "codec"),
    [("HEVC", "hevc"), ("hevc_vaapi", "hevc"), ("avc1", "h264"), ("h264_nvmpi", "h264"), ("vp9", None)],
)
def test_codec_names(name, codec):
    assert codec_from_name(name) == codec
