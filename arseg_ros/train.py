"""``arseg-train``: the two-phase AR-Seg training recipe.

    arseg-train hr --recipe config/train/camvid_cpu.yaml --out runs/camvid      # phase 1: the HR network
    arseg-train ar --recipe config/train/camvid_cpu.yaml --out runs/camvid      # phase 2: LR network + CReFF
    arseg-train lr --recipe config/train/camvid_cpu.yaml --out runs/camvid      # constant-LR baseline

Phase 1 trains one network with its architecture's segmentation losses. Phase 2 loads the phase-1 network as
the HR branch and freezes it, copies its final 1x1 conv into the LR branch (frozen), and trains the LR network
and CReFF with the segmentation losses plus feature-similarity training (FST): the mean squared error between
the fused LR feature and the frozen HR network's feature of the same frame, weighted by ``fst_weight``. An
optional first stage (``stage1_epochs``) trains the LR network with FST on its upsampled feature, without
CReFF. Training pairs: the labelled frame, its keyframe ``gap`` frames earlier and the displacement between
them, augmented together: with ``dataset.prepared``, the compressed clips of ``arseg-prepare`` (decoded frames,
motion from the HEVC bitstream, as the engine sees them); otherwise keyframes synthesised from the stills on the
fly (``arseg_ros.data.pairs``).

``lr`` trains the constant-resolution baseline the paper compares against: the same network, on its own,
on frames downscaled by ``model.lr_scale`` (logits resized back to the labels), with the ``lr`` section of the
recipe (the ``hr`` section's settings where the recipe has none); with ``lr.init_from_hr`` it starts from the
phase-1 network's weights, as phase 2's LR network does, so that the two differ only by CReFF and FST.
``arseg-eval --lr-model`` runs it as the constant-LR mode.

Every epoch writes ``last.pt`` (the model, loadable by ``arseg-segment``), ``last_state.pt`` (optimizer,
schedule and epoch, for ``--resume``) and a row of ``metrics.csv``; the best validation mIoU, measured
through the real AR path (keyframe through the HR network, the frame through ``forward_nonkey``), is kept
as ``best.pt``. On CUDA it uses mixed precision; under ``torchrun`` it trains with DistributedDataParallel.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from .data.datasets import DatasetError, SegmentationDataset, open_dataset
from .data.pairs import Augmentation, MotionRange, TrainingSample, synthetic_keyframe, to_unit_tensor
from .data.prepared import PreparedClips
from .labels import get_label_set
from .metrics import ConfusionMatrix
from .model import ARSeg, CheckpointError, ModelConfig, build_model, read_checkpoint, save_checkpoint
from .model.base import lr_size, normalize, resize
from .model.creff import warp
from .model.losses import segmentation_loss

log = logging.getLogger(__name__)

PHASES = ("hr", "ar", "lr")


class RecipeError(ValueError):
    """A training recipe with an unknown key, a missing key or a bad value."""


@dataclass
class DatasetSpec:
    """Where the data is: the dataset, its splits and class list, and optionally its prepared clips.

    ``kind`` (camvid, camvid32, cityscapes, folder, synthetic), ``root`` (relative paths are relative to the recipe
    file), the splits, the class list name, and for ``synthetic`` the number of training images ``count``
    (validation: a quarter of it) and their ``size`` ``[h, w]``. ``prepared``: the output folder of
    ``arseg-prepare`` (relative to the recipe file); when set, phase 2 trains and validates on its compressed clips
    of gap ``ar.gap`` (``<prepared>/<train_split>``, ``<prepared>/<val_split>``) instead of keyframes synthesised
    on the fly. Phase 1 always trains on the dataset's images.
    """

    kind: str = "camvid"
    root: str = "../shared/data/camvid"
    train_split: str = "train"
    val_split: str = "test"
    classes: str = "camvid"
    val_limit: int = 0
    count: int = 200
    size: tuple[int, int] = (240, 320)
    prepared: str = ""


@dataclass
class ModelSpec:
    arch: str = "bisenet18"
    lr_scale: float = 0.5
    window: int = 7
    scaled_attention: bool = False
    pretrained_backbone: str = ""


@dataclass
class PhaseSpec:
    """One phase: its schedule, optimizer, crop and scale, the phase-2 settings and the LR network's start.

    Epochs, batch, optimizer (``sgd`` or ``adam``), learning rate and its schedule (``poly`` or ``cosine``), crop
    ``[h, w]``, scale range, and for phase 2 the FST weight, the stage without CReFF, the keyframe gap and the
    synthetic motion range. ``init_from_hr`` (phases ``ar`` and ``lr``): the LR network starts from the HR
    network's weights (the paper does so for BiSeNet on Cityscapes) instead of from ``model.pretrained_backbone``
    or random weights.
    """

    epochs: int = 10
    batch_size: int = 8
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "poly"
    crop: tuple[int, int] = (240, 320)
    scale_range: tuple[float, float] = (0.5, 2.0)
    fst_weight: float = 1.0
    stage1_epochs: int = 0
    gap: int = 11
    motion_zoom: float = 0.12
    motion_shift: float = 0.06
    motion_rotation: float = 2.0
    init_from_hr: bool = False


@dataclass
class TrainingSpec:
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    val_every: int = 1


@dataclass
class Recipe:
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    hr: PhaseSpec = field(default_factory=PhaseSpec)
    ar: PhaseSpec = field(default_factory=PhaseSpec)
    lr: PhaseSpec = field(default_factory=PhaseSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)


def _build(cls: type, values: Any, where: str) -> Any:
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise RecipeError(f"recipe section {where!r} must be a mapping, got {type(values).__name__}")
    known = {f.name: f for f in fields(cls)}
    for key in values:
        if key not in known:
            raise RecipeError(f"unknown recipe key {where}.{key}; known keys: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if isinstance(default, tuple):
            if not isinstance(value, list | tuple) or len(value) != len(default):
                raise RecipeError(f"recipe key {where}.{name} needs {len(default)} numbers, got {value!r}")
            value = tuple(type(default[0])(v) for v in value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise RecipeError(f"recipe key {where}.{name} must be true or false, got {value!r}")
        elif isinstance(default, int | float | str):
            try:
                value = type(default)(value)
            except (TypeError, ValueError):
                raise RecipeError(
                    f"recipe key {where}.{name} must be a {type(default).__name__}, got {value!r}"
                ) from None
        kwargs[name] = value
    return cls(**kwargs)


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read a YAML recipe; unknown keys and badly typed values raise ``RecipeError`` naming the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path} must be a mapping of sections")
    sections = {f.name: f for f in fields(Recipe)}
    for key in data:
        if key not in sections:
            raise RecipeError(f"unknown recipe key {key!r}; known sections: {sorted(sections)}")
    recipe = Recipe(
        dataset=_build(DatasetSpec, data.get("dataset"), "dataset"),
        model=_build(ModelSpec, data.get("model"), "model"),
        hr=_build(PhaseSpec, data.get("hr"), "hr"),
        ar=_build(PhaseSpec, data.get("ar"), "ar"),
        lr=_build(PhaseSpec, data["lr"] if "lr" in data else data.get("hr"), "lr"),
        training=_build(TrainingSpec, data.get("training"), "training"),
    )
    root = Path(recipe.dataset.root)
    if not root.is_absolute():
        recipe.dataset.root = str((path.parent / root).resolve())
    prepared = Path(recipe.dataset.prepared)
    if recipe.dataset.prepared and not prepared.is_absolute():
        recipe.dataset.prepared = str((path.parent / prepared).resolve())
    for name in ("hr", "ar", "lr"):
        phase = getattr(recipe, name)
        if phase.optimizer not in ("sgd", "adam") or phase.schedule not in ("poly", "cosine"):
            raise RecipeError(f"recipe {name}: optimizer must be sgd or adam, schedule poly or cosine")
        if phase.epochs < 1 or phase.batch_size < 1 or phase.lr <= 0:
            raise RecipeError(f"recipe {name}: epochs, batch_size and lr must be positive")
    if recipe.hr.init_from_hr:
        raise RecipeError("recipe hr: init_from_hr is for the ar and lr sections; phase 1 trains the HR network itself")
    return recipe


class PhaseData(Dataset):
    """Augmented samples of one dataset split, from a ``SegmentationDataset`` or from ``PreparedClips``.

    From a ``SegmentationDataset`` with ``motion``, each sample has a synthesised keyframe; from ``PreparedClips``,
    it has the decoded keyframe and frame with the bitstream motion.
    """

    def __init__(
        self,
        dataset: SegmentationDataset | PreparedClips,
        augment: Augmentation | None,
        motion: MotionRange | None,
        seed: int,
    ) -> None:
        self.dataset, self.augment, self.motion, self.seed = dataset, augment, motion, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        stream = self.seed * 1_000_003 + index if self.augment is None else (self.seed, self.epoch, index)
        rng = np.random.default_rng(stream)
        image, label_ids, key_image, disp = self._pair(index, rng)
        frame = to_unit_tensor(image)
        labels = torch.from_numpy(label_ids.astype(np.int64))
        key = displacement = None
        if key_image is not None:
            key, displacement = to_unit_tensor(key_image), torch.from_numpy(disp)
        if self.augment is not None:
            sample = self.augment(frame, labels, rng, key, displacement)
        else:
            sample = TrainingSample(frame, labels, key, displacement)
        out = {"frame": sample.frame, "labels": sample.labels}
        if sample.key is not None:
            out["key"], out["displacement"] = sample.key, sample.displacement
        return out

    def _pair(self, index: int, rng: np.random.Generator) -> tuple:
        """Return the frame, labels, keyframe and displacement of sample ``index``.

        ``(frame (H, W, 3) uint8, labels (H, W) uint8, key (H, W, 3) uint8 | None, displacement (2, H, W)
        float32 pixels | None)``.
        """
        if isinstance(self.dataset, PreparedClips):
            clip = self.dataset.clip(index)
            return clip.frame, clip.labels, clip.key, clip.displacement()
        item = self.dataset[index]
        if self.motion is None:
            return item.image, item.labels, None, None
        key, displacement = synthetic_keyframe(item.image, rng, self.motion)
        return item.image, item.labels, key, displacement


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device(name: str, rank: int) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            torch.cuda.set_device(rank % torch.cuda.device_count())
            return torch.device("cuda", rank % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(name)


def _optimizer(params: list[nn.Parameter], spec: PhaseSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)


def _schedule(optimizer: torch.optim.Optimizer, spec: PhaseSpec, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    if spec.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total))
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: (1 - min(i, total - 1) / total) ** 0.9)


def _load_backbone(model: nn.Module, path: str) -> None:
    """Load ImageNet ResNet-18 weights (torchvision layout, a local file) into every ResNet backbone."""
    from .model.resnet import ResNet18

    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    for module in model.modules():
        if isinstance(module, ResNet18):
            missing, unexpected = module.load_state_dict(state, strict=False)
            if unexpected or missing:
                raise CheckpointError(
                    f"{path} is not a ResNet-18 checkpoint: missing {missing[:3]}, unexpected {unexpected[:3]}"
                )


class PhaseLoss(nn.Module):
    """The training objective of a phase as a module (so DistributedDataParallel can wrap it).

    ``forward(frame, labels, key, displacement, use_creff)`` with frames ``(N, 3, H, W)`` in 0..1 returns the
    total loss and its parts (``seg``, and ``fst`` in phase 2).
    """

    def __init__(self, model: nn.Module, phase: str, arch: str, fst_weight: float, lr_scale: float = 0.5) -> None:
        super().__init__()
        self.model, self.phase, self.arch, self.fst_weight = model, phase, arch, fst_weight
        self.lr_scale = lr_scale

    def forward(
        self,
        frame: torch.Tensor,
        labels: torch.Tensor,
        key: torch.Tensor | None = None,
        displacement: torch.Tensor | None = None,
        use_creff: bool = True,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        frame = normalize(frame)
        if self.phase == "hr":
            out = self.model.forward_train(frame)
            seg = segmentation_loss(self.arch, out.logits, out.aux, labels)
            return seg, {"seg": seg.detach()}
        if self.phase == "lr":
            size = tuple(frame.shape[-2:])
            out = self.model.forward_train(resize(frame, lr_size(size, self.lr_scale), align_corners=True))
            aux = {k: resize(v, size, False) if v.ndim == 4 else v for k, v in out.aux.items()}
            logits = resize(self.model.classify(out.feature), size, self.model.logits_align_corners)
            seg = segmentation_loss(self.arch, logits, aux, labels)
            return seg, {"seg": seg.detach()}
        model: ARSeg = self.model
        with torch.no_grad():
            target = model.hr.features(frame)
            key_feature = model.hr.features(normalize(key))
        lr_out = model.lr.forward_train(model.downscale(frame))
        if use_creff:
            fused = model.creff(lr_out.feature, warp(key_feature, displacement))
        else:
            fused = resize(lr_out.feature, tuple(target.shape[-2:]), align_corners=True)
        size = tuple(frame.shape[-2:])
        logits = resize(model.lr.classify(fused), size, model.lr.logits_align_corners)
        aux = {k: resize(v, size, False) if v.ndim == 4 else v for k, v in lr_out.aux.items()}
        seg = segmentation_loss(self.arch, logits, aux, labels)
        fst = F.mse_loss(fused, target)
        return seg + self.fst_weight * fst, {"seg": seg.detach(), "fst": fst.detach()}


@dataclass
class Trainer:
    """Runs one phase; ``run()`` returns the best validation mIoU."""

    phase: str
    recipe: Recipe
    out: Path
    resume: bool = False
    hr_checkpoint: Path | None = None
    max_iters: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        self.rank, self.world = _distributed()
        self.device = _device(self.recipe.training.device, self.rank)
        if self.phase not in PHASES:
            raise RecipeError(f"unknown phase {self.phase!r}; phases: {', '.join(PHASES)}")
        self.spec = getattr(self.recipe, self.phase)
        self.labels = get_label_set(self.recipe.dataset.classes)
        kind = "arseg" if self.phase == "ar" else "single"
        m = self.recipe.model
        self.config = ModelConfig(m.arch, self.labels, kind, m.lr_scale, m.window, m.scaled_attention)
        torch.manual_seed(self.recipe.training.seed)
        self.model = build_model(self.config)
        if m.pretrained_backbone:
            _load_backbone(self.model, m.pretrained_backbone)
        if self.phase == "ar":
            self._load_hr()
        elif self.phase == "lr" and self.spec.init_from_hr:
            self.model.load_state_dict(self._hr_state(), strict=True)
        self.model.to(self.device)
        self.amp = self.recipe.training.amp and self.device.type == "cuda"
        self.dir = self.out / self.phase
        self.dir.mkdir(parents=True, exist_ok=True)

    def _hr_state(self) -> dict[str, torch.Tensor]:
        """Return the HR network's weights from ``--hr`` (default ``<out>/hr/best.pt``).

        The checkpoint may also be an AR-Seg checkpoint (its HR branch).
        """
        path = self.hr_checkpoint or self.out / "hr" / "best.pt"
        ckpt = read_checkpoint(path)
        if ckpt.config.arch != self.config.arch or ckpt.config.labels.names != self.labels.names:
            raise CheckpointError(f"{path} is a {ckpt.config.arch} model for other classes than this recipe's")
        if ckpt.config.kind == "arseg":
            return {k.removeprefix("hr."): v for k, v in ckpt.state_dict.items() if k.startswith("hr.")}
        if ckpt.input_scale != 1.0:
            raise CheckpointError(f"{path} is a constant-LR network (arseg-train lr), not the HR network")
        return ckpt.state_dict

    def _load_hr(self) -> None:
        state = self._hr_state()
        self.model.hr.load_state_dict(state, strict=True)
        if self.spec.init_from_hr:
            self.model.lr.load_state_dict(state, strict=True)
        self.model.share_classifier()
        for p in self.model.hr.parameters():
            p.requires_grad_(False)

    def _data(self) -> tuple[DataLoader, PhaseData, SegmentationDataset | PreparedClips]:
        d = self.recipe.dataset
        if self.phase == "ar" and d.prepared:
            train = PreparedClips(Path(d.prepared) / d.train_split, gap=self.spec.gap)
            val = PreparedClips(Path(d.prepared) / d.val_split, gap=self.spec.gap)
        else:
            train = open_dataset(d.kind, d.root, d.train_split, count=d.count, size=d.size)
            val = open_dataset(d.kind, d.root, d.val_split, count=max(1, d.count // 4), size=d.size)
        if train.label_set.names != self.labels.names:
            raise DatasetError(f"dataset classes {train.label_set.names} differ from the recipe's {self.labels.names}")
        motion = MotionRange(self.spec.motion_zoom, self.spec.motion_shift, self.spec.motion_rotation)
        augment = Augmentation(self.spec.crop, self.spec.scale_range)
        data = PhaseData(train, augment, motion if self.phase == "ar" else None, self.recipe.training.seed)
        sampler = DistributedSampler(data) if self.world > 1 else None
        loader = DataLoader(
            data,
            batch_size=self.spec.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            num_workers=self.recipe.training.workers,
            drop_last=len(data) >= self.spec.batch_size,
            persistent_workers=False,
        )
        return loader, data, val

    def validate(self, val: SegmentationDataset | PreparedClips) -> float:
        """Return the mIoU on the validation split.

        Phase 2 validates through the AR path (keyframe through the HR network, the frame at LR with CReFF), on
        prepared clips with their decoded frames and bitstream motion, else with a synthesised keyframe per image.
        """
        self.model.eval()
        if self.world > 1:
            # BatchNorm running statistics drift apart over each process's last batches; validate (and save) the
            # rank-0 model on every rank.
            for buffer in self.model.buffers():
                dist.broadcast(buffer, 0)
        cm = ConfusionMatrix(self.labels.num_classes)
        limit = self.recipe.dataset.val_limit or len(val)
        motion = MotionRange(self.spec.motion_zoom, self.spec.motion_shift, self.spec.motion_rotation)
        data = PhaseData(val, None, motion if self.phase == "ar" else None, self.recipe.training.seed)
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.amp):
            for i in range(self.rank, min(limit, len(val)), self.world):
                item = data[i]
                frame = normalize(item["frame"][None].to(self.device))
                if self.phase == "hr":
                    logits = self.model(frame)
                elif self.phase == "lr":
                    logits = self.model.forward_downscaled(frame, self.config.lr_scale)
                else:
                    _, key_feature = self.model.forward_key(normalize(item["key"][None].to(self.device)))
                    displacement = item["displacement"][None].to(self.device)
                    logits = self.model.forward_nonkey(self.model.downscale(frame), key_feature, displacement)
                cm.update(item["labels"].numpy(), logits.argmax(1)[0].cpu().numpy())
        if self.world > 1:
            counts = torch.from_numpy(cm.counts).to(self.device)
            dist.all_reduce(counts)
            cm.counts = counts.cpu().numpy()
        return cm.miou()

    def run(self) -> float:
        loader, data, val = self._data()
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = _optimizer(params, self.spec)
        iters = self.spec.epochs * len(loader)
        scheduler = _schedule(optimizer, self.spec, max(1, iters))
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        objective: nn.Module = PhaseLoss(
            self.model, self.phase, self.config.arch, self.spec.fst_weight, self.config.lr_scale
        )
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            objective = nn.parallel.DistributedDataParallel(objective, device_ids=ids, find_unused_parameters=True)
        start_epoch, best = 0, -1.0
        state_path = self.dir / "last_state.pt"
        if self.resume and state_path.is_file():
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(read_checkpoint(self.dir / "last.pt").state_dict)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start_epoch, best = int(state["epoch"]) + 1, float(state["best"])
            log.info("resumed %s at epoch %d (best mIoU %.4f)", self.phase, start_epoch, best)
        done = 0
        for epoch in range(start_epoch, self.spec.epochs):
            data.epoch = epoch
            if isinstance(loader.sampler, DistributedSampler):
                loader.sampler.set_epoch(epoch)
            self.model.train()
            if self.phase == "ar":
                self.model.hr.eval()
            losses: list[dict[str, float]] = []
            bar = tqdm(
                loader,
                desc=f"{self.phase} epoch {epoch + 1}/{self.spec.epochs}",
                disable=not self.progress or self.rank,
            )
            t0 = time.perf_counter()
            for batch in bar:
                inputs = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                with torch.autocast("cuda", enabled=self.amp):
                    loss, parts = objective(**inputs, use_creff=epoch >= self.spec.stage1_epochs)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch + 1}")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                losses.append({"loss": loss.item(), **{k: v.item() for k, v in parts.items()}})
                bar.set_postfix(loss=f"{losses[-1]['loss']:.3f}")
                done += 1
                if self.max_iters and done >= self.max_iters:
                    break
            miou = self.validate(val) if (epoch + 1) % self.recipe.training.val_every == 0 else float("nan")
            if self.rank == 0:
                best = self._save(epoch, miou, best, losses, optimizer, scheduler, time.perf_counter() - t0)
            if self.max_iters and done >= self.max_iters:
                break
        self.losses = losses
        return best

    def _save(self, epoch, miou, best, losses, optimizer, scheduler, seconds) -> float:
        meta = {"phase": self.phase, "epoch": epoch + 1, "val_miou": miou}
        if self.phase == "lr":
            meta["input_scale"] = self.config.lr_scale
        save_checkpoint(self.dir / "last.pt", self.model, self.config, meta)
        if math.isfinite(miou) and miou > best:
            best = miou
            save_checkpoint(self.dir / "best.pt", self.model, self.config, meta)
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch, "best": best}
        torch.save(state, self.dir / "last_state.pt")
        row = {"epoch": epoch + 1, "seconds": round(seconds, 1), "val_miou": miou, "best_miou": best}
        for key in losses[0] if losses else ():
            row[f"train_{key}"] = float(np.mean([entry[key] for entry in losses]))
        metrics = self.dir / "metrics.csv"
        new = not metrics.is_file()
        with metrics.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        log.info(
            "%s epoch %d: loss %.4f, val mIoU %.4f (best %.4f)",
            self.phase,
            epoch + 1,
            row.get("train_loss", float("nan")),
            miou,
            best,
        )
        return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="arseg-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "phase",
        choices=PHASES,
        help="hr: phase 1 (HR network); ar: phase 2 (LR + CReFF, FST); lr: the constant-LR baseline network",
    )
    parser.add_argument("--recipe", required=True, help="YAML recipe (config/train/*.yaml)")
    parser.add_argument("--out", required=True, help="run folder; phases write <out>/hr, <out>/ar and <out>/lr")
    parser.add_argument(
        "--hr",
        dest="hr_checkpoint",
        help="the HR checkpoint phase 2 (and lr with init_from_hr) starts from (default <out>/hr/best.pt)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from <out>/<phase>/last_state.pt")
    parser.add_argument("--max-iters", type=int, default=0, help="stop after this many iterations (smoke tests)")
    parser.add_argument("--device", help="override the recipe's device (auto, cpu, cuda)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        recipe = load_recipe(args.recipe)
        if args.device:
            recipe.training.device = args.device
        trainer = Trainer(
            args.phase,
            recipe,
            Path(args.out),
            args.resume,
            Path(args.hr_checkpoint) if args.hr_checkpoint else None,
            args.max_iters,
            not args.quiet,
        )
        best = trainer.run()
    except (RecipeError, DatasetError, CheckpointError) as exc:
        print(f"arseg-train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    print(f"{args.phase}: best validation mIoU {100 * best:.2f}% -> {Path(args.out) / args.phase}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
