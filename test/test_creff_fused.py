"""The fused CPU CReFF inference pass against the composition it replaces: warp, then CReFF."""

import numpy as np
import pytest
import torch

from arseg_ros.model import creff_cpu
from arseg_ros.model.creff import CReFF, warp
from arseg_ros.model.creff_cpu import fused_creff_applies, fused_creff_cpu

pytestmark = pytest.mark.skipif(creff_cpu._local_attention is None, reason="C++ extension not built")


def make_creff(channels: int, window: int, scaled: bool, seed: int) -> CReFF:
    torch.manual_seed(seed)
    creff = CReFF(channels, window, scaled).eval()
    with torch.no_grad():
        for conv in (creff.conv_q, creff.conv_k, creff.conv_v):
            conv.weight.mul_(0.5)
            conv.bias.normal_()
    return creff


def inputs(n: int, c: int, lr: tuple[int, int], key: tuple[int, int], frame: tuple[int, int], motion: float, seed: int):
    gen = torch.Generator().manual_seed(seed)
    lr_feature = torch.randn(n, c, *lr, generator=gen)
    key_feature = torch.randn(n, c, *key, generator=gen)
    displacement = torch.randn(n, 2, *frame, generator=gen) * motion
    return lr_feature, key_feature, displacement


def reference(creff: CReFF, lr_feature, key_feature, displacement) -> torch.Tensor:
    """Compute the composition in float64 (the oracle)."""
    ref = make_creff(creff.channels, creff.attention.window, False, 0).double()
    ref.load_state_dict({k: v.double() for k, v in creff.state_dict().items()})
    ref.attention.scale = creff.attention.scale
    with torch.no_grad():
        return ref(lr_feature.double(), warp(key_feature.double(), displacement.double())).float()


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 2e-5) -> None:
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale)


CASES = [
    # n, c, LR size, keyframe-feature size, frame size, motion (px), window
    (1, 8, (12, 16), (24, 32), (24, 32), 3.0, 7),  # PSPNet18-CamVid: feature at the frame size, LR at half
    (2, 5, (5, 7), (9, 13), (72, 104), 20.0, 5),  # BiSeNet: feature at 1/8, displacement at the frame size
    (1, 16, (10, 10), (10, 10), (10, 10), 1.5, 3),  # LR feature already at the keyframe-feature size
    (1, 3, (1, 1), (17, 40), (17, 40), 60.0, 7),  # most samples outside the keyframe; a 1x1 LR feature
    (1, 64, (9, 70), (18, 140), (18, 140), 4.0, 7),  # several column strips, a partial last tile
]


@pytest.mark.parametrize(("n", "c", "lr", "key", "frame", "motion", "window"), CASES)
@pytest.mark.parametrize("scaled", [False, True])
def test_fused_matches_the_composition(n, c, lr, key, frame, motion, window, scaled):
    creff = make_creff(c, window, scaled, seed=c)
    lr_feature, key_feature, displacement = inputs(n, c, lr, key, frame, motion, seed=window)
    with torch.no_grad():
        out = fused_creff_cpu(creff, lr_feature, key_feature, displacement)
        composed = creff(lr_feature, warp(key_feature, displacement))
    assert out.shape == composed.shape and out.is_contiguous(memory_format=torch.channels_last)
    expected = reference(creff, lr_feature, key_feature, displacement)
    assert_close(out, expected)
    assert_close(composed, expected)


def test_integer_motion_moves_the_keyframe_content():
    """Sampling a keyframe shifted right by 2 px at x + 2 gives the unshifted result, except near the right border.

    The exception covers the pixels within reach of the right border: 2 px leave the keyframe, and the K/V
    convolution and the 3x3 window spread that by 2 more.
    """
    creff = make_creff(4, 3, False, seed=1)
    lr_feature, key_feature, _ = inputs(1, 4, (6, 8), (12, 16), (12, 16), 0.0, seed=2)
    shift = torch.zeros(1, 2, 12, 16)
    shift[:, 0] = 2.0
    with torch.no_grad():
        still = fused_creff_cpu(creff, lr_feature, key_feature, torch.zeros(1, 2, 12, 16))
        moved = fused_creff_cpu(creff, lr_feature, torch.roll(key_feature, 2, dims=3), shift)
    assert_close(moved[..., :-4], still[..., :-4])
    assert not torch.allclose(moved[..., -2:], still[..., -2:])


@pytest.mark.parametrize("simd", ["generic", "avx2", "avx512"])
def test_every_instruction_set_and_thread_count_agrees(simd):
    ext = creff_cpu._local_attention
    if simd not in ext.simd_support():
        pytest.skip(f"{simd} not supported here")
    creff = make_creff(24, 7, False, seed=3)
    lr_feature, key_feature, displacement = inputs(2, 24, (11, 23), (22, 45), (22, 45), 5.0, seed=4)
    expected = reference(creff, lr_feature, key_feature, displacement)
    convs = (creff.conv_q, creff.conv_k, creff.conv_v)
    weights = [t.detach().numpy() for conv in convs for t in (conv.weight, conv.bias)]
    args = (
        lr_feature.permute(0, 2, 3, 1).contiguous().numpy(),
        key_feature.permute(0, 2, 3, 1).contiguous().numpy(),
        displacement.contiguous().numpy(),
        *weights,
        7,
        1.0,
    )
    results = [ext.creff_forward(*args, threads, simd) for threads in (1, 2, 5)]
    for out in results:
        assert_close(torch.from_numpy(out).permute(0, 3, 1, 2), expected)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_warp_and_fuse_dispatch_and_gradients(monkeypatch):
    creff = make_creff(6, 5, False, seed=5)
    lr_feature, key_feature, displacement = inputs(1, 6, (8, 10), (16, 20), (16, 20), 2.0, seed=6)
    calls = []
    monkeypatch.setattr(creff_cpu, "fused_creff_cpu", lambda *a: calls.append(1) or fused_creff_cpu(*a))
    with torch.inference_mode():
        fast = creff.warp_and_fuse(lr_feature, key_feature, displacement)
    assert calls == [1]
    lr_leaf = lr_feature.clone().requires_grad_()
    slow = creff.warp_and_fuse(lr_leaf, key_feature, displacement)
    assert calls == [1], "with autograd on, the differentiable composition runs"
    slow.sum().backward()
    assert lr_leaf.grad is not None and creff.conv_k.weight.grad is not None
    assert_close(fast, slow.detach())
    assert not fused_creff_applies(creff, lr_feature.double(), key_feature, displacement)


def test_bad_inputs_raise():
    creff = make_creff(4, 3, False, seed=7)
    lr_feature, key_feature, displacement = inputs(1, 4, (4, 4), (8, 8), (8, 8), 1.0, seed=8)
    with torch.no_grad():
        with pytest.raises(ValueError, match="LR feature"):
            fused_creff_cpu(creff, lr_feature[:, :3], key_feature, displacement)
        with pytest.raises(ValueError, match="displacement"):
            fused_creff_cpu(creff, lr_feature, key_feature, displacement[:, :1])
    ext = creff_cpu._local_attention
    key = np.zeros((1, 8, 8, 4), np.float32)
    lr = np.zeros((1, 4, 4, 4), np.float32)
    disp = np.zeros((1, 2, 8, 8), np.float32)
    w, b = np.zeros((4, 1, 3, 3), np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="disp must have shape"):
        ext.creff_forward(lr, key, disp[:, :, :4], w, b, w, b, w, b, 3, 1.0, 1)
    with pytest.raises(ValueError, match="float32"):
        ext.creff_forward(lr.astype(np.float64), key, disp, w, b, w, b, w, b, 3, 1.0, 1)
    with pytest.raises(ValueError, match="window"):
        ext.creff_forward(lr, key, disp, w, b, w, b, w, b, 4, 1.0, 1)
    with pytest.raises(ValueError, match="wk"):
        ext.creff_forward(lr, key, disp, w, b, w[:2], b, w, b, 3, 1.0, 1)
