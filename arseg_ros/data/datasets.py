"""Labelled image datasets: CamVid, Cityscapes, and any folder of images with label PNGs and a class file.

CamVid comes in two layouts: the SegNet 480x360 layout and the 960x720 32-class layout.

Every dataset yields ``LabelledImage(image (H, W, 3) uint8 RGB, labels (H, W) uint8 class ids, name)``; 255 is
"no label". Problems in a dataset folder (a missing label, an image and label of different sizes, a class id
the class list does not have) raise ``DatasetError`` naming the first offending file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from ..labels import CAMVID, CITYSCAPES, IGNORE_ID, ClassInfo, LabelSet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DatasetError(ValueError):
    """A dataset folder that does not hold what its layout promises."""


@dataclass
class LabelledImage:
    """``image``: ``(H, W, 3)`` uint8 RGB; ``labels``: ``(H, W)`` uint8 class ids (255 = no label)."""

    image: np.ndarray
    labels: np.ndarray
    name: str


def _load_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from None


def _load_ids(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I;16", "I"):
                raise DatasetError(f"label {path} is a {im.mode} image; expected single-channel class ids")
            return np.asarray(im).astype(np.int64)
    except OSError as exc:
        raise DatasetError(f"cannot read label {path}: {exc}") from None


def _pairs(images: list[Path], label_for: dict[str, Path], what: str) -> list[tuple[Path, Path]]:
    pairs = []
    for image in images:
        label = label_for.get(image.stem)
        if label is None:
            raise DatasetError(f"no label for {image} ({what})")
        pairs.append((image, label))
    if not pairs:
        raise DatasetError(f"no images found ({what})")
    return pairs


class SegmentationDataset:
    """Base class: ``pairs`` of (image path, label path), ``label_set``, and a per-dataset id mapping."""

    label_set: LabelSet
    pairs: list[tuple[Path, Path]]

    def __len__(self) -> int:
        return len(self.pairs)

    def map_labels(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Raw label image -> class ids (H, W) uint8; raises ``DatasetError`` for ids the class list lacks."""
        bad = (raw >= self.label_set.num_classes) & (raw != IGNORE_ID)
        if bad.any():
            raise DatasetError(
                f"label {path} has class id {int(raw[bad][0])}, but the class list has {self.label_set.num_classes}"
            )
        return raw.astype(np.uint8)

    def load_label(self, path: Path) -> np.ndarray:
        return self.map_labels(_load_ids(path), path)

    def source(self, index: int) -> tuple[str, str, str]:
        """Return ``(name, image, label)`` of sample ``index`` without loading it.

        ``name`` is the image's file stem; ``image`` and ``label`` are the paths of its image and label files.
        """
        image, label = self.pairs[index]
        return image.stem, str(image), str(label)

    def has_video(self) -> bool:
        """Whether the dataset holds the frames that precede its labelled images (see ``preceding_frames``)."""
        return False

    def preceding_frames(self, index: int, gap: int) -> np.ndarray:
        """Return the ``gap`` (>= 1) video frames before sample ``index``, oldest first: ``(gap, H, W, 3)`` uint8 RGB.

        Raises ``DatasetError`` naming the first missing frame, or saying that the dataset has no video.
        """
        if gap < 1:
            raise ValueError(f"gap must be >= 1, got {gap}")
        if not self.has_video():
            raise DatasetError(f"{type(self).__name__} holds still images only, no frames before them")
        image = self.pairs[index][0]
        frames = []
        for offset in range(gap, 0, -1):
            path = self.frame_before(image, offset)
            if not path.is_file():
                raise DatasetError(f"missing frame {path} ({offset} frames before {image})")
            frames.append(_load_rgb(path))
        return np.stack(frames)

    def frame_before(self, image: Path, offset: int) -> Path:
        """Return the path of the video frame ``offset`` frames before the labelled ``image`` (datasets with video)."""
        raise DatasetError(f"{type(self).__name__} holds still images only, no frames before {image}")

    def __getitem__(self, index: int) -> LabelledImage:
        image_path, label_path = self.pairs[index]
        image = _load_rgb(image_path)
        labels = self.load_label(label_path)
        if labels.shape != image.shape[:2]:
            raise DatasetError(
                f"label {label_path} is {labels.shape[::-1]} but image {image_path} is {image.shape[1::-1]}"
            )
        return LabelledImage(image=image, labels=labels, name=self.source(index)[0])


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"missing folder {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


class CamVidSegNet(SegmentationDataset):
    """CamVid in the 480x360 SegNet layout, with ids 0..10 and 11 = Void.

    Files: ``<split>/*.jpg|png`` with ``<split>annot/<name>.png``. ``void_as_class=True`` keeps Void as class 11
    (the AR-Seg protocol, 12 classes); False maps it to 255 (the usual 11-class protocol, with a class list of
    11).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", void_as_class: bool = True) -> None:
        root = Path(root)
        self.void_as_class = void_as_class
        self.label_set = CAMVID if void_as_class else LabelSet("camvid11", CAMVID.classes[:11])
        labels = {p.stem: p for p in _images_in(root / f"{split}annot")}
        self.pairs = _pairs(_images_in(root / split), labels, f"CamVid {split} split in {root}")

    def map_labels(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if not self.void_as_class:
            raw = np.where(raw == 11, IGNORE_ID, raw)
        return super().map_labels(raw, path)


# The 32 CamVid classes by colour; the AR-Seg protocol keeps 11 of them plus Void and ignores the others.
CAMVID32_COLORS = {
    (64, 128, 64): "Animal", (192, 0, 128): "Archway", (0, 128, 192): "Bicyclist", (0, 128, 64): "Bridge",
    (128, 0, 0): "Building", (64, 0, 128): "Car", (64, 0, 192): "CartLuggagePram", (192, 128, 64): "Child",
    (192, 192, 128): "Column_Pole", (64, 64, 128): "Fence", (128, 0, 192): "LaneMkgsDriv",
    (192, 0, 64): "LaneMkgsNonDriv", (128, 128, 64): "Misc_Text", (192, 0, 192): "MotorcycleScooter",
    (128, 64, 64): "OtherMoving", (64, 192, 128): "ParkingBlock", (64, 64, 0): "Pedestrian", (128, 64, 128): "Road",
    (128, 128, 192): "RoadShoulder", (0, 0, 192): "Sidewalk", (192, 128, 128): "SignSymbol", (128, 128, 128): "Sky",
    (64, 128, 192): "SUVPickupTruck", (0, 0, 64): "TrafficCone", (0, 64, 64): "TrafficLight", (192, 64, 128): "Train",
    (128, 128, 0): "Tree", (192, 128, 192): "Truck_Bus", (64, 0, 64): "Tunnel", (192, 192, 0): "VegetationMisc",
    (0, 0, 0): "Void", (64, 192, 0): "Wall",
}  # fmt: skip
CAMVID32_TO_ARSEG = {
    "Sky": 0, "Building": 1, "Column_Pole": 2, "Road": 3, "Sidewalk": 4, "Tree": 5, "SignSymbol": 6, "Fence": 7,
    "Car": 8, "Pedestrian": 9, "Bicyclist": 10, "Void": 11,
}  # fmt: skip


class CamVid32(SegmentationDataset):
    """CamVid at 960x720 with colour-coded 32-class labels, mapped to the AR-Seg 12 classes.

    Files: ``<images>/<name>.png`` and ``<labels>/<name>_L.png`` (folder names configurable). The other 20
    classes become 255.
    """

    def __init__(
        self, root: str | os.PathLike, images: str = "701_StillsRaw_full", labels: str = "LabeledApproved_full"
    ) -> None:
        root = Path(root)
        self.label_set = CAMVID
        label_files = {p.stem.removesuffix("_L"): p for p in _images_in(root / labels)}
        self.pairs = _pairs(_images_in(root / images), label_files, f"CamVid 32-class layout in {root}")
        lut = np.full(256**3, IGNORE_ID, np.uint8)
        for (r, g, b), name in CAMVID32_COLORS.items():
            lut[(r << 16) | (g << 8) | b] = CAMVID32_TO_ARSEG.get(name, IGNORE_ID)
        self._lut = lut
        self._known = np.zeros(256**3, bool)
        self._known[[(r << 16) | (g << 8) | b for r, g, b in CAMVID32_COLORS]] = True

    def load_label(self, path: Path) -> np.ndarray:
        rgb = _load_rgb(path).astype(np.int64)
        code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        unknown = ~self._known[code]
        if unknown.any():
            y, x = np.argwhere(unknown)[0]
            raise DatasetError(f"label {path} has colour {tuple(rgb[y, x])} at ({x}, {y}), not a CamVid class")
        return self._lut[code]


# Cityscapes label ids -> train ids (0..18); everything else is ignored.
CITYSCAPES_ID_TO_TRAIN = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14,
    28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip


class Cityscapes(SegmentationDataset):
    """Cityscapes, with images in ``leftImg8bit`` and labels in ``gtFine``.

    Files: ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` with
    ``gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png`` (or ``_labelIds.png``, mapped to train ids).
    ``preceding_frames(index, gap)`` reads the frames before a labelled image from ``leftImg8bit_sequence``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train") -> None:
        self.root = Path(root)
        self.split = split
        self.label_set = CITYSCAPES
        images = sorted((self.root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        gt = self.root / "gtFine" / split
        if not images:
            raise DatasetError(f"no images under {self.root / 'leftImg8bit' / split}")
        labels = {}
        for image in images:
            stem = image.name.removesuffix("_leftImg8bit.png")
            for suffix in ("_gtFine_labelTrainIds.png", "_gtFine_labelIds.png"):
                candidate = gt / image.parent.name / (stem + suffix)
                if candidate.is_file():
                    labels[image.stem] = candidate
                    break
        self.pairs = _pairs(images, labels, f"Cityscapes {split} split in {self.root}")
        lut = np.full(256, IGNORE_ID, np.uint8)
        for label_id, train_id in CITYSCAPES_ID_TO_TRAIN.items():
            lut[label_id] = train_id
        self._lut = lut

    def load_label(self, path: Path) -> np.ndarray:
        raw = _load_ids(path)
        if path.name.endswith("_labelIds.png"):
            raw = self._lut[np.clip(raw, 0, 255)]
        return self.map_labels(raw, path)

    def has_video(self) -> bool:
        return (self.root / "leftImg8bit_sequence" / self.split).is_dir()

    def frame_before(self, image: Path, offset: int) -> Path:
        city, seq, frame = image.name.removesuffix("_leftImg8bit.png").rsplit("_", 2)
        folder = self.root / "leftImg8bit_sequence" / self.split / image.parent.name
        return folder / f"{city}_{seq}_{int(frame) - offset:06d}_leftImg8bit.png"


class ImageFolder(SegmentationDataset):
    """Any folder of images with class-id label PNGs and a class file.

    Files: ``images/<name>.png|jpg``, ``labels/<name>.png`` (class ids), and ``classes.yaml`` with
    ``classes: [{name: ..., color: [r, g, b]}, ...]`` (ids in that order). Optionally ``sequences/`` with the
    video frames: an image whose name ends in a frame number, ``<prefix><n>``, is preceded by
    ``sequences/<prefix><n - k>`` (the number zero-padded to the same width, any image suffix).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        root = Path(root)
        self.root = root
        class_file = root / "classes.yaml"
        if not class_file.is_file():
            raise DatasetError(f"missing class file {class_file}")
        try:
            data = yaml.safe_load(class_file.read_text())
            classes = tuple(ClassInfo(str(c["name"]), tuple(int(v) for v in c["color"])) for c in data["classes"])
        except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{class_file}: expected 'classes: [{{name, color: [r, g, b]}}, ...]' ({exc})") from None
        self.label_set = LabelSet(str(data.get("name", root.name)), classes)
        labels = {p.stem: p for p in _images_in(root / "labels")}
        self.pairs = _pairs(_images_in(root / "images"), labels, f"image folder {root}")

    def has_video(self) -> bool:
        return (self.root / "sequences").is_dir()

    def frame_before(self, image: Path, offset: int) -> Path:
        match = re.fullmatch(r"(.*?)(\d+)", image.stem)
        if match is None:
            raise DatasetError(f"{image} does not end in a frame number, so its preceding frames cannot be found")
        prefix, number = match.groups()
        stem = f"{prefix}{int(number) - offset:0{len(number)}d}"
        for suffix in IMAGE_SUFFIXES:
            if (self.root / "sequences" / (stem + suffix)).is_file():
                return self.root / "sequences" / (stem + suffix)
        return self.root / "sequences" / (stem + image.suffix)


class SyntheticDriving(SegmentationDataset):
    """``count`` labelled frames of ``arseg_ros.data.synthetic.driving_clip`` at ``size = (h, w)``.

    One street per sample, rendered on demand. The ``train`` split uses seeds from 0, any other split seeds from
    1,000,000.
    """

    def __init__(self, count: int, size: tuple[int, int], split: str = "train") -> None:
        if count < 1:
            raise DatasetError(f"a synthetic dataset needs a positive count, got {count}")
        self.label_set = CAMVID
        self.count, self.size = count, size
        self.first_seed = 0 if split == "train" else 1_000_000
        self.pairs = []

    def __len__(self) -> int:
        return self.count

    def source(self, index: int) -> tuple[str, str, str]:
        seed = self.first_seed + index
        return f"synthetic_{seed}", f"driving_clip(seed={seed})", f"driving_clip(seed={seed})"

    def __getitem__(self, index: int) -> LabelledImage:
        from .synthetic import driving_clip

        h, w = self.size
        clip = driving_clip(w, h, 1, seed=self.first_seed + index)
        return LabelledImage(image=clip.frames[0], labels=clip.labels[0], name=self.source(index)[0])


def open_dataset(kind: str, root: str | os.PathLike, split: str = "train", **options) -> SegmentationDataset:
    """Return a dataset by layout name.

    The layouts: ``camvid`` (SegNet layout), ``camvid32``, ``cityscapes``, ``folder`` or ``synthetic`` (options
    ``count`` and ``size``).
    """
    if kind == "synthetic":
        return SyntheticDriving(options.get("count", 100), options.get("size", (240, 320)), split)
    if kind == "camvid":
        return CamVidSegNet(root, split, options.get("void_as_class", True))
    if kind == "camvid32":
        return CamVid32(root)
    if kind == "cityscapes":
        return Cityscapes(root, split)
    if kind == "folder":
        return ImageFolder(Path(root) / split if (Path(root) / split).is_dir() else root)
    raise DatasetError(f"unknown dataset layout {kind!r}; choose camvid, camvid32, cityscapes, folder or synthetic")
