"""Fused CReFF inference on CPU: warp, upsampling, depthwise Q/K/V convolutions, local attention and residual.

All of them run in one pass of the C++ extension (``creff_forward`` of ``arseg_ros.model._local_attention``).

It computes exactly ``creff(lr_feature, warp(key_feature, displacement))`` (``creff.py``), up to float32
rounding, without materialising the warped feature, the upsampled feature or Q, K and V: the image is walked in
cache-sized column strips. Forward only (no autograd): the engine uses it under ``torch.inference_mode``;
training keeps the differentiable composition.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from .creff import CReFF, resample_displacement

LOGGER = logging.getLogger(__name__)

try:
    from . import _local_attention
except ImportError as error:
    LOGGER.info("fused CPU CReFF unavailable (%s); CReFF runs as separate operations", error)
    _local_attention = None


_suspended = 0


@contextmanager
def composition_only() -> Iterator[None]:
    """Make CReFF run as its separate modules inside the block, even where the fused pass applies.

    Module hooks (``flops.count_macs``) then see every convolution and the attention.
    """
    global _suspended
    _suspended += 1
    try:
        yield
    finally:
        _suspended -= 1


def fused_creff_applies(creff: CReFF, lr_feature: Tensor, key_feature: Tensor, displacement: Tensor) -> bool:
    """Whether ``fused_creff_cpu`` can stand in for the composition.

    It can with the extension built, float32 CPU tensors and weights, no gradient wanted (autograd disabled, as
    under ``torch.inference_mode`` or ``torch.no_grad``) and not inside ``composition_only``.
    """
    if _local_attention is None or torch.is_grad_enabled() or _suspended:
        return False
    tensors = (lr_feature, key_feature, displacement, creff.conv_q.weight, creff.conv_k.weight, creff.conv_v.weight)
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def _channels_last_array(t: Tensor) -> Tensor:
    """``(N, C, H, W)`` -> a C-contiguous ``(N, H, W, C)`` tensor (a view when ``t`` is channels-last already)."""
    return t.detach().permute(0, 2, 3, 1).contiguous()


def fused_creff_cpu(creff: CReFF, lr_feature: Tensor, key_feature: Tensor, displacement: Tensor) -> Tensor:
    """``creff(lr_feature, warp(key_feature, displacement))`` in one fused pass.

    ``lr_feature``: ``(N, C, h, w)``; ``key_feature``: ``(N, C, H', W')``; ``displacement``: ``(N, 2, H, W)`` in
    input pixels (see ``creff.py``). Float32 CPU tensors. Returns ``(N, C, H', W')`` in channels-last memory
    format. Raises ``ValueError`` for mismatched shapes and ``RuntimeError`` when the extension is not built.
    """
    if _local_attention is None:
        raise RuntimeError("arseg_ros.model._local_attention is not built: run `pip install -e .` in the package")
    n = key_feature.shape[0]
    for name, t in (("LR feature", lr_feature), ("keyframe feature", key_feature)):
        if t.ndim != 4 or t.shape[0] != n or t.shape[1] != creff.channels:
            raise ValueError(f"{name}: expected shape ({n}, {creff.channels}, h, w), got {tuple(t.shape)}")
    cells = resample_displacement(displacement, tuple(key_feature.shape[-2:]))
    if cells.shape[0] != n:
        raise ValueError(f"displacement: expected batch {n}, got {tuple(displacement.shape)}")
    convs = (creff.conv_q, creff.conv_k, creff.conv_v)
    weights = [t.detach().contiguous().numpy() for conv in convs for t in (conv.weight, conv.bias)]
    out = _local_attention.creff_forward(
        _channels_last_array(lr_feature).numpy(),
        _channels_last_array(key_feature).numpy(),
        cells.detach().contiguous().numpy(),
        *weights,
        creff.attention.window,
        float(creff.attention.scale),
        torch.get_num_threads(),
    )
    return torch.from_numpy(out).permute(0, 3, 1, 2)
