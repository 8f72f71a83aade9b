"""Class lists with names and display colours, and label-map colourisation.

A label map is an ``(H, W)`` uint8 array of class ids; ``IGNORE_ID`` (255) marks pixels without a label,
as in ``vision_msgs/VisionClass`` for uint8 masks and in the datasets' ``ignore_index``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_ID = 255


@dataclass(frozen=True)
class ClassInfo:
    """One semantic class: its display name and its RGB colour (0..255 each)."""

    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True)
class LabelSet:
    """An ordered class list; a class id is an index into ``classes``."""

    name: str
    classes: tuple[ClassInfo, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def to_dict(self) -> dict:
        """Plain-data form for checkpoints and JSON."""
        return {"name": self.name, "classes": [{"name": c.name, "color": list(c.color)} for c in self.classes]}

    @classmethod
    def from_dict(cls, data: dict) -> LabelSet:
        try:
            classes = tuple(ClassInfo(str(c["name"]), tuple(int(v) for v in c["color"])) for c in data["classes"])
            return cls(str(data["name"]), classes)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"malformed class list {data!r}: expected {{'name': str, 'classes': [{{'name', 'color'}}]}}"
            ) from exc

    def palette(self) -> np.ndarray:
        """Return a ``(256, 3)`` uint8 look-up table: class id -> RGB; ids without a class (255 too) are black."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        for i, c in enumerate(self.classes):
            lut[i] = c.color
        return lut


def colorize(labels: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """Colour an ``(H, W)`` uint8 label map: returns ``(H, W, 3)`` uint8 RGB."""
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"expected an (H, W) uint8 label map, got {labels.dtype} of shape {labels.shape}")
    return label_set.palette()[labels]


def overlay(image: np.ndarray, labels: np.ndarray, label_set: LabelSet, alpha: float = 0.5) -> np.ndarray:
    """Blend the colourised labels onto an ``(H, W, 3)`` uint8 RGB image; ignored pixels keep the image."""
    if image.shape[:2] != labels.shape or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image {image.shape} and labels {labels.shape} must be (H, W, 3) and (H, W)")
    colors = colorize(labels, label_set).astype(np.float32)
    blend = (1.0 - alpha) * image.astype(np.float32) + alpha * colors
    out = np.where((labels == IGNORE_ID)[..., None], image.astype(np.float32), blend)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


CAMVID = LabelSet(
    "camvid",
    (
        ClassInfo("Sky", (128, 128, 128)),
        ClassInfo("Building", (128, 0, 0)),
        ClassInfo("Pole", (192, 192, 128)),
        ClassInfo("Road", (128, 64, 128)),
        ClassInfo("Pavement", (60, 40, 222)),
        ClassInfo("Tree", (128, 128, 0)),
        ClassInfo("SignSymbol", (192, 128, 128)),
        ClassInfo("Fence", (64, 64, 128)),
        ClassInfo("Car", (64, 0, 128)),
        ClassInfo("Pedestrian", (64, 64, 0)),
        ClassInfo("Bicyclist", (0, 128, 192)),
        ClassInfo("Void", (0, 0, 0)),
    ),
)
"""The AR-Seg CamVid protocol: the 11 classes plus Void, 12 in all, Void scored as a class."""

CITYSCAPES = LabelSet(
    "cityscapes",
    (
        ClassInfo("road", (128, 64, 128)),
        ClassInfo("sidewalk", (244, 35, 232)),
        ClassInfo("building", (70, 70, 70)),
        ClassInfo("wall", (102, 102, 156)),
        ClassInfo("fence", (190, 153, 153)),
        ClassInfo("pole", (153, 153, 153)),
        ClassInfo("traffic light", (250, 170, 30)),
        ClassInfo("traffic sign", (220, 220, 0)),
        ClassInfo("vegetation", (107, 142, 35)),
        ClassInfo("terrain", (152, 251, 152)),
        ClassInfo("sky", (70, 130, 180)),
        ClassInfo("person", (220, 20, 60)),
        ClassInfo("rider", (255, 0, 0)),
        ClassInfo("car", (0, 0, 142)),
        ClassInfo("truck", (0, 0, 70)),
        ClassInfo("bus", (0, 60, 100)),
        ClassInfo("train", (0, 80, 100)),
        ClassInfo("motorcycle", (0, 0, 230)),
        ClassInfo("bicycle", (119, 11, 32)),
    ),
)
"""The 19 Cityscapes evaluation classes (train ids 0..18)."""

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (CAMVID, CITYSCAPES)}


def get_label_set(name: str) -> LabelSet:
    """Look up a built-in class list by name (``camvid`` or ``cityscapes``)."""
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ValueError(f"unknown class list {name!r}; built-in lists: {sorted(LABEL_SETS)}") from None
