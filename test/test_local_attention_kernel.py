"""The fused local-attention kernels (C++ CPU, Triton GPU) against ``local_attention_reference``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor

from arseg_ros.model import attention_kernels as kernels
from arseg_ros.model.attention_kernels import local_attention_cpu, local_attention_triton
from arseg_ros.model.creff import local_attention, local_attention_reference

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available on this machine")
requires_triton = pytest.mark.skipif(not kernels.triton_available(), reason="triton not installed")

# (N, C, H, W, window, scale): images smaller than, equal to and larger than the window, 1x1 images, odd sizes,
# widths that are not a multiple of the kernel's vector width, batch > 1, windows 1 to 11, scale != 1.
CASES = [
    (2, 3, 5, 6, 7, 1.0),
    (1, 4, 7, 7, 7, 1.0),
    (1, 4, 3, 2, 7, 0.7),
    (3, 2, 1, 1, 7, 1.0),
    (1, 3, 1, 9, 5, 1.0),
    (2, 5, 9, 11, 3, 0.7),
    (1, 8, 10, 13, 5, 1.3),
    (2, 16, 12, 17, 7, 1.0),
    (1, 64, 9, 21, 7, 0.125),
    (1, 7, 6, 33, 1, 1.0),
    (1, 3, 12, 10, 9, 1.0),
    (2, 2, 13, 14, 11, 0.5),
]


def _inputs(n: int, c: int, h: int, w: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, h, w, generator=gen, dtype=dtype) for _ in range(3)]


def _assert_close(actual: Tensor, expected: Tensor, tol: float = 1e-5) -> None:
    """Equal to ``tol``, relative per element plus absolute relative to the tensor's largest magnitude."""
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale)


def _forward_backward(
    fn: Callable[..., Tensor], inputs: list[Tensor], window: int, scale: float, grad_out: Tensor
) -> tuple[Tensor, list[Tensor]]:
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves, window, scale)
    out.backward(grad_out)
    return out.detach(), [t.grad for t in leaves]


def _check_against_reference(
    fn: Callable[..., Tensor], inputs: list[Tensor], window: int, scale: float, tol: float = 1e-5
) -> Tensor:
    gen = torch.Generator().manual_seed(1)
    grad_out = torch.randn(inputs[0].shape, generator=gen, dtype=inputs[0].dtype)
    out, grads = _forward_backward(fn, inputs, window, scale, grad_out)
    ref_out, ref_grads = _forward_backward(local_attention_reference, inputs, window, scale, grad_out)
    _assert_close(out, ref_out, tol)
    for grad, ref_grad in zip(grads, ref_grads, strict=True):
        _assert_close(grad, ref_grad, tol)
    return out


def test_extension_is_built() -> None:
    import arseg_ros.model._local_attention as ext

    assert kernels.cpu_kernel_available()
    assert callable(ext.forward) and callable(ext.backward)


@pytest.mark.parametrize(("n", "c", "h", "w", "window", "scale"), CASES)
def test_cpu_matches_reference_float32(n: int, c: int, h: int, w: int, window: int, scale: float) -> None:
    _check_against_reference(local_attention_cpu, _inputs(n, c, h, w), window, scale)


@pytest.mark.parametrize(("n", "c", "h", "w", "window", "scale"), CASES[:6])
def test_cpu_matches_reference_float64(n: int, c: int, h: int, w: int, window: int, scale: float) -> None:
    _check_against_reference(local_attention_cpu, _inputs(n, c, h, w, torch.float64), window, scale, tol=1e-12)


@pytest.mark.parametrize(
    ("shape", "window", "scale"),
    [((2, 3, 5, 6), 7, 1.0), ((2, 3, 5, 6), 3, 0.5), ((1, 2, 1, 1), 7, 1.0), ((1, 2, 4, 9), 5, 1.7)],
)
def test_cpu_gradcheck(shape: tuple[int, int, int, int], window: int, scale: float) -> None:
    inputs = [t.requires_grad_() for t in _inputs(*shape, dtype=torch.float64, seed=3)]
    assert torch.autograd.gradcheck(lambda q, k, v: local_attention_cpu(q, k, v, window, scale), inputs)


def test_cpu_non_contiguous_inputs() -> None:
    gen = torch.Generator().manual_seed(4)
    base = [torch.randn(2, 6, 11, 9, generator=gen) for _ in range(3)]
    transposed = [t.transpose(2, 3) for t in base]  # (2, 6, 9, 11), non-contiguous
    assert not transposed[0].is_contiguous()
    _check_against_reference(local_attention_cpu, transposed, 7, 1.0)
    sliced = [t[:, ::2, 1:-1, 2:] for t in base]  # (2, 3, 9, 7), strided channels and cropped
    assert not sliced[0].is_contiguous()
    _check_against_reference(local_attention_cpu, sliced, 5, 0.8)


def test_cpu_channels_last() -> None:
    inputs = [t.to(memory_format=torch.channels_last) for t in _inputs(2, 8, 9, 14, seed=5)]
    assert not inputs[0].is_contiguous()
    out = _check_against_reference(local_attention_cpu, inputs, 7, 1.0)
    assert out.is_contiguous(memory_format=torch.channels_last)
    mixed = [inputs[0], inputs[1].contiguous(), inputs[2]]
    _check_against_reference(local_attention_cpu, mixed, 3, 1.0)


def test_cpu_batch_elements_are_independent() -> None:
    q, k, v = _inputs(3, 5, 8, 10, seed=6)
    with torch.no_grad():
        batched = local_attention_cpu(q, k, v)
        for i in range(3):
            torch.testing.assert_close(
                batched[i : i + 1], local_attention_cpu(q[i : i + 1], k[i : i + 1], v[i : i + 1])
            )


def test_cpu_same_result_for_any_thread_count() -> None:
    q, k, v = _inputs(2, 6, 13, 19, seed=7)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = local_attention_cpu(q, k, v)
        torch.set_num_threads(max(2, threads))
        many = local_attention_cpu(q, k, v)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)


def test_cpu_propagates_nan_and_inf_like_reference() -> None:
    q, k, v = _inputs(1, 3, 9, 10, seed=8)
    k[0, 1, 4, 5] = float("nan")
    v[0, 2, 1, 1] = float("inf")
    q[0, 0, 8, 9] = float("inf")
    with torch.no_grad():
        out = local_attention_cpu(q, k, v)
        ref = local_attention_reference(q, k, v)
    assert out.isnan().any() and out.isinf().any()
    torch.testing.assert_close(out, ref, equal_nan=True, rtol=1e-5, atol=1e-5)


def test_cpu_empty_batch() -> None:
    q, k, v = _inputs(0, 4, 5, 6)
    assert local_attention_cpu(q, k, v).shape == (0, 4, 5, 6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.zeros(1, 2, 3, 3, dtype=torch.float16),) * 3, "dtype"),
        ((torch.zeros(1, 2, 3, 3, dtype=torch.int32),) * 3, "dtype"),
        ((torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3, dtype=torch.float64), torch.zeros(1, 2, 3, 3)), "dtype"),
        ((torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 3)), "shape"),
        ((torch.zeros(2, 3, 3),) * 3, "shape"),
        ((np.zeros((1, 2, 3, 3), np.float32),) * 3, "torch.Tensor"),
    ],
)
def test_cpu_bad_inputs_raise(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        local_attention_cpu(*args)


def test_even_window_raises() -> None:
    with pytest.raises(ValueError, match="odd"):
        local_attention_cpu(*_inputs(1, 2, 3, 3), window=4)


def test_extension_checks_its_arguments() -> None:
    from arseg_ros.model import _local_attention as ext

    a = np.zeros((1, 2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        ext.forward(a.transpose(0, 1, 3, 2), a.transpose(0, 1, 3, 2), a.transpose(0, 1, 3, 2), 3, 1.0, False, False, 1)
    with pytest.raises(ValueError, match="float32 and float64"):
        ext.forward(a.astype(np.int32), a.astype(np.int32), a.astype(np.int32), 3, 1.0, False, False, 1)
    with pytest.raises(ValueError, match="dtype"):
        ext.forward(a, a.astype(np.float64), a, 3, 1.0, False, False, 1)
    with pytest.raises(ValueError, match="threads"):
        ext.forward(a, a, a, 3, 1.0, False, False, 0)
    with pytest.raises(ValueError, match="attn"):
        ext.backward(a, a, a, np.zeros((1, 9, 3, 3), np.float32), a, 3, 1.0, False, 1)
    with pytest.raises(ValueError, match="grad_out"):
        ext.backward(a, a, a, np.zeros((1, 9, 3, 4), np.float32), a[..., :3].copy(), 3, 1.0, False, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels_last", [False, True])
def test_every_simd_kernel_matches_reference(dtype: type, channels_last: bool) -> None:
    """Every SIMD kernel matches the reference, forward and backward.

    The kernels are the generic (SSE2/NEON) ones and, where the CPU has them, the AVX2+FMA and AVX-512 ones.
    """
    from arseg_ros.model import _local_attention as ext

    n, c, h, w, window, scale = 2, 5, 7, 19, 5, 0.9
    q, k, v, grad_out = _inputs(n, c, h, w, torch.float64, seed=9) + _inputs(n, c, h, w, torch.float64, seed=10)[:1]
    ref_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    ref = local_attention_reference(*ref_leaves, window, scale)
    ref.backward(grad_out)
    tol = 1e-5 if dtype == np.float32 else 1e-12

    def arr(t: Tensor) -> np.ndarray:
        t = t.permute(0, 2, 3, 1) if channels_last else t
        return np.ascontiguousarray(t.numpy(), dtype=dtype)

    def tensor(a: np.ndarray) -> Tensor:
        t = torch.from_numpy(a).double()
        return t.permute(0, 3, 1, 2) if channels_last else t

    assert "generic" in ext.simd_support()
    for simd in ext.simd_support():
        out, attn = ext.forward(arr(q), arr(k), arr(v), window, scale, channels_last, True, 2, simd)
        _assert_close(tensor(out), ref.detach(), tol)
        grads = ext.backward(arr(q), arr(k), arr(v), attn, arr(grad_out), window, scale, channels_last, 2, simd)
        for grad, leaf in zip(grads, ref_leaves, strict=True):
            _assert_close(tensor(grad), leaf.grad, tol)
    with pytest.raises(ValueError, match="simd"):
        ext.forward(arr(q), arr(k), arr(v), window, scale, channels_last, False, 1, "avx9000")


def test_dispatch_uses_fused_cpu_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[torch.dtype] = []
    fused = kernels.local_attention_cpu

    def spy(*args: object) -> Tensor:
        calls.append(args[0].dtype)
        return fused(*args)

    monkeypatch.setattr(kernels, "local_attention_cpu", spy)
    q, k, v = _inputs(1, 4, 6, 7)
    _assert_close(local_attention(q, k, v, 5, 0.9), local_attention_reference(q, k, v, 5, 0.9))
    local_attention(q.double(), k.double(), v.double())
    assert calls == [torch.float32, torch.float64]
    local_attention(q, k, v, backend="reference")
    local_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert len(calls) == 2


def test_dispatch_half_precision_cpu_falls_back_to_reference() -> None:
    q, k, v = (t.bfloat16() for t in _inputs(1, 4, 6, 7))
    assert torch.equal(local_attention(q, k, v), local_attention_reference(q, k, v))


def test_dispatch_backends() -> None:
    q, k, v = _inputs(1, 4, 6, 7)
    _assert_close(local_attention(q, k, v, backend="cpu_fused"), local_attention(q, k, v, backend="reference"))
    with pytest.raises(ValueError, match="unknown local attention backend"):
        local_attention(q, k, v, backend="cuda_magic")
    with pytest.raises(ValueError, match="dtype"):
        local_attention(q.half(), k.half(), v.half(), backend="cpu_fused")


@requires_cuda
@requires_triton
@pytest.mark.parametrize(("n", "c", "h", "w", "window", "scale"), CASES)
def test_triton_matches_reference_on_cuda(n: int, c: int, h: int, w: int, window: int, scale: float) -> None:
    inputs = [t.cuda() for t in _inputs(n, c, h, w)]
    gen = torch.Generator().manual_seed(1)
    grad_out = torch.randn(inputs[0].shape, generator=gen).cuda()
    out, grads = _forward_backward(local_attention_triton, inputs, window, scale, grad_out)
    ref_out, ref_grads = _forward_backward(local_attention_reference, inputs, window, scale, grad_out)
    # TF32 is not used (the kernel multiplies in float32 on CUDA cores); allow for reordered float32 sums.
    _assert_close(out, ref_out, 1e-4)
    for grad, ref_grad in zip(grads, ref_grads, strict=True):
        _assert_close(grad, ref_grad, 1e-4)


@requires_cuda
@requires_triton
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("channels", [64, 256, 40])
def test_triton_channels_last_and_half_precision_on_cuda(dtype: torch.dtype, channels: int) -> None:
    low = [t.cuda().to(dtype).contiguous(memory_format=torch.channels_last) for t in _inputs(2, channels, 45, 60)]
    expected = local_attention_reference(*(t.float() for t in low))  # the same rounded inputs, in float32
    out = local_attention_triton(*low)
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
    tolerance = {torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    _assert_close(out.float(), expected, tolerance)


@requires_cuda
def test_dispatch_on_cuda_matches_reference() -> None:
    q, k, v = (t.cuda() for t in _inputs(2, 16, 20, 30))
    _assert_close(local_attention(q, k, v), local_attention_reference(q, k, v), 1e-4)


@requires_triton
def test_triton_kernel_under_interpreter() -> None:
    """Runs the Triton kernel on CPU tensors with TRITON_INTERPRET=1 (set before triton is imported)."""
    script = textwrap.dedent(
        """
        import torch
        from arseg_ros.model.attention_kernels import local_attention_triton
        from arseg_ros.model.creff import local_attention_reference

        cases = [(2, 3, 5, 6, 7, 1.0), (1, 4, 1, 1, 7, 1.0), (1, 5, 9, 11, 3, 0.7), (2, 16, 8, 13, 5, 1.3)]
        for n, c, h, w, window, scale in cases:
            gen = torch.Generator().manual_seed(0)
            q, k, v, g = (torch.randn(n, c, h, w, generator=gen) for _ in range(4))
            leaves = [t.clone().requires_grad_() for t in (q, k, v)]
            out = local_attention_triton(*leaves, window, scale)
            out.backward(g)
            ref_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
            ref = local_attention_reference(*ref_leaves, window, scale)
            ref.backward(g)
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
            for a, b in zip(leaves, ref_leaves):
                torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-5)
        q, k, v = (torch.randn(1, 24, 6, 9).contiguous(memory_format=torch.channels_last) for _ in range(3))
        out = local_attention_triton(q, k, v)
        assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
        torch.testing.assert_close(out, local_attention_reference(q, k, v), rtol=1e-5, atol=1e-5)
        print("ok")
        """
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().endswith("ok")
