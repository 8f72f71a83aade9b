"""An inference-only copy of a model: BatchNorm folded into the convolution before it, channels-last memory format.

Both transformations keep what the model computes (up to float rounding) and apply to every network of the
model alike (HR, LR, CReFF), so speed comparisons between them stay fair. Training never sees the copy.
"""

from __future__ import annotations

import copy
import itertools
import logging

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

log = logging.getLogger(__name__)

# Attribute pairs (convolution, BatchNorm) folded outside ``nn.Sequential``: the ResNet stem and BasicBlock.
_NAMED_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"))


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and type(bn) is nn.BatchNorm2d
        and bn.track_running_stats
        and bn.running_mean is not None
        and conv.out_channels == bn.num_features
    )


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` into that convolution, in place.

    Folded pairs: adjacent entries of an ``nn.Sequential`` and the ``conv1``/``bn1``, ``conv2``/``bn2``
    attributes of one module. The BatchNorm is replaced by ``nn.Identity``. ``module`` must be in eval mode
    (folding uses the running statistics). Returns the number of folded pairs.
    """
    if module.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (it folds the running statistics)")
    folded = 0
    for child in module.children():
        folded += fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for conv_name, bn_name in itertools.pairwise(names):
            conv, bn = module._modules[conv_name], module._modules[bn_name]
            if _foldable(conv, bn):
                module._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
                module._modules[bn_name] = nn.Identity()
                folded += 1
    for conv_name, bn_name in _NAMED_PAIRS:
        conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
        if conv is not None and bn is not None and _foldable(conv, bn):
            setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(module, bn_name, nn.Identity())
            folded += 1
    return folded


def inference_copy(model: nn.Module, device: torch.device) -> nn.Module:
    """Return a deep copy of ``model`` for inference on ``device``.

    The copy is in eval mode, with BatchNorm folded, parameters moved, and 4-D weights in channels-last memory
    format (the fast layout for convolutions on CPU and on CUDA). ``model`` itself is left untouched.
    """
    copied = copy.deepcopy(model).eval()
    folded = fold_batchnorm(copied)
    log.debug("inference copy: %d BatchNorm layers folded", folded)
    for p in copied.parameters():
        p.requires_grad_(False)
    return copied.to(device).to(memory_format=torch.channels_last)
