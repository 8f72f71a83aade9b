"""Reading compressed-video topics from rosbag2 bags (sqlite3 or mcap) with the ``rosbags`` library.

The message types that ``rosbags``' built-in type stores lack (``ffmpeg_image_transport_msgs/FFMPEGPacket``,
``foxglove_msgs/CompressedVideo``, ``vision_msgs/VisionClass`` and ``LabelInfo``) are registered from their
ROS definitions; types a bag stores its own definitions for are taken from the bag.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from ..codec.packets import Packet, packet_from_message
from ..ros.messages import image_array, image_message

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


def typestore(base: Stores = Stores.ROS2_HUMBLE):
    """Return the type store of ``base`` (ROS 2 Humble by default) with the message types it lacks added."""
    store = get_typestore(base)
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


@contextmanager
def open_bag(path: str | os.PathLike) -> Iterator[AnyReader]:
    """Yield an open reader of the bag at ``path`` with the package's type store, closed on exit.

    Raises ``BagError`` naming the path when it is not a readable rosbag2 bag.
    """
    try:
        reader = AnyReader([Path(path)], default_typestore=typestore())
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for unreadable bags
        raise BagError(f"{path} is not a readable rosbag2 bag ({exc})") from None
    try:
        yield reader
    finally:
        reader.close()


def topic_messages(path: str | os.PathLike, topic: str, msgtype: str | None = None) -> Iterator[object]:
    """Yield the deserialised messages of ``topic`` in recording order.

    Raises ``BagError`` for a bag that is not readable, a topic it lacks (listing its topics and types), or a
    topic of another type than ``msgtype``.
    """
    path = Path(path)
    with open_bag(path) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise BagError(f"topic {topic!r} is not in {path}; the bag has: {describe_topics(reader)}")
        if msgtype is not None and connections[0].msgtype != msgtype:
            raise BagError(f"topic {topic!r} in {path} is {connections[0].msgtype}, not {msgtype}")
        for connection, _, raw in reader.messages(connections=connections):
            yield reader.deserialize(raw, connection.msgtype)


def packets_from_bag(path: str | os.PathLike, topic: str) -> Iterator[Packet]:
    """Yield the packets of ``topic`` in recording order.

    Raises ``PacketError`` for messages that are not HEVC/H.264 video.
    """
    for msg in topic_messages(path, topic):
        yield packet_from_message(msg, topic)


VIDEO_FORMATS = {
    "compressed_image": "sensor_msgs/msg/CompressedImage",
    "ffmpeg_packet": "ffmpeg_image_transport_msgs/msg/FFMPEGPacket",
    "compressed_video": "foxglove_msgs/msg/CompressedVideo",
}
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


class BagWriter:
    """Writes video packets and label/mask images to a new rosbag2 bag.

    ``storage``: ``sqlite3`` (metadata version 8 by default, which ROS 2 Humble plays) or ``mcap`` (version
    9 by default). Message types that need registering are written with their definitions.
    """

    def __init__(self, path: str | os.PathLike, storage: str = "sqlite3", version: int | None = None) -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown storage {storage!r}; choose sqlite3 or mcap")
        path = Path(path)
        if path.exists():
            raise BagError(f"{path} exists; rosbag2 writes a new folder")
        self.store = typestore()
        self.types = self.store.types
        self._writer = Writer(
            path, version=version or (8 if storage == "sqlite3" else 9), storage_plugin=STORAGES[storage]
        )
        self._writer.open()
        self._connections: dict[str, object] = {}

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._writer.close()

    def _connection(self, topic: str, msgtype: str) -> object:
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.store)
        return self._connections[topic]

    def _header(self, stamp_ns: int, frame_id: str) -> object:
        stamp = self.types["builtin_interfaces/msg/Time"](
            sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
        )
        return self.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def write_packet(
        self, topic: str, fmt: str, codec: str, data: bytes, stamp_ns: int, log_ns: int, frame_id: str,
        key: bool, width: int, height: int, pts: int,
    ) -> None:  # fmt: skip
        """One video packet as ``fmt`` (compressed_image, ffmpeg_packet or compressed_video)."""
        if fmt not in VIDEO_FORMATS:
            raise BagError(f"unknown video message format {fmt!r}; choose one of {sorted(VIDEO_FORMATS)}")
        msgtype = VIDEO_FORMATS[fmt]
        cls = self.types[msgtype]
        payload = np.frombuffer(data, np.uint8)
        name = "h265" if codec == "hevc" else "h264"
        if fmt == "compressed_image":
            msg = cls(header=self._header(stamp_ns, frame_id), format=name, data=payload)
        elif fmt == "ffmpeg_packet":
            msg = cls(
                header=self._header(stamp_ns, frame_id), width=width, height=height,
                encoding=f"{codec};yuv420p;rgb8;rgb8", pts=pts, flags=int(key), is_bigendian=False, data=payload,
            )  # fmt: skip
        else:
            stamp = self._header(stamp_ns, frame_id).stamp
            msg = cls(timestamp=stamp, frame_id=frame_id, data=payload, format=name)
        self._writer.write(self._connection(topic, msgtype), log_ns, self.store.serialize_cdr(msg, msgtype))

    def copy_topics(self, source: str | os.PathLike, topics: list[str]) -> None:
        """Copy every message of ``topics`` from the bag ``source``, with its log time."""
        with AnyReader([Path(source)], default_typestore=self.store) as reader:
            wanted = [c for c in reader.connections if c.topic in topics]
            for connection, timestamp, raw in reader.messages(connections=wanted):
                msg = reader.deserialize(raw, connection.msgtype)
                conn = self._connection(connection.topic, connection.msgtype)
                self._writer.write(conn, timestamp, self.store.serialize_cdr(msg, connection.msgtype))

    def write_image(self, topic: str, image: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> None:
        """Write a ``sensor_msgs/Image`` (mono8 ``(H, W)`` or rgb8 ``(H, W, 3)`` uint8)."""
        msgtype = "sensor_msgs/msg/Image"
        msg = image_message(self.types[msgtype], self._header(stamp_ns, frame_id), image, encoding)
        self._writer.write(self._connection(topic, msgtype), stamp_ns, self.store.serialize_cdr(msg, msgtype))


def read_images(path: str | os.PathLike, topic: str) -> dict[int, np.ndarray]:
    """Every ``sensor_msgs/Image`` of ``topic``, keyed by header stamp in nanoseconds."""
    return {
        int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec): image_array(msg)
        for msg in topic_messages(path, topic, "sensor_msgs/msg/Image")
    }
