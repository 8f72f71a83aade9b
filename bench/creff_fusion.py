"""How much of the keyframe's HR feature reaches the fused feature.

It runs an AR-Seg checkpoint on prepared clips, with the keyframe replaced to isolate CReFF from the motion.

    python bench/creff_fusion.py runs/synth/ar/best.pt prepared/synthetic/val [--limit 60] [--out report.md]

For every clip (decoded keyframe, decoded frame at gap d, bitstream displacement) it reports mIoU (%) of

- constant HR: the HR network on the frame;
- AR-Seg: the keyframe's HR feature warped by the bitstream motion and fused by CReFF (the engine's path);
- AR-Seg, exact alignment: the frame's own HR feature as the keyframe feature, zero displacement, i.e. what
  perfect motion and no change since the keyframe would give;
- AR-Seg, unrelated keyframe: the keyframe feature of another clip, warped by this clip's motion;
- warped keyframe alone: the keyframe's HR feature warped by the bitstream motion and classified by the shared
  classifier, without the LR feature (motion compensation of the keyframe's result, no fusion);
- LR branch alone: the LR network on the downscaled frame, no CReFF.

the mean squared distance (per element, as FST measures it, on the cells at least one cell from the border) from
the frame's HR feature to the upsampled LR feature, to the fused feature, to the warped keyframe feature and to
the warped keyframe feature shifted by one cell, and the mean attention weight CReFF gives the centre of its
window (the keyframe position the motion points to; uniform attention gives 1 / window**2), with the real keyframe
and with exact alignment; and how the keyframe's HR feature compares in scale with the frame's (its mean square
over the frame's: the median over clips, and the share of clips above 10x).

If exact alignment scores like AR-Seg, motion is not what limits it. If the fused feature is farther from the HR
feature than the warped keyframe feature, or the warped keyframe alone scores above AR-Seg, the fusion discards
what the keyframe offers. A centre weight near the uniform one, even with exact alignment, while the warped feature
matches far better at the centre than one cell off, says the attention spreads the keyframe feature over the
window instead of picking the aligned position. A keyframe feature many times larger than the frame's says the
HR network cannot read the keyframe (as when synthesised keyframes had black borders).
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
from arseg_ros.model.checkpoint import CheckpointError
from arseg_ros.model.creff import CReFF, local_attention_weights, warp
from arseg_ros.model.loading import load_arseg

MODES = (
    "constant HR",
    "AR-Seg",
    "AR-Seg, exact alignment",
    "AR-Seg, unrelated keyframe",
    "warped keyframe alone",
    "LR branch alone",
)
DISTANCES = ("upsampled LR feature", "fused feature", "warped keyframe feature", "warped keyframe feature, 1 cell off")
CENTRE_WEIGHTS = ("AR-Seg", "AR-Seg, exact alignment")
KEY_SCALE = ("median ratio", "clips above 10x (%)")
Figures = dict[str, float]  # one figure per mode, feature or keyframe


def _tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> normalised ``(1, 3, H, W)`` float."""
    return normalize(to_unit_tensor(image)[None])


def _labels(model: ARSeg, frame: torch.Tensor, key_feature: torch.Tensor, displacement: torch.Tensor) -> np.ndarray:
    return model.forward_nonkey(model.downscale(frame), key_feature, displacement).argmax(1)[0].numpy()


def _classified(model: ARSeg, feature: torch.Tensor, displacement: torch.Tensor) -> np.ndarray:
    """Pass a feature on the keyframe-feature grid through the shared classifier, resized to the frame."""
    logits = resize(model.hr.classify(feature), tuple(displacement.shape[-2:]), model.hr.logits_align_corners)
    return logits.argmax(1)[0].numpy()


def _mse(feature: torch.Tensor, target: torch.Tensor) -> float:
    return torch.mean((feature - target) ** 2).item()


def _interior(feature: torch.Tensor) -> torch.Tensor:
    """``(N, C, h, w)`` -> ``(N, C, h - 2, w - 2)``: the cells at least one cell from the border.

    Every distance is measured on these cells, so that the one-cell-off distance compares like with like.
    """
    return feature[..., 1:-1, 1:-1]


def _one_cell_off(warped: torch.Tensor, target: torch.Tensor) -> float:
    """Mean squared distance from ``target`` to ``warped`` shifted by one cell in each of the 8 directions.

    Both are ``(1, C, h, w)``, compared on the interior that every shift covers. The distance tells how sharply the
    warped keyframe feature matches the frame at the position the motion points to, against its neighbours.
    """
    h, w = target.shape[-2:]
    inner = _interior(target)
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    return sum(_mse(warped[..., 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx], inner) for dy, dx in shifts) / len(shifts)


def _centre_weight(creff: CReFF, upsampled: torch.Tensor, key_feature: torch.Tensor) -> float:
    """Mean softmax weight of the window centre in CReFF's attention of ``upsampled`` over ``key_feature``.

    ``upsampled`` is the LR feature on the keyframe grid; both are ``(1, C, h, w)``.
    """
    window = creff.attention.window
    weights = local_attention_weights(creff.conv_q(upsampled), creff.conv_k(key_feature), window, creff.attention.scale)
    return weights[:, window * window // 2].mean().item()


def measure(model: ARSeg, clips: PreparedClips, limit: int) -> tuple[Figures, Figures, Figures, Figures]:
    """Measure the four figures of the report over the first ``limit`` clips.

    They are: mIoU % per mode; mean squared distance to the frame's HR feature per feature; mean centre weight of
    the attention with the real keyframe and with exact alignment; the keyframe's HR feature scale: the median over
    clips of its mean square over the frame's, and the share of clips where that ratio exceeds 10.
    """
    n = min(limit, len(clips))
    if n < 2:
        raise SystemExit(f"{clips.folder} has {len(clips)} clip(s); the unrelated-keyframe mode needs at least 2")
    matrices = {mode: ConfusionMatrix(model.num_classes) for mode in MODES}
    sums = dict.fromkeys(DISTANCES, 0.0)
    centre = dict.fromkeys(CENTRE_WEIGHTS, 0.0)
    ratios = []
    with torch.inference_mode():
        for i in tqdm(range(n), desc="clips", unit="clip"):
            clip, other = clips.clip(i), clips.clip((i + n // 2) % n)
            frame, key = _tensor(clip.frame), _tensor(clip.key)
            displacement = torch.from_numpy(clip.displacement())[None]
            if other.key.shape != clip.key.shape:
                raise SystemExit(f"clips {i} and {(i + n // 2) % n} differ in size; use clips of one size")
            target = model.hr.features(frame)
            key_feature = model.hr.features(key)
            ratios.append((key_feature.square().mean() / target.square().mean()).item())
            warped = warp(key_feature, displacement)
            lr_feature = model.lr.features(model.downscale(frame))
            fused = model.creff(lr_feature, warped)
            upsampled = resize(lr_feature, tuple(target.shape[-2:]), align_corners=True)
            inner = _interior(target)
            distances = [_mse(_interior(f), inner) for f in (upsampled, fused, warped)]
            for name, distance in zip(DISTANCES, [*distances, _one_cell_off(warped, target)], strict=True):
                sums[name] += distance
            centre["AR-Seg"] += _centre_weight(model.creff, upsampled, warped)
            centre["AR-Seg, exact alignment"] += _centre_weight(model.creff, upsampled, target)
            unrelated = model.hr.features(_tensor(other.key))
            predictions = {
                "constant HR": model.forward_constant(frame, 1.0).argmax(1)[0].numpy(),
                "AR-Seg": _labels(model, frame, key_feature, displacement),
                "AR-Seg, exact alignment": _labels(model, frame, target, torch.zeros_like(displacement)),
                "AR-Seg, unrelated keyframe": _labels(model, frame, unrelated, displacement),
                "warped keyframe alone": _classified(model, warped, displacement),
                "LR branch alone": model.forward_constant(frame, model.lr_scale).argmax(1)[0].numpy(),
            }
            for mode, predicted in predictions.items():
                matrices[mode].update(clip.labels, predicted)
    return (
        {mode: 100.0 * m.miou() for mode, m in matrices.items()},
        {name: total / n for name, total in sums.items()},
        {name: total / n for name, total in centre.items()},
        dict(zip(KEY_SCALE, (float(np.median(ratios)), 100.0 * float(np.mean(np.array(ratios) > 10))), strict=True)),
    )


def report(
    checkpoint: Path,
    folder: Path,
    n: int,
    miou: dict[str, float],
    distance: dict[str, float],
    centre: dict[str, float],
    key_scale: dict[str, float],
    window: int,
) -> str:
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
        "",
        f"| keyframe feature | mean attention weight on the window centre (uniform: {1 / window**2:.4f}) |",
        "|---|---|",
        *(f"| {name} | {value:.4f} |" for name, value in centre.items()),
        "",
        "| keyframe HR feature, mean square over the frame's | value |",
        "|---|---|",
        *(f"| {name} | {value:.2f} |" for name, value in key_scale.items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="AR-Seg checkpoint (arseg-train ar: <out>/ar/best.pt)")
    p.add_argument("clips", type=Path, help="a prepared split (arseg-prepare: <out>/<split>)")
    p.add_argument("--limit", type=int, default=10**9, help="use the first N clips")
    p.add_argument("--out", type=Path, help="also write the report here")
    args = p.parse_args(argv)
    try:
        model, _ = load_arseg(args.checkpoint)
    except CheckpointError as exc:
        raise SystemExit(str(exc)) from None
    clips = PreparedClips(args.clips)
    miou, distance, centre, key_scale = measure(model, clips, args.limit)
    n = min(args.limit, len(clips))
    text = report(args.checkpoint, args.clips, n, miou, distance, centre, key_scale, model.creff.attention.window)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
