"""What every segmentation network of the package exposes, and the input checks they share.

A network maps a frame ``(N, 3, H, W)`` (float, normalised RGB) to a *feature* ``(N, C, h, w)``, the tensor
right before the final 1x1 classifier, and classifies it into logits ``(N, K, h, w)``. ``forward`` resizes
the logits to the frame size ``(H, W)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class SegOutput:
    """Training-time outputs of one network.

    ``logits``: ``(N, K, H, W)`` at the input size. ``feature``: ``(N, C, h, w)``. ``aux``: auxiliary-head
    outputs by name, each either logits ``(N, K, H, W)`` or class-presence logits ``(N, K)``.
    """

    logits: Tensor
    feature: Tensor
    aux: dict[str, Tensor] = field(default_factory=dict)


def check_frame(x: Tensor, min_size: int, what: str = "frame") -> None:
    """Raise ``ValueError`` unless ``x`` is a floating ``(N, 3, H, W)`` tensor with ``H, W >= min_size``."""
    expected = f"a floating-point tensor of shape (N, 3, H, W) with H, W >= {min_size}"
    if not isinstance(x, Tensor):
        raise ValueError(f"{what}: expected {expected}, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"{what}: expected {expected}, got {x.dtype} of shape {tuple(x.shape)}")
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(
            f"{what}: expected {expected}, got shape {tuple(x.shape)}; the network cannot take a smaller input"
        )


def lr_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """Frame size ``(H, W)`` -> the size downscaled by ``scale``: ``(round(H * s), round(W * s))``, at least 1."""
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def resize(x: Tensor, size: tuple[int, int], align_corners: bool) -> Tensor:
    """Bilinear resize of ``(N, C, h, w)`` to ``size = (H, W)``; returns ``x`` itself when the size matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


class SegmentationNetwork(nn.Module):
    """Base class: subclasses set the attributes below and implement ``_forward``.

    The attributes are ``feature_channels`` (C, channels of the feature), ``output_stride`` (nominal ratio input
    size / feature size, 1 or 8), ``min_input_size`` (smallest input height and width, in pixels),
    ``logits_align_corners`` (the ``align_corners`` used to resize logits to the input size) and ``final_conv``
    (the 1x1 classifier, ``C -> K``, the layer AR-Seg shares between its branches).
    """

    feature_channels: int
    output_stride: int
    min_input_size: int
    logits_align_corners: bool
    final_conv: nn.Module

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes

    def _forward(self, x: Tensor, with_aux: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """Return the feature and, when ``with_aux``, the auxiliary outputs (sized as in ``SegOutput``)."""
        raise NotImplementedError

    def features(self, x: Tensor) -> Tensor:
        """Frame ``(N, 3, H, W)`` -> feature ``(N, C, h, w)``."""
        check_frame(x, self.min_input_size)
        return self._forward(x, with_aux=False)[0]

    def classify(self, feature: Tensor) -> Tensor:
        """Feature ``(N, C, h, w)`` -> logits ``(N, K, h, w)`` through the final 1x1 conv."""
        if feature.ndim != 4 or feature.shape[1] != self.feature_channels:
            raise ValueError(
                f"expected a feature of shape (N, {self.feature_channels}, h, w), got {tuple(feature.shape)}"
            )
        return self.final_conv(feature)

    def forward(self, x: Tensor) -> Tensor:
        """Frame ``(N, 3, H, W)`` -> logits ``(N, K, H, W)``."""
        return resize(self.classify(self.features(x)), tuple(x.shape[-2:]), self.logits_align_corners)

    def forward_downscaled(self, x: Tensor, scale: float) -> Tensor:
        """Frame ``(N, 3, H, W)`` downscaled by ``scale`` -> logits ``(N, K, H, W)``: the constant-LR baseline.

        The downscaling is bilinear (``align_corners=True``, to ``lr_size``); the logits are resized back to the
        frame.
        """
        size = tuple(x.shape[-2:])
        small = resize(x, lr_size(size, scale), align_corners=True)
        return resize(self.classify(self.features(small)), size, self.logits_align_corners)

    def forward_train(self, x: Tensor) -> SegOutput:
        """Frame -> logits at the input size, the feature, and the auxiliary-head outputs."""
        check_frame(x, self.min_input_size)
        feature, aux = self._forward(x, with_aux=True)
        logits = resize(self.classify(feature), tuple(x.shape[-2:]), self.logits_align_corners)
        return SegOutput(logits=logits, feature=feature, aux=aux)


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """``kernel x kernel`` conv (no bias, 'same' padding) + BatchNorm + ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def init_kaiming(module: nn.Module) -> None:
    """He-normal init for convs, unit/zero BatchNorm, zero biases: the usual init for heads."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(x: Tensor) -> Tensor:
    """RGB ``(N, 3, H, W)`` in 0..1 -> the networks' input, normalised with the ImageNet mean and std."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def global_mean(x: Tensor) -> Tensor:
    """``(N, C, H, W)`` -> ``(N, C, 1, 1)`` spatial mean."""
    return torch.mean(x, dim=(2, 3), keepdim=True)
