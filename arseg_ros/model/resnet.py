"""ResNet-18 backbone with the dilation layouts of the official AR-Seg networks.

Parameter names follow torchvision's ``resnet18`` (``conv1``, ``bn1``, ``layer1.0.conv1``, ...), so an
ImageNet checkpoint in that layout loads with ``load_state_dict(strict=False)`` (its ``fc`` is ignored).

Dilation layouts (``dilation=``):

- ``"none"``: the plain network, output strides 4/8/16/32 for layer1..4 (BiSeNet's context path).
- ``"camvid"``: layer3 and layer4 keep stride 1 (output stride 8) and dilate by 2 and 4, except that the
  *first* block of each of those stages stays undilated (the official CamVid PSPNet18).
- ``"cityscapes"``: as ``"camvid"``, and in addition the second 3x3 conv of every block of layer3/layer4 is
  dilated by 2/4, the first block included (the official Cityscapes PSPNet18).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from .base import init_kaiming

Dilation = Literal["none", "camvid", "cityscapes"]

# Per dilation layout: for layer3 and layer4, the stride and, per block, the dilations of (conv1, conv2).
_LAYOUTS: dict[str, tuple[tuple[int, list[tuple[int, int]]], tuple[int, list[tuple[int, int]]]]] = {
    "none": ((2, [(1, 1), (1, 1)]), (2, [(1, 1), (1, 1)])),
    "camvid": ((1, [(1, 1), (2, 2)]), (1, [(1, 1), (4, 4)])),
    "cityscapes": ((1, [(1, 2), (2, 2)]), (1, [(1, 4), (4, 4)])),
}


def conv3x3(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 conv without bias; padding equals dilation so the size only changes by the stride."""
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; a 1x1 projection shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilations: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride, dilations[0])
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(c_out, c_out, 1, dilations[1])
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 without its classifier. ``forward`` returns the outputs of layer1..layer4.

    Channels 64/128/256/512 times ``width`` (1 for the standard network). Strides to the input: 4/8/16/32
    (``"none"``) or 4/8/8/8 (dilated layouts).
    """

    def __init__(self, dilation: Dilation = "none", width: float = 1.0) -> None:
        super().__init__()
        if dilation not in _LAYOUTS:
            raise ValueError(f"unknown dilation layout {dilation!r}; choose one of {sorted(_LAYOUTS)}")
        self.dilation = dilation
        c1, c2, c3, c4 = (max(8, int(c * width)) for c in (64, 128, 256, 512))
        self.channels = (c1, c2, c3, c4)
        self.conv1 = nn.Conv2d(3, c1, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._stage(c1, c1, 1, [(1, 1), (1, 1)])
        self.layer2 = self._stage(c1, c2, 2, [(1, 1), (1, 1)])
        (s3, d3), (s4, d4) = _LAYOUTS[dilation]
        self.layer3 = self._stage(c2, c3, s3, d3)
        self.layer4 = self._stage(c3, c4, s4, d4)
        init_kaiming(self)

    @staticmethod
    def _stage(c_in: int, c_out: int, stride: int, dilations: list[tuple[int, int]]) -> nn.Sequential:
        blocks = [BasicBlock(c_in, c_out, stride, dilations[0])]
        blocks += [BasicBlock(c_out, c_out, 1, d) for d in dilations[1:]]
        return nn.Sequential(*blocks)

    @property
    def output_stride(self) -> int:
        return 32 if self.dilation == "none" else 8

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(N, 3, H, W)`` -> (layer1, layer2, layer3, layer4) outputs."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4
