"""Bitstream motion fields and their accumulation back to the keyframe.

``MotionField`` is the one motion type for every codec: per 4x4 luma block, the L0 and L1 motion vectors in
quarter-pel (int16), the POC of the picture each refers to, prediction flags, and intra / skip / merge flags.
A motion vector ``(mvx, mvy)`` of a block says that the block's prediction comes from
``(x + mvx / 4, y + mvy / 4)`` in the reference picture (the same sign convention as the backward-warp
displacement of ``arseg_ros.model.creff``).

``MotionAccumulator`` composes, in decode order, each picture's motion through the reference each block
really uses, back to the current keyframe, keeping sub-pixel precision. Block ``(by, bx)`` covers pixels
``[4 by, 4 by + 3] x [4 bx, 4 bx + 3]``; its centre is at pixel coordinate ``(4 bx + 1.5, 4 by + 1.5)``.
For a block predicting from reference ``r`` with vector ``mv``::

    displacement = mv / 4 + D_r(centre + mv / 4)

where ``D_r`` is ``r``'s accumulated displacement, looked up bilinearly between block centres over ``r``'s
valid blocks only (positions are clamped to the picture, as the codec clamps reference samples). ``D`` of
the keyframe is zero. A bi-predicted block averages its two chains where both are valid and uses the valid
one otherwise. Intra blocks, blocks whose reference is missing or belongs to another keyframe's GOP, and
blocks whose look-up finds no valid block are *invalid*: they are filled from their valid neighbours and
counted in ``filled_fraction``. A picture with no valid block cannot reach the keyframe and is flagged with
``reaches_keyframe = False``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._accumulate import compose
from ._accumulate import fill_invalid as _fill_invalid

BLOCK = 4


@dataclass
class MotionField:
    """Motion of one picture on the 4x4 luma block grid ``(Hb, Wb) = (ceil(H / 4), ceil(W / 4))``.

    ``mv``: ``(2, Hb, Wb, 2)`` int16, quarter-pel ``(mvx, mvy)`` for list 0 and list 1.
    ``pred_flag``: ``(2, Hb, Wb)`` bool, whether the block predicts from list 0 / list 1.
    ``ref_poc``: ``(2, Hb, Wb)`` int64, the POC of the referenced picture (meaningful where ``pred_flag``).
    ``intra``, ``skip``, ``merge``: ``(Hb, Wb)`` bool (HEVC fills ``skip`` and ``merge`` from the parsed syntax;
    H.264 side data does not carry them, so they stay False there).
    ``poc``: this picture's POC. ``picture_type``: ``"I"``, ``"P"`` or ``"B"``. ``is_irap``: a random
    access point (HEVC IRAP, H.264 IDR/keyframe). ``width``, ``height``: luma size in pixels.
    ``exact``: False where the codec's motion export cannot name the reference exactly (H.264 with several
    reference frames); True otherwise.
    """

    poc: int
    picture_type: str
    is_irap: bool
    width: int
    height: int
    mv: np.ndarray
    pred_flag: np.ndarray
    ref_poc: np.ndarray
    intra: np.ndarray
    skip: np.ndarray
    merge: np.ndarray
    exact: bool = True

    @property
    def blocks(self) -> tuple[int, int]:
        """``(Hb, Wb)``: the block-grid size."""
        return block_grid(self.width, self.height)

    @classmethod
    def empty(cls, poc: int, picture_type: str, is_irap: bool, width: int, height: int) -> MotionField:
        """Return a field with every block intra (no prediction), to be filled in by a codec adapter."""
        hb, wb = block_grid(width, height)
        return cls(
            poc=poc,
            picture_type=picture_type,
            is_irap=is_irap,
            width=width,
            height=height,
            mv=np.zeros((2, hb, wb, 2), np.int16),
            pred_flag=np.zeros((2, hb, wb), bool),
            ref_poc=np.zeros((2, hb, wb), np.int64),
            intra=np.ones((hb, wb), bool),
            skip=np.zeros((hb, wb), bool),
            merge=np.zeros((hb, wb), bool),
        )

    def validate(self) -> None:
        """Raise ``ValueError`` naming the array whose shape or dtype does not fit the block grid."""
        hb, wb = self.blocks
        expected = {
            "mv": ((2, hb, wb, 2), np.int16),
            "pred_flag": ((2, hb, wb), np.bool_),
            "ref_poc": ((2, hb, wb), np.int64),
            "intra": ((hb, wb), np.bool_),
            "skip": ((hb, wb), np.bool_),
            "merge": ((hb, wb), np.bool_),
        }
        for name, (shape, dtype) in expected.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
                got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
                raise ValueError(f"MotionField.{name}: expected {np.dtype(dtype).name} {shape}, got {got}")


def block_grid(width: int, height: int) -> tuple[int, int]:
    """Luma size in pixels -> 4x4 block-grid size ``(Hb, Wb)``."""
    return -(-height // BLOCK), -(-width // BLOCK)


@dataclass
class AccumulatedMotion:
    """Displacement of one picture to its keyframe.

    ``displacement``: ``(2, Hb, Wb)`` float32, pixels ``(dx, dy)`` from each block to its position in the
    keyframe, invalid blocks filled from their valid neighbours. ``valid``: ``(Hb, Wb)`` bool, blocks whose
    chain reached the keyframe. ``poc``, ``key_poc``: this picture and its keyframe. ``distance``: pictures
    since the keyframe in decode order (0 for the keyframe itself).
    """

    poc: int
    key_poc: int
    distance: int
    displacement: np.ndarray
    valid: np.ndarray
    width: int
    height: int

    @property
    def filled_fraction(self) -> float:
        """Fraction of blocks whose displacement was filled from neighbours rather than composed."""
        return float(1.0 - self.valid.mean())

    @property
    def reaches_keyframe(self) -> bool:
        return bool(self.valid.any())

    def to_pixels(self) -> np.ndarray:
        """``(2, H, W)`` float32 displacement at pixel resolution (constant over each 4x4 block)."""
        full = np.repeat(np.repeat(self.displacement, BLOCK, axis=1), BLOCK, axis=2)
        return np.ascontiguousarray(full[:, : self.height, : self.width])


def fill_invalid(displacement: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill each invalid block from its valid neighbours, growing inwards pass by pass.

    Each pass takes the mean of the already filled 4-neighbours; zeros if no block is valid. ``displacement``:
    ``(2, Hb, Wb)``; ``valid``: ``(Hb, Wb)``.
    """
    return _fill_invalid(np.ascontiguousarray(displacement, np.float32), np.ascontiguousarray(valid, bool))


class MotionAccumulator:
    """Accumulates ``MotionField``s, fed in decode order, to displacements to the current keyframe.

    ``push(field, is_keyframe)`` starts a new GOP when ``is_keyframe`` (the caller's keyframe policy decides:
    IRAP pictures by default, or a forced HR frame). Maps of the current GOP are kept for later pictures to
    refer to; at most ``max_pictures`` of them (the oldest are dropped first).
    """

    def __init__(self, max_pictures: int = 32) -> None:
        self.max_pictures = max_pictures
        self.key_poc: int | None = None
        self._maps: dict[int, AccumulatedMotion] = {}
        self._count = 0

    def reset(self) -> None:
        """Forget the keyframe and every map (e.g. after a decoder reset or a resolution change)."""
        self.key_poc = None
        self._maps.clear()
        self._count = 0

    def push(self, field: MotionField, is_keyframe: bool) -> AccumulatedMotion:
        """Accumulate one picture; returns its displacement to the keyframe."""
        field.validate()
        hb, wb = field.blocks
        if is_keyframe:
            self._maps.clear()
            self.key_poc = field.poc
            self._count = 0
            acc = AccumulatedMotion(
                poc=field.poc,
                key_poc=field.poc,
                distance=0,
                displacement=np.zeros((2, hb, wb), np.float32),
                valid=np.ones((hb, wb), bool),
                width=field.width,
                height=field.height,
            )
        else:
            self._count += 1
            acc = self._compose(field)
        self._maps[field.poc] = acc
        while len(self._maps) > self.max_pictures:
            self._maps.pop(next(iter(self._maps)))
        return acc

    def _compose(self, field: MotionField) -> AccumulatedMotion:
        hb, wb = field.blocks
        refs = [m for m in self._maps.values() if m.key_poc == self.key_poc and m.valid.shape == (hb, wb)]
        displacement, valid = compose(
            field.mv,
            field.pred_flag & ~field.intra[None],
            field.ref_poc,
            [r.poc for r in refs],
            [r.displacement for r in refs],
            [r.valid for r in refs],
        )
        return AccumulatedMotion(
            poc=field.poc,
            key_poc=self.key_poc if self.key_poc is not None else field.poc,
            distance=self._count,
            displacement=fill_invalid(displacement, valid),
            valid=valid,
            width=field.width,
            height=field.height,
        )
