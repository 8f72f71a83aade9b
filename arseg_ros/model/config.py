"""Model configuration: which architecture, which classes, and how to build it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..labels import LabelSet
from .arseg import ARSeg
from .base import SegmentationNetwork
from .bisenet import BiSeNet18, BiSeNet18Small
from .creff import CReFF
from .pspnet import PSPNet18CamVid, PSPNet18Cityscapes

ARCHITECTURES: dict[str, type[SegmentationNetwork]] = {
    "pspnet18_camvid": PSPNet18CamVid,
    "pspnet18_cityscapes": PSPNet18Cityscapes,
    "bisenet18": BiSeNet18,
    "bisenet18_small": BiSeNet18Small,
}

Kind = Literal["arseg", "single"]


def build_network(arch: str, num_classes: int) -> SegmentationNetwork:
    """One segmentation network by architecture name (see ``ARCHITECTURES``)."""
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}") from None
    return cls(num_classes)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model, stored inside every checkpoint.

    ``kind``: ``"arseg"`` (HR + LR + CReFF) or ``"single"`` (one network, e.g. phase-1 HR training).
    ``lr_scale``: default downscale factor of non-keyframes. ``window``: CReFF attention window (odd).
    ``scaled_attention``: divide attention logits by ``sqrt(C)`` (the paper's equation; off in the code).
    """

    arch: str
    labels: LabelSet
    kind: Kind = "arseg"
    lr_scale: float = 0.5
    window: int = 7
    scaled_attention: bool = False

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {sorted(ARCHITECTURES)}")
        if self.kind not in ("arseg", "single"):
            raise ValueError(f"unknown model kind {self.kind!r}; choose 'arseg' or 'single'")
        if not 0.0 < self.lr_scale <= 1.0:
            raise ValueError(f"lr_scale must be in (0, 1], got {self.lr_scale}")
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window must be odd and positive, got {self.window}")
        if self.labels.num_classes < 2:
            raise ValueError(f"a model needs at least 2 classes, got {self.labels.num_classes}")

    def to_dict(self) -> dict:
        return {
            "arch": self.arch,
            "labels": self.labels.to_dict(),
            "kind": self.kind,
            "lr_scale": self.lr_scale,
            "window": self.window,
            "scaled_attention": self.scaled_attention,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {"arch", "labels", "kind", "lr_scale", "window", "scaled_attention"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known keys: {sorted(known)}")
        if "arch" not in data or "labels" not in data:
            raise ValueError(f"model config needs 'arch' and 'labels', got keys {sorted(data)}")
        return cls(
            arch=str(data["arch"]),
            labels=LabelSet.from_dict(data["labels"]),
            kind=data.get("kind", "arseg"),
            lr_scale=float(data.get("lr_scale", 0.5)),
            window=int(data.get("window", 7)),
            scaled_attention=bool(data.get("scaled_attention", False)),
        )


def build_model(config: ModelConfig) -> ARSeg | SegmentationNetwork:
    """Return a freshly initialised model for ``config``."""
    num_classes = config.labels.num_classes
    hr = build_network(config.arch, num_classes)
    if config.kind == "single":
        return hr
    lr = build_network(config.arch, num_classes)
    creff = CReFF(hr.feature_channels, config.window, config.scaled_attention)
    return ARSeg(hr, lr, creff, config.lr_scale)
