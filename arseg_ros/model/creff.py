"""CReFF: warp the keyframe feature with bitstream motion and fuse it into the LR feature by local attention.

Pixel convention (used by ``resample_displacement`` and ``warp``). Positions are in pixel indices: pixel
``(x, y)`` of an ``H x W`` grid has its centre at coordinate ``(x, y)``; the image covers
``[-0.5, W - 0.5] x [-0.5, H - 0.5]``. A displacement ``(dx, dy)`` stored at pixel ``(x, y)`` of the current
frame says that this pixel's content sits at ``(x + dx, y + dy)`` in the keyframe (backward warp), in input
pixels. A feature grid ``h x w`` covers the same image: its cell ``(j, i)`` is centred on input coordinate
``((j + 0.5) * W / w - 0.5, (i + 0.5) * H / h - 0.5)``, as for ``F.interpolate(align_corners=False)``.
A displacement therefore becomes ``(dx * w / W, dy * h / H)`` feature cells.

Local attention semantics (the official kernel): for each position, logits are dot products over all C
channels between Q there and K at the 49 positions of the centred 7x7 window, with no ``1/sqrt(C)`` scaling
by default; window positions outside the image have logit 0 and value 0; softmax over the window; the
weighted sum of V is added to the upsampled LR feature.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import resize


def _check_displacement(displacement: Tensor, batch: int | None = None) -> None:
    """Raise ``ValueError`` unless ``displacement`` is floating ``(N, 2, H, W)`` (with ``N == batch`` if given)."""
    expected = f"a floating-point displacement of shape ({'N' if batch is None else batch}, 2, H, W) in pixels"
    if not isinstance(displacement, Tensor):
        raise ValueError(f"expected {expected}, got {type(displacement).__name__}")
    if (
        displacement.ndim != 4
        or displacement.shape[1] != 2
        or (batch is not None and displacement.shape[0] != batch)
        or not displacement.is_floating_point()
    ):
        raise ValueError(f"expected {expected}, got {displacement.dtype} of shape {tuple(displacement.shape)}")


def resample_displacement(displacement: Tensor, size: tuple[int, int]) -> Tensor:
    """Displacement ``(N, 2, H, W)`` in input pixels -> ``(N, 2, h, w)`` in cells of an ``h x w`` grid.

    Values are sampled at the cell centres (bilinear, ``align_corners=False``) and scaled by ``w / W`` (x)
    and ``h / H`` (y).
    """
    _check_displacement(displacement)
    big_h, big_w = displacement.shape[-2:]
    h, w = size
    d = resize(displacement, (h, w), align_corners=False)
    if (h, w) == (big_h, big_w):
        return d
    scale = torch.tensor([w / big_w, h / big_h], dtype=d.dtype, device=d.device).view(1, 2, 1, 1)
    return d * scale


def warp(feature: Tensor, displacement: Tensor) -> Tensor:
    """Backward-warp ``feature (N, C, h, w)`` by ``displacement (N, 2, H, W)`` (input pixels, see the module docstring).

    ``out[:, :, i, j] = feature`` sampled bilinearly at ``(j + dx, i + dy)`` in feature cells, zero outside the
    grid. Returns ``(N, C, h, w)``.
    """
    if feature.ndim != 4:
        raise ValueError(f"expected a feature of shape (N, C, h, w), got {tuple(feature.shape)}")
    n, _, h, w = feature.shape
    _check_displacement(displacement, n)
    d = resample_displacement(displacement, (h, w)).to(feature.dtype)
    xs = torch.arange(w, dtype=d.dtype, device=d.device).view(1, 1, w)
    ys = torch.arange(h, dtype=d.dtype, device=d.device).view(1, h, 1)
    gx = (2.0 * (xs + d[:, 0]) + 1.0) / w - 1.0
    gy = (2.0 * (ys + d[:, 1]) + 1.0) / h - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(feature, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, window: int) -> None:
    if q.ndim != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"q, k, v must share one shape (N, C, H, W); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if window < 1 or window % 2 == 0:
        raise ValueError(f"the attention window must be odd and positive, got {window}")


def _overlap(offset: int, n: int) -> tuple[slice, slice]:
    """Return the destination and source slices for a window offset along an axis of length ``n``.

    The destination slice holds the positions whose neighbour at ``offset`` lies inside the image; the source
    slice matches it.
    """
    return slice(max(0, -offset), min(n, n - offset)), slice(max(0, offset), min(n, n + offset))


def _window_regions(window: int, h: int, w: int) -> list[tuple[tuple[slice, slice], tuple[slice, slice]]]:
    """Return the ``_overlap`` slices along y and x for each window offset ``(dy, dx)``.

    The offsets run row-major from ``(-r, -r)`` to ``(r, r)``.
    """
    r = window // 2
    return [(_overlap(dy, h), _overlap(dx, w)) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]


def local_attention_weights(q: Tensor, k: Tensor, window: int = 7, scale: float = 1.0) -> Tensor:
    """Return the softmax weights of local attention: ``q, k`` ``(N, C, H, W)`` -> ``(N, window**2, H, W)``.

    Offsets are row-major (index ``window**2 // 2`` is the centre); out-of-image positions have logit 0.
    """
    _check_qkv(q, k, k, window)
    n, _, h, w = q.shape
    logits = q.new_zeros(n, window * window, h, w)
    for i, ((ys, ys_src), (xs, xs_src)) in enumerate(_window_regions(window, h, w)):
        if ys.start < ys.stop and xs.start < xs.stop:
            logits[:, i, ys, xs] = (q[:, :, ys, xs] * k[:, :, ys_src, xs_src]).sum(1)
    return torch.softmax(logits * scale if scale != 1.0 else logits, dim=1)


def local_attention_reference(q: Tensor, k: Tensor, v: Tensor, window: int = 7, scale: float = 1.0) -> Tensor:
    """Local attention in plain PyTorch, without materialising the ``window**2``-fold unfolded tensor.

    ``q, k, v``: ``(N, C, H, W)``. Returns ``(N, C, H, W)``. Each window offset is handled on the overlap of
    the image with its shifted copy, so out-of-image positions keep logit 0 and contribute no value. Extra
    memory: the ``(N, window**2, H, W)`` logits and weights, one ``(N, C, H, W)`` temporary and the output.
    """
    _check_qkv(q, k, v, window)
    h, w = q.shape[-2:]
    regions = _window_regions(window, h, w)
    attn = local_attention_weights(q, k, window, scale)
    out = torch.zeros_like(q)
    for i, ((ys, ys_src), (xs, xs_src)) in enumerate(regions):
        if ys.start < ys.stop and xs.start < xs.stop:
            out[:, :, ys, xs].addcmul_(attn[:, i : i + 1, ys, xs], v[:, :, ys_src, xs_src])
    return out


def local_attention(
    q: Tensor, k: Tensor, v: Tensor, window: int = 7, scale: float = 1.0, backend: str = "auto"
) -> Tensor:
    """Local attention of ``(N, C, H, W)`` tensors (semantics in the module docstring). Returns ``(N, C, H, W)``.

    ``backend``: ``"reference"`` (``local_attention_reference``), ``"cpu_fused"`` (the C++ kernel, float32/64
    CPU tensors), ``"gpu"`` (the Triton kernel) or ``"auto"``: the C++ kernel for float32/float64 CPU tensors
    when it is built, the Triton kernel for CUDA tensors when triton is installed, else the reference.
    """
    from . import attention_kernels as kernels

    if backend == "reference":
        return local_attention_reference(q, k, v, window, scale)
    if backend == "cpu_fused":
        return kernels.local_attention_cpu(q, k, v, window, scale)
    if backend == "gpu":
        return kernels.local_attention_triton(q, k, v, window, scale)
    if backend != "auto":
        raise ValueError(f"unknown local attention backend {backend!r}; use auto, reference, cpu_fused or gpu")
    same = all(isinstance(t, Tensor) and t.dtype == q.dtype and t.device == q.device for t in (k, v))
    if same and q.device.type == "cpu" and q.dtype in kernels.CPU_DTYPES and kernels.cpu_kernel_available():
        return kernels.local_attention_cpu(q, k, v, window, scale)
    if same and q.is_cuda and q.dtype in kernels.TRITON_DTYPES and kernels.triton_available():
        return kernels.local_attention_triton(q, k, v, window, scale)
    return local_attention_reference(q, k, v, window, scale)


class LocalAttention(nn.Module):
    """Parameter-free module around ``local_attention`` (a module so compute counting can see it)."""

    def __init__(self, window: int = 7, scale: float = 1.0) -> None:
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise ValueError(f"the attention window must be odd and positive, got {window}")
        self.window = window
        self.scale = scale

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return local_attention(q, k, v, self.window, self.scale)

    def macs(self, shape: torch.Size) -> int:
        """Multiply-accumulates of Q.K and A.V for inputs of ``shape = (N, C, H, W)``."""
        n, c, h, w = shape
        return 2 * self.window * self.window * n * c * h * w

    def extra_repr(self) -> str:
        return f"window={self.window}, scale={self.scale:g}"


class CReFF(nn.Module):
    """Compressed-domain Reference Frame Feature fusion.

    ``forward(lr_feature (N, C, h, w), warped_key_feature (N, C, H', W')) -> (N, C, H', W')``: the LR feature
    is upsampled to the keyframe-feature grid (bilinear, ``align_corners=True``), Q comes from it and K, V
    from the warped keyframe feature through depthwise 3x3 convs with bias, and the local attention output
    is added to the upsampled LR feature.

    ``scaled=True`` divides the logits by ``sqrt(C)`` as the paper's equation writes; the default follows the
    official code, which does not.
    """

    def __init__(self, channels: int, window: int = 7, scaled: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.conv_q = self._depthwise(channels)
        self.conv_k = self._depthwise(channels)
        self.conv_v = self._depthwise(channels)
        self.attention = LocalAttention(window, 1.0 / math.sqrt(channels) if scaled else 1.0)

    @staticmethod
    def _depthwise(channels: int) -> nn.Conv2d:
        conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=True)
        nn.init.kaiming_normal_(conv.weight, a=1)
        nn.init.zeros_(conv.bias)
        return conv

    def warp_and_fuse(self, lr_feature: Tensor, key_feature: Tensor, displacement: Tensor) -> Tensor:
        """Return ``self(lr_feature, warp(key_feature, displacement))``, ``(N, C, H', W')``.

        Inputs: ``lr_feature (N, C, h, w)``, the keyframe feature ``(N, C, H', W')`` and the displacement
        ``(N, 2, H, W)`` in input pixels.

        Without autograd, on float32 CPU tensors, one fused C++ pass computes it (``creff_cpu.py``; the result
        is then channels-last); otherwise the warp and this module run as separate differentiable operations.
        """
        from .creff_cpu import fused_creff_applies, fused_creff_cpu

        if fused_creff_applies(self, lr_feature, key_feature, displacement):
            return fused_creff_cpu(self, lr_feature, key_feature, displacement)
        return self(lr_feature, warp(key_feature, displacement))

    def forward(self, lr_feature: Tensor, warped_key_feature: Tensor) -> Tensor:
        for name, t in (("LR feature", lr_feature), ("warped keyframe feature", warped_key_feature)):
            if t.ndim != 4 or t.shape[1] != self.channels or t.shape[0] != lr_feature.shape[0]:
                raise ValueError(
                    f"{name}: expected shape ({lr_feature.shape[0]}, {self.channels}, h, w), got {tuple(t.shape)}"
                )
        up = resize(lr_feature, tuple(warped_key_feature.shape[-2:]), align_corners=True)
        q = self.conv_q(up)
        k = self.conv_k(warped_key_feature)
        v = self.conv_v(warped_key_feature)
        return up + self.attention(q, k, v)
