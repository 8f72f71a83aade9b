"""Accuracy of the bitstream motion accumulated to the keyframe, against the renderer's exact motion.

It is measured over several procedural drives.

    python bench/motion_accuracy.py [--seeds 2 3 5 7 11] [--size 256x192] [--crf 22] [--out report.md]

For each case (the driving cases of ``test/test_motion.py``: forward, forward with B-frames, a gentle turn, and
traffic over a still background with and without B-frames) and seed, the 12-frame clip is encoded with libx265
(GOP 12, CRF), parsed with the package's parser and accumulated in decode order. At d = 11 it reports the median
error of the displacement to the keyframe on the textured half of the blocks visible in both frames (the test's
measure), split into near-field ground (Road, Pavement) and everything else, and the same median when every
block keeps the encoder's choice of reference but sends the exact vector rounded to quarter-pel: the error of the
accumulation itself, which separates it from the error of the encoder's vectors.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

import numpy as np
from tqdm import tqdm

from arseg_ros.codec.bitstream_motion import HevcMotionStream
from arseg_ros.codec.encode import EncoderSettings, encode_frames
from arseg_ros.codec.motion import AccumulatedMotion, MotionAccumulator, MotionField
from arseg_ros.data.synthetic import EgoMotion, SyntheticClip, driving_clip
from arseg_ros.labels import CAMVID

CASES = {
    "forward (zoom)": ((8.0, 0.0), False, 0),
    "forward (zoom), B-frames": ((8.0, 0.0), False, 3),
    "gentle turn": ((6.0, 0.1), False, 0),
    "traffic over a still background": ((0.0, 0.0), True, 0),
    "traffic, B-frames": ((0.0, 0.0), True, 3),
}
GROUND = [CAMVID.names.index("Road"), CAMVID.names.index("Pavement")]


def accumulate(fields: list[MotionField]) -> dict[int, AccumulatedMotion]:
    """Accumulate fields given in decode order, keyframes at IRAP pictures as the engine does; results by POC."""
    acc = MotionAccumulator()
    return {f.poc: acc.push(f, is_keyframe=f.is_irap) for f in fields}


def exact_vectors(field: MotionField, clip: SyntheticClip) -> MotionField:
    """``field`` with every predicted block's vector replaced by the exact one to the same reference.

    The exact vectors are rounded to quarter-pel.
    """
    hb, wb = field.blocks
    ys, xs = np.mgrid[0:hb, 0:wb].astype(np.float32) * 4 + 1.5
    mv = field.mv.copy()
    for lst in range(2):
        used = field.pred_flag[lst] & ~field.intra
        for ref in np.unique(field.ref_poc[lst][used]):
            blocks = used & (field.ref_poc[lst] == ref)
            vector = np.rint(4 * clip.motion_between(field.poc, int(ref), xs, ys)).astype(np.int16)
            mv[lst][blocks] = vector.transpose(1, 2, 0)[blocks]
    return dataclasses.replace(field, mv=mv)


def measure(name: str, seed: int, width: int, height: int, crf: int) -> dict[str, float]:
    (speed, yaw), moving, bframes = CASES[name]
    clip = driving_clip(width, height, 12, seed=seed, ego=EgoMotion(speed=speed, yaw_rate=yaw), moving_objects=moving)
    stream = HevcMotionStream()  # the engine's motion path
    pictures = []
    for packet in encode_frames(clip.frames, EncoderSettings(codec="hevc", keyint=12, bframes=bframes, crf=crf)):
        pictures += stream.feed(packet.data)
    pictures += stream.flush()
    got = next(p.motion for p in pictures if p.field.poc == 11)
    exact = accumulate([p.field if p.field.is_irap else exact_vectors(p.field, clip) for p in pictures])[11]
    hb, wb = got.valid.shape
    truth = clip.displacement[11].reshape(2, hb, 4, wb, 4).mean(axis=(2, 4))
    visible = clip.valid[11].reshape(hb, 4, wb, 4).all(axis=(1, 3))
    gray = clip.frames[11].astype(np.float32).mean(-1)
    gradient = np.hypot(*np.gradient(gray)).reshape(hb, 4, wb, 4).mean(axis=(1, 3))
    chosen = visible & (gradient > np.percentile(gradient, 50)) & got.valid
    ground = np.isin(clip.labels[11][1::4, 1::4][:hb, :wb], GROUND)

    def median(acc: AccumulatedMotion, where: np.ndarray) -> float:
        err = np.hypot(*(acc.displacement - truth))[where]
        return float(np.median(err)) if err.size else float("nan")

    return {
        "textured": median(got, chosen),
        "ground": median(got, chosen & ground),
        "other": median(got, chosen & ~ground),
        "ground share": float((chosen & ground).sum() / max(chosen.sum(), 1)),
        "exact vectors": median(exact, chosen),
    }


def report(results: dict[str, dict[int, dict[str, float]]], seeds: list[int]) -> str:
    columns = ["textured", "ground", "other", "ground share", "exact vectors"]
    lines = [
        "| case | " + " | ".join(f"seed {s}" for s in seeds) + " | median over seeds |",
        "|---|" + "---|" * (len(seeds) + 1),
    ]
    for name, by_seed in results.items():
        values = [by_seed[s]["textured"] for s in seeds]
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {statistics.median(values):.2f} |")
    lines += ["", "Medians over the seeds (px; ground share: fraction of the measured blocks on Road or Pavement):", ""]
    lines += ["| case | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, by_seed in results.items():
        cells = [statistics.median(by_seed[s][c] for s in seeds) for c in columns]
        lines.append(f"| {name} | " + " | ".join("nan" if np.isnan(c) else f"{c:.2f}" for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5, 7, 11])
    parser.add_argument("--size", default="256x192", help="WIDTHxHEIGHT of the clips")
    parser.add_argument("--crf", type=int, default=22)
    parser.add_argument("--out", help="also write the tables to this markdown file")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    results: dict[str, dict[int, dict[str, float]]] = {name: {} for name in CASES}
    jobs = [(name, seed) for name in CASES for seed in args.seeds]
    for name, seed in tqdm(jobs, desc="clips"):
        results[name][seed] = measure(name, seed, width, height, args.crf)
    text = report(results, args.seeds)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
