"""Fused kernels for CReFF's local attention, with autograd: a C++ CPU kernel and a Triton GPU kernel.

Both compute exactly ``local_attention_reference`` in ``creff.py`` (the oracle and fallback): for each
position, logits against the ``window x window`` neighbourhood (out-of-image neighbours have logit 0 and
value 0), softmax over the window, weighted sum of V.

* CPU (``local_attention_cpu``): the ``arseg_ros.model._local_attention`` extension, float32 and float64,
  channels-first or channels-last memory format, forward and backward, threads bounded by
  ``torch.get_num_threads()``. The output has the memory format of ``q`` (channels-last stays channels-last).
* GPU (``local_attention_triton``): a fused Triton forward with an online softmax over the window (nothing of
  size ``window**2`` is materialised), on channels-last data, its block size autotuned per channel count. The
  backward recomputes the forward through ``local_attention_reference`` under autograd and differentiates that
  (no Triton backward kernel). Runs wherever Triton runs: CUDA tensors, or CPU tensors under Triton's
  interpreter (``TRITON_INTERPRET=1``, used by the tests).
"""

from __future__ import annotations

import importlib.util
import logging
import os

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from .creff import _check_qkv, local_attention_reference

LOGGER = logging.getLogger(__name__)

try:
    from . import _local_attention
except ImportError as error:
    LOGGER.info("fused CPU local attention unavailable (%s); local_attention uses the reference on CPU", error)
    _local_attention = None

CPU_DTYPES = (torch.float32, torch.float64)
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def cpu_kernel_available() -> bool:
    """Whether the C++ extension ``arseg_ros.model._local_attention`` is importable."""
    return _local_attention is not None


def triton_available() -> bool:
    """Whether the ``triton`` package is installed (it needs CUDA, or ``TRITON_INTERPRET=1`` for CPU tensors)."""
    return importlib.util.find_spec("triton") is not None


def _check_inputs(q: Tensor, k: Tensor, v: Tensor, window: int, dtypes: tuple[torch.dtype, ...], kernel: str) -> None:
    """Raise ``ValueError`` unless q, k, v are same-shape 4-D tensors of one supported dtype on one device."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    _check_qkv(q, k, v, window)
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in dtypes:
        names = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise ValueError(
            f"the {kernel} local attention needs q, k, v of one dtype among {names}; got "
            f"{q.dtype}, {k.dtype}, {v.dtype}"
        )
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")


def _is_channels_last(t: Tensor) -> bool:
    """Return True when ``t`` is laid out channels-last and not (also) plainly contiguous."""
    return not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def _to_array(t: Tensor, channels_last: bool) -> np.ndarray:
    """Return a C-contiguous numpy view (N, C, H, W), or (N, H, W, C) when ``channels_last``; copies only if needed."""
    t = t.detach()
    if channels_last:
        return t.permute(0, 2, 3, 1).contiguous().numpy()
    return t.contiguous().numpy()


def _from_array(a: np.ndarray, channels_last: bool) -> Tensor:
    """Inverse of ``_to_array``: an (N, C, H, W) tensor sharing the array's memory."""
    t = torch.from_numpy(a)
    return t.permute(0, 3, 1, 2) if channels_last else t


class _CpuLocalAttention(torch.autograd.Function):
    """Autograd wrapper of the C++ kernel. Saves q, k, v and the (N, window**2, H, W) softmax weights."""

    @staticmethod
    def forward(ctx: FunctionCtx, q: Tensor, k: Tensor, v: Tensor, window: int, scale: float) -> Tensor:
        channels_last = _is_channels_last(q)
        save = any(ctx.needs_input_grad[:3])
        out, attn = _local_attention.forward(
            _to_array(q, channels_last),
            _to_array(k, channels_last),
            _to_array(v, channels_last),
            window,
            float(scale),
            channels_last,
            save,
            torch.get_num_threads(),
        )
        if save:
            ctx.save_for_backward(q, k, v, torch.from_numpy(attn))
        ctx.window, ctx.scale, ctx.channels_last = window, float(scale), channels_last
        return _from_array(out, channels_last)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        q, k, v, attn = ctx.saved_tensors
        cl = ctx.channels_last
        grads = _local_attention.backward(
            _to_array(q, cl),
            _to_array(k, cl),
            _to_array(v, cl),
            attn.numpy(),
            _to_array(grad_out.to(q.dtype), cl),
            ctx.window,
            ctx.scale,
            cl,
            torch.get_num_threads(),
        )
        gq, gk, gv = (_from_array(g, cl) for g in grads)
        needs = ctx.needs_input_grad
        return (gq if needs[0] else None, gk if needs[1] else None, gv if needs[2] else None, None, None)


def local_attention_cpu(q: Tensor, k: Tensor, v: Tensor, window: int = 7, scale: float = 1.0) -> Tensor:
    """Fused CPU local attention of ``(N, C, H, W)`` float32/float64 CPU tensors (any strides), differentiable.

    Returns ``(N, C, H, W)`` in the memory format of ``q``. Raises ``ValueError`` for other dtypes or devices,
    mismatched shapes, an even window, and ``RuntimeError`` when the extension is not built.
    """
    _check_inputs(q, k, v, window, CPU_DTYPES, "fused CPU")
    if q.device.type != "cpu":
        raise ValueError(f"the fused CPU local attention needs CPU tensors, got {q.device}")
    if _local_attention is None:
        raise RuntimeError("arseg_ros.model._local_attention is not built: run `pip install -e .` in the package")
    return _CpuLocalAttention.apply(q, k, v, window, scale)


if triton_available():
    import triton
    import triton.language as tl

    @triton.jit
    def _local_attention_kernel(
        q_ptr,
        k_ptr,
        v_ptr,
        out_ptr,
        channels,
        height,
        width,
        scale,
        window: tl.constexpr,
        block_c: tl.constexpr,
        block_p: tl.constexpr,
    ):
        """One program: block_p consecutive positions (row-major) of image ``program_id(1)``, all channels.

        All channels fit one block (block_c >= C). The data is channels-last (N, H, W, C) so that a position's
        channels are contiguous and the per-offset dot products reduce within a warp. Online softmax over the
        window**2 offsets; float32 accumulation.
        """
        image = tl.program_id(1)
        hw = height * width
        pos = tl.program_id(0) * block_p + tl.arange(0, block_p)
        ch = tl.arange(0, block_c)
        pos_ok = pos < hw
        ch_ok = ch < channels
        y = pos // width
        x = pos % width
        base = image.to(tl.int64) * hw * channels
        mask = pos_ok[:, None] & ch_ok[None, :]
        here = base + pos[:, None].to(tl.int64) * channels + ch[None, :]
        q = tl.load(q_ptr + here, mask=mask, other=0.0).to(tl.float32) * scale
        m = tl.full([block_p], float("-inf"), tl.float32)
        total = tl.zeros([block_p], tl.float32)
        acc = tl.zeros([block_p, block_c], tl.float32)
        for o in range(window * window):
            dy = o // window - window // 2
            dx = o % window - window // 2
            yy = y + dy
            xx = x + dx
            inside = pos_ok & (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
            where = here + (dy * width + dx) * channels
            nb_mask = inside[:, None] & ch_ok[None, :]
            kk = tl.load(k_ptr + where, mask=nb_mask, other=0.0).to(tl.float32)
            vv = tl.load(v_ptr + where, mask=nb_mask, other=0.0).to(tl.float32)
            logit = tl.sum(q * kk, axis=1)
            m_new = tl.maximum(m, logit)
            alpha = tl.exp(m - m_new)
            weight = tl.exp(logit - m_new)
            acc = acc * alpha[:, None] + weight[:, None] * vv
            total = total * alpha + weight
            m = m_new
        out = acc / total[:, None]
        tl.store(out_ptr + here, out.to(out_ptr.dtype.element_ty), mask=mask)

    # One autotuner per padded channel count: positions per program and warps chosen by timing on the first call
    # for each (channels, dtype), so that the kernel adapts to the GPU it runs on. Under Triton's CPU interpreter
    # a single configuration is used (timing there says nothing about a GPU).
    _TUNED: dict[int, triton.runtime.Autotuner] = {}

    def _tuned_kernel(block_c: int) -> triton.runtime.Autotuner:
        """Return the autotuned launcher for ``block_c`` (a power of two >= C).

        block_p * block_c is kept within [512, 16384].
        """
        if block_c not in _TUNED:
            sizes = [p for p in (8, 16, 32, 64, 128) if 512 <= p * block_c <= 16384] or [max(1, 16384 // block_c)]
            if os.environ.get("TRITON_INTERPRET") == "1":
                configs = [triton.Config({"block_p": sizes[0]}, num_warps=4)]
            else:
                configs = [triton.Config({"block_p": p}, num_warps=w) for p in sizes for w in (2, 4, 8)]
            _TUNED[block_c] = triton.autotune(configs=configs, key=["channels"])(_local_attention_kernel)
        return _TUNED[block_c]


def _triton_forward(q: Tensor, k: Tensor, v: Tensor, window: int, scale: float) -> Tensor:
    """Launch the fused Triton forward on (N, C, H, W) tensors, computed channels-last.

    The output has the memory format of ``q`` (channels-last stays channels-last, anything else comes back
    contiguous).
    """
    n, c, h, w = q.shape
    channels_last = _is_channels_last(q)
    q, k, v = (t.contiguous(memory_format=torch.channels_last) for t in (q, k, v))
    out = torch.empty_like(q, memory_format=torch.channels_last)
    if out.numel() == 0:
        return out if channels_last else out.contiguous()
    block_c = triton.next_power_of_2(c)

    def grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(h * w, meta["block_p"]), n)

    _tuned_kernel(block_c)[grid](q, k, v, out, c, h, w, float(scale), window=window, block_c=block_c)
    return out if channels_last else out.contiguous()


class _TritonLocalAttention(torch.autograd.Function):
    """Triton forward; backward by recomputation through ``local_attention_reference`` under autograd."""

    @staticmethod
    def forward(ctx: FunctionCtx, q: Tensor, k: Tensor, v: Tensor, window: int, scale: float) -> Tensor:
        ctx.save_for_backward(q, k, v)
        ctx.window, ctx.scale = window, scale
        return _triton_forward(q, k, v, window, scale)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        inputs = [
            t.detach().requires_grad_(needed)
            for t, needed in zip(ctx.saved_tensors, ctx.needs_input_grad[:3], strict=True)
        ]
        with torch.enable_grad():
            out = local_attention_reference(*inputs, ctx.window, ctx.scale)
            wanted = [t for t in inputs if t.requires_grad]
            grads = iter(torch.autograd.grad(out, wanted, grad_out))
        return (*(next(grads) if t.requires_grad else None for t in inputs), None, None)


def local_attention_triton(q: Tensor, k: Tensor, v: Tensor, window: int = 7, scale: float = 1.0) -> Tensor:
    """Fused Triton local attention of ``(N, C, H, W)`` tensors (float32/float16/bfloat16), differentiable.

    Returns ``(N, C, H, W)`` in the memory format of ``q`` (channels-last stays channels-last, anything else is
    contiguous). Needs ``triton`` and CUDA tensors (or CPU tensors with
    ``TRITON_INTERPRET=1`` set before triton is imported). Raises ``ValueError`` for bad inputs and
    ``RuntimeError`` when triton is not installed.
    """
    _check_inputs(q, k, v, window, TRITON_DTYPES, "Triton")
    if not triton_available():
        raise RuntimeError("triton is not installed")
    return _TritonLocalAttention.apply(q, k, v, window, scale)
