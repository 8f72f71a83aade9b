"""Parse time of the package's HEVC parser against FFmpeg's single-threaded full decode, in one run.

The parse includes slice data and motion derivation.

    python bench/hevc_parse.py [--frames 120] [--size 960x720] [--bitrate 3000] [--stream FILE.h265] [--repeat 3]

Without ``--stream`` it encodes a procedural driving clip with libx265 (3 Mbps ABR, GOP 12, no B-frames, 30 fps,
preset medium, like the AR-Seg data). Reports ms per frame for both and the ratio parse / decode (target <= 0.5).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import av

from arseg_ros.codec import HevcParser
from arseg_ros.codec.encode import EncoderSettings, encode_frames
from arseg_ros.data.synthetic import driving_clip


def ffmpeg_decode(data: bytes) -> int:
    """Decode every picture with one FFmpeg thread; returns the picture count."""
    ctx = av.CodecContext.create("hevc", "r")
    ctx.thread_count = 1
    ctx.thread_type = "NONE"
    pictures = 0
    for packet in [*ctx.parse(data), *ctx.parse(None)]:
        pictures += len(ctx.decode(packet))
    return pictures + len(ctx.decode(None))


def parse(data: bytes, chunk: int = 65536) -> int:
    """Parse every picture completely (headers, CABAC, slice data) and derive its motion vectors.

    The stream is fed in chunks and each picture is dropped once counted, as a streaming user (the engine) does
    and as the FFmpeg side drops its frames; returns the picture count.
    """
    parser = HevcParser(motion=True)
    pictures = 0
    for start in range(0, len(data), chunk):
        pictures += len(parser.feed(data[start : start + chunk]))
    return pictures + len(parser.flush())


def best_ms(fn, data: bytes, repeat: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = fn(data)
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream", type=Path, help="an Annex B .h265 file instead of the generated clip")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", default="960x720")
    parser.add_argument("--bitrate", type=int, default=3000, help="kbps")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.stream:
        data, label = args.stream.read_bytes(), args.stream.name
    else:
        w, h = (int(v) for v in args.size.split("x"))
        clip = driving_clip(w, h, args.frames, seed=0)
        settings = EncoderSettings(codec="hevc", keyint=12, bframes=0, bitrate_kbps=args.bitrate, preset="medium")
        data = b"".join(p.data for p in encode_frames(clip.frames, settings))
        label = f"driving clip {w}x{h}, {args.bitrate} kbps, GOP 12"
    decode_ms, decoded = best_ms(ffmpeg_decode, data, args.repeat)
    parse_ms, parsed = best_ms(parse, data, args.repeat)
    print(f"stream: {label}, {len(data) / 1e6:.2f} MB, {decoded} pictures decoded, {parsed} parsed")
    print("| | ms per frame |")
    print("|---|---|")
    print(f"| FFmpeg decode, 1 thread | {decode_ms / decoded:.2f} |")
    print(f"| arseg_ros parse + motion derivation | {parse_ms / parsed:.2f} |")
    print(f"| ratio parse / decode | {parse_ms / parsed / (decode_ms / decoded):.3f} |")


if __name__ == "__main__":
    main()
