"""The segmentation networks: shapes, dilation layouts, auxiliary heads and input checks."""

import math

import pytest
import torch

from arseg_ros.model import build_network
from arseg_ros.model.resnet import ResNet18

ARCHS = ["pspnet18_camvid", "pspnet18_cityscapes", "bisenet18", "bisenet18_small"]
SIZES = [(64, 96), (97, 131), (120, 72)]


def stride8(n: int) -> int:
    """Size after the stem conv, max pool and layer2 (three stride-2 steps with 'same' padding)."""
    return math.ceil(math.ceil(math.ceil(n / 2) / 2) / 2)


def expected_feature_size(arch: str, h: int, w: int) -> tuple[int, int]:
    if arch == "pspnet18_camvid":
        return 8 * stride8(h), 8 * stride8(w)
    return stride8(h), stride8(w)


@pytest.fixture(scope="module")
def networks():
    torch.manual_seed(0)
    return {a: build_network(a, 5).eval() for a in ARCHS}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", SIZES)
def test_output_shapes(networks, arch, size):
    net = networks[arch]
    h, w = size
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        feature = net.features(x)
        logits = net(x)
    assert feature.shape == (2, net.feature_channels, *expected_feature_size(arch, h, w))
    assert logits.shape == (2, 5, h, w)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_equals_classify_of_features(networks, arch):
    net = networks[arch]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        f = net.features(x)
        direct = net.classify(f)
        full = net(x)
    if direct.shape[-2:] == full.shape[-2:]:
        torch.testing.assert_close(direct, full)
    assert net.classify(f).shape[1] == 5


def test_feature_channels_and_strides(networks):
    assert networks["pspnet18_camvid"].features(torch.randn(1, 3, 96, 128)).shape[1:] == (64, 96, 128)
    assert networks["pspnet18_cityscapes"].feature_channels == 512
    assert networks["bisenet18"].feature_channels == 256


@pytest.mark.parametrize(
    ("arch", "aux_shapes"),
    [
        ("pspnet18_camvid", {"presence": (2, 5)}),
        ("pspnet18_cityscapes", {"layer3": (2, 5, 72, 88)}),
        ("bisenet18", {"cp8": (2, 5, 72, 88), "cp16": (2, 5, 72, 88)}),
    ],
)
def test_forward_train_aux_heads(arch, aux_shapes):
    torch.manual_seed(0)
    net = build_network(arch, 5).train()
    out = net.forward_train(torch.randn(2, 3, 72, 88))
    assert out.logits.shape == (2, 5, 72, 88)
    assert {k: tuple(v.shape) for k, v in out.aux.items()} == aux_shapes
    loss = out.logits.mean() + sum(v.mean() for v in out.aux.values())
    loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_resnet18_parameter_count_matches_torchvision_layout():
    # torchvision resnet18 has 11,689,512 parameters, 513,000 of them in its fc classifier.
    for dilation in ("none", "camvid", "cityscapes"):
        n = sum(p.numel() for p in ResNet18(dilation).parameters())
        assert n == 11_689_512 - 513_000


@pytest.mark.parametrize(
    ("dilation", "layer3", "layer4", "stride"),
    [
        ("none", [(1, 1), (1, 1)], [(1, 1), (1, 1)], 32),
        ("camvid", [(1, 1), (2, 2)], [(1, 1), (4, 4)], 8),
        ("cityscapes", [(1, 2), (2, 2)], [(1, 4), (4, 4)], 8),
    ],
)
def test_dilation_layouts(dilation, layer3, layer4, stride):
    net = ResNet18(dilation)
    got3 = [(b.conv1.dilation[0], b.conv2.dilation[0]) for b in net.layer3]
    got4 = [(b.conv1.dilation[0], b.conv2.dilation[0]) for b in net.layer4]
    assert (got3, got4) == (layer3, layer4)
    with torch.no_grad():
        c1, c2, c3, c4 = net(torch.randn(1, 3, 64, 128))
    assert c4.shape[-2:] == (64 // stride, 128 // stride)
    assert (c1.shape[1], c2.shape[1], c3.shape[1], c4.shape[1]) == (64, 128, 256, 512)


def test_unknown_architecture_and_dilation():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_network("resnet999", 5)
    with pytest.raises(ValueError, match="unknown dilation"):
        ResNet18("huge")


@pytest.mark.parametrize(
    "bad",
    [
        torch.randn(1, 4, 64, 64),
        torch.randn(3, 64, 64),
        torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8),
        torch.randn(1, 3, 16, 64),
    ],
)
def test_bad_input_names_expected_shape(networks, bad):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        networks["bisenet18"].features(bad)


def test_bad_feature_for_classify(networks):
    with pytest.raises(ValueError, match=r"\(N, 256, h, w\)"):
        networks["bisenet18"].classify(torch.randn(1, 64, 8, 8))


def test_too_few_classes():
    with pytest.raises(ValueError, match="at least 2"):
        build_network("bisenet18", 1)
