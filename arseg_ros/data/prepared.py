"""Prepared clips on disk: the clip file, the manifest, and the dataset that reads them back.

Layout of one prepared split (written by ``arseg-prepare``)::

    <out>/<split>/manifest.json        settings, package version, one record per clip (file, d, SHA-256)
    <out>/<split>/clips/<name>_dNN.zip one clip

A clip file is a zip archive (with fixed timestamps, so its bytes depend only on its content):

    key.png, frame.png        decoded keyframe and labelled frame, (H, W, 3) uint8 RGB
    labels.png                class ids of the labelled frame, (H, W) uint8, 255 = no label
    key_labels.png            class ids of the keyframe (clips synthesised from stills only)
    displacement.npy          (2, Hb, Wb) float32, pixels (dx, dy) from each 4x4 block of the frame to the keyframe
    valid.npy                 (Hb, Wb) bool, blocks whose bitstream motion chain reached the keyframe
    stream.hevc               the clip's access units (Annex B), in decode order
    clip.json                 gap d, size, and per access unit its byte length and presentation index
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..codec.encode import EncodedPacket
from ..codec.motion import AccumulatedMotion
from ..labels import LabelSet
from .clips import CompressedClip
from .datasets import DatasetError

FORMAT = "arseg-prepared/1"
_EPOCH = (1980, 1, 1, 0, 0, 0)


class PreparedDataError(DatasetError):
    """A prepared folder that is missing, unfinished, or whose clips do not match their manifest."""


@dataclass
class ClipRecord:
    """One clip in the manifest.

    ``name`` (file stem), ``image`` and ``label`` (source files), ``origin`` (``"video"``: real preceding frames;
    ``"still"``: synthesised camera motion), ``gap`` (d, frames), ``file`` (relative to the split folder),
    ``sha256`` and ``bytes`` of the file, ``width`` and ``height`` (pixels), ``filled_fraction`` (blocks whose
    motion was filled from neighbours), ``motion_seed`` (stills).
    """

    name: str
    image: str
    label: str
    origin: str
    gap: int
    file: str
    sha256: str
    bytes: int
    width: int
    height: int
    filled_fraction: float
    motion_seed: list[int] = field(default_factory=list)


@dataclass
class Manifest:
    """A prepared split.

    ``settings`` (dataset, split, gaps, encoder, motion range, seed), ``classes`` (the class list), ``version``
    (package), ``complete`` (every clip written), ``clips``.
    """

    settings: dict
    classes: dict
    version: str
    complete: bool = False
    clips: list[ClipRecord] = field(default_factory=list)
    format: str = FORMAT

    def write(self, path: Path) -> None:
        """Write atomically (a temporary file renamed over ``path``)."""
        data = asdict(self)
        data["clips"] = sorted(data["clips"], key=lambda c: c["name"])
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        if not path.is_file():
            raise PreparedDataError(f"no manifest {path}: run arseg-prepare for this split first")
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise PreparedDataError(f"{path} is not a {FORMAT} manifest (format {data.get('format')!r})")
            clips = [ClipRecord(**c) for c in data.pop("clips")]
            return cls(**data, clips=clips)
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise PreparedDataError(f"malformed manifest {path}: {exc}") from None


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def write_clip(path: Path, clip: CompressedClip) -> None:
    """Write ``clip`` to ``path`` atomically (a temporary file renamed over it)."""
    h, w = clip.labels.shape
    meta = {
        "gap": clip.gap,
        "width": w,
        "height": h,
        "key_poc": clip.motion.key_poc,
        "packet_bytes": [len(p.data) for p in clip.packets],
        "packet_index": [p.index for p in clip.packets],
        "packet_key": [p.key for p in clip.packets],
    }
    entries = [
        ("key.png", _png(clip.key), zipfile.ZIP_STORED),
        ("frame.png", _png(clip.frame), zipfile.ZIP_STORED),
        ("labels.png", _png(clip.labels), zipfile.ZIP_STORED),
        ("displacement.npy", _npy(clip.motion.displacement), zipfile.ZIP_DEFLATED),
        ("valid.npy", _npy(clip.motion.valid), zipfile.ZIP_DEFLATED),
        ("stream.hevc", b"".join(p.data for p in clip.packets), zipfile.ZIP_STORED),
        ("clip.json", json.dumps(meta).encode(), zipfile.ZIP_DEFLATED),
    ]
    if clip.key_labels is not None:
        entries.insert(3, ("key_labels.png", _png(clip.key_labels), zipfile.ZIP_STORED))
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for name, data, compression in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = compression
            archive.writestr(info, data)
    os.replace(tmp, path)


def read_clip(path: Path) -> CompressedClip:
    """Read a clip file; raises ``PreparedDataError`` naming the file when it is unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            meta = json.loads(archive.read("clip.json"))

            def png(name: str) -> np.ndarray:
                with Image.open(io.BytesIO(archive.read(name))) as im:
                    return np.asarray(im).copy()

            def npy(name: str) -> np.ndarray:
                return np.load(io.BytesIO(archive.read(name)), allow_pickle=False)

            stream = archive.read("stream.hevc")
            key, frame, labels = png("key.png"), png("frame.png"), png("labels.png")
            key_labels = png("key_labels.png") if "key_labels.png" in names else None
            displacement, valid = npy("displacement.npy"), npy("valid.npy")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise PreparedDataError(f"cannot read clip {path}: {exc}") from None
    offsets = np.cumsum([0, *meta["packet_bytes"]])
    packets = [
        EncodedPacket(stream[offsets[i] : offsets[i + 1]], index, key)
        for i, (index, key) in enumerate(zip(meta["packet_index"], meta["packet_key"], strict=True))
    ]
    motion = AccumulatedMotion(
        poc=meta["gap"],
        key_poc=meta["key_poc"],
        distance=meta["gap"],
        displacement=displacement,
        valid=valid,
        width=meta["width"],
        height=meta["height"],
    )
    return CompressedClip(key, frame, labels, key_labels, motion, packets, meta["gap"])


class PreparedClips:
    """The clips of one prepared split (``<out>/<split>``), optionally only those with ``gap`` d.

    ``clip(i)`` reads clip ``i``; ``records`` lists them; ``label_set`` is the class list they were made with.
    Raises ``PreparedDataError`` when the folder has no manifest, its preparation did not finish, or no clip
    has the requested gap.
    """

    def __init__(self, folder: str | os.PathLike, gap: int | None = None) -> None:
        self.folder = Path(folder)
        manifest = Manifest.read(self.folder / "manifest.json")
        if not manifest.complete:
            raise PreparedDataError(
                f"{self.folder} holds an unfinished preparation ({len(manifest.clips)} clips so far): "
                "run the same arseg-prepare command again to finish it"
            )
        self.manifest = manifest
        self.label_set = LabelSet.from_dict(manifest.classes)
        self.records = [c for c in manifest.clips if gap is None or c.gap == gap]
        if not self.records:
            gaps = sorted({c.gap for c in manifest.clips})
            raise PreparedDataError(f"{self.folder} has no clip with gap {gap}; its clips have gaps {gaps}")

    def __len__(self) -> int:
        return len(self.records)

    def clip(self, index: int) -> CompressedClip:
        return read_clip(self.folder / self.records[index].file)
