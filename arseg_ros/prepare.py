"""``arseg-prepare``: compressed training and evaluation clips, built with the package's own codec path.

    arseg-prepare --dataset camvid --root ../shared/data/camvid --split train test --out prepared/camvid

For every labelled frame and every gap d (``--gap``, 11 by default), the clip of the d + 1 frames from its
keyframe to it is encoded with libx265, decoded, and the labelled frame's motion is parsed from the bitstream
and accumulated to the keyframe, through the same functions the engine uses (``arseg_ros.data.clips``). The
frames come from the dataset's video where it has one (Cityscapes ``leftImg8bit_sequence``, a folder dataset's
``sequences/``); for still images (CamVid) they are synthesised by a smooth random camera motion applied to the
image and its labels (``arseg_ros.data.camera_motion``: constant-velocity zoom, pan and roll ending on the still,
the still mirrored at its edge where a frame sees beyond it; the bounds ``--motion-zoom``, ``--motion-shift`` and
``--motion-rotation`` are for ``--motion-span`` frames, so a clip of gap d moves ``d / span`` of a motion drawn once
per still).

Encoder defaults are the paper's: keyint 12, no B-frames, rect, amp, 3000 kbps at 30 fps, preset medium.
Every option can also come from a YAML file (``--config``, keys named as the options with ``_``); the command
line wins. Output: ``<out>/<split>/manifest.json`` and ``<out>/<split>/clips/*.zip`` (``arseg_ros.data.prepared``).
The manifest is rewritten as clips finish: a killed run continues where it stopped, and a rerun skips the clips
whose files still match their checksums and redoes the others. ``--workers N`` builds clips in N processes, each
clip the same way as one process would (see ``arseg_ros.data.clips`` on libx265's run-to-run variation).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import multiprocessing
import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from . import __version__
from .codec.encode import EncoderSettings
from .data.camera_motion import OUTSIDE_FILL, CameraMotion, MotionRange, still_clip
from .data.clips import ClipError, clip_encoder, compress_clip
from .data.datasets import DatasetError, SegmentationDataset, open_dataset
from .data.prepared import ClipRecord, Manifest, PreparedDataError, sha256_of, write_clip

log = logging.getLogger(__name__)


class PrepareError(ValueError):
    """Options or an output folder with which no preparation can run."""


@dataclass
class PrepareConfig:
    """Everything ``arseg-prepare`` needs; field names are the YAML keys and (with ``-``) the options."""

    dataset: str = "camvid"
    root: str = ""
    split: list[str] = field(default_factory=lambda: ["train", "test"])
    out: str = ""
    gap: list[int] = field(default_factory=lambda: [11])
    keyint: int = 12
    bframes: int = 0
    refs: int = 3
    bitrate: int = 3000
    fps: int = 30
    preset: str = "medium"
    x265_params: str = "rect=1:amp=1"
    stills: bool = False
    motion_zoom: float = 0.12
    motion_shift: float = 0.06
    motion_rotation: float = 2.0
    motion_span: int = 11
    seed: int = 0
    count: int = 100
    size: list[int] = field(default_factory=lambda: [240, 320])
    workers: int = 1
    limit: int = 0
    stride: int = 1

    def encoder(self) -> EncoderSettings:
        return EncoderSettings(
            codec="hevc",
            keyint=self.keyint,
            bframes=self.bframes,
            refs=self.refs,
            bitrate_kbps=self.bitrate,
            preset=self.preset,
            fps=self.fps,
            extra=self.x265_params,
        )

    def motion(self) -> MotionRange:
        return MotionRange(self.motion_zoom, self.motion_shift, self.motion_rotation)

    def settings(self, split: str) -> dict:
        """Return what the clips of ``split`` depend on (a folder prepared with other settings is not reused)."""
        return {
            "dataset": self.dataset,
            "root": str(Path(self.root).resolve()) if self.dataset != "synthetic" else "",
            "split": split,
            "stills": self.stills,
            "encoder": dataclasses.asdict(clip_encoder(self.encoder())),
            "motion": {**dataclasses.asdict(self.motion()), "span": self.motion_span, "outside": OUTSIDE_FILL},
            "seed": self.seed,
            "synthetic": {"count": self.count, "size": list(self.size)} if self.dataset == "synthetic" else {},
        }

    def check(self) -> None:
        """Raise ``PrepareError`` naming the first bad option."""
        if not self.out:
            raise PrepareError("no output folder: give --out")
        if self.dataset != "synthetic" and not self.root:
            raise PrepareError(f"no dataset root: give --root for the {self.dataset} dataset")
        if self.dataset != "synthetic" and not Path(self.root).is_dir():
            raise PrepareError(f"dataset folder {self.root} does not exist")
        if not self.split:
            raise PrepareError("no split: give --split")
        if not self.gap or min(self.gap) < 0:
            raise PrepareError(f"gaps must be >= 0, got {self.gap}")
        if max(self.gap) >= self.keyint:
            raise PrepareError(f"gap {max(self.gap)} needs keyint > gap (one GOP per clip); keyint is {self.keyint}")
        if self.workers < 1 or self.motion_span < 1 or self.bitrate < 1 or self.stride < 1:
            raise PrepareError("workers, motion_span, bitrate and stride must be >= 1")
        if len(self.size) != 2:
            raise PrepareError(f"size needs two numbers [height, width], got {self.size}")
        self.encoder()


@dataclass
class ClipTask:
    """One clip to build: sample ``index`` of the split, its ``name``, and the ``gap`` d."""

    index: int
    name: str
    gap: int

    @property
    def clip_name(self) -> str:
        return f"{self.name}_d{self.gap:02d}"


def open_split(config: PrepareConfig, split: str) -> SegmentationDataset:
    size = (int(config.size[0]), int(config.size[1]))
    return open_dataset(config.dataset, config.root, split, count=config.count, size=size)


def build_clip(dataset: SegmentationDataset, task: ClipTask, config: PrepareConfig, folder: Path) -> ClipRecord:
    """Build, compress and write one clip; returns its manifest record."""
    name, image_path, label_path = dataset.source(task.index)
    item = dataset[task.index]
    h, w = item.labels.shape
    if h % 2 or w % 2:
        raise ClipError(f"{image_path} is {w}x{h}; HEVC 4:2:0 clips need an even width and height")
    seed = [config.seed, zlib.crc32(name.encode())]
    video = dataset.has_video() and not config.stills and task.gap > 0
    if video:
        before = dataset.preceding_frames(task.index, task.gap)
        if before.shape[1:3] != (h, w):
            raise DatasetError(f"the frames before {image_path} are {before.shape[2]}x{before.shape[1]}, not {w}x{h}")
        frames, key_labels = np.concatenate([before, item.image[None]]), None
    else:
        camera = CameraMotion.of_clip(seed, config.motion(), config.motion_span, task.gap, h, w)
        frames, key_labels, _ = still_clip(item.image, item.labels, task.gap, camera)
    clip = compress_clip(frames, item.labels, config.encoder(), key_labels)
    path = folder / "clips" / f"{task.clip_name}.zip"
    write_clip(path, clip)
    return ClipRecord(
        name=task.clip_name,
        image=image_path,
        label=label_path,
        origin="video" if video else "still",
        gap=task.gap,
        file=str(path.relative_to(folder)),
        sha256=sha256_of(path),
        bytes=path.stat().st_size,
        width=w,
        height=h,
        filled_fraction=round(clip.motion.filled_fraction, 6),
        motion_seed=[] if video else seed,
    )


_WORKER: dict = {}


def _init_worker(config: PrepareConfig, split: str, folder: Path) -> None:
    torch.set_num_threads(1)
    _WORKER.update(dataset=open_split(config, split), config=config, folder=folder)


def _work(task: ClipTask) -> ClipRecord:
    return build_clip(_WORKER["dataset"], task, _WORKER["config"], _WORKER["folder"])


def _writable(folder: Path) -> None:
    try:
        (folder / "clips").mkdir(parents=True, exist_ok=True)
        probe = folder / "clips" / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PrepareError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None


def _resume(manifest_path: Path, settings: dict, folder: Path) -> dict[str, ClipRecord]:
    """Return the verified clips of an earlier run with the same settings, by name."""
    if not manifest_path.is_file():
        return {}
    old = Manifest.read(manifest_path)
    if old.settings != settings:
        changed = sorted(k for k in settings.keys() | old.settings.keys() if settings.get(k) != old.settings.get(k))
        raise PrepareError(
            f"{folder} was prepared with other settings ({', '.join(changed)} differ): "
            "use another --out, or delete that folder to start again"
        )
    done = {}
    for record in old.clips:
        path = folder / record.file
        if path.is_file() and path.stat().st_size == record.bytes and sha256_of(path) == record.sha256:
            done[record.name] = record
        else:
            log.warning("clip %s is missing or does not match its checksum: building it again", path)
    return done


@dataclass
class SplitResult:
    """What one split's preparation did: clips built now, clips reused, seconds, and the manifest path."""

    built: int
    reused: int
    seconds: float
    manifest: Path


def prepare_split(config: PrepareConfig, split: str, progress: bool = True) -> SplitResult:
    """Prepare every clip of one split (resuming an earlier run in the same folder)."""
    start = time.perf_counter()
    folder = Path(config.out) / split
    _writable(folder)
    dataset = open_split(config, split)
    for stale in (folder / "clips").glob("*.tmp"):
        stale.unlink()
    manifest_path = folder / "manifest.json"
    settings = config.settings(split)
    done = _resume(manifest_path, settings, folder)
    count = min(config.limit or len(dataset), len(dataset))
    indices = range(0, count, config.stride)
    tasks = [ClipTask(i, dataset.source(i)[0], gap) for i in indices for gap in config.gap]
    todo = [t for t in tasks if t.clip_name not in done]
    manifest = Manifest(settings, dataset.label_set.to_dict(), __version__, False, list(done.values()))
    manifest.write(manifest_path)
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=f"prepare {split}", disable=not progress)
    last_write = time.monotonic()
    try:
        for record in _run(todo, dataset, config, split, folder):
            manifest.clips.append(record)
            bar.update()
            if time.monotonic() - last_write > 2.0:
                manifest.write(manifest_path)
                last_write = time.monotonic()
    finally:
        bar.close()
        manifest.write(manifest_path)
    manifest.complete = True
    manifest.write(manifest_path)
    return SplitResult(len(todo), len(tasks) - len(todo), time.perf_counter() - start, manifest_path)


def _run(todo: list[ClipTask], dataset: SegmentationDataset, config: PrepareConfig, split: str, folder: Path):
    """Clip records as they finish: in this process for one worker, else in a pool of ``config.workers``."""
    if config.workers == 1 or len(todo) <= 1:
        for task in todo:
            yield build_clip(dataset, task, config, folder)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(config.workers, _init_worker, (config, split, folder)) as pool:
        yield from pool.imap_unordered(_work, todo, chunksize=1)


def load_config(path: str | os.PathLike) -> dict:
    """Read a YAML file of options; an unknown key raises ``PrepareError`` naming it."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PrepareError(f"cannot read config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise PrepareError(f"config {path} must be a mapping of options")
    known = {f.name for f in dataclasses.fields(PrepareConfig)}
    for key in data:
        if key not in known:
            raise PrepareError(f"unknown option {key!r} in {path}; known options: {sorted(known)}")
    for key in ("split", "gap"):
        if key in data and not isinstance(data[key], list):
            data[key] = [data[key]]
    return data


def _parser() -> argparse.ArgumentParser:
    defaults = PrepareConfig()
    p = argparse.ArgumentParser(
        prog="arseg-prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", help="YAML file of options (keys as the options below, with _)")
    p.add_argument(
        "--dataset", help=f"layout: camvid, camvid32, cityscapes, folder, synthetic (default {defaults.dataset})"
    )
    p.add_argument("--root", help="dataset folder")
    p.add_argument("--split", nargs="+", help=f"splits to prepare (default {' '.join(defaults.split)})")
    p.add_argument("--out", help="output folder; each split goes to <out>/<split>")
    p.add_argument("--gap", nargs="+", type=int, help="distances d from keyframe to labelled frame (default 11)")
    p.add_argument("--keyint", type=int, help="GOP length (default 12)")
    p.add_argument("--bframes", type=int, help="B-frames (default 0)")
    p.add_argument("--refs", type=int, help="reference frames (default 3)")
    p.add_argument("--bitrate", type=int, help="ABR bitrate in kbps (default 3000)")
    p.add_argument("--fps", type=int, help="frame rate the bitrate is for (default 30)")
    p.add_argument("--preset", help="x265 preset (default medium)")
    p.add_argument("--x265-params", help=f"more x265 parameters, key=value:... (default {defaults.x265_params})")
    p.add_argument("--stills", action="store_const", const=True, help="synthesise clips even where there is video")
    p.add_argument("--motion-zoom", type=float, help="stills: largest zoom-out over --motion-span frames (0.12)")
    p.add_argument("--motion-shift", type=float, help="stills: largest pan, fraction of the image size (0.06)")
    p.add_argument("--motion-rotation", type=float, help="stills: largest roll in degrees (2.0)")
    p.add_argument("--motion-span", type=int, help="stills: frames the motion bounds are for (default 11)")
    p.add_argument("--seed", type=int, help="seed of the synthesised camera motions (default 0)")
    p.add_argument("--count", type=int, help="synthetic dataset: number of images (default 100)")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="synthetic dataset: image size")
    p.add_argument("--workers", type=int, help="processes building clips (default 1)")
    p.add_argument("--limit", type=int, help="only the first N images of each split (0: all)")
    p.add_argument("--stride", type=int, help="only every N-th image (after --limit; default 1: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> PrepareConfig:
    """Defaults, then the ``--config`` file, then the command line."""
    values = load_config(args.config) if args.config else {}
    for f in dataclasses.fields(PrepareConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    try:
        config = PrepareConfig(**values)
        config.check()
    except (TypeError, ValueError) as exc:
        raise PrepareError(str(exc)) from None
    return config


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
        for split in config.split:
            result = prepare_split(config, split, progress=not args.quiet)
            print(
                f"{split}: {result.built + result.reused} clips ({result.built} built, {result.reused} reused) "
                f"in {result.seconds:.1f} s -> {result.manifest}"
            )
    except (PrepareError, DatasetError, ClipError, PreparedDataError) as exc:
        print(f"arseg-prepare: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
