"""Loading an AR-Seg model for inference: the one way every entry point (node, CLIs, evaluation) does it.

``load_arseg`` takes a checkpoint path or a ``package://<package>/<path>`` address (a file in an installed
ROS package's share folder, as the launch file and the node's ``model`` parameter accept), reads the
checkpoint and returns the AR-Seg model with its checkpoint. A checkpoint of a single network is refused with
an error that says what to pass, except a phase-1 HR network where the caller accepts one (``arseg-eval
--mode hr``), which becomes the HR branch of an AR-Seg model whose LR branch never runs.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import torch

from .arseg import ARSeg
from .base import SegmentationNetwork
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .config import ModelConfig, build_model

PACKAGE_SCHEME = "package://"


def package_share(package: str) -> Path:
    """Return the share folder of an installed ROS package (``<prefix>/share/<package>``).

    Looked up in the ament index: with ``ament_index_python`` where ROS is installed, otherwise in the prefixes
    of ``AMENT_PREFIX_PATH`` and this Python's prefix (a pip install of arseg_ros registers itself there).
    Raises ``CheckpointError`` naming the package when no prefix has it.
    """
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory  # ROS only
    except ImportError:
        prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
        for prefix in prefixes:
            if (Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / package).is_file():
                return Path(prefix) / "share" / package
    else:
        try:
            return Path(get_package_share_directory(package))
        except PackageNotFoundError:
            pass
    raise CheckpointError(
        f"package {package!r} is not installed (not in the ament index): build and source its workspace, "
        "or give the model as a file path"
    )


def resolve_model_path(path: str | os.PathLike) -> Path:
    """Return the file a model address names: ``package://<pkg>/<rel>`` or a plain path.

    Raises ``CheckpointError`` for an empty address or a malformed ``package://`` one.
    """
    text = os.fspath(path)
    if not text:
        raise CheckpointError("no model given: pass an AR-Seg checkpoint (.pt), a path or package://<pkg>/<file>")
    if not text.startswith(PACKAGE_SCHEME):
        return Path(text)
    package, _, rel = text[len(PACKAGE_SCHEME) :].partition("/")
    if not package or not rel:
        raise CheckpointError(f"model {text!r}: expected package://<package>/<path in its share folder>")
    return package_share(package) / rel


def hr_only(network: SegmentationNetwork, config: ModelConfig) -> tuple[ARSeg, ModelConfig]:
    """Wrap a single HR network (phase 1) as the HR branch of an AR-Seg model.

    Its LR branch and CReFF are untrained and must never run: only the constant-HR mode uses such a model.
    """
    arseg_config = dataclasses.replace(config, kind="arseg")
    model = build_model(arseg_config)
    model.hr.load_state_dict(network.state_dict(), strict=True)
    model.share_classifier()
    return model.eval(), arseg_config


def load_arseg(
    path: str | os.PathLike, device: str | torch.device = "cpu", accept_hr_network: bool = False
) -> tuple[ARSeg, Checkpoint]:
    """Load the AR-Seg model at ``path`` (a file or ``package://`` address) onto ``device``, in eval mode.

    With ``accept_hr_network``, a phase-1 HR network (``arseg-train hr``) is accepted as the HR branch of a
    model that runs only constant HR; the returned checkpoint's config then says ``kind="arseg"``. Any other
    single network raises ``CheckpointError`` naming what to pass instead.
    """
    resolved = resolve_model_path(path)
    model, ckpt = load_checkpoint(resolved, device="cpu")
    if isinstance(model, ARSeg):
        return model.to(device).eval(), ckpt
    if accept_hr_network and ckpt.input_scale == 1.0:
        model, config = hr_only(model, ckpt.config)
        return model.to(device), dataclasses.replace(ckpt, config=config)
    if ckpt.input_scale == 1.0:
        hint = " (an HR network runs only as --mode hr in arseg-eval)"
    else:
        hint = (
            f" (a constant-LR network trained at scale {ckpt.input_scale:g}: arseg-eval takes it as --lr-model; "
            "a single network runs as --mode hr only if it is an HR network)"
        )
    raise CheckpointError(
        f"{path} holds a single network ({ckpt.config.arch}){hint}, not an AR-Seg model: "
        "pass the checkpoint that arseg-train ar writes"
    )
