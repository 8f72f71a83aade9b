"""``arseg-segment``: segment a recorded HEVC/H.264 stream without ROS.

    arseg-segment INPUT --model CKPT --out PATH [--topic T] [--mode ar|hr|lr] [--overlay]

INPUT is a video file (.h265/.hevc/.265/.h264/.264/.mp4/.mkv) or a rosbag2 bag with ``--topic``. ``--out``
is a folder for label PNGs (one mono 8-bit PNG of class ids per frame, 255 = no label) or a video file
(.mp4/.mkv) for colourised masks, or with ``--overlay`` masks blended onto the frames. Prints a summary
(frames, HR/LR counts, recoveries, mean time per stage).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image
from tqdm import tqdm

from .codec.packets import PacketError, packets_from_file
from .data.bags import BagError, is_bag, packets_from_bag
from .engine import EngineConfig, SegResult, StreamSegmenter
from .labels import LabelSet, colorize, overlay
from .model import CheckpointError, load_arseg

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".mkv")


class Sink:
    """Writes results as label PNGs into a folder, or as a colour/overlay video."""

    def __init__(self, out: Path, label_set: LabelSet, blend: bool) -> None:
        self.out, self.label_set, self.blend = out, label_set, blend
        self.count = 0
        self._container = self._stream = None
        if out.suffix.lower() not in VIDEO_SUFFIXES:
            out.mkdir(parents=True, exist_ok=True)

    def write(self, result: SegResult) -> None:
        if result.labels is None:
            return
        if self.out.suffix.lower() not in VIDEO_SUFFIXES:
            Image.fromarray(result.labels).save(self.out / f"frame_{self.count:06d}.png")
        elif self.blend:
            self._video(overlay(result.image, result.labels, self.label_set))
        else:
            self._video(colorize(result.labels, self.label_set))
        self.count += 1

    def _video(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        even = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._container is None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.out), "w")
            self._stream = self._container.add_stream("libx264", rate=30)
            self._stream.height, self._stream.width = even.shape[:2]
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": "18", "preset": "veryfast"}
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(even, format="rgb24")):
            self._container.mux(packet)

    def close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()


def _packets(args: argparse.Namespace):
    if is_bag(args.input):
        if not args.topic:
            raise BagError(f"{args.input} is a bag: name the video topic with --topic")
        return packets_from_bag(args.input, args.topic)
    return packets_from_file(args.input)


def run(args: argparse.Namespace) -> dict:
    model, ckpt = load_arseg(args.model)
    config = EngineConfig(mode=args.mode, device=args.device, hr_every_n=args.hr_every_n, keep_images=args.overlay)
    engine = StreamSegmenter(model, config)
    sink = Sink(Path(args.out), ckpt.config.labels, args.overlay)
    timings: list[dict[str, float]] = []

    def full() -> bool:
        return bool(args.max_frames) and sink.count >= args.max_frames

    def emit(results: list[SegResult]) -> None:
        for r in results:
            if full():
                return
            sink.write(r)
            timings.append(r.timings)

    try:
        for packet in tqdm(_packets(args), desc="segmenting", unit="frame", disable=args.quiet):
            emit(engine.process(packet))
            if full():
                break
        if not full():
            emit(engine.flush())
    finally:
        sink.close()
    stages = ("decode", "motion", "accumulation", "inference", "total")
    means = {s: float(np.mean([t.get(s, 0.0) for t in timings])) if timings else 0.0 for s in stages}
    return {"frames": sink.count, "stats": dict(engine.stats), "mean_ms": means}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="arseg-segment", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", help="video file or rosbag2 bag")
    parser.add_argument("--model", required=True, help="AR-Seg checkpoint (.pt)")
    parser.add_argument("--out", required=True, help="folder for label PNGs, or .mp4/.mkv for a video")
    parser.add_argument("--topic", help="video topic when INPUT is a bag")
    parser.add_argument("--mode", choices=["ar", "hr", "lr"], default="ar", help="AR-Seg or a constant baseline")
    parser.add_argument("--overlay", action="store_true", help="video: blend masks onto the frames")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    parser.add_argument("--hr-every-n", type=int, default=0, help="force an HR frame every N frames (0: GOP only)")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.overlay and Path(args.out).suffix.lower() not in VIDEO_SUFFIXES:
        parser.error("--overlay writes a video: give --out a .mp4 or .mkv path")
    try:
        summary = run(args)
    except (PacketError, BagError, CheckpointError, ValueError) as exc:
        print(f"arseg-segment: error: {exc}", file=sys.stderr)
        return 2
    stats = summary["stats"]
    print(f"{summary['frames']} frames -> {args.out}: {stats.get('hr', 0)} HR, {stats.get('lr', 0)} LR")
    recoveries = {k: v for k, v in stats.items() if k not in ("packets", "hr", "lr")}
    if recoveries:
        print("events: " + ", ".join(f"{k} {v}" for k, v in sorted(recoveries.items())))
    print("mean ms per frame: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["mean_ms"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
