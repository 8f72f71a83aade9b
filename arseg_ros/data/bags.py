"""Reading compressed-video topics from rosbag2 bags (sqlite3 or mcap) with the ``rosbags`` library.

The message types that ``rosbags``' built-in type stores lack (``ffmpeg_image_transport_msgs/FFMPEGPacket``,
``foxglove_msgs/CompressedVideo``, ``vision_msgs/VisionClass`` and ``LabelInfo``) are registered from their
ROS definitions; types a bag stores its own definitions for are taken from the bag.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from ..codec.packets import Packet, packet_from_message

FFMPEG_PACKET = """std_msgs/Header header
int32 width
int32 height
string encoding
uint64 pts
uint8 flags
bool is_bigendian
uint8[] data
"""

COMPRESSED_VIDEO = """builtin_interfaces/Time timestamp
string frame_id
uint8[] data
string format
"""

VISION_CLASS = """uint16 class_id
string class_name
"""

LABEL_INFO = """std_msgs/Header header
vision_msgs/VisionClass[] class_map
float32 threshold
"""

# Registered in this order (LabelInfo refers to VisionClass).
EXTRA_TYPES = {
    "ffmpeg_image_transport_msgs/msg/FFMPEGPacket": FFMPEG_PACKET,
    "foxglove_msgs/msg/CompressedVideo": COMPRESSED_VIDEO,
    "vision_msgs/msg/VisionClass": VISION_CLASS,
    "vision_msgs/msg/LabelInfo": LABEL_INFO,
}


class BagError(ValueError):
    """A bag that cannot be read, or a topic it does not hold."""


def typestore():
    """The ROS 2 Humble type store plus the message types it lacks."""
    store = get_typestore(Stores.ROS2_HUMBLE)
    for name, text in EXTRA_TYPES.items():
        store.register(get_types_from_msg(text, name))
    return store


def describe_topics(reader: AnyReader) -> str:
    """``"topic (type), ..."`` for error messages."""
    return ", ".join(f"{c.topic} ({c.msgtype})" for c in reader.connections) or "no topics"


def is_bag(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a rosbag2 bag: a folder with ``metadata.yaml``, or a .mcap/.db3 file."""
    p = Path(path)
    return (p.is_dir() and (p / "metadata.yaml").is_file()) or p.suffix in (".mcap", ".db3")


def packets_from_bag(path: str | os.PathLike, topic: str) -> Iterator[Packet]:
    """Yield the packets of ``topic`` in recording order. Raises ``BagError`` naming the bag's topics when
    the topic is missing, and ``PacketError`` for messages that are not HEVC/H.264 video."""
    path = Path(path)
    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for unreadable bags
        raise BagError(f"{path} is not a readable rosbag2 bag ({exc})") from None
    try:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise BagError(f"topic {topic!r} is not in {path}; the bag has: {describe_topics(reader)}")
        for connection, _, raw in reader.messages(connections=connections):
            yield packet_from_message(reader.deserialize(raw, connection.msgtype), topic)
    finally:
        reader.close()
