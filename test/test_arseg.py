"""The AR-Seg wrapper: branches, shared classifier, gradients and input checks."""

import pytest
import torch

from arseg_ros.labels import CAMVID
from arseg_ros.model import ARSeg, CReFF, ModelConfig, SharedClassifier, build_model, build_network

ARCHS = ["pspnet18_camvid", "pspnet18_cityscapes", "bisenet18"]


def make(arch: str, scale: float = 0.5) -> ARSeg:
    torch.manual_seed(0)
    return build_model(ModelConfig(arch=arch, labels=CAMVID, lr_scale=scale))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(96, 128), (100, 134)])
def test_branch_shapes(arch, size):
    model = make(arch).eval()
    h, w = size
    frame = torch.randn(1, 3, h, w)
    with torch.no_grad():
        logits, feature = model.forward_key(frame)
        frame_lr = model.downscale(frame)
        nonkey = model.forward_nonkey(frame_lr, feature, torch.zeros(1, 2, h, w))
        const = model.forward_constant(frame, 0.5)
    assert frame_lr.shape[-2:] == (round(h / 2), round(w / 2))
    assert logits.shape == nonkey.shape == const.shape == (1, 12, h, w)
    assert feature.shape[1] == model.hr.feature_channels


def test_forward_constant_at_full_scale_is_the_hr_network():
    model = make("bisenet18").eval()
    frame = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_constant(frame, 1.0), model.hr(frame))
        torch.testing.assert_close(model.forward_key(frame)[0], model.hr(frame))


def test_lr_branch_uses_a_frozen_copy_of_the_hr_classifier():
    model = make("bisenet18")
    assert isinstance(model.lr.final_conv, SharedClassifier)
    assert list(model.lr.final_conv.parameters()) == []
    torch.testing.assert_close(model.lr.final_conv.weight, model.hr.final_conv.weight)
    with torch.no_grad():
        model.hr.final_conv.weight.add_(1.0)
    assert not torch.equal(model.lr.final_conv.weight, model.hr.final_conv.weight)
    model.share_classifier()
    torch.testing.assert_close(model.lr.final_conv.weight, model.hr.final_conv.weight)


@pytest.mark.parametrize("arch", ["bisenet18", "pspnet18_cityscapes"])
def test_no_gradient_reaches_the_shared_layer_or_the_hr_network(arch):
    model = make(arch).train()
    frame = torch.randn(2, 3, 64, 96)
    model.hr.eval()
    with torch.no_grad():
        _, key_feature = model.forward_key(frame)
    shared_before = model.lr.final_conv.weight.clone()
    displacement = torch.randn(2, 2, 64, 96)
    logits = model.forward_nonkey(model.downscale(frame), key_feature, displacement)
    labels = torch.randint(0, 12, (2, 64, 96))
    torch.nn.functional.cross_entropy(logits, labels).backward()
    assert all(p.grad is None for p in model.hr.parameters())
    assert all(p.grad is not None for p in model.creff.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.lr.parameters())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    opt.step()
    torch.testing.assert_close(model.lr.final_conv.weight, shared_before)


def test_construction_errors():
    with pytest.raises(ValueError, match="share architecture"):
        ARSeg(build_network("bisenet18", 4), build_network("pspnet18_cityscapes", 4), CReFF(256))
    with pytest.raises(ValueError, match="CReFF has 64 channels"):
        ARSeg(build_network("bisenet18", 4), build_network("bisenet18", 4), CReFF(64))
    with pytest.raises(ValueError, match="lr_scale"):
        ModelConfig(arch="bisenet18", labels=CAMVID, lr_scale=1.5)


def test_nonkey_bad_inputs_name_the_expected_shape():
    model = make("bisenet18").eval()
    frame = torch.randn(1, 3, 64, 96)
    _, feature = model.forward_key(frame)
    frame_lr = model.downscale(frame)
    with pytest.raises(ValueError, match=r"\(1, 2, H, W\)"):
        model.forward_nonkey(frame_lr, feature, torch.zeros(1, 3, 64, 96))
    with pytest.raises(ValueError, match=r"\(1, 256, h, w\)"):
        model.forward_nonkey(frame_lr, feature[:, :100], torch.zeros(1, 2, 64, 96))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model.forward_nonkey(frame_lr[:, :2], feature, torch.zeros(1, 2, 64, 96))


def test_warped_keyframe_feature_drives_the_output():
    """With the LR feature zeroed and CReFF's value path the identity, the output follows the warp."""
    model = make("bisenet18").eval()
    frame = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        _, feature = model.forward_key(frame)
        fused_still = model.fuse(model.downscale(frame), feature, torch.zeros(1, 2, 64, 96))
        fused_moved = model.fuse(model.downscale(frame), feature, torch.full((1, 2, 64, 96), 8.0))
    assert fused_still.shape == feature.shape
    assert not torch.allclose(fused_still, fused_moved)
