"""How well the bitstream motion of prepared clips made from stills carries the keyframe onto the labelled frame.

    python bench/still_clip_motion.py prepared/camvid/test [--stride 4] [--border 8] [--out report.md]

Clips synthesised from stills (``arseg-prepare`` on CamVid) know their exact camera motion: the manifest keeps
the motion's seed and range. For every ``stride``-th such clip it reports

- label agreement (%): the keyframe's labels warped by the clip's stored displacement (nearest, as the engine's
  warp reads the keyframe at ``x + displacement``) against the labelled frame's labels, on the pixels labelled
  in both; and the same without motion (zero displacement), the baseline the motion must beat;
- end-point error (pixels): the distance between the stored displacement and the exact camera displacement,
  median and mean over the pixels at least ``border`` pixels from the image edge, pooled over the clips.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from arseg_ros.data.camera_motion import CameraMotion, MotionRange
from arseg_ros.data.prepared import ClipRecord, PreparedClips
from arseg_ros.labels import IGNORE_ID


@dataclass
class MotionFigures:
    """``clips`` measured; label agreement (%) with the stored motion and without; end-point error (pixels)."""

    clips: int
    agreement: float
    agreement_without_motion: float
    epe_median: float
    epe_mean: float


def warp_labels(labels: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Keyframe ``labels (H, W)`` read at ``x + displacement(x)`` (``(2, H, W)`` pixels), nearest.

    Pixels where that falls outside the keyframe are set to ignore.
    """
    h, w = labels.shape
    ys, xs = np.mgrid[0:h, 0:w]
    x = np.rint(xs + displacement[0]).astype(int)
    y = np.rint(ys + displacement[1]).astype(int)
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    return np.where(inside, labels[y.clip(0, h - 1), x.clip(0, w - 1)], IGNORE_ID)


def agreement(key_labels: np.ndarray, labels: np.ndarray, displacement: np.ndarray) -> float:
    """Fraction of the pixels labelled in both where the warped keyframe labels equal ``labels``."""
    warped = warp_labels(key_labels, displacement)
    both = (warped != IGNORE_ID) & (labels != IGNORE_ID)
    return float((warped == labels)[both].mean()) if both.any() else float("nan")


def exact_displacement(clips: PreparedClips, record: ClipRecord) -> np.ndarray:
    """``(2, H, W)`` pixels: the camera motion ``arseg-prepare`` drew for a still's clip, from its manifest."""
    motion = clips.manifest.settings["motion"]
    bounds = MotionRange(motion["zoom"], motion["shift"], motion["rotation"])
    camera = CameraMotion.of_clip(record.motion_seed, bounds, motion["span"], record.gap, record.height, record.width)
    return camera.displacement()


def measure(clips: PreparedClips, stride: int = 4, border: int = 8) -> MotionFigures:
    """Measure the figures over every ``stride``-th clip synthesised from a still (those with keyframe labels)."""
    records = [(i, r) for i, r in enumerate(clips.records) if r.origin == "still"][::stride]
    if not records:
        raise SystemExit(f"{clips.folder} has no clips made from stills: nothing to compare with exact motion")
    with_motion, without, errors = [], [], []
    for index, record in tqdm(records, desc="clips", unit="clip"):
        clip = clips.clip(index)
        displacement = clip.displacement()
        with_motion.append(agreement(clip.key_labels, clip.labels, displacement))
        without.append(agreement(clip.key_labels, clip.labels, np.zeros_like(displacement)))
        error = np.linalg.norm(displacement - exact_displacement(clips, record), axis=0)
        errors.append(error[border:-border, border:-border].ravel())
    pooled = np.concatenate(errors)
    return MotionFigures(
        len(records),
        100.0 * float(np.nanmean(with_motion)),
        100.0 * float(np.nanmean(without)),
        float(np.median(pooled)),
        float(pooled.mean()),
    )


def report(folder: Path, figures: MotionFigures, stride: int, border: int) -> str:
    return "\n".join(
        [
            f"# Bitstream motion of still clips: {folder} (every {stride}th, {figures.clips} clips)",
            "",
            "| label agreement, stored motion | without motion | end-point error, median / mean (px) |",
            "|---|---|---|",
            f"| {figures.agreement:.1f} % | {figures.agreement_without_motion:.1f} % "
            f"| {figures.epe_median:.2f} / {figures.epe_mean:.2f} |",
            "",
            f"End-point error on the pixels at least {border} px from the image edge.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clips", type=Path, help="a prepared split of stills (arseg-prepare: <out>/<split>)")
    p.add_argument("--stride", type=int, default=4, help="measure every N-th clip")
    p.add_argument("--border", type=int, default=8, help="leave out this many pixels at the edge for the error")
    p.add_argument("--out", type=Path, help="also write the report here")
    args = p.parse_args(argv)
    if args.stride < 1 or args.border < 0:
        raise SystemExit("--stride must be >= 1 and --border >= 0")
    figures = measure(PreparedClips(args.clips), args.stride, args.border)
    text = report(args.clips, figures, args.stride, args.border)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
