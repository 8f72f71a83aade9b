"""BiSeNetV1 with a ResNet-18 context path, as in the official AR-Seg code.

The feature is the output of the 3x3 ConvBNReLU of the main output head: 256 channels at 1/8 of the input
(the spatial path's size). Upsampling between context-path levels is nearest x2 followed, where sizes do not
divide evenly, by a bilinear resize (``align_corners=True``) to the finer level's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import SegmentationNetwork, conv_bn_relu, global_mean, init_kaiming, resize
from .resnet import ResNet18


def _upsample_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest x2, then bilinear (``align_corners=True``) to ``size`` if x2 did not land on it."""
    return resize(F.interpolate(x, scale_factor=2.0, mode="nearest"), size, align_corners=True)


class AttentionRefinement(nn.Module):
    """3x3 ConvBNReLU, then a channel attention (global mean, bias-free 1x1 conv, BN, sigmoid) multiplied on."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = conv_bn_relu(c_in, c_out, 3)
        self.attention = nn.Sequential(nn.Conv2d(c_out, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv(x)
        return feat * self.attention(global_mean(feat))


class ContextPath(nn.Module):
    """ResNet-18 (plain) with attention refinement at 1/16 and 1/32 and a global-context branch.

    Returns ``(cp8, cp16)``: 128 channels (times ``width``) each at the layer2 (1/8) and layer3 (1/16) sizes.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.backbone = ResNet18("none", width)
        _, _, c16, c32 = self.backbone.channels
        c = max(8, int(128 * width))
        self.arm16 = AttentionRefinement(c16, c)
        self.arm32 = AttentionRefinement(c32, c)
        self.conv_head32 = conv_bn_relu(c, c, 3)
        self.conv_head16 = conv_bn_relu(c, c, 3)
        self.conv_global = conv_bn_relu(c32, c, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _, c8, c16, c32 = self.backbone(x)
        global_context = self.conv_global(global_mean(c32))
        cp16 = self.conv_head32(_upsample_to(self.arm32(c32) + global_context, tuple(c16.shape[-2:])))
        cp8 = self.conv_head16(_upsample_to(self.arm16(c16) + cp16, tuple(c8.shape[-2:])))
        return cp8, cp16


class SpatialPath(nn.Module):
    """7x7/2 3->64, 3x3/2 64->64, 3x3/2 64->64, 1x1 64->128, each ConvBNReLU: 128 channels at 1/8."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c, out = max(8, int(64 * width)), max(8, int(128 * width))
        self.layers = nn.Sequential(
            conv_bn_relu(3, c, 7, stride=2),
            conv_bn_relu(c, c, 3, stride=2),
            conv_bn_relu(c, c, 3, stride=2),
            conv_bn_relu(c, out, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class FeatureFusion(nn.Module):
    """Concatenate both paths, 1x1 ConvBNReLU 256->256, then ``feat * attention + feat`` with a channel attention.

    The channel attention is a global mean, a bias-free 1x1 conv, BN and a sigmoid.
    """

    def __init__(self, c_in: int = 256, c_out: int = 256) -> None:
        super().__init__()
        self.conv = conv_bn_relu(c_in, c_out, 1)
        self.attention = nn.Sequential(nn.Conv2d(c_out, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.Sigmoid())

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        feat = self.conv(torch.cat([spatial, context], dim=1))
        return feat * self.attention(global_mean(feat)) + feat


class AuxHead(nn.Module):
    """Training head: 3x3 ConvBNReLU ``c_in -> 64`` then 1x1 conv to K classes."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.conv = conv_bn_relu(c_in, 64, 3)
        self.out = nn.Conv2d(64, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.conv(x))


class BiSeNet18(SegmentationNetwork):
    """BiSeNetV1-18: feature ``(N, 256, h8, w8)``; logits resized to the input with ``align_corners=False``.

    ``width`` scales every channel count (1: the official network; ``BiSeNet18Small`` uses 1/4).

    Auxiliary heads (training): ``aux["cp8"]`` and ``aux["cp16"]``, logits from the context path at 1/8 and
    1/16, resized to the input size.
    """

    output_stride = 8
    min_input_size = 32
    logits_align_corners = False

    def __init__(self, num_classes: int, width: float = 1.0) -> None:
        super().__init__(num_classes)
        c = max(8, int(128 * width))
        self.feature_channels = 2 * c
        self.context_path = ContextPath(width)
        self.spatial_path = SpatialPath(width)
        self.fusion = FeatureFusion(2 * c, 2 * c)
        self.feature_conv = conv_bn_relu(2 * c, 2 * c, 3)
        self.final_conv = nn.Conv2d(2 * c, num_classes, 1)
        self.aux_cp8 = AuxHead(c, num_classes)
        self.aux_cp16 = AuxHead(c, num_classes)
        init_kaiming(self)

    def _forward(self, x: Tensor, with_aux: bool) -> tuple[Tensor, dict[str, Tensor]]:
        cp8, cp16 = self.context_path(x)
        sp = resize(self.spatial_path(x), tuple(cp8.shape[-2:]), align_corners=True)
        feature = self.feature_conv(self.fusion(sp, cp8))
        aux = {}
        if with_aux:
            size = tuple(x.shape[-2:])
            aux["cp8"] = resize(self.aux_cp8(cp8), size, align_corners=False)
            aux["cp16"] = resize(self.aux_cp16(cp16), size, align_corners=False)
        return feature, aux


class BiSeNet18Small(BiSeNet18):
    """BiSeNet18 with a quarter of the channels (64-channel feature): a compact model for CPU demos and tests."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes, width=0.25)
