"""Encoding RGB frames to HEVC or H.264 with PyAV (libx265 / libx264), for bags, training data and tests.

Packets come out in decode order as Annex B access units, each with the presentation index of the picture it
carries, so a consumer can stamp it with that picture's capture time.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

ENCODERS = {"hevc": ("libx265", "x265-params", "hevc"), "h264": ("libx264", "x264-params", "h264")}


@dataclass
class EncoderSettings:
    """Encoder settings.

    ``keyint``: GOP length; ``bframes``; ``refs``: reference frames; ``bitrate_kbps`` (ABR) or, when 0,
    ``crf``; ``preset``; ``extra``: more ``key=value`` encoder parameters joined with ``:``.
    """

    codec: str = "hevc"
    keyint: int = 12
    bframes: int = 0
    refs: int = 3
    bitrate_kbps: int = 0
    crf: int = 28
    preset: str = "medium"
    fps: int = 30
    extra: str = ""

    def __post_init__(self) -> None:
        if self.codec not in ENCODERS:
            raise ValueError(f"unknown codec {self.codec!r}; choose one of {sorted(ENCODERS)}")
        if self.keyint < 1 or self.bframes < 0 or self.refs < 1 or self.fps < 1:
            raise ValueError("keyint, refs and fps must be >= 1 and bframes >= 0")

    def params(self) -> str:
        rate = f"bitrate={self.bitrate_kbps}" if self.bitrate_kbps else f"crf={self.crf}"
        common = [
            f"keyint={self.keyint}",
            f"min-keyint={self.keyint}",
            f"bframes={self.bframes}",
            f"ref={self.refs}",
            rate,
        ]
        if self.codec == "hevc":
            common += ["log-level=error", "scenecut=0"]
        else:
            common += ["scenecut=0"]
        return ":".join(common + ([self.extra] if self.extra else []))


@dataclass
class EncodedPacket:
    """One access unit: Annex B ``data``, ``index`` of the picture it carries (presentation order), keyframe."""

    data: bytes
    index: int
    key: bool


def encode_frames(frames: np.ndarray, settings: EncoderSettings | None = None) -> list[EncodedPacket]:
    """Encode ``(T, H, W, 3)`` uint8 RGB frames (even H and W); returns packets in decode order."""
    settings = settings or EncoderSettings()
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"4:2:0 encoding needs an even frame size, got {frames.shape[2]}x{frames.shape[1]}")
    name, option, fmt = ENCODERS[settings.codec]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(name, rate=settings.fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {option: settings.params(), "preset": settings.preset}
        packets: list[EncodedPacket] = []
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            packets += [EncodedPacket(bytes(p), int(p.pts), bool(p.is_keyframe)) for p in stream.encode(vf)]
        packets += [EncodedPacket(bytes(p), int(p.pts), bool(p.is_keyframe)) for p in stream.encode()]
    return packets
