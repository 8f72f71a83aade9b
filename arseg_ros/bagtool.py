"""``arseg-bag``: make evaluation bags and look inside bags.

    arseg-bag make OUT --synthetic [--frames 48] [--size 480x360] [--seed 0]
    arseg-bag make OUT --video drive.mp4
    arseg-bag make OUT --images frames/ --labels labels/
    arseg-bag info BAG

``make`` encodes the frames (libx265 by default; ``--codec h264``) into a rosbag2 bag holding the video topic
(``--format`` compressed_image, ffmpeg_packet or compressed_video) and, where labels exist, a label topic of
``sensor_msgs/Image`` mono8 with the same stamps. sqlite3 with metadata version 8 by default, which ROS 2 Humble
plays; ``--storage mcap`` for Jazzy's default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image
from rosbags.highlevel import AnyReader

from .codec.encode import EncoderSettings, encode_frames
from .data.bags import VIDEO_FORMATS, BagError, BagWriter, typestore
from .data.synthetic import driving_clip


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 480x360, got {text!r}") from None
    return w, h


def load_frames(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None]:
    """``(T, H, W, 3)`` uint8 frames and ``(T, H, W)`` uint8 labels (or None) from the chosen source."""
    if args.synthetic:
        w, h = args.size
        clip = driving_clip(w, h, args.frames, seed=args.seed)
        return clip.frames, clip.labels
    if args.video:
        path = Path(args.video)
        if not path.is_file():
            raise BagError(f"no such video: {path}")
        try:
            with av.open(str(path)) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        except av.error.FFmpegError as exc:
            raise BagError(f"{path} is not a readable video ({exc})") from None
        return np.stack(frames[: args.frames or None]), None
    images = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not images:
        raise BagError(f"no images in {args.images}")
    images = images[: args.frames or None]
    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in images])
    if not args.labels:
        return frames, None
    labels = []
    for p in images:
        label = Path(args.labels) / (p.stem + ".png")
        if not label.is_file():
            raise BagError(f"no label {label} for image {p}")
        labels.append(np.asarray(Image.open(label)))
    return frames, np.stack(labels).astype(np.uint8)


def make(args: argparse.Namespace) -> str:
    frames, labels = load_frames(args)
    h, w = frames.shape[1:3]
    even = frames[:, : h - h % 2, : w - w % 2]
    labels = None if labels is None else labels[:, : h - h % 2, : w - w % 2]
    settings = EncoderSettings(
        codec=args.codec, keyint=args.keyint, bframes=args.bframes, bitrate_kbps=args.bitrate, crf=args.crf,
        preset=args.preset, fps=args.fps, extra=args.encoder_params,
    )  # fmt: skip
    packets = encode_frames(even, settings)
    frame_ns = 1_000_000_000 // args.fps
    t0 = 1_700_000_000 * 1_000_000_000
    with BagWriter(args.out, storage=args.storage) as bag:
        for position, p in enumerate(packets):
            stamp = t0 + p.index * frame_ns
            bag.write_packet(
                args.topic, args.format, args.codec, p.data, stamp, t0 + position * frame_ns, args.frame_id, p.key,
                even.shape[2], even.shape[1], p.index,
            )  # fmt: skip
        if labels is not None:
            for i, label in enumerate(labels):
                bag.write_image(args.labels_topic, label, "mono8", t0 + i * frame_ns, args.frame_id)
    return f"{len(packets)} frames ({even.shape[2]}x{even.shape[1]}, {args.codec}) -> {args.out}"


def info(bag: str) -> str:
    try:
        with AnyReader([Path(bag)], default_typestore=typestore()) as reader:
            lines = [f"{bag}: {reader.message_count} messages, {reader.duration / 1e9:.2f} s"]
            lines += [f"  {c.topic}  {c.msgtype}  {c.msgcount}" for c in reader.connections]
    except Exception as exc:  # rosbags raises several unrelated types for unreadable bags
        raise BagError(f"{bag} is not a readable rosbag2 bag ({exc})") from None
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="arseg-bag", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make", help="encode frames into a bag with a video topic and a label topic")
    mk.add_argument("out", help="new bag folder")
    source = mk.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", action="store_true", help="a labelled procedural driving clip")
    source.add_argument("--video", help="frames from a video file (no labels)")
    source.add_argument("--images", help="a folder of frames (sorted by name)")
    mk.add_argument("--labels", help="with --images: a folder of label PNGs with the same names")
    mk.add_argument("--frames", type=int, default=48, help="number of frames (synthetic), or at most (files; 0: all)")
    mk.add_argument("--size", type=_size, default=(480, 360), help="synthetic frame WIDTHxHEIGHT")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--codec", choices=["hevc", "h264"], default="hevc")
    mk.add_argument("--format", choices=sorted(VIDEO_FORMATS), default="compressed_image")
    mk.add_argument("--topic", default="/camera/image_raw/h265")
    mk.add_argument("--labels-topic", default="/camera/labels")
    mk.add_argument("--frame-id", default="camera")
    mk.add_argument("--storage", choices=["sqlite3", "mcap"], default="sqlite3")
    mk.add_argument("--keyint", type=int, default=12)
    mk.add_argument("--bframes", type=int, default=0)
    mk.add_argument("--bitrate", type=int, default=0, help="kbps (ABR); 0 uses --crf")
    mk.add_argument("--crf", type=int, default=28)
    mk.add_argument("--preset", default="medium")
    mk.add_argument("--fps", type=int, default=30)
    mk.add_argument("--encoder-params", default="", help="extra x265/x264 key=value:key=value parameters")
    inf = sub.add_parser("info", help="list a bag's topics")
    inf.add_argument("bag")
    args = parser.parse_args(argv)
    try:
        print(make(args) if args.command == "make" else info(args.bag))
    except (BagError, ValueError) as exc:
        print(f"arseg-bag: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
