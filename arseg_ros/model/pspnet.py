"""The two PSPNet18 variants of the official AR-Seg code.

``PSPNet18CamVid``: pyramid pooling on a dilated ResNet-18 (output stride 8), then three x2 upsampling
blocks back to the input resolution; the feature is 64 channels at output stride 1 (about 309 GMACs per
960x720 frame, most of it in the 1024->256 conv at 1/4 resolution).

``PSPNet18Cityscapes``: the pyramid-pooling module with BatchNorm and a 3x3 head; the feature is 512
channels at output stride 8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import SegmentationNetwork, conv_bn_relu, init_kaiming, resize
from .resnet import ResNet18

BINS = (1, 2, 3, 6)


class PyramidPoolingCamVid(nn.Module):
    """Pyramid pooling (CamVid variant): pooled bins concatenated with the input, fused by a 1x1 conv and ReLU.

    Per bin: adaptive average pool then a bias-free 1x1 conv (no BN), resized back with ``align_corners=False``;
    concatenated with the input and fused by a 1x1 conv (with bias) and ReLU.
    """

    def __init__(self, channels: int = 512, out_channels: int = 1024) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(channels, channels, 1, bias=False)) for b in BINS
        )
        self.bottleneck = nn.Conv2d(channels * (len(BINS) + 1), out_channels, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        size = tuple(x.shape[-2:])
        priors = [resize(stage(x), size, align_corners=False) for stage in self.stages]
        return self.relu(self.bottleneck(torch.cat([*priors, x], dim=1)))


class UpsampleBlock(nn.Module):
    """Bilinear x2 (``align_corners=False``), then 3x3 conv (with bias), BatchNorm, PReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.PReLU())

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return self.conv(F.interpolate(x, size=(2 * h, 2 * w), mode="bilinear", align_corners=False))


class PSPNet18CamVid(SegmentationNetwork):
    """PSPNet18 of the official CamVid code: feature ``(N, 64, 8*h8, 8*w8)``.

    Here ``h8 x w8`` is the layer4 size; ``(8*h8, 8*w8)`` is ``(H, W)`` itself when both are multiples of 8.

    Auxiliary head (training): global max pool of layer3 (256 channels) -> Linear 256->256 -> ReLU ->
    Linear 256->K, class-presence logits ``aux["presence"]`` of shape ``(N, K)``.
    """

    feature_channels = 64
    output_stride = 1
    min_input_size = 8
    logits_align_corners = True

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.backbone = ResNet18("camvid")
        self.psp = PyramidPoolingCamVid(512, 1024)
        self.drop_psp = nn.Dropout2d(0.3)
        self.up1 = UpsampleBlock(1024, 256)
        self.up2 = UpsampleBlock(256, 64)
        self.up3 = UpsampleBlock(64, 64)
        self.drop_up = nn.Dropout2d(0.15)
        self.final_conv = nn.Conv2d(64, num_classes, 1)
        self.aux_classifier = nn.Sequential(nn.Linear(256, 256), nn.ReLU(inplace=True), nn.Linear(256, num_classes))
        init_kaiming(self)

    def _forward(self, x: Tensor, with_aux: bool) -> tuple[Tensor, dict[str, Tensor]]:
        _, _, c3, c4 = self.backbone(x)
        p = self.drop_psp(self.psp(c4))
        for up in (self.up1, self.up2, self.up3):
            p = self.drop_up(up(p))
        aux = {}
        if with_aux:
            aux["presence"] = self.aux_classifier(F.adaptive_max_pool2d(c3, 1).flatten(1))
        return p, aux


class PyramidPoolingCityscapes(nn.Module):
    """Pyramid pooling (Cityscapes variant): pooled bins concatenated with the input, ``2 * channels`` out.

    Per bin: adaptive average pool, bias-free 1x1 conv to ``channels // 4``, BatchNorm, ReLU, resized back with
    ``align_corners=True``; concatenated with the input (``2 * channels`` out).
    """

    def __init__(self, channels: int = 512) -> None:
        super().__init__()
        reduced = channels // len(BINS)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(channels, reduced, 1, bias=False),
                nn.BatchNorm2d(reduced),
                nn.ReLU(inplace=True),
            )
            for b in BINS
        )

    def forward(self, x: Tensor) -> Tensor:
        size = tuple(x.shape[-2:])
        return torch.cat([x, *(resize(stage(x), size, align_corners=True) for stage in self.stages)], dim=1)


class PSPNet18Cityscapes(SegmentationNetwork):
    """PSPNet18 of the official Cityscapes code: feature ``(N, 512, h8, w8)`` at output stride 8.

    The feature is the output of 3x3 conv 1024->512 (no bias), BatchNorm, ReLU, Dropout2d(0.1).

    Auxiliary head (training) on layer3: 3x3 conv 256->256, BN, ReLU, Dropout2d(0.1), 1x1 conv -> K,
    logits ``aux["layer3"]`` resized to the input (``align_corners=True``); the official loss weight is 0.4.
    """

    feature_channels = 512
    output_stride = 8
    min_input_size = 8
    logits_align_corners = True

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.backbone = ResNet18("cityscapes")
        self.ppm = PyramidPoolingCityscapes(512)
        self.head = nn.Sequential(conv_bn_relu(1024, 512, 3), nn.Dropout2d(0.1))
        self.final_conv = nn.Conv2d(512, num_classes, 1)
        self.aux_head = nn.Sequential(conv_bn_relu(256, 256, 3), nn.Dropout2d(0.1), nn.Conv2d(256, num_classes, 1))
        init_kaiming(self)

    def _forward(self, x: Tensor, with_aux: bool) -> tuple[Tensor, dict[str, Tensor]]:
        _, _, c3, c4 = self.backbone(x)
        feature = self.head(self.ppm(c4))
        aux = {}
        if with_aux:
            aux["layer3"] = resize(self.aux_head(c3), tuple(x.shape[-2:]), align_corners=True)
        return feature, aux
