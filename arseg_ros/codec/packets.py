"""Compressed-video packets from every source, normalised to one ``Packet`` record.

Sources: ``sensor_msgs/CompressedImage`` (``format`` h265/hevc/h264), ``ffmpeg_image_transport_msgs/
FFMPEGPacket`` (``encoding`` "hevc;yuv420p;bgr8;bgr8" or a legacy encoder name such as "hevc_nvenc";
``flags & 1`` marks a keyframe), ``foxglove_msgs/CompressedVideo`` (``format``), Annex B access units, and
container files (MP4/MKV/raw streams, demuxed with PyAV). Message adapters are duck-typed on field names, so
rclpy messages and ``rosbags`` messages both work.

Payloads are returned as Annex B. A length-prefixed payload (hvcC/avcC style, 4-byte big-endian lengths) is
converted; anything else that does not start with a start code is rejected.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

CODECS = ("hevc", "h264")
START_CODE = b"\x00\x00\x01"


class PacketError(ValueError):
    """A packet or message that cannot be turned into a ``Packet`` (unknown format, bad payload)."""


@dataclass
class Packet:
    """One compressed access unit.

    ``codec``: ``"hevc"`` or ``"h264"``. ``data``: Annex B bytes. ``stamp_ns``: the capture time in
    nanoseconds (ROS header stamp, or container timestamp). ``frame_id``: the ROS frame id (may be empty).
    ``key_hint``: the carrier's keyframe flag, ``None`` where the carrier has none.
    """

    codec: str
    data: bytes
    stamp_ns: int
    frame_id: str = ""
    key_hint: bool | None = None


def codec_from_name(name: str) -> str | None:
    """Map a format/encoding string to ``"hevc"``/``"h264"`` (case-insensitive; ``None`` if neither).

    Accepts ROS formats (``h265``, ``hevc``, ``h264``), FFmpeg codec names and legacy encoder names
    (``hevc_nvenc``, ``libx265``, ``h264_vaapi``, ``libx264``); only the part before the first ``;`` counts.
    """
    head = name.split(";", 1)[0].strip().lower()
    if "265" in head or "hevc" in head:
        return "hevc"
    if "264" in head or "avc" in head:
        return "h264"
    return None


def has_nal_unit(data: bytes, codec: str) -> bool:
    """Return whether Annex B ``data`` holds at least one NAL unit with a valid header.

    A NAL unit follows a start code (``00 00 01``) and begins with its header: forbidden_zero_bit 0, and for
    HEVC (2 bytes, H.265 7.3.1.2) nuh_temporal_id_plus1 above 0, for H.264 (1 byte, H.264 7.3.1) nal_unit_type
    above 0. An empty payload, a lone start code or bytes without one hold none.
    """
    header = 2 if codec == "hevc" else 1
    pos = data.find(START_CODE)
    while pos >= 0:
        start = pos + len(START_CODE)
        if start + header <= len(data) and not data[start] & 0x80:
            if codec == "hevc" and data[start + 1] & 0x07:
                return True
            if codec != "hevc" and data[start] & 0x1F:
                return True
        pos = data.find(START_CODE, start)
    return False


def to_annexb(data: bytes | bytearray | memoryview) -> bytes:
    """Return ``data`` as Annex B.

    It is unchanged if it is empty or starts with a start code, converted from 4-byte length-prefixed NAL units
    otherwise. Raises ``PacketError`` for a payload that is neither. An empty payload stays empty: the engine
    drops and counts packets that hold no NAL unit, whatever carried them.
    """
    raw = bytes(data)
    if not raw:
        return raw
    if raw.startswith(START_CODE) or raw.startswith(b"\x00" + START_CODE):
        return raw
    out = bytearray()
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise PacketError("payload is neither Annex B (no start code) nor 4-byte length-prefixed NAL units")
        size = int.from_bytes(raw[pos : pos + 4], "big")
        if size == 0 or pos + 4 + size > len(raw):
            raise PacketError(
                f"payload is neither Annex B (no start code) nor length-prefixed: NAL length {size} at byte {pos} "
                f"overruns the {len(raw)}-byte payload"
            )
        out += b"\x00\x00\x00\x01" + raw[pos + 4 : pos + 4 + size]
        pos += 4 + size
    return bytes(out)


def _stamp_ns(stamp: object) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def packet_from_message(msg: object, topic: str = "") -> Packet:
    """Convert a CompressedImage, FFMPEGPacket or CompressedVideo message (rclpy or ``rosbags``) to a Packet.

    Raises ``PacketError`` naming the topic and the offending value for unknown formats or payloads that are
    neither Annex B nor length-prefixed. An empty payload gives a packet without data, which the engine drops.
    """
    where = f" on {topic}" if topic else ""
    if hasattr(msg, "encoding") and hasattr(msg, "flags") and hasattr(msg, "header"):
        name, key = msg.encoding, bool(int(msg.flags) & 1)
        stamp, frame_id = _stamp_ns(msg.header.stamp), msg.header.frame_id
        field = "encoding"
    elif hasattr(msg, "format") and hasattr(msg, "header"):
        name, key = msg.format, None
        stamp, frame_id = _stamp_ns(msg.header.stamp), msg.header.frame_id
        field = "format"
    elif hasattr(msg, "format") and hasattr(msg, "timestamp") and hasattr(msg, "frame_id"):
        name, key = msg.format, None
        stamp, frame_id = _stamp_ns(msg.timestamp), msg.frame_id
        field = "format"
    else:
        raise PacketError(
            f"unsupported message type {type(msg).__name__}{where}: expected CompressedImage, "
            "FFMPEGPacket or CompressedVideo"
        )
    codec = codec_from_name(str(name))
    if codec is None:
        raise PacketError(f"unknown video {field} {name!r}{where}: expected h265/hevc or h264")
    try:
        data = to_annexb(msg.data)
    except PacketError as exc:
        raise PacketError(f"{exc}{where}") from None
    return Packet(codec=codec, data=data, stamp_ns=stamp, frame_id=str(frame_id), key_hint=key)


RAW_FORMATS = {".h265": "hevc", ".hevc": "hevc", ".265": "hevc", ".h264": "h264", ".264": "h264"}


def packets_from_file(path: str | os.PathLike, frame_id: str = "") -> Iterator[Packet]:
    """Demux a raw stream (.h265/.hevc/.265/.h264/.264) or a container (.mp4/.mkv/...) into Annex B packets.

    Stamps come from the container's timestamps (raw streams: frame index at the stream's frame rate,
    30 fps when unknown). Raises ``PacketError`` for a missing file, a file without video, or a codec other
    than HEVC/H.264.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise PacketError(f"no such file: {path}")
    raw_format = RAW_FORMATS.get(path.suffix.lower())
    try:
        container = av.open(str(path), format=raw_format) if raw_format else av.open(str(path))
    except (av.error.FFmpegError, ValueError) as exc:
        raise PacketError(f"{path} is not a readable video file ({exc})") from None
    with container:
        if not container.streams.video:
            raise PacketError(f"{path} has no video stream")
        stream = container.streams.video[0]
        codec = codec_from_name(stream.codec_context.name)
        if codec not in CODECS:
            raise PacketError(f"{path}: video codec {stream.codec_context.name!r} is not HEVC or H.264")
        bsf = None
        if raw_format is None:
            bsf = av.bitstream.BitStreamFilterContext(f"{codec}_mp4toannexb", stream)
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        index = 0
        for demuxed in container.demux(stream):
            for packet in bsf.filter(demuxed) if bsf else [demuxed]:
                if packet.size == 0:
                    continue
                if packet.pts is not None and packet.time_base is not None and raw_format is None:
                    stamp = int(packet.pts * packet.time_base * 1_000_000_000)
                else:
                    stamp = int(Fraction(index, 1) / rate * 1_000_000_000)
                index += 1
                yield Packet(codec, bytes(packet), stamp, frame_id, bool(packet.is_keyframe))
