"""One compressed training or evaluation clip, built through the package's own codec path.

A clip is the ``d + 1`` frames from a labelled frame's keyframe (``d`` frames earlier) to the labelled frame.
It is encoded with libx265 (``arseg_ros.codec.encode``), decoded with the engine's decoder session
(``arseg_ros.codec.decode``), and its motion is parsed from the bitstream and accumulated to the keyframe by
``HevcMotionStream``, the engine's motion path. What comes out is what the engine sees for that frame: the
decoded keyframe, the decoded labelled frame, and the displacement of each 4x4 block of the labelled frame to
the keyframe.

Each clip is encoded single-threaded (``frame-threads=1:pools=none``), so that the encoder's configuration does not
depend on the machine's core count and clips can be built in parallel processes. libx265 is still not bit-exact
from run to run on every input (its lookahead runs beside the frame encoder): two builds of one clip can differ
slightly in their bits, their decoded pixels and their motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codec.bitstream_motion import HevcMotionStream
from ..codec.decode import DecoderSession
from ..codec.encode import EncodedPacket, EncoderSettings, encode_frames
from ..codec.motion import AccumulatedMotion

SINGLE_THREADED = "frame-threads=1:pools=none"


class ClipError(ValueError):
    """Frames or settings from which no clip can be built."""


@dataclass
class CompressedClip:
    """A labelled frame and its keyframe after compression.

    ``key``, ``frame``: ``(H, W, 3)`` uint8 RGB, the decoded keyframe and labelled frame. ``labels``: ``(H, W)``
    uint8 class ids of the labelled frame (255 = no label); ``key_labels``: the keyframe's, where known (clips
    synthesised from stills), else ``None``. ``motion``: the labelled frame's displacement to the keyframe,
    per 4x4 block, from the bitstream (pixels). ``packets``: the access units in decode order, each with its
    presentation index (0 = keyframe, ``gap`` = labelled frame). ``gap``: ``d``, frames from keyframe to frame.
    """

    key: np.ndarray
    frame: np.ndarray
    labels: np.ndarray
    key_labels: np.ndarray | None
    motion: AccumulatedMotion
    packets: list[EncodedPacket]
    gap: int

    def displacement(self) -> np.ndarray:
        """``(2, H, W)`` float32: the displacement at pixel resolution (constant over each 4x4 block)."""
        return self.motion.to_pixels()


def clip_encoder(settings: EncoderSettings) -> EncoderSettings:
    """Return ``settings`` with the single-threaded x265 parameters appended (see the module docstring)."""
    if settings.codec != "hevc":
        raise ClipError(f"clips are HEVC (their motion comes from the HEVC bitstream parser), not {settings.codec}")
    extra = ":".join(p for p in (settings.extra, SINGLE_THREADED) if p)
    return EncoderSettings(**{**settings.__dict__, "extra": extra})


def compress_clip(
    frames: np.ndarray,
    labels: np.ndarray,
    settings: EncoderSettings,
    key_labels: np.ndarray | None = None,
) -> CompressedClip:
    """Encode ``frames``, decode them and take the labelled frame's motion from the bitstream.

    ``frames``: ``(d + 1, H, W, 3)`` uint8 (keyframe first, labelled frame last). ``labels``: ``(H, W)`` uint8 of
    the labelled frame.
    """
    gap = len(frames) - 1
    if gap < 0:
        raise ClipError("a clip needs at least one frame")
    if gap >= settings.keyint:
        raise ClipError(f"gap {gap} needs a GOP longer than it; keyint is {settings.keyint}")
    packets = encode_frames(frames, clip_encoder(settings))
    decoded = _decode(packets)
    motion = _motion(packets, gap)
    return CompressedClip(
        key=decoded[0],
        frame=decoded[gap],
        labels=labels,
        key_labels=key_labels,
        motion=motion,
        packets=packets,
        gap=gap,
    )


def _decode(packets: list[EncodedPacket]) -> dict[int, np.ndarray]:
    """Return the decoded pictures by presentation index."""
    session = DecoderSession("hevc")
    pictures = [p for packet in packets for p in session.decode(packet.data)] + session.flush()
    return {packets[p.packet_index].index: p.image for p in pictures}


def _motion(packets: list[EncodedPacket], gap: int) -> AccumulatedMotion:
    """Return the labelled frame's motion accumulated to the keyframe; its POC is its presentation index."""
    stream = HevcMotionStream()
    by_poc = {m.field.poc: m.motion for packet in packets for m in stream.feed(packet.data)}
    by_poc.update({m.field.poc: m.motion for m in stream.flush()})
    motion = by_poc.get(gap)
    if motion is None or motion.key_poc != 0 or not motion.reaches_keyframe:
        raise ClipError(f"the bitstream's motion of frame {gap} does not reach the clip's first frame")
    return motion
