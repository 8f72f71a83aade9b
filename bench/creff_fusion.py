"""How much of the keyframe's HR feature reaches the fused feature: an AR-Seg checkpoint on prepared clips, with
the keyframe replaced to isolate CReFF from the motion.

    python bench/creff_fusion.py runs/synth/ar/best.pt prepared/synthetic/val [--limit 60] [--out report.md]

For every clip (decoded keyframe, decoded frame at gap d, bitstream displacement) it reports mIoU (%) of

- constant HR: the HR network on the frame;
- AR-Seg: the keyframe's HR feature warped by the bitstream motion and fused by CReFF (the engine's path);
- AR-Seg, exact alignment: the frame's own HR feature as the keyframe feature, zero displacement, i.e. what
  perfect motion and no change since the keyframe would give;
- AR-Seg, unrelated keyframe: the keyframe feature of another clip, warped by this clip's motion;
- LR branch alone: the LR network on the downscaled frame, no CReFF.

and the mean squared distance (per element, as FST measures it) from the frame's HR feature to the upsampled LR
feature, to the fused feature and to the warped keyframe feature. If exact alignment scores like AR-Seg, motion is
not what limits it; if the fused feature is farther from the HR feature than the warped keyframe feature, the
fusion discards what the keyframe offers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from arseg_ros.data.pairs import to_unit_tensor
from arseg_ros.data.prepared import PreparedClips
from arseg_ros.metrics import ConfusionMatrix
from arseg_ros.model.arseg import ARSeg
from arseg_ros.model.base import normalize, resize
from arseg_ros.model.checkpoint import load_checkpoint
from arseg_ros.model.creff import warp

MODES = (
    "constant HR",
    "AR-Seg",
    "AR-Seg, exact alignment",
    "AR-Seg, unrelated keyframe",
    "LR branch alone",
)
DISTANCES = ("upsampled LR feature", "fused feature", "warped keyframe feature")


def _tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> normalised ``(1, 3, H, W)`` float."""
    return normalize(to_unit_tensor(image)[None])


def _labels(model: ARSeg, frame: torch.Tensor, key_feature: torch.Tensor, displacement: torch.Tensor) -> np.ndarray:
    return model.forward_nonkey(model.downscale(frame), key_feature, displacement).argmax(1)[0].numpy()


def measure(model: ARSeg, clips: PreparedClips, limit: int) -> tuple[dict[str, float], dict[str, float]]:
    """(mIoU % per mode, mean squared distance to the frame's HR feature per feature) over the first ``limit``
    clips."""
    n = min(limit, len(clips))
    if n < 2:
        raise SystemExit(f"{clips.folder} has {len(clips)} clip(s); the unrelated-keyframe mode needs at least 2")
    matrices = {mode: ConfusionMatrix(model.num_classes) for mode in MODES}
    sums = dict.fromkeys(DISTANCES, 0.0)
    with torch.inference_mode():
        for i in tqdm(range(n), desc="clips", unit="clip"):
            clip, other = clips.clip(i), clips.clip((i + n // 2) % n)
            frame, key = _tensor(clip.frame), _tensor(clip.key)
            displacement = torch.from_numpy(clip.displacement())[None]
            if other.key.shape != clip.key.shape:
                raise SystemExit(f"clips {i} and {(i + n // 2) % n} differ in size; use clips of one size")
            target = model.hr.features(frame)
            key_feature = model.hr.features(key)
            warped = warp(key_feature, displacement)
            lr_feature = model.lr.features(model.downscale(frame))
            fused = model.creff(lr_feature, warped)
            upsampled = resize(lr_feature, tuple(target.shape[-2:]), align_corners=True)
            for name, feature in zip(DISTANCES, (upsampled, fused, warped), strict=True):
                sums[name] += torch.mean((feature - target) ** 2).item()
            unrelated = model.hr.features(_tensor(other.key))
            predictions = {
                "constant HR": model.forward_constant(frame, 1.0).argmax(1)[0].numpy(),
                "AR-Seg": _labels(model, frame, key_feature, displacement),
                "AR-Seg, exact alignment": _labels(model, frame, target, torch.zeros_like(displacement)),
                "AR-Seg, unrelated keyframe": _labels(model, frame, unrelated, displacement),
                "LR branch alone": model.forward_constant(frame, model.lr_scale).argmax(1)[0].numpy(),
            }
            for mode, predicted in predictions.items():
                matrices[mode].update(clip.labels, predicted)
    return (
        {mode: 100.0 * m.miou() for mode, m in matrices.items()},
        {name: total / n for name, total in sums.items()},
    )


def report(checkpoint: Path, folder: Path, miou: dict[str, float], distance: dict[str, float], n: int) -> str:
    lines = [
        f"`{checkpoint}` on {n} clips of `{folder}`",
        "",
        "| mode | mIoU (%) |",
        "|---|---|",
        *(f"| {mode} | {value:.2f} |" for mode, value in miou.items()),
        "",
        "| feature | mean squared distance to the frame's HR feature |",
        "|---|---|",
        *(f"| {name} | {value:.4f} |" for name, value in distance.items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="AR-Seg checkpoint (arseg-train ar: <out>/ar/best.pt)")
    p.add_argument("clips", type=Path, help="a prepared split (arseg-prepare: <out>/<split>)")
    p.add_argument("--limit", type=int, default=10**9, help="use the first N clips")
    p.add_argument("--out", type=Path, help="also write the report here")
    args = p.parse_args(argv)
    model, _ = load_checkpoint(args.checkpoint)
    if not isinstance(model, ARSeg):
        raise SystemExit(f"{args.checkpoint} is a single network; pass an AR-Seg checkpoint (arseg-train ar)")
    model.eval()
    clips = PreparedClips(args.clips)
    miou, distance = measure(model, clips, args.limit)
    text = report(args.checkpoint, args.clips, miou, distance, min(args.limit, len(clips)))
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
