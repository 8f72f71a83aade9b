"""Segmentation losses of each architecture, as in the official training code.

PSPNet18-CamVid: cross-entropy, plus binary cross-entropy of the class-presence head (weight 1).
PSPNet18-Cityscapes: cross-entropy, plus 0.4 x cross-entropy of the layer3 head.
BiSeNet18: online hard example mining (OHEM) cross-entropy on the main and both auxiliary heads.
Labels are ``(N, H, W)`` int64 class ids, 255 ignored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..labels import IGNORE_ID


def ohem_cross_entropy(logits: Tensor, labels: Tensor, threshold: float = 0.7, min_fraction: float = 1 / 16) -> Tensor:
    """Mean cross-entropy over the hard pixels.

    The hard pixels are those whose probability of the true class is below ``threshold``, and at least the
    hardest ``min_fraction`` of the labelled pixels.
    """
    losses = F.cross_entropy(logits, labels, ignore_index=IGNORE_ID, reduction="none").flatten()
    valid = (labels != IGNORE_ID).flatten()
    losses = losses[valid]
    if losses.numel() == 0:
        return logits.sum() * 0.0
    n_min = max(1, int(losses.numel() * min_fraction))
    hard = losses[losses > -math.log(threshold)]
    if hard.numel() < n_min:
        hard = torch.topk(losses, n_min).values
    return hard.mean()


def class_presence(labels: Tensor, num_classes: int) -> Tensor:
    """``(N, H, W)`` labels -> ``(N, K)`` float targets: 1 where the class occurs in the image."""
    onehot = torch.zeros(labels.shape[0], num_classes + 1, device=labels.device)
    ids = labels.flatten(1).clamp(max=num_classes)  # 255 -> the extra, dropped column
    onehot.scatter_(1, ids, 1.0)
    return onehot[:, :num_classes]


def segmentation_loss(arch: str, logits: Tensor, aux: dict[str, Tensor], labels: Tensor) -> Tensor:
    """Return the training loss of ``arch`` for full-size ``logits (N, K, H, W)`` and its auxiliary outputs."""
    if arch == "bisenet18":
        return ohem_cross_entropy(logits, labels) + sum(ohem_cross_entropy(a, labels) for a in aux.values())
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_ID)
    if arch == "pspnet18_camvid" and "presence" in aux:
        target = class_presence(labels, logits.shape[1])
        loss = loss + F.binary_cross_entropy_with_logits(aux["presence"], target)
    elif arch == "pspnet18_cityscapes" and "layer3" in aux:
        loss = loss + 0.4 * F.cross_entropy(aux["layer3"], labels, ignore_index=IGNORE_ID)
    return loss
