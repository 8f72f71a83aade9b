"""``arseg-play``: publish a rosbag2 bag or a video file onto live ROS 2 topics, over rclpy or DDS.

    arseg-play drive.h265 --topic /camera/image_raw/compressed --type compressed_image --transport dds
    arseg-play bag_dir --rate 2 --loop 3

A bag is read with ``rosbags`` and its messages are sent as recorded (the CDR bytes of the bag), on their
topics, with the recorded spacing divided by ``--rate`` (``--rate 0``: as fast as possible). A video file
(.h265/.hevc/.265/.h264/.264/.mp4/.mkv) is demuxed into packets (``arseg_ros.codec.packets``), each sent as a
``--type`` message stamped with its capture time. Bounded: stops at the end of the input, after ``--loop``
passes, or after ``--max-seconds``. Later passes of a video shift its stamps so that they keep increasing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..codec.packets import RAW_FORMATS, Packet, PacketError, packets_from_file
from ..data.bags import BagError, is_bag, open_bag, typestore
from .conventions import QosSpec, TransportError, domain_from_environment
from .node import choose_transport
from .parameters import INPUT_MSGTYPES

log = logging.getLogger(__name__)


@dataclass
class Outgoing:
    """One message to publish: ``topic``, ROS ``msgtype``, serialized ``cdr``, ``time_ns`` (recording time)."""

    topic: str
    msgtype: str
    cdr: bytes
    time_ns: int


class Publishers(Protocol):
    """What a transport gives ``arseg-play``: publishers of serialized messages."""

    def add(self, topic: str, msgtype: str, qos: QosSpec) -> None: ...
    def publish(self, topic: str, raw: bytes) -> None: ...
    def matched(self, topic: str) -> int: ...
    def flush(self, timeout_s: float) -> None: ...
    def close(self) -> None: ...


# -- sources --------------------------------------------------------------------------------------------------


def video_message(store: object, fmt: str, packet: Packet, width: int, height: int, pts: int) -> tuple[str, bytes]:
    """``(msgtype, cdr)`` of one packet as ``fmt`` (compressed_image, ffmpeg_packet or compressed_video)."""
    types = store.types
    stamp = types["builtin_interfaces/msg/Time"](sec=packet.stamp_ns // 10**9, nanosec=packet.stamp_ns % 10**9)
    header = types["std_msgs/msg/Header"](stamp=stamp, frame_id=packet.frame_id)
    data = np.frombuffer(packet.data, np.uint8)
    name = "h265" if packet.codec == "hevc" else "h264"
    msgtype = INPUT_MSGTYPES[fmt]
    cls = types[msgtype]
    if fmt == "compressed_image":
        msg = cls(header=header, format=name, data=data)
    elif fmt == "ffmpeg_packet":
        msg = cls(
            header=header, width=width, height=height, encoding=f"{packet.codec};yuv420p;rgb8;rgb8", pts=pts,
            flags=int(bool(packet.key_hint)), is_bigendian=False, data=data,
        )  # fmt: skip
    else:
        msg = cls(timestamp=stamp, frame_id=packet.frame_id, data=data, format=name)
    return msgtype, bytes(store.serialize_cdr(msg, msgtype))


def video_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of the first video stream (0, 0 where the container does not say)."""
    import av

    with av.open(str(path), format=RAW_FORMATS.get(path.suffix.lower())) as c:
        ctx = c.streams.video[0].codec_context
        return int(ctx.width or 0), int(ctx.height or 0)


def video_packets(path: Path, frame_id: str, fps: float) -> Iterator[Packet]:
    """Yield the packets of a video file; with ``fps`` > 0 stamped ``index / fps`` seconds.

    Raw Annex B streams carry no timing: FFmpeg assumes 25 fps for them.
    """
    for index, packet in enumerate(packets_from_file(path, frame_id)):
        if fps > 0:
            packet.stamp_ns = round(index * 1e9 / fps)
        yield packet


def video_messages(
    path: Path, topic: str, fmt: str, frame_id: str, fps: float, offset_ns: int
) -> Iterator[Outgoing]:  # fmt: skip
    """Yield the packets of a video file as messages on ``topic``; stamps shifted by ``offset_ns``."""
    store = typestore()
    width = height = 0
    if fmt == "ffmpeg_packet":
        width, height = video_size(path)
    for pts, packet in enumerate(video_packets(path, frame_id, fps)):
        packet.stamp_ns += offset_ns
        msgtype, cdr = video_message(store, fmt, packet, width, height, pts)
        yield Outgoing(topic, msgtype, cdr, packet.stamp_ns)


def bag_messages(path: Path, topics: list[str]) -> Iterator[Outgoing]:
    """Yield the recorded messages of ``topics`` (all topics when empty), as stored in the bag."""
    with open_bag(path) as reader:
        connections = [c for c in reader.connections if not topics or c.topic in topics]
        missing = sorted(set(topics) - {c.topic for c in connections})
        if missing:
            have = ", ".join(sorted({c.topic for c in reader.connections}))
            raise BagError(f"{path} has no topic {missing[0]!r}; it has: {have}")
        for connection, timestamp, raw in reader.messages(connections=connections):
            yield Outgoing(connection.topic, connection.msgtype, bytes(raw), int(timestamp))


def video_duration_ns(path: Path, frame_id: str, fps: float) -> int:
    """Stamp span of a video file plus one frame period, for shifting later loop passes."""
    stamps = [p.stamp_ns for p in video_packets(path, frame_id, fps)]
    if not stamps:
        raise PacketError(f"{path} holds no video packets")
    period = (stamps[-1] - stamps[0]) // max(1, len(stamps) - 1) if len(stamps) > 1 else 33_333_333
    return stamps[-1] - stamps[0] + period


# -- playing --------------------------------------------------------------------------------------------------


@dataclass
class PlayStats:
    """What one run published: ``messages``, ``seconds`` of wall time, ``topics``."""

    messages: int
    seconds: float
    topics: list[str]


def make_publishers(transport: str, domain_id: int, loopback: bool) -> Publishers:
    """Return the publishers of ``transport`` (``rclpy`` or ``dds``)."""
    if transport == "rclpy":
        from .rclpy_node import RclpyPlayer  # imports rclpy

        return RclpyPlayer()
    from .dds_node import DdsPlayer  # imports cyclonedds

    return DdsPlayer(domain_id, loopback)


def wait_for_subscribers(publishers: Publishers, topics: list[str], count: int, timeout_s: float) -> None:
    """Block until every topic has ``count`` subscribers; ``TransportError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    for topic in topics:
        while publishers.matched(topic) < count:
            if time.monotonic() > deadline:
                raise TransportError(f"{topic}: {publishers.matched(topic)} of {count} subscribers after {timeout_s} s")
            time.sleep(0.02)


def play(
    messages: Iterator[Outgoing], publishers: Publishers, qos: QosSpec, rate: float, max_seconds: float,
    wait: int = 0, wait_timeout_s: float = 10.0,
) -> PlayStats:  # fmt: skip
    """Publish ``messages`` with their recorded spacing divided by ``rate`` (0: no pacing).

    Stops after ``max_seconds``. The first message of a new topic creates its publisher (and waits for
    ``wait`` subscribers).
    """
    start = time.monotonic()
    first_ns: int | None = None
    topics: list[str] = []
    count = 0
    for msg in messages:
        if msg.topic not in topics:
            publishers.add(msg.topic, msg.msgtype, qos)
            topics.append(msg.topic)
            if wait:
                wait_for_subscribers(publishers, [msg.topic], wait, wait_timeout_s)
        if first_ns is None:
            first_ns, start = msg.time_ns, time.monotonic()
        if rate > 0:
            due = start + (msg.time_ns - first_ns) / 1e9 / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if time.monotonic() - start > max_seconds:
            log.warning("stopping after --max-seconds %.1f", max_seconds)
            break
        publishers.publish(msg.topic, msg.cdr)
        count += 1
    publishers.flush(5.0)
    return PlayStats(count, time.monotonic() - start, topics)


def source(args: argparse.Namespace, offset_ns: int) -> Iterator[Outgoing]:
    if is_bag(args.input):
        return bag_messages(args.input, args.topic)
    topic = args.topic[0] if args.topic else "/camera/image_raw/compressed"
    return video_messages(args.input, topic, args.type, args.frame_id, args.fps, offset_ns)


def all_passes(args: argparse.Namespace) -> Iterator[Outgoing]:
    """``--loop`` passes over the input; video stamps move on by the clip's duration every pass."""
    span = 0 if is_bag(args.input) else video_duration_ns(args.input, args.frame_id, args.fps)
    for n in range(args.loop):
        yield from source(args, n * span)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arseg-play", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("input", type=Path, help="rosbag2 bag (folder, .mcap, .db3) or video file")
    p.add_argument("--topic", action="append", default=[], help="bag: topics to play (repeat; default all); "
                   "video: the topic (default /camera/image_raw/compressed)")  # fmt: skip
    p.add_argument("--type", default="compressed_image", choices=sorted(INPUT_MSGTYPES), help="video: message type")
    p.add_argument("--frame-id", default="camera", help="video: header frame id")
    p.add_argument("--fps", type=float, default=0.0, help="video: stamp frame i at i/fps s (0: the file's timing)")
    p.add_argument("--rate", type=float, default=1.0, help="speed factor of the recorded rate; 0: as fast as possible")
    p.add_argument("--loop", type=int, default=1, help="number of passes over the input")
    p.add_argument("--transport", default="auto", choices=["auto", "rclpy", "dds"])
    p.add_argument("--domain-id", type=int, default=None, help="DDS domain (default: ROS_DOMAIN_ID or 0)")
    p.add_argument("--loopback", action="store_true", help="dds: keep all traffic on 127.0.0.1")
    p.add_argument("--reliability", default="reliable", choices=["reliable", "best_effort"])
    p.add_argument("--depth", type=int, default=100, help="publisher history depth (KEEP_LAST)")
    p.add_argument("--wait-subscribers", type=int, default=0, help="wait for this many subscribers per topic")
    p.add_argument("--wait-timeout", type=float, default=10.0, help="seconds to wait for them")
    p.add_argument("--max-seconds", type=float, default=3600.0, help="stop publishing after this long")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.rate < 0 or args.fps < 0 or args.loop < 1 or args.depth < 1 or args.max_seconds <= 0:
        print(
            "arseg-play: error: --rate and --fps must be >= 0, --loop and --depth >= 1, --max-seconds > 0",
            file=sys.stderr,
        )
        return 2
    try:
        if not args.input.exists():
            raise PacketError(f"no such file or bag: {args.input}")
        transport = choose_transport(args.transport)
        domain = domain_from_environment() if args.domain_id is None else args.domain_id
        publishers = make_publishers(transport, domain, args.loopback)
    except (TransportError, PacketError, BagError) as exc:
        print(f"arseg-play: error: {exc}", file=sys.stderr)
        return 2
    try:
        stats = play(
            all_passes(args), publishers, QosSpec(args.reliability, args.depth), args.rate, args.max_seconds,
            args.wait_subscribers, args.wait_timeout,
        )  # fmt: skip
    except (TransportError, PacketError, BagError) as exc:
        print(f"arseg-play: error: {exc}", file=sys.stderr)
        return 1
    finally:
        publishers.close()
    print(f"published {stats.messages} messages on {', '.join(stats.topics)} in {stats.seconds:.2f} s ({transport})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
