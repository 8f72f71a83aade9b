"""The node's parameters: names, defaults, descriptions, constraints and which may change at run time.

``NodeParameters`` is the one definition both transports declare from (the rclpy node as ROS parameters with
descriptors, the DDS node from ``--ros-args``) and that ``config/arseg.yaml`` lists. A value that breaks a
constraint raises ``ValueError`` naming the parameter, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from ..engine import EngineConfig

INPUT_TYPES = ("compressed_image", "ffmpeg_packet", "compressed_video")
# ROS message type of each ``input_type`` value.
INPUT_MSGTYPES = {
    "compressed_image": "sensor_msgs/msg/CompressedImage",
    "ffmpeg_packet": "ffmpeg_image_transport_msgs/msg/FFMPEGPacket",
    "compressed_video": "foxglove_msgs/msg/CompressedVideo",
}
RELIABILITIES = ("reliable", "best_effort")


def _param(default: Any, description: str, choices: tuple[str, ...] = (), dynamic: bool = False) -> Any:
    """Declare a parameter field: ``dynamic`` ones may change while the node runs, the others are read-only."""
    return field(default=default, metadata={"description": description, "choices": choices, "dynamic": dynamic})


@dataclass(frozen=True)
class NodeParameters:
    """The node's parameters, with defaults; each field's metadata holds its description and constraints."""

    model: str = _param("", "AR-Seg checkpoint (.pt): a path or package://<package>/<path in its share folder>")
    input_type: str = _param("ffmpeg_packet", "message type of the input topic", INPUT_TYPES)
    mode: str = _param("ar", "ar: AR-Seg; hr / lr: constant-resolution baselines", ("ar", "hr", "lr"))
    lr_scale: float = _param(0.0, "downscale factor of non-keyframes, in (0, 1]; 0 uses the model's")
    hr_every_n: int = _param(0, "force an HR frame after this many frames (0: IRAP pictures only)", dynamic=True)
    scene_cut_intra_share: float = _param(
        0.5, "force HR when an inter frame has more than this share of intra blocks, in (0, 1]", dynamic=True
    )
    start: str = _param("keyframe", "keyframe: wait for a keyframe; hr: HR on the first frame", ("keyframe", "hr"))
    lag_policy: str = _param(
        "latest", "when behind: latest skips inference on stale frames, all infers every one", ("all", "latest"), True
    )
    device: str = _param("auto", "auto (CUDA when available), cpu or cuda:N")
    decoder_threads: int = _param(0, "FFmpeg slice threads for decoding (0: one per core)")
    publish_color_mask: bool = _param(True, "publish ~/color_mask (rgb8)")
    publish_overlay: bool = _param(False, "publish ~/overlay (rgb8 blend of frame and mask)")
    overlay_alpha: float = _param(0.5, "mask weight in ~/overlay, in [0, 1]", dynamic=True)
    input_reliability: str = _param("reliable", "input QoS reliability", RELIABILITIES)
    input_depth: int = _param(24, "input QoS depth (keep at least two GOPs)")
    output_reliability: str = _param("reliable", "output QoS reliability", RELIABILITIES)
    output_depth: int = _param(5, "output QoS depth")
    max_queue: int = _param(300, "packets queued for decoding before the oldest are dropped")
    max_message_bytes: int = _param(16_777_216, "input messages larger than this (bytes) are dropped")

    def __post_init__(self) -> None:
        """Check every constraint; ``ValueError`` names the first parameter that breaks one."""
        for f in fields(self):
            value = getattr(self, f.name)
            expected = type(f.default)
            if type(value) is not expected and not (expected is float and type(value) is int):
                raise ValueError(
                    f"parameter {f.name}={value!r}: expected type {expected.__name__}, got {type(value).__name__}"
                )
            choices = f.metadata["choices"]
            if choices and value not in choices:
                raise ValueError(f"parameter {f.name}={value!r}: choose one of {list(choices)}")
        if not 0.0 <= self.lr_scale <= 1.0:
            raise ValueError(f"parameter lr_scale={self.lr_scale}: must be 0 (model default) or in (0, 1]")
        if not 0.0 < self.scene_cut_intra_share <= 1.0:
            raise ValueError(f"parameter scene_cut_intra_share={self.scene_cut_intra_share}: must be in (0, 1]")
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise ValueError(f"parameter overlay_alpha={self.overlay_alpha}: must be in [0, 1]")
        for name in ("hr_every_n", "decoder_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"parameter {name}={getattr(self, name)}: must be 0 or more")
        for name in ("input_depth", "output_depth", "max_queue", "max_message_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"parameter {name}={getattr(self, name)}: must be at least 1")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NodeParameters:
        """Build from a mapping (a YAML ``ros__parameters`` block); unknown keys are an error naming them."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ValueError(f"unknown parameters {unknown}; known: {sorted(cls.names())}")
        return cls(**values)

    @classmethod
    def names(cls) -> list[str]:
        """Every parameter name, in declaration order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def dynamic_names(cls) -> set[str]:
        """Return the parameters that may change while the node runs (the others are read-only)."""
        return {f.name for f in fields(cls) if f.metadata["dynamic"]}

    def changed(self, values: dict[str, Any]) -> NodeParameters:
        """Return a copy with ``values`` set, checked; ``ValueError`` for a read-only or unknown name or bad value."""
        unknown = sorted(set(values) - set(self.names()))
        if unknown:
            raise ValueError(f"unknown parameters {unknown}")
        fixed = sorted(set(values) - self.dynamic_names())
        if fixed:
            raise ValueError(f"parameters {fixed} are read-only: set them when the node starts")
        return dataclasses.replace(self, **values)

    def engine_config(self) -> EngineConfig:
        """Return the engine settings these parameters give."""
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
