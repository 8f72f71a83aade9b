"""Checkpoints that carry their own configuration.

A checkpoint is a ``torch.save`` file holding plain data only (loadable with ``weights_only=True``)::

    {"format": "arseg_ros.checkpoint", "format_version": 1,
     "config": ModelConfig.to_dict(), "state_dict": {...}, "metadata": {...}}
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from .config import ModelConfig, build_model

FORMAT = "arseg_ros.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not fit the model it is loaded into."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file."""

    config: ModelConfig
    state_dict: dict[str, Tensor]
    metadata: dict = field(default_factory=dict)

    @property
    def input_scale(self) -> float:
        """Return the input scale a single network was trained at.

        It is ``metadata["input_scale"]`` as ``arseg-train lr`` writes it, 1.0 (full resolution, an HR network)
        where the metadata has none.
        """
        return float(self.metadata.get("input_scale", 1.0))


def save_checkpoint(
    path: str | os.PathLike, model: nn.Module, config: ModelConfig, metadata: dict | None = None
) -> None:
    """Write ``model``'s weights with ``config`` and ``metadata`` (plain data) to ``path``, atomically."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint file; raises ``CheckpointError`` with the reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable arseg_ros checkpoint ({exc.__class__.__name__}: {exc})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an arseg_ros checkpoint (no '{FORMAT}' format tag)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this arseg_ros reads version {FORMAT_VERSION}"
        )
    try:
        config = ModelConfig.from_dict(payload["config"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} has a broken model config: {exc}") from None
    return Checkpoint(config=config, state_dict=payload["state_dict"], metadata=payload.get("metadata", {}))


def _config_mismatch(expected: ModelConfig, found: ModelConfig) -> str | None:
    if expected.arch != found.arch or expected.kind != found.kind:
        return f"architecture {found.kind} {found.arch!r}, the model is {expected.kind} {expected.arch!r}"
    if expected.labels.names != found.labels.names:
        return f"classes {found.labels.names}, the model has {expected.labels.names}"
    if expected.window != found.window:
        return f"a {found.window}x{found.window} attention window, the model has {expected.window}x{expected.window}"
    return None


def load_weights(model: nn.Module, config: ModelConfig, path: str | os.PathLike) -> Checkpoint:
    """Load the checkpoint at ``path`` into ``model`` (built from ``config``).

    Every check runs before any weight is copied: on a mismatch of architecture, classes, parameter names or
    shapes a ``CheckpointError`` is raised and ``model`` is left unchanged.
    """
    ckpt = read_checkpoint(path)
    _apply(model, config, ckpt, path)
    return ckpt


def _apply(model: nn.Module, config: ModelConfig, ckpt: Checkpoint, path: str | os.PathLike) -> None:
    mismatch = _config_mismatch(config, ckpt.config)
    if mismatch:
        raise CheckpointError(f"{path} holds {mismatch}; build the model from the checkpoint's own config instead")
    own = model.state_dict()
    missing = sorted(set(own) - set(ckpt.state_dict))
    unexpected = sorted(set(ckpt.state_dict) - set(own))
    wrong = sorted(k for k in set(own) & set(ckpt.state_dict) if own[k].shape != ckpt.state_dict[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shape {wrong[:5]}"
        )
    model.load_state_dict(ckpt.state_dict, strict=True)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, Checkpoint]:
    """Build the model a checkpoint describes, load its weights, move it to ``device`` in eval mode."""
    ckpt = read_checkpoint(path)
    model = build_model(ckpt.config)
    _apply(model, ckpt.config, ckpt, path)
    return model.to(device).eval(), ckpt
