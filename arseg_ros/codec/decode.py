"""A PyAV decoder session: Annex B packets in (decode order), pictures out (presentation order).

Each packet is tagged with its input index as pts; FFmpeg hands that pts back on the picture the packet
carried, so every output picture can be matched to its packet (stamp, frame id, motion) whatever the
reordering. H.264 sessions export motion vectors (``flags2=+export_mvs``). Pictures decoded with missing
references (a stream joined mid-GOP, a lost packet) are output too (``showall``, ``output_corrupt``): the
engine, not the decoder, decides what to do with them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import av
import numpy as np

log = logging.getLogger(__name__)

PICTURE_TYPES = {1: "I", 2: "P", 3: "B"}


class DecodeError(RuntimeError):
    """FFmpeg could not decode a packet (corrupt data or a missing reference)."""


@dataclass
class DecodedPicture:
    """One decoded picture.

    ``image``: ``(H, W, 3)`` uint8 RGB; ``packet_index``: input index of the packet that carried it;
    ``picture_type``: "I"/"P"/"B"; ``key_frame``: FFmpeg's keyframe flag; ``motion_vectors``: the H.264
    side-data array (``None`` for HEVC or intra pictures).
    """

    image: np.ndarray
    packet_index: int
    picture_type: str
    key_frame: bool
    motion_vectors: np.ndarray | None


class DecoderSession:
    """One FFmpeg decoder for one stream of ``codec`` ("hevc" or "h264").

    ``threads``: slice threads (0: one per core) for decoding (HEVC wavefronts, tiles and slices; H.264 slices)
    and for the conversion to RGB. Frame threading is not used: it would hold pictures back by one frame per
    thread.
    """

    def __init__(self, codec: str, threads: int = 1) -> None:
        if threads < 0:
            raise ValueError(f"threads must be >= 0 (0: one per core), got {threads}")
        self.codec = codec
        self._ctx = av.CodecContext.create(codec, "r")
        flags2 = "+showall+export_mvs" if codec == "h264" else "+showall"
        self._ctx.options = {"flags": "+output_corrupt", "flags2": flags2}
        self._ctx.thread_type = "SLICE"
        self._ctx.thread_count = threads
        self._convert_threads = threads or (os.cpu_count() or 1)
        self._index = 0

    def decode(self, data: bytes) -> list[DecodedPicture]:
        """Decode one Annex B access unit; returns the pictures that became ready (0, 1 or more)."""
        packet = av.Packet(data)
        packet.pts = self._index
        packet.dts = self._index
        self._index += 1
        try:
            frames = self._ctx.decode(packet)
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.codec} decoder rejected packet {self._index - 1}: {exc}") from None
        return [self._convert(f, self._convert_threads) for f in frames]

    def flush(self) -> list[DecodedPicture]:
        """Drain the pictures the decoder still holds (end of stream)."""
        try:
            frames = self._ctx.decode(None)
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.codec} decoder failed while flushing: {exc}") from None
        return [self._convert(f, self._convert_threads) for f in frames]

    @property
    def packets_fed(self) -> int:
        return self._index

    @staticmethod
    def _convert(frame: av.VideoFrame, threads: int) -> DecodedPicture:
        side = frame.side_data.get("MOTION_VECTORS")
        return DecodedPicture(
            image=frame.to_ndarray(format="rgb24", threads=threads),
            packet_index=int(frame.pts) if frame.pts is not None else -1,
            picture_type=PICTURE_TYPES.get(int(frame.pict_type), "I"),
            key_frame=bool(frame.key_frame),
            motion_vectors=side.to_ndarray() if side is not None else None,
        )
