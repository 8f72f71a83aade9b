"""The node without its transport: parameters, model, packet queue, worker, output messages and diagnostics.

``NodeCore`` is what ``arseg_node`` does on either transport. An adapter (``rclpy_node``, ``dds_node``) builds
it with its binding's message classes (``MessageTypes``) and a ``publish(key, msg)`` function, creates one
endpoint for each of ``NodeCore.endpoints()``, hands every input message to ``submit`` and publishes
``diagnostic_status()`` once a second. Tests drive it with ``rosbags`` message classes and no ROS at all.

Packets are never dropped before decoding (a lost compressed packet corrupts the rest of its GOP): ``submit``
only converts and queues them, and the worker decodes every one. When the worker falls behind (packets still
queued), inference is skipped for pictures under ``lag_policy = "latest"``. Only if the queue exceeds
``max_queue`` packets are the oldest dropped; the motion chain is then marked broken and the drop is counted.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..codec.packets import Packet, PacketError, packet_from_message
from ..engine import SegResult, StreamSegmenter
from ..labels import colorize, overlay
from ..model import load_arseg
from .conventions import QosSpec, node_qos
from .messages import header, image_message, label_info_message, numpy_data
from .parameters import INPUT_MSGTYPES, NodeParameters

log = logging.getLogger(__name__)


class DiagnosticLevel(enum.IntEnum):
    """``diagnostic_msgs/DiagnosticStatus`` levels (the message's ``byte`` field; see ``as_byte``)."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3

    def as_byte(self) -> bytes:
        """Return the level as rclpy's ``byte`` fields take it: one byte (an ``int`` there is mis-serialised)."""
        return bytes([self.value])


@dataclass(frozen=True)
class DiagnosticReport:
    """One diagnostics status: ``level``, a one-line ``message`` and ``values`` as (key, text) pairs."""

    level: DiagnosticLevel
    message: str
    values: list[tuple[str, str]]


@dataclass(frozen=True)
class Endpoint:
    """One topic of the node: its ``key`` in ``publish``, unresolved ROS ``name``, ``msgtype`` and ``qos``."""

    key: str
    name: str
    msgtype: str
    qos: QosSpec


@dataclass
class MessageTypes:
    """The message classes of one ROS binding (rclpy, ``rosbags`` or the DDS IDL) and its payload converter."""

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
        """Log ``message`` unless ``key`` was warned about less than ``period_s`` ago; True if logged."""
        now = time.monotonic()
        if now - self._last.get(key, -1e18) < self.period_s:
            return False
        self._last[key] = now
        log.warning("%s", message)
        return True


class NodeCore:
    """Input messages -> engine -> output messages, with a worker thread, counters and diagnostics.

    ``publish(key, msg)`` is called from the worker thread with ``key`` ``mask``, ``color_mask`` or ``overlay``.
    The model is loaded from ``params.model`` (a path or ``package://`` address); ``CheckpointError`` says why it
    cannot be.
    """

    def __init__(
        self,
        params: NodeParameters,
        types: MessageTypes,
        publish: Callable[[str, Any], None],
        input_topic: str = "",
    ) -> None:
        self.params, self.types, self.publish, self.input_topic = params, types, publish, input_topic
        model, checkpoint = load_arseg(params.model)
        self.labels, self.arch = checkpoint.config.labels, checkpoint.config.arch
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
        # Set by the adapter: the number of publishers its input subscription has matched right now.
        self.matched_publishers: Callable[[], int] | None = None

    # -- endpoints and parameters -------------------------------------------------------------------

    def endpoints(self) -> list[Endpoint]:
        """Every topic the adapter creates: the input (key ``input``), the images, label info and diagnostics."""
        qos = node_qos(self.params)
        image = "sensor_msgs/msg/Image"
        out = [Endpoint("input", "packets", INPUT_MSGTYPES[self.params.input_type], qos["input"])]
        out.append(Endpoint("mask", "~/mask", image, qos["output"]))
        if self.params.publish_color_mask:
            out.append(Endpoint("color_mask", "~/color_mask", image, qos["output"]))
        if self.params.publish_overlay:
            out.append(Endpoint("overlay", "~/overlay", image, qos["output"]))
        out.append(Endpoint("label_info", "~/label_info", "vision_msgs/msg/LabelInfo", qos["label_info"]))
        out.append(Endpoint("diagnostics", "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", qos["diagnostics"]))
        return out

    def set_parameters(self, values: dict[str, Any]) -> None:
        """Change parameters while running (only ``NodeParameters.dynamic_names()``); ``ValueError`` if refused."""
        params = self.params.changed(values)
        self.engine.config = params.engine_config()
        self.params = params
        log.info("parameters changed: %s", ", ".join(f"{k}={v!r}" for k, v in sorted(values.items())))

    # -- input (subscription thread) -----------------------------------------------------------------

    def reject(self, reason: str, message: str) -> None:
        """Count an input dropped for ``reason`` (diagnostics key ``rejected_<reason>``) and warn, throttled."""
        self.counts[f"rejected_{reason}"] += 1
        self.warnings.warn(f"reject_{reason}", f"dropped input on {self.input_topic or 'the input topic'}: {message}")

    def submit(self, msg: Any) -> bool:
        """Convert and queue one input message; return False if it was rejected (counted, warned).

        A message whose payload exceeds ``max_message_bytes`` is rejected as ``oversized``. A stamp earlier
        than the previous packet's (a publisher restarted or looped) is counted as ``stamp_regression`` and
        breaks the motion chain.
        """
        self.counts["received"] += 1
        self._in_times.append(time.monotonic())
        size = len(getattr(msg, "data", b""))
        if size > self.params.max_message_bytes:
            self.reject(
                "oversized", f"payload of {size} bytes exceeds max_message_bytes={self.params.max_message_bytes}"
            )
            return False
        try:
            packet = packet_from_message(msg, self.input_topic)
        except PacketError as exc:
            self.reject("unsupported", str(exc))
            return False
        restart = self._last_stamp_ns is not None and packet.stamp_ns < self._last_stamp_ns
        if restart:
            self.counts["stamp_regression"] += 1
            self.warnings.warn("stamp", f"input stamps went back in time on {self.input_topic}: publisher restarted?")
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
        """Ask the worker to stop after its current packet and wait up to ``timeout`` seconds for it."""
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
        """Decode and segment the oldest queued packet; return the number of results published."""
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
        """Process every queued packet, then flush the decoder (end of stream); return results published."""
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
        t, params = self.types, self.params
        msg_header = header(t.header, t.time, result.stamp_ns, result.frame_id)
        self.publish("mask", image_message(t.image, msg_header, result.labels, "mono8", t.data))
        if params.publish_color_mask:
            colour = colorize(result.labels, self.labels)
            self.publish("color_mask", image_message(t.image, msg_header, colour, "rgb8", t.data))
        if params.publish_overlay and result.image is not None:
            blend = overlay(result.image, result.labels, self.labels, params.overlay_alpha)
            self.publish("overlay", image_message(t.image, msg_header, blend, "rgb8", t.data))
        self.counts["published"] += 1
        now = time.monotonic()
        self._out_times.append(now)
        self._latency.append({**result.timings, "queue_to_publish": 1e3 * (now - queued_at)})

    def label_info(self, stamp_ns: int = 0, frame_id: str = "") -> Any | None:
        """Return the ``vision_msgs/LabelInfo`` message, or ``None`` where the binding has no vision_msgs."""
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

    def diagnostic_status(self) -> DiagnosticReport:
        """Return the current status: WARN when input was dropped or rejected or a packet failed, else OK."""
        stats = self.engine.stats
        values = [
            ("input rate (Hz)", f"{self._rate(self._in_times):.1f}"),
            ("output rate (Hz)", f"{self._rate(self._out_times):.1f}"),
            ("queued packets", str(len(self._queue))),
            ("matched input publishers", str(self.matched_publishers()) if self.matched_publishers else "unknown"),
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
            return DiagnosticReport(DiagnosticLevel.WARN, "input problems: " + ", ".join(sorted(problems)), values)
        return DiagnosticReport(DiagnosticLevel.OK, "running", values)
