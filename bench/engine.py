"""The streaming engine end to end: the same GOP-12 clip through the ``hr`` and ``ar`` modes, in one run.

    python bench/engine.py [--arch pspnet18_camvid bisenet18] [--size 960x720] [--frames 24] [--codec h264]

Random weights (speed does not depend on them). Reports, per architecture and mode, wall time per frame, the
AR speed-up over HR, and the mean time per stage (decode, motion, accumulation, inference) with the share of
decode + motion + accumulation in the AR inference time (target: under 10 %).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from machine import cpu_model

from arseg_ros.codec.encode import EncoderSettings, encode_frames
from arseg_ros.codec.packets import Packet
from arseg_ros.data.synthetic import driving_clip
from arseg_ros.engine import EngineConfig, StreamSegmenter
from arseg_ros.labels import CAMVID
from arseg_ros.model import ModelConfig, build_model


def run(model, packets: list[Packet], mode: str, device: str) -> tuple[float, dict[str, float], int]:
    """Milliseconds per frame over the whole clip, the mean per-stage times and the number of results.

    A first, untimed pass over the opening keyframe and the frame after it loads kernels (cuDNN tuning, Triton
    compilation) so that they are not timed.
    """
    warm = StreamSegmenter(model, EngineConfig(mode=mode, device=device))
    for p in packets[:2]:
        warm.process(p)
    warm.flush()
    engine = StreamSegmenter(model, EngineConfig(mode=mode, device=device))
    results = []
    start = time.perf_counter()
    for p in packets:
        results += engine.process(p)
    results += engine.flush()
    wall = time.perf_counter() - start
    stages = {
        s: float(np.mean([r.timings.get(s, 0.0) for r in results]))
        for s in ("decode", "motion", "accumulation", "inference")
    }
    return 1e3 * wall / len(results), stages, len(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=["pspnet18_camvid", "bisenet18"])
    parser.add_argument("--size", default="960x720")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--codec", choices=["h264", "hevc"], default="h264")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    clip = driving_clip(w, h, args.frames, seed=0)
    encoded = encode_frames(clip.frames, EncoderSettings(codec=args.codec, keyint=12, bframes=0, bitrate_kbps=3000))
    packets = [Packet(args.codec, p.data, p.index * 33_333_333, "camera", p.key) for p in encoded]
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    print(f"machine: {cpu_model()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}{gpu}")
    print(f"clip: driving {w}x{h}, {len(packets)} frames, {args.codec} 3 Mbps GOP 12, device {args.device}\n")
    columns = ["ms/frame", "fps", "speed-up", "decode", "motion", "accumulation", "inference", "overhead / inference"]
    print("| model | mode | " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arch in args.arch:
        torch.manual_seed(0)
        model = build_model(ModelConfig(arch=arch, labels=CAMVID))
        hr_ms, hr_stages, _ = run(model, packets, "hr", args.device)
        ar_ms, ar_stages, _ = run(model, packets, "ar", args.device)
        for mode, ms, st in (("hr", hr_ms, hr_stages), ("ar", ar_ms, ar_stages)):
            overhead = (st["decode"] + st["motion"] + st["accumulation"]) / max(st["inference"], 1e-9)
            speed = f"{hr_ms / ms:.2f}x"
            print(
                f"| {arch} | {mode} | {ms:.1f} | {1e3 / ms:.1f} | {speed} | {st['decode']:.1f} | {st['motion']:.1f} | "
                f"{st['accumulation']:.1f} | {st['inference']:.1f} | {100 * overhead:.1f}% |"
            )


if __name__ == "__main__":
    main()
