"""Warping and CReFF's local attention."""

import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from arseg_ros.model.creff import CReFF, local_attention_reference, resample_displacement, warp


def constant_displacement(n: int, h: int, w: int, dx: float, dy: float) -> torch.Tensor:
    d = torch.empty(n, 2, h, w)
    d[:, 0] = dx
    d[:, 1] = dy
    return d


@pytest.mark.parametrize(("dx", "dy"), [(3, -2), (0, 0), (-5, 4), (1, 7)])
def test_warp_integer_translation(dx, dy):
    torch.manual_seed(0)
    f = torch.randn(2, 3, 10, 12)
    out = warp(f, constant_displacement(2, 10, 12, dx, dy))
    expected = torch.zeros_like(f)
    for i in range(10):
        for j in range(12):
            si, sj = i + dy, j + dx
            if 0 <= si < 10 and 0 <= sj < 12:
                expected[:, :, i, j] = f[:, :, si, sj]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("dx", "dy"), [(0.25, 0.0), (0.0, -0.5), (1.75, 0.3)])
def test_warp_subpixel_translation_of_a_ramp(dx, dy):
    h, w = 16, 20
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    f = torch.stack([xs, ys])[None]  # channel 0 = x coordinate, channel 1 = y coordinate
    out = warp(f, constant_displacement(1, h, w, dx, dy))
    inner = (slice(3, h - 3), slice(3, w - 3))
    torch.testing.assert_close(out[0, 0][inner], xs[inner] + dx, atol=1e-4, rtol=0)
    torch.testing.assert_close(out[0, 1][inner], ys[inner] + dy, atol=1e-4, rtol=0)


def test_warp_rescales_displacement_to_the_feature_grid():
    torch.manual_seed(0)
    f = torch.randn(1, 4, 9, 12)  # a 1/8 grid of a 72x96 frame
    out = warp(f, constant_displacement(1, 72, 96, 16.0, -8.0))  # 2 cells right, 1 cell up
    torch.testing.assert_close(out[:, :, 1:, :10], f[:, :, :-1, 2:], atol=1e-5, rtol=0)
    assert torch.all(out[:, :, :, 10:] == 0) and torch.all(out[:, :, 0] == 0)


def test_resample_displacement_scales_and_samples_cell_centres():
    d = torch.zeros(1, 2, 8, 8)
    d[:, 0, :, 4:] = 8.0  # right half moves 8 px
    r = resample_displacement(d, (2, 2))
    torch.testing.assert_close(r[0, 0], torch.tensor([[0.0, 2.0], [0.0, 2.0]]))
    assert torch.all(r[0, 1] == 0)


@pytest.mark.parametrize(
    "bad",
    [
        torch.zeros(1, 3, 8, 8),
        torch.zeros(2, 2, 8, 8),
        torch.zeros(1, 2, 8),
        torch.zeros(1, 2, 8, 8, dtype=torch.int64),
    ],
)
def test_warp_rejects_bad_displacement(bad):
    with pytest.raises(ValueError, match=r"\(1, 2, H, W\)"):
        warp(torch.zeros(1, 4, 8, 8), bad)


def naive_unfold_attention(q, k, v, window, scale=1.0):
    n, c, h, w = q.shape
    r = window // 2
    ku = F.unfold(k, window, padding=r).view(n, c, window * window, h, w)
    vu = F.unfold(v, window, padding=r).view(n, c, window * window, h, w)
    attn = torch.softmax(scale * (q.unsqueeze(2) * ku).sum(1), dim=1)
    return (attn.unsqueeze(1) * vu).sum(2)


@pytest.mark.parametrize(
    ("shape", "window"), [((1, 4, 5, 6), 7), ((2, 3, 9, 7), 7), ((1, 8, 11, 13), 3), ((2, 2, 3, 2), 5)]
)
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_memory_efficient_attention_equals_unfold(shape, window, scale):
    torch.manual_seed(1)
    q, k, v = (torch.randn(shape) for _ in range(3))
    got = local_attention_reference(q, k, v, window, scale)
    torch.testing.assert_close(got, naive_unfold_attention(q, k, v, window, scale), atol=1e-5, rtol=1e-5)


def test_out_of_image_positions_have_zero_logit_and_value():
    # A 1x1 image: one real window position (the centre) and 48 outside with logit 0 and value 0.
    q = torch.tensor([0.5, -1.0]).view(1, 2, 1, 1)
    k = torch.tensor([2.0, 0.25]).view(1, 2, 1, 1)
    v = torch.tensor([3.0, -4.0]).view(1, 2, 1, 1)
    logit = 0.5 * 2.0 + (-1.0) * 0.25
    weight = math.exp(logit) / (math.exp(logit) + 48.0)
    torch.testing.assert_close(local_attention_reference(q, k, v, 7), v * weight)


def test_creff_shapes_and_residual():
    torch.manual_seed(0)
    creff = CReFF(16)
    lr = torch.randn(2, 16, 6, 8)
    key = torch.randn(2, 16, 12, 16)
    out = creff(lr, key)
    assert out.shape == (2, 16, 12, 16)
    with torch.no_grad():
        creff.conv_v.weight.zero_()
        creff.conv_v.bias.zero_()
    up = F.interpolate(lr, size=(12, 16), mode="bilinear", align_corners=True)
    torch.testing.assert_close(creff(lr, key), up)


def test_creff_scaled_attention_divides_by_sqrt_c():
    assert CReFF(64).attention.scale == 1.0
    assert CReFF(64, scaled=True).attention.scale == pytest.approx(1 / 8)


def test_creff_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"\(1, 16, h, w\)"):
        CReFF(16)(torch.randn(1, 16, 4, 4), torch.randn(1, 8, 8, 8))


MEMORY_PROBE = """
import json, resource, torch
from arseg_ros.model.creff import CReFF
torch.manual_seed(0)
creff = CReFF(64).eval()
lr = torch.randn(1, 64, 360, 480)
key = torch.randn(1, 64, 720, 960)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.inference_mode():
    out = creff(lr, key)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_mib": (after - before) / 1024, "finite": bool(torch.isfinite(out).all())}))
"""


@pytest.mark.slow
def test_creff_at_960x720_stays_well_under_2gb():
    """PSPNet18-CamVid's CReFF (64 channels at 720x960) without the 49-fold unfolded tensor (~8.7 GB)."""
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE], capture_output=True, text=True, check=True)
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["finite"]
    assert probe["extra_mib"] < 1300, probe
