"""Training samples for both phases, and the geometric augmentation they share.

Phase 2 (AR) needs, for a labelled frame, its keyframe ``gap`` frames earlier and the displacement from each
pixel of the frame to its position in the keyframe. For still images (CamVid's labelled frames are a second
apart) the keyframe is synthesised: a random camera motion (``arseg_ros.data.camera_motion``: zoom as when
driving forward, pan, a little rotation) is applied to the still, so the displacement is known exactly.
Where the keyframe sees beyond the still, the still is mirrored at its edge. ``arseg-prepare`` builds the same
pairs through the codec instead: the whole clip encoded with HEVC, decoded, and the motion taken from the
bitstream.

Augmentation applies one random scale, crop and horizontal flip to the frame, the keyframe, the labels and the
displacement together (scaling multiplies the displacement, a flip negates its x component), and one colour
jitter to both frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..labels import IGNORE_ID
from .camera_motion import CameraMotion, MotionRange

__all__ = ["Augmentation", "MotionRange", "TrainingSample", "synthetic_keyframe", "to_unit_tensor"]


@dataclass
class TrainingSample:
    """One training sample: a frame, its labels and optionally its keyframe and the displacement to it.

    ``frame``, ``key``: ``(3, H, W)`` float32 in 0..1; ``labels``: ``(H, W)`` int64 (255 = ignore);
    ``displacement``: ``(2, H, W)`` float32 pixels from ``frame`` to ``key`` (``None`` in phase 1).
    """

    frame: torch.Tensor
    labels: torch.Tensor
    key: torch.Tensor | None = None
    displacement: torch.Tensor | None = None


def synthetic_keyframe(
    image: np.ndarray, rng: np.random.Generator, motion: MotionRange
) -> tuple[np.ndarray, np.ndarray]:
    """Synthesise the keyframe of a still ``(H, W, 3)`` uint8 image with a random ``CameraMotion``.

    Returns ``(key (H, W, 3) uint8, displacement (2, H, W) float32)``; the keyframe shows the scene as the
    camera saw it ``gap`` frames earlier (zoomed out when driving forward), sampled bilinearly.
    """
    camera = CameraMotion.random(rng, motion, *image.shape[:2])
    return camera.render(image), camera.displacement()


@dataclass
class Augmentation:
    """Random scale, crop, horizontal flip and brightness/contrast jitter.

    Random scale in ``scale_range``, a ``crop = (h, w)`` window (padded with ignore where the image is smaller),
    horizontal flip with probability ``flip``, and brightness/contrast jitter of ``jitter``.
    """

    crop: tuple[int, int]
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: float = 0.5
    jitter: float = 0.2

    def __call__(
        self,
        frame: torch.Tensor,
        labels: torch.Tensor,
        rng: np.random.Generator,
        key: torch.Tensor | None = None,
        displacement: torch.Tensor | None = None,
    ) -> TrainingSample:
        """``frame``, ``key``: ``(3, H, W)``; ``labels``: ``(H, W)``; ``displacement``: ``(2, H, W)``."""
        s = rng.uniform(*self.scale_range)
        h, w = frame.shape[-2:]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        frame = F.interpolate(frame[None], size=size, mode="bilinear", align_corners=False)[0]
        labels = F.interpolate(labels[None, None].float(), size=size, mode="nearest")[0, 0].long()
        if key is not None:
            key = F.interpolate(key[None], size=size, mode="bilinear", align_corners=False)[0]
            displacement = F.interpolate(displacement[None], size=size, mode="nearest")[0]
            displacement = displacement * torch.tensor([size[1] / w, size[0] / h]).view(2, 1, 1)
        ch, cw = self.crop
        pad_h, pad_w = max(0, ch - size[0]), max(0, cw - size[1])
        if pad_h or pad_w:
            frame = F.pad(frame, (0, pad_w, 0, pad_h))
            labels = F.pad(labels, (0, pad_w, 0, pad_h), value=IGNORE_ID)
            if key is not None:
                key = F.pad(key, (0, pad_w, 0, pad_h))
                displacement = F.pad(displacement, (0, pad_w, 0, pad_h))
        y0 = int(rng.integers(0, frame.shape[1] - ch + 1))
        x0 = int(rng.integers(0, frame.shape[2] - cw + 1))
        window = (slice(y0, y0 + ch), slice(x0, x0 + cw))
        frame, labels = frame[:, window[0], window[1]], labels[window]
        if key is not None:
            key, displacement = key[:, window[0], window[1]], displacement[:, window[0], window[1]]
        if rng.random() < self.flip:
            frame, labels = frame.flip(-1), labels.flip(-1)
            if key is not None:
                key = key.flip(-1)
                displacement = displacement.flip(-1) * torch.tensor([-1.0, 1.0]).view(2, 1, 1)
        gain = 1.0 + rng.uniform(-self.jitter, self.jitter)
        bias = rng.uniform(-self.jitter, self.jitter) * 0.5
        frame = (frame * gain + bias).clamp(0, 1)
        if key is not None:
            key = (key * gain + bias).clamp(0, 1)
        return TrainingSample(
            frame=frame.contiguous(),
            labels=labels.contiguous(),
            key=None if key is None else key.contiguous(),
            displacement=None if displacement is None else displacement.contiguous(),
        )


def to_unit_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 in 0..1."""
    return torch.from_numpy(np.array(image, dtype=np.float32, order="C")).permute(2, 0, 1) / 255.0
