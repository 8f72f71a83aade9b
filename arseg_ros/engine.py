"""``StreamSegmenter``: compressed packets of one camera stream in, label maps out.

Every packet is decoded (PyAV) and its motion accumulated to the current keyframe, so the motion chain stays
intact even when inference is skipped. Keyframes run the HR network (its feature is cached); other pictures
run the LR network and CReFF with the accumulated displacement. Results come in presentation order, each
with its packet's stamp and frame id.

Keyframe policy, in order: IRAP pictures (the encoder's GOP); ``hr_every_n`` pictures since the last HR
frame; a picture whose motion cannot reach the keyframe; an inter picture with more than
``scene_cut_intra_share`` intra blocks (a scene cut). Recovery rules (each counted in ``stats``, none
fatal): a stream starting mid-GOP yields no output until the first keyframe (or, with
``start="hr"``, runs HR on the first decodable picture); a decoder error or a reported discontinuity breaks
the chain, so the next decodable picture runs HR; a resolution or codec change resets the stream state.

Motion sources: HEVC from the package's bitstream parser (``arseg_ros.codec.hevc``), which derives every block's
motion vectors and is accumulated in decode order as packets arrive; H.264 from FFmpeg's side data, in
presentation order (see ``arseg_ros.codec.h264``). A picture without motion (a parse error, a picture the parser
dropped) runs HR, counted as ``no_motion``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from .codec.bitstream_motion import HevcMotionStream
from .codec.decode import DecodedPicture, DecodeError, DecoderSession
from .codec.h264 import motion_field_from_side_data
from .codec.hevc import HevcParseError
from .codec.motion import AccumulatedMotion, MotionAccumulator, MotionField
from .codec.packets import CODECS, Packet, has_nal_unit
from .model import ARSeg
from .model.base import normalize
from .model.inference import inference_copy

log = logging.getLogger(__name__)

Mode = Literal["ar", "hr", "lr"]
Kind = Literal["hr", "lr", "skipped"]


@dataclass
class EngineConfig:
    """Settings of one ``StreamSegmenter``.

    ``mode``: ``"ar"`` (AR-Seg), ``"hr"`` (HR network on every picture) or ``"lr"`` (constant LR baseline).
    ``lr_scale``: LR downscale factor (default: the model's). ``hr_every_n``: force HR after this many
    pictures since the last HR picture (0: never). ``scene_cut_intra_share``: force HR when an inter
    picture has more intra blocks than this fraction. ``start``: ``"keyframe"`` (no output before the first
    keyframe) or ``"hr"`` (HR on the first decodable picture). ``lag_policy``: ``"all"`` (infer every
    picture) or ``"latest"`` (skip inference for pictures marked stale). ``device``: ``"auto"`` (CUDA when
    available), ``"cpu"`` or ``"cuda[:i]"``. ``keep_images``: attach the decoded frame to each result.
    ``decoder_threads``: FFmpeg slice threads for decoding and colour conversion (0: one per core); slice
    threading adds no delay, unlike frame threading, which is not used.
    """

    mode: Mode = "ar"
    lr_scale: float | None = None
    hr_every_n: int = 0
    scene_cut_intra_share: float = 0.5
    start: Literal["keyframe", "hr"] = "keyframe"
    lag_policy: Literal["all", "latest"] = "all"
    device: str = "auto"
    keep_images: bool = False
    decoder_threads: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("ar", "hr", "lr"):
            raise ValueError(f"unknown mode {self.mode!r}; choose 'ar', 'hr' or 'lr'")
        if self.lr_scale is not None and not 0.0 < self.lr_scale <= 1.0:
            raise ValueError(f"lr_scale must be in (0, 1], got {self.lr_scale}")
        if self.hr_every_n < 0:
            raise ValueError(f"hr_every_n must be >= 0, got {self.hr_every_n}")
        if not 0.0 < self.scene_cut_intra_share <= 1.0:
            raise ValueError(f"scene_cut_intra_share must be in (0, 1], got {self.scene_cut_intra_share}")
        if self.start not in ("keyframe", "hr"):
            raise ValueError(f"unknown start policy {self.start!r}; choose 'keyframe' or 'hr'")
        if self.decoder_threads < 0:
            raise ValueError(f"decoder_threads must be >= 0 (0: one per core), got {self.decoder_threads}")
        if self.lag_policy not in ("all", "latest"):
            raise ValueError(f"unknown lag policy {self.lag_policy!r}; choose 'all' or 'latest'")


@dataclass
class SegResult:
    """One output picture.

    ``labels``: ``(H, W)`` uint8 class ids at camera resolution (``None`` when inference was skipped).
    ``stamp_ns``, ``frame_id``: copied from the packet that carried the picture. ``kind``: ``"hr"``,
    ``"lr"`` or ``"skipped"``. ``distance``: pictures since its keyframe (0 for HR). ``timings``: ms per
    stage (``decode``, ``motion``, ``accumulation``, ``inference``, ``total``). ``image``: the decoded
    ``(H, W, 3)`` uint8 RGB frame when ``EngineConfig.keep_images``. ``gop_distance``: pictures since the last
    keyframe of the stream in presentation order (the ``d`` of mIoU_d), whatever the mode.
    """

    labels: np.ndarray | None
    stamp_ns: int
    frame_id: str
    kind: Kind
    distance: int
    packet_index: int
    timings: dict[str, float] = field(default_factory=dict)
    image: np.ndarray | None = None
    gop_distance: int = 0


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    return device


class StreamSegmenter:
    """One camera stream: ``process(packet)`` returns the results of the pictures that became ready.

    The networks run on an inference copy of ``model`` (BatchNorm folded, channels-last; ``model.inference``),
    under ``torch.inference_mode``; on CPU the non-keyframe CReFF is one fused pass (``model.creff_cpu``).
    """

    def __init__(self, model: ARSeg, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.device = resolve_device(self.config.device)
        self.model = inference_copy(model, self.device)
        self.lr_scale = self.config.lr_scale or model.lr_scale
        self.stats: Counter[str] = Counter()
        self._session: DecoderSession | None = None
        self._packets: dict[int, Packet] = {}
        self._decode_ms: dict[int, float] = {}
        self._accumulator = MotionAccumulator()
        self._key_feature: torch.Tensor | None = None
        self._since_hr = 0
        self._size: tuple[int, int] | None = None
        self._anchor_index: int | None = None
        self._started = False
        self._broken = False
        self._gop_distance = 0
        self._key_id: int | None = None
        self._last_pushed: int | None = None
        self._motion_stream: HevcMotionStream | None = None
        self._hevc_motion: dict[int, tuple[AccumulatedMotion, float, float, float]] = {}

    # -- input -------------------------------------------------------------------------------------

    def process(self, packet: Packet, stale: bool = False) -> list[SegResult]:
        """Decode one packet and segment the pictures it released.

        ``stale``: the caller is behind (with ``lag_policy="latest"`` their inference is skipped; decoding and
        motion still run).
        """
        self.stats["packets"] += 1
        if packet.codec not in CODECS:
            raise ValueError(f"unknown codec {packet.codec!r}; expected one of {CODECS}")
        if not has_nal_unit(packet.data, packet.codec):
            # FFmpeg takes an empty packet as the end of the stream and would decode nothing more.
            self.stats["rejected_no_nal_unit"] += 1
            if self.stats["rejected_no_nal_unit"] == 1:
                log.warning("dropped a %d-byte packet that holds no NAL unit (more are only counted)", len(packet.data))
            return []
        if self._session is None or self._session.codec != packet.codec:
            if self._session is not None:
                self.stats["codec_change"] += 1
                log.info("codec changed to %s: resetting the stream", packet.codec)
            self._reset_stream(DecoderSession(packet.codec, self.config.decoder_threads))
        index = self._session.packets_fed
        self._packets[index] = packet
        if self._motion_stream is not None:
            self._parse_motion(index, packet.data)
        start = time.perf_counter()
        try:
            pictures = self._session.decode(packet.data)
        except DecodeError as exc:
            self.stats["decode_error"] += 1
            log.warning("%s", exc)
            self.mark_discontinuity()
            return []
        self._decode_ms[index] = 1e3 * (time.perf_counter() - start)
        return [self._segment(p, stale) for p in pictures if self._accept(p)]

    def flush(self) -> list[SegResult]:
        """End of stream: segment the pictures the decoder still holds."""
        if self._session is None:
            return []
        try:
            pictures = self._session.flush()
        except DecodeError as exc:
            self.stats["decode_error"] += 1
            log.warning("%s", exc)
            return []
        return [self._segment(p, False) for p in pictures if self._accept(p)]

    def mark_discontinuity(self) -> None:
        """Record that a packet was lost or corrupt: the motion chain is broken until the next HR picture."""
        self._broken = True
        self._accumulator.reset()
        self._key_feature = None
        self._key_id = None

    def _parse_motion(self, index: int, data: bytes) -> None:
        """HEVC: parse the access unit, derive its motion and accumulate it, in decode order."""
        try:
            pictures = self._motion_stream.feed(data)
        except HevcParseError as exc:
            self.stats["parse_error"] += 1
            log.warning("HEVC parser: %s", exc)
            self.mark_discontinuity()
            return
        for picture in pictures:
            self._last_pushed = picture.field.poc
            intra_share = float(picture.field.intra.mean())
            self._hevc_motion[index] = (
                picture.motion,
                intra_share,
                self._motion_stream.parse_ms,
                picture.accumulate_ms,
            )

    # -- internals ---------------------------------------------------------------------------------

    def _reset_stream(self, session: DecoderSession) -> None:
        self._session = session
        hevc_ar = session.codec == "hevc" and self.config.mode == "ar"
        self._motion_stream = HevcMotionStream(self._accumulator) if hevc_ar else None
        self._hevc_motion.clear()
        self._key_id = None
        self._packets.clear()
        self._decode_ms.clear()
        self._accumulator.reset()
        self._key_feature = None
        self._size = None
        self._anchor_index = None
        self._started = False
        self._broken = False

    def _accept(self, picture: DecodedPicture) -> bool:
        size = picture.image.shape[:2]
        if self._size is not None and size != self._size:
            self.stats["resolution_change"] += 1
            log.info("resolution changed from %s to %s: resetting the stream", self._size, size)
            self._accumulator.reset()
            self._key_feature = None
            self._anchor_index = None
            self._started = False
        self._size = size
        if not self._started and not picture.key_frame and self.config.start == "keyframe":
            self.stats["before_first_keyframe"] += 1
            self._packets.pop(picture.packet_index, None)
            return False
        self._started = True
        self._gop_distance = 0 if picture.key_frame else self._gop_distance + 1
        return True

    def _motion(self, picture: DecodedPicture, timings: dict[str, float]) -> tuple[AccumulatedMotion | None, float]:
        """``picture``'s motion accumulated to the keyframe, and its share of intra blocks.

        HEVC: taken from the parser, which ran in decode order when the packet arrived. H.264: built from
        FFmpeg's side data now, in presentation order, and accumulated as a non-keyframe.
        """
        if self._session.codec == "hevc":
            entry = self._hevc_motion.pop(picture.packet_index, None)
            if entry is None:
                return None, 1.0
            acc, intra_share, timings["motion"], timings["accumulation"] = entry
            return acc, intra_share
        h, w = picture.image.shape[:2]
        start = time.perf_counter()
        past = self._anchor_index if picture.picture_type != "I" else None
        field = motion_field_from_side_data(
            picture.motion_vectors,
            picture.packet_index,
            picture.picture_type,
            picture.key_frame,
            w,
            h,
            past,
            None,
            exact=True,
        )
        mid = time.perf_counter()
        acc = self._accumulator.push(field, is_keyframe=False)
        self._last_pushed = field.poc
        timings["motion"] = 1e3 * (mid - start)
        timings["accumulation"] = 1e3 * (time.perf_counter() - mid)
        return acc, float(field.intra.mean())

    def _hr_reason(self, picture: DecodedPicture, acc: AccumulatedMotion | None, intra_share: float) -> str | None:
        """Why this picture must run HR (the name of its counter), or ``None`` for LR + CReFF."""
        if picture.key_frame:
            return "keyframe"
        if acc is None:
            return "no_motion"
        if self._broken or self._key_feature is None or not acc.reaches_keyframe or acc.key_poc != self._key_id:
            return "chain_broken"
        if self.config.hr_every_n and self._since_hr + 1 >= self.config.hr_every_n:
            return "hr_every_n"
        if picture.picture_type != "I" and intra_share > self.config.scene_cut_intra_share:
            return "scene_cut"
        return None

    def _restart_chain(self, picture: DecodedPicture, acc: AccumulatedMotion | None) -> AccumulatedMotion | None:
        """Make ``picture`` the keyframe of the motion chain; returns its motion, or ``None`` when it cannot be.

        A picture the parser already made a keyframe (IRAP) is one. Otherwise the accumulator restarts from it,
        which is only right while no later picture (in decode order) has been accumulated and the picture's
        chain leads to the keyframe whose feature is cached: with B-frames, a picture shown before others decoded
        after it, or a leading picture of a CRA not yet shown, runs HR for itself only and the chain is kept.
        """
        if acc is not None and acc.distance == 0 and acc.key_poc == acc.poc:
            return acc
        pending_key = self._key_id is not None and acc is not None and acc.key_poc != self._key_id and not self._broken
        if acc is not None and (acc.poc != self._last_pushed or pending_key):
            return None
        h, w = picture.image.shape[:2]
        poc = acc.poc if acc is not None else picture.packet_index
        self._last_pushed = poc
        return self._accumulator.push(MotionField.empty(poc, "I", True, w, h), is_keyframe=True)

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        x = normalize(torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float().div_(255.0))
        return x.contiguous(memory_format=torch.channels_last)

    def _run(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        autocast = torch.autocast("cuda", dtype=torch.float16, enabled=self.device.type == "cuda")
        with torch.inference_mode(), autocast:
            return fn()

    def _segment(self, picture: DecodedPicture, stale: bool) -> SegResult:
        start = time.perf_counter()
        index = picture.packet_index
        packet = self._packets.pop(index, None)
        timings = {"decode": self._decode_ms.pop(index, 0.0), "motion": 0.0, "accumulation": 0.0}
        acc, kind = None, self.config.mode
        if self.config.mode == "ar":
            acc, intra_share = self._motion(picture, timings)
            reason = self._hr_reason(picture, acc, intra_share)
            kind = "lr" if reason is None else "hr"
            if reason is not None:
                self.stats[f"hr_{reason}"] += 1
                acc = self._restart_chain(picture, acc)
        if picture.picture_type != "B":
            self._anchor_index = index
        labels = None
        if stale and self.config.lag_policy == "latest" and not (self.config.mode == "ar" and kind == "hr"):
            kind = "skipped"
        else:
            labels, timings["inference"] = self._infer(picture, kind, acc)
        self.stats[kind] += 1
        self._since_hr = 0 if kind == "hr" else self._since_hr + 1
        timings["total"] = timings["decode"] + 1e3 * (time.perf_counter() - start)
        return SegResult(
            labels=labels,
            stamp_ns=packet.stamp_ns if packet else 0,
            frame_id=packet.frame_id if packet else "",
            kind=kind,
            distance=acc.distance if acc is not None and kind != "hr" else 0,
            packet_index=index,
            timings=timings,
            image=picture.image if self.config.keep_images else None,
            gop_distance=self._gop_distance,
        )

    def _infer(self, picture: DecodedPicture, kind: str, acc: AccumulatedMotion | None) -> tuple[np.ndarray, float]:
        """Run the network for ``kind``; returns the label map ``(H, W)`` uint8 and the inference time in ms."""
        start = time.perf_counter()
        frame = self._to_tensor(picture.image)
        if kind == "hr":
            logits, feature = self._run(lambda: self.model.forward_key(frame))
            if self.config.mode == "ar" and acc is not None:
                self._key_feature, self._broken, self._key_id = feature, False, acc.key_poc
        elif self.config.mode == "lr":
            logits = self._run(lambda: self.model.forward_constant(frame, self.lr_scale))
        else:
            displacement = torch.from_numpy(acc.to_pixels()).to(self.device)[None]
            logits = self._run(
                lambda: self.model.forward_nonkey(
                    self.model.downscale(frame, self.lr_scale), self._key_feature, displacement
                )
            )
        labels = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
        return labels, 1e3 * (time.perf_counter() - start)
