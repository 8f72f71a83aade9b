"""Synthetic camera motion for still images: the frames a camera would have seen before a labelled still.

Motion model: a similarity transform about the image centre ``c``. Over the whole motion (the keyframe,
``s = 1``) a point ``x`` of the still moves to ``A (x - c) + c + t`` with ``A = z R(theta)``: zoom ``z <= 1``
(the scene looked smaller before, as when driving forward), roll ``theta`` and pan ``t`` (pixels). A fraction
``s`` of the motion uses ``z_s = 1 - s (1 - z)``, ``theta_s = s theta`` and ``t_s = s t``, so a clip whose frame
``k`` of ``0..d`` takes ``s = (d - k) / d`` is a constant-velocity zoom, roll and pan that ends on the still
itself (frame ``d``, ``s = 0``). Images are resampled bilinearly and labels with the nearest class.

Where a moved frame sees beyond the still (a zoom-out or pan exposes its border), the still is mirrored at its
edge (``OUTSIDE_FILL``), in the image and in the labels alike. A black border would be a strong artificial edge
that no real frame has: the HR network's feature of such a keyframe is often tens of times larger than the
still's, which makes a poor keyframe for training and evaluating the non-key path. Mirrored content is street
texture, and its labels describe what the mirrored image shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

OUTSIDE_FILL = "reflection"
"""How a moved frame is filled beyond the still: the still mirrored at its edge (a ``grid_sample`` padding mode)."""


@dataclass
class MotionRange:
    """Bounds of the synthetic camera motion over the whole gap.

    The bounds are the zoom factor, translation (fraction of the image size) and rotation (degrees).
    """

    zoom: float = 0.12
    shift: float = 0.06
    rotation: float = 2.0


@dataclass
class CameraMotion:
    """The camera motion from a still back to its keyframe, about the centre of a ``(height, width)`` image.

    ``zoom``: scale factor, <= 1; ``angle``: radians; ``shift``: ``(tx, ty)`` in pixels.
    """

    zoom: float
    angle: float
    shift: tuple[float, float]
    height: int
    width: int

    @classmethod
    def random(cls, rng: np.random.Generator, bounds: MotionRange, height: int, width: int) -> CameraMotion:
        """Draw zoom, angle and shift uniformly within ``bounds`` (in that order from ``rng``)."""
        zoom = 1.0 - rng.uniform(0.0, bounds.zoom)
        angle = math.radians(rng.uniform(-bounds.rotation, bounds.rotation))
        tx = rng.uniform(-bounds.shift, bounds.shift) * width
        ty = rng.uniform(-bounds.shift, bounds.shift) * height
        return cls(zoom, angle, (tx, ty), height, width)

    @classmethod
    def of_clip(
        cls, seed: list[int], bounds: MotionRange, span: int, gap: int, height: int, width: int
    ) -> CameraMotion:
        """Return the motion of a still's clip of ``gap`` frames.

        One motion is drawn from ``seed`` for ``span`` frames, of which the clip moves ``gap / span``
        (``arseg-prepare`` records the seed per clip and the rest in its settings).
        """
        return cls.random(np.random.default_rng(seed), bounds, height, width).part(gap / span)

    def part(self, s: float) -> CameraMotion:
        """Return the fraction ``s`` (0..1) of this motion (0: the still itself, 1: the whole motion)."""
        return CameraMotion(
            1.0 - s * (1.0 - self.zoom),
            s * self.angle,
            (s * self.shift[0], s * self.shift[1]),
            self.height,
            self.width,
        )

    def _matrix(self) -> np.ndarray:
        c, s = math.cos(self.angle), math.sin(self.angle)
        return self.zoom * np.array([[c, -s], [s, c]], np.float64)

    def _centre(self) -> np.ndarray:
        return np.array([(self.width - 1) / 2, (self.height - 1) / 2])

    def displacement(self) -> np.ndarray:
        """Return the displacement from the still to the moved frame, ``(2, H, W)`` float32.

        Pixels ``(dx, dy)`` from each pixel of the still to its position in the moved frame (the backward-warp
        convention of ``arseg_ros.model.creff``).
        """
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        c = self._centre()
        moved = np.einsum("ij,jhw->ihw", self._matrix(), np.stack([xs - c[0], ys - c[1]]))
        moved += (c + np.asarray(self.shift))[:, None, None]
        return (moved - np.stack([xs, ys])).astype(np.float32)

    def _grid(self) -> torch.Tensor:
        """``(1, H, W, 2)`` grid_sample coordinates: where each pixel of the moved frame comes from in the still."""
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        c = self._centre()
        rel = np.stack([xs - c[0] - self.shift[0], ys - c[1] - self.shift[1]])
        src = np.einsum("ij,jhw->ihw", np.linalg.inv(self._matrix()), rel) + c[:, None, None]
        norm = np.stack([(2 * src[0] + 1) / self.width - 1, (2 * src[1] + 1) / self.height - 1], -1)
        return torch.from_numpy(norm).float()[None]

    def render(self, image: np.ndarray) -> np.ndarray:
        """Return the still ``(H, W, 3)`` uint8 as the moved camera sees it (bilinear; mirrored beyond the still)."""
        img = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)[None]
        out = F.grid_sample(img, self._grid(), mode="bilinear", padding_mode=OUTSIDE_FILL, align_corners=False)[0]
        return out.permute(1, 2, 0).round().clamp(0, 255).byte().numpy()

    def render_labels(self, labels: np.ndarray) -> np.ndarray:
        """Return the still's ``(H, W)`` uint8 class ids as the moved camera sees them.

        Sampling is nearest; the labels are mirrored beyond the still, as ``render``.
        """
        ids = torch.from_numpy(labels.astype(np.float32))[None, None]
        out = F.grid_sample(ids, self._grid(), mode="nearest", padding_mode=OUTSIDE_FILL, align_corners=False)[0, 0]
        return out.round().byte().numpy()


def still_clip(
    image: np.ndarray, labels: np.ndarray, gap: int, motion: CameraMotion
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return a clip of ``gap + 1`` frames ending on a still: frame ``k`` shows ``motion.part((gap - k) / gap)``.

    ``image``: ``(H, W, 3)`` uint8; ``labels``: ``(H, W)`` uint8. Returns ``frames`` ``(gap + 1, H, W, 3)``
    uint8 (frame 0 is the keyframe, frame ``gap`` the still), the keyframe's labels ``(H, W)`` uint8, and the
    true displacement ``(2, H, W)`` float32 from the still to the keyframe, in pixels.
    """
    if gap == 0:
        return image[None].copy(), labels.copy(), np.zeros((2, *labels.shape), np.float32)
    frames = np.stack([motion.part((gap - k) / gap).render(image) for k in range(gap)] + [image])
    return frames, motion.render_labels(labels), motion.displacement()
