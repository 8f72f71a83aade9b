"""The AR-Seg wrapper: an HR network for keyframes and an LR network plus CReFF for the other frames.

The two networks share a frozen final 1x1 conv.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import SegmentationNetwork, check_frame, lr_size, resize
from .creff import CReFF


class SharedClassifier(nn.Module):
    """A frozen copy of a 1x1 classifier conv.

    Weight ``(K, C, 1, 1)`` and bias ``(K,)`` are buffers, so they are saved and moved with the model but never
    receive gradients or appear in ``parameters()``.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.kernel_size != (1, 1) or conv.bias is None:
            raise ValueError(f"the shared classifier must be a 1x1 conv with bias, got {conv}")
        self.register_buffer("weight", conv.weight.detach().clone())
        self.register_buffer("bias", conv.bias.detach().clone())

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def copy_from(self, conv: nn.Conv2d) -> None:
        """Copy the current weights of ``conv`` (e.g. after the HR network was trained or loaded)."""
        self.weight.copy_(conv.weight.detach())
        self.bias.copy_(conv.bias.detach())

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size=(1, 1), frozen"


class ARSeg(nn.Module):
    """AR-Seg for one architecture.

    ``hr`` and ``lr`` are two networks of the same architecture with separate weights; the LR network's
    ``final_conv`` is replaced by a frozen copy of the HR network's (``SharedClassifier``). ``lr_scale`` is
    the default factor by which non-keyframes are downscaled.
    """

    def __init__(self, hr: SegmentationNetwork, lr: SegmentationNetwork, creff: CReFF, lr_scale: float = 0.5) -> None:
        super().__init__()
        if type(hr) is not type(lr) or hr.num_classes != lr.num_classes:
            raise ValueError(
                f"HR and LR networks must share architecture and classes, got {type(hr).__name__}/{hr.num_classes} "
                f"and {type(lr).__name__}/{lr.num_classes}"
            )
        if creff.channels != hr.feature_channels:
            raise ValueError(f"CReFF has {creff.channels} channels, the networks' feature {hr.feature_channels}")
        if not 0.0 < lr_scale <= 1.0:
            raise ValueError(f"lr_scale must be in (0, 1], got {lr_scale}")
        self.hr = hr
        self.lr = lr
        self.creff = creff
        self.lr_scale = lr_scale
        self.lr.final_conv = SharedClassifier(hr.final_conv)

    @property
    def num_classes(self) -> int:
        return self.hr.num_classes

    def share_classifier(self) -> None:
        """Copy the HR final conv into the LR branch again (after HR weights changed)."""
        self.lr.final_conv.copy_from(self.hr.final_conv)

    def lr_size(self, size: tuple[int, int], scale: float | None = None) -> tuple[int, int]:
        """Frame size ``(H, W)`` -> the downscaled size ``(round(H * s), round(W * s))``."""
        return lr_size(size, self.lr_scale if scale is None else scale)

    def downscale(self, frame: Tensor, scale: float | None = None) -> Tensor:
        """Bilinear (``align_corners=True``) downscale of ``(N, 3, H, W)`` to ``lr_size``."""
        check_frame(frame, 1)
        return resize(frame, self.lr_size(tuple(frame.shape[-2:]), scale), align_corners=True)

    def forward_key(self, frame: Tensor) -> tuple[Tensor, Tensor]:
        """Keyframe ``(N, 3, H, W)`` -> (logits ``(N, K, H, W)``, HR feature ``(N, C, h, w)`` to cache)."""
        feature = self.hr.features(frame)
        logits = resize(self.hr.classify(feature), tuple(frame.shape[-2:]), self.hr.logits_align_corners)
        return logits, feature

    def fuse(self, frame_lr: Tensor, key_feature: Tensor, displacement: Tensor) -> Tensor:
        """Return the fused feature ``(N, C, h, w)`` on the keyframe-feature grid.

        ``frame_lr``: downscaled frame ``(N, 3, h', w')``. ``key_feature``: the keyframe's HR feature
        ``(N, C, h, w)``. ``displacement``: ``(N, 2, H, W)`` at the full frame size, in pixels, from each
        pixel of this frame to its position in the keyframe.
        """
        return self.creff.warp_and_fuse(self.lr.features(frame_lr), key_feature, displacement)

    def forward_nonkey(self, frame_lr: Tensor, key_feature: Tensor, displacement: Tensor) -> Tensor:
        """Non-keyframe -> logits ``(N, K, H, W)`` at the displacement's (full-frame) size."""
        fused = self.fuse(frame_lr, key_feature, displacement)
        return resize(self.lr.classify(fused), tuple(displacement.shape[-2:]), self.lr.logits_align_corners)

    def forward_constant(self, frame: Tensor, scale: float) -> Tensor:
        """Constant-resolution baseline: logits ``(N, K, H, W)``.

        ``scale == 1``: the HR network on the frame. Otherwise the frame is downscaled by ``scale`` and the LR
        network (with the shared classifier, no CReFF) runs on it; logits are resized back to ``(H, W)``.
        """
        if scale == 1.0:
            return self.hr(frame)
        check_frame(frame, 1)
        return self.lr.forward_downscaled(frame, scale)
