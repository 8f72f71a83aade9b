"""The inference copy of a model: BatchNorm folded into convolutions, channels-last, same outputs."""

import pytest
import torch
from torch import nn

from arseg_ros.labels import CAMVID
from arseg_ros.model import ModelConfig, build_model, warp
from arseg_ros.model.inference import fold_batchnorm, inference_copy


def model_with_statistics(arch: str) -> nn.Module:
    """Build a model whose BatchNorm layers carry non-trivial running statistics and affine parameters.

    Its attention logits are moderate.
    """
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, labels=CAMVID)).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
        # Random features are large: scaled-down queries keep the attention logits moderate, so that float32
        # rounding differences are not amplified by a near-hard softmax (conditioning, not the folding, is then
        # what a comparison would measure).
        model.creff.conv_q.weight.mul_(1e-2)
    return model


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-4) -> None:
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("arch", ["pspnet18_camvid", "bisenet18", "pspnet18_cityscapes"])
def test_inference_copy_computes_what_the_model_computes(arch):
    model = model_with_statistics(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = inference_copy(model, torch.device("cpu"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "the original keeps its BatchNorm"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(p.requires_grad for p in fast.parameters())
    gen = torch.Generator().manual_seed(2)
    frame = torch.randn(1, 3, 64, 96, generator=gen)
    displacement = torch.randn(1, 2, 64, 96, generator=gen) * 3
    with torch.no_grad():
        logits, feature = model.forward_key(frame)
        lr_feature = model.lr.features(model.downscale(frame))
        expected = model.lr.classify(model.creff(lr_feature, warp(feature, displacement)))
    with torch.inference_mode():
        fast_logits, fast_feature = fast.forward_key(frame.contiguous(memory_format=torch.channels_last))
        fused = fast.fuse(fast.downscale(frame), feature, displacement)
        fast_nonkey = fast.lr.classify(fused)
    assert_close(fast_logits, logits)
    assert_close(fast_feature, feature)
    assert_close(fast_nonkey, expected)


def test_fold_batchnorm_counts_pairs_and_needs_eval_mode():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(net)
    net.eval()
    net[1].running_mean.fill_(0.3)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = net(x)
        assert fold_batchnorm(net) == 2
        assert_close(net(x), expected, 1e-5)
    assert isinstance(net[1], nn.Identity) and isinstance(net[4], nn.Identity)
