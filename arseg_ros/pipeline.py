"""What the ROS node does, without ROS: parameters, the packet queue, the worker, output messages and
diagnostics. ``arseg_ros.node`` wires it to rclpy; tests drive it with ``rosbags`` message classes.

Packets are never dropped before decoding (a lost compressed packet corrupts the rest of its GOP): the
subscription only converts and queues them, and the worker decodes every one. When the worker falls behind
(packets still queued), inference is skipped for pictures under ``lag_policy = "latest"``. Only if the queue
exceeds ``max_queue`` packets are the oldest dropped; the motion chain is then marked broken and the drop
is counted.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .codec.packets import Packet, PacketError, packet_from_message
from .engine import EngineConfig, SegResult, StreamSegmenter
from .labels import LabelSet, colorize, overlay
from .messages import header, image_message, label_info_message, numpy_data
from .model import ARSeg

log = logging.getLogger(__name__)

INPUT_TYPES = ("compressed_image", "ffmpeg_packet", "compressed_video")
RELIABILITIES = ("reliable", "best_effort")


def _param(default: Any, description: str, choices: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"description": description, "choices": choices})


@dataclass
class NodeParameters:
    """The node's parameters, with defaults; each field's metadata holds its description."""

    model: str = _param("", "AR-Seg checkpoint file (.pt)")
    input_type: str = _param("ffmpeg_packet", "message type of the input topic", INPUT_TYPES)
    mode: str = _param("ar", "ar: AR-Seg; hr / lr: constant-resolution baselines", ("ar", "hr", "lr"))
    lr_scale: float = _param(0.0, "downscale factor of non-keyframes; 0 uses the model's")
    hr_every_n: int = _param(0, "force an HR frame after this many frames (0: IRAP pictures only)")
    scene_cut_intra_share: float = _param(0.5, "force HR when an inter frame has more intra blocks than this")
    start: str = _param("keyframe", "keyframe: wait for a keyframe; hr: HR on the first frame", ("keyframe", "hr"))
    lag_policy: str = _param("latest", "when behind: latest skips inference on stale frames", ("all", "latest"))
    device: str = _param("auto", "auto (CUDA when available), cpu or cuda:N")
    decoder_threads: int = _param(0, "FFmpeg slice threads for decoding (0: one per core)")
    publish_color_mask: bool = _param(True, "publish ~/color_mask (rgb8)")
    publish_overlay: bool = _param(False, "publish ~/overlay (rgb8 blend of frame and mask)")
    overlay_alpha: float = _param(0.5, "mask weight in ~/overlay, 0..1")
    input_reliability: str = _param("reliable", "input QoS reliability", RELIABILITIES)
    input_depth: int = _param(24, "input QoS depth (keep at least two GOPs)")
    output_reliability: str = _param("reliable", "output QoS reliability", RELIABILITIES)
    output_depth: int = _param(5, "output QoS depth")
    max_queue: int = _param(300, "packets queued for decoding before the oldest are dropped")
    max_message_bytes: int = _param(16_777_216, "input messages larger than this (bytes) are dropped")

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise ValueError(f"parameter {f.name}={value!r}: choose one of {list(choices)}")
        if self.lr_scale < 0 or self.lr_scale > 1:
            raise ValueError(f"parameter lr_scale={self.lr_scale}: must be 0 (model default) or in (0, 1]")
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise ValueError(f"parameter overlay_alpha={self.overlay_alpha}: must be in [0, 1]")
        if self.decoder_threads < 0:
            raise ValueError(f"parameter decoder_threads={self.decoder_threads}: must be 0 (one per core) or more")
        for name in ("input_depth", "output_depth", "max_queue", "max_message_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"parameter {name}={getattr(self, name)}: must be at least 1")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NodeParameters:
        """Build from a mapping (a YAML ``ros__parameters`` block); unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown parameters {unknown}; known: {sorted(known)}")
        return cls(**values)

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            mode=self.mode,
            lr_scale=self.lr_scale or None,
            hr_every_n=self.hr_every_n,
            scene_cut_intra_share=self.scene_cut_intra_share,
            start=self.start,
            lag_policy=self.lag_policy,
            device=self.device,
            keep_images=self.publish_overlay,
            decoder_threads=self.decoder_threads,
        )


@dataclass
class MessageTypes:
    """The message classes of one ROS binding (rclpy or ``rosbags``) and its payload converter."""

    image: type
    header: type
    time: type
    label_info: type | None = None
    vision_class: type | None = None
    data: Callable[[np.ndarray], Any] = numpy_data


class ThrottledWarnings:
    """At most one warning per key every ``period_s`` seconds; every occurrence is still counted."""

    def __init__(self, period_s: float = 5.0) -> None:
        self.period_s = period_s
        self._last: dict[str, float] = {}

    def warn(self, key: str, message: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, -1e18) < self.period_s:
            return False
        self._last[key] = now
        log.warning("%s", message)
        return True


class SegmentationPipeline:
    """Input messages -> engine -> output messages, with a worker thread and statistics.

    ``publish(name, msg)`` is called with ``name`` in ``mask``, ``color_mask``, ``overlay``.
    """

    def __init__(
        self,
        params: NodeParameters,
        model: ARSeg,
        labels: LabelSet,
        types: MessageTypes,
        publish: Callable[[str, Any], None],
        topic: str = "",
    ) -> None:
        self.params, self.labels, self.types, self.publish, self.topic = params, labels, types, publish, topic
        self.engine = StreamSegmenter(model, params.engine_config())
        self.counts: collections.Counter[str] = collections.Counter()
        self.warnings = ThrottledWarnings()
        self._queue: collections.deque[tuple[Packet, float, bool]] = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._out_times: collections.deque[float] = collections.deque(maxlen=60)
        self._in_times: collections.deque[float] = collections.deque(maxlen=60)
        self._latency: collections.deque[dict[str, float]] = collections.deque(maxlen=60)
        self._last_stamp_ns: int | None = None

    # -- input (subscription thread) -----------------------------------------------------------------

    def reject(self, reason: str, message: str) -> None:
        """Count an input dropped for ``reason`` (diagnostics key ``rejected_<reason>``) and warn, throttled."""
        self.counts[f"rejected_{reason}"] += 1
        self.warnings.warn(f"reject_{reason}", f"dropped input on {self.topic or 'the input topic'}: {message}")

    def submit(self, msg: Any) -> bool:
        """Convert and queue one input message; returns False if it was rejected (counted, warned).

        A message whose payload exceeds ``max_message_bytes`` is rejected as ``oversized``. A stamp earlier than
        the previous packet's (a publisher restarted or looped) is counted as ``stamp_regression`` and breaks
        the motion chain."""
        self.counts["received"] += 1
        self._in_times.append(time.monotonic())
        size = len(getattr(msg, "data", b""))
        if size > self.params.max_message_bytes:
            self.reject(
                "oversized", f"payload of {size} bytes exceeds max_message_bytes={self.params.max_message_bytes}"
            )
            return False
        try:
            packet = packet_from_message(msg, self.topic)
        except PacketError as exc:
            self.reject("empty" if "empty payload" in str(exc) else "unsupported", str(exc))
            return False
        restart = self._last_stamp_ns is not None and packet.stamp_ns < self._last_stamp_ns
        if restart:
            self.counts["stamp_regression"] += 1
            self.warnings.warn("stamp", f"input stamps went back in time on {self.topic}: publisher restarted?")
        self._last_stamp_ns = packet.stamp_ns
        with self._cond:
            if len(self._queue) >= self.params.max_queue:
                self._queue.popleft()
                self.counts["queue_overflow"] += 1
                self.engine.mark_discontinuity()
                self.warnings.warn("overflow", f"decode queue full ({self.params.max_queue}): dropped the oldest")
            self._queue.append((packet, time.monotonic(), restart))
            self._cond.notify()
        return True

    # -- worker ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the worker on a daemon thread until ``stop``."""
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="arseg-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
            self.process_one()

    def process_one(self) -> int:
        """Decode and segment the oldest queued packet; returns the number of results published."""
        with self._cond:
            if not self._queue:
                return 0
            packet, queued_at, restart = self._queue.popleft()
            stale = len(self._queue) > 0
        if restart:
            self.engine.mark_discontinuity()
        try:
            results = self.engine.process(packet, stale=stale)
        except Exception as exc:  # a failure on one packet must not stop the node
            self.counts["errors"] += 1
            self.engine.mark_discontinuity()
            self.warnings.warn("error", f"failed on a packet: {exc}")
            return 0
        for result in results:
            self._emit(result, queued_at)
        return len(results)

    def drain(self) -> int:
        """Process every queued packet, then flush the decoder (end of stream); returns results published."""
        count = 0
        while self._queue:
            count += self.process_one()
        for result in self.engine.flush():
            self._emit(result, time.monotonic())
            count += 1
        return count

    # -- output ------------------------------------------------------------------------------------

    def _emit(self, result: SegResult, queued_at: float) -> None:
        if result.labels is None:
            return
        t = self.types
        msg_header = header(t.header, t.time, result.stamp_ns, result.frame_id)
        self.publish("mask", image_message(t.image, msg_header, result.labels, "mono8", t.data))
        if self.params.publish_color_mask:
            self.publish(
                "color_mask", image_message(t.image, msg_header, colorize(result.labels, self.labels), "rgb8", t.data)
            )
        if self.params.publish_overlay and result.image is not None:
            blend = overlay(result.image, result.labels, self.labels, self.params.overlay_alpha)
            self.publish("overlay", image_message(t.image, msg_header, blend, "rgb8", t.data))
        self.counts["published"] += 1
        now = time.monotonic()
        self._out_times.append(now)
        self._latency.append({**result.timings, "queue_to_publish": 1e3 * (now - queued_at)})

    def label_info(self, stamp_ns: int = 0, frame_id: str = "") -> Any | None:
        """The ``vision_msgs/LabelInfo`` message, or ``None`` where the binding has no vision_msgs."""
        t = self.types
        if t.label_info is None or t.vision_class is None:
            return None
        return label_info_message(
            t.label_info, t.vision_class, header(t.header, t.time, stamp_ns, frame_id), self.labels
        )

    # -- diagnostics -------------------------------------------------------------------------------

    @staticmethod
    def _rate(times: collections.deque[float]) -> float:
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def diagnostics(self) -> tuple[int, str, list[tuple[str, str]]]:
        """``(level, message, key-values)``: level 0 OK, 1 WARN (drops, errors or rejected input)."""
        stats = self.engine.stats
        values = [
            ("input rate (Hz)", f"{self._rate(self._in_times):.1f}"),
            ("output rate (Hz)", f"{self._rate(self._out_times):.1f}"),
            ("queued packets", str(len(self._queue))),
            ("HR frames", str(stats.get("hr", 0))),
            ("LR frames", str(stats.get("lr", 0))),
            ("skipped inference", str(stats.get("skipped", 0))),
        ]
        if self._latency:
            for stage in ("decode", "motion", "accumulation", "inference", "total", "queue_to_publish"):
                mean = float(np.mean([t.get(stage, 0.0) for t in self._latency]))
                values.append((f"latency {stage} (ms)", f"{mean:.1f}"))
        events = {**{k: v for k, v in stats.items() if k not in ("packets", "hr", "lr", "skipped")}, **self.counts}
        values += [(k, str(v)) for k, v in sorted(events.items())]
        problems = [k for k in events if k.startswith(("rejected", "queue_overflow", "errors", "decode_error"))]
        if problems:
            return 1, "input problems: " + ", ".join(sorted(problems)), values
        return 0, "running", values
