"""HEVC access units in, each picture's motion accumulated to its keyframe out: the one motion path of the package.

``HevcMotionStream`` parses every access unit with the bitstream parser (``arseg_ros.codec.hevc``, motion
derivation on), turns each completed picture into a ``MotionField`` and accumulates it, in decode order, with a
``MotionAccumulator``; IRAP pictures start a new GOP. The engine (``StreamSegmenter``) and the training-data
preparation (``arseg-prepare``) both take their motion from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .hevc import HevcParser, motion_field
from .motion import AccumulatedMotion, MotionAccumulator, MotionField


@dataclass
class PictureMotion:
    """One parsed picture, with its motion field and its motion accumulated to the keyframe.

    ``field``: its per-block field (quarter-pel vectors); ``motion``: its motion accumulated to the keyframe
    (pixels); ``accumulate_ms``: the time the accumulation took.
    """

    field: MotionField
    motion: AccumulatedMotion
    accumulate_ms: float


class HevcMotionStream:
    """One HEVC stream. ``feed(access_unit)`` returns the pictures it completed, in decode order.

    ``accumulator``: the accumulator to push into (the caller may share it to force keyframes of its own);
    a new one by default. ``parse_ms``: how long the last ``feed`` spent in the parser.
    """

    def __init__(self, accumulator: MotionAccumulator | None = None) -> None:
        self.parser = HevcParser(motion=True)
        self.accumulator = accumulator if accumulator is not None else MotionAccumulator()
        self.parse_ms = 0.0

    def feed(self, data: bytes) -> list[PictureMotion]:
        """Parse one Annex B access unit; raises ``HevcParseError`` (the parser stays usable) on corrupt data."""
        start = time.perf_counter()
        pictures = self.parser.feed_access_unit(data)
        self.parse_ms = 1e3 * (time.perf_counter() - start)
        return self._accumulate(pictures)

    def flush(self) -> list[PictureMotion]:
        """End of stream: the pictures the parser still holds."""
        return self._accumulate(self.parser.flush())

    def _accumulate(self, pictures: list) -> list[PictureMotion]:
        out = []
        for picture in pictures:
            field = motion_field(picture)
            if field is None:
                continue
            start = time.perf_counter()
            motion = self.accumulator.push(field, is_keyframe=field.is_irap)
            out.append(PictureMotion(field, motion, 1e3 * (time.perf_counter() - start)))
        return out
