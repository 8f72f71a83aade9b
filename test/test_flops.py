"""Compute accounting against the paper's table and against PyTorch's own FLOP counter."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from arseg_ros.model import ARSeg, CReFF, build_network
from arseg_ros.model.flops import compute_report, count_macs, main

# (arch, classes, width, height) -> HR, LR 0.5x, CReFF, AR average over GOP 12, saving (None: not given)
PAPER = [
    (("pspnet18_camvid", 12, 960, 720), (308.6, 77.2, 5.5, 101.9, 0.670)),
    (("bisenet18", 12, 960, 720), (39.1, None, None, 12.7, 0.675)),
    (("pspnet18_cityscapes", 19, 2048, 1024), (540.0, None, None, 170.9, 0.684)),
    (("bisenet18", 19, 2048, 1024), (118.3, None, None, 38.1, 0.678)),
]


@pytest.mark.parametrize(("setup", "expected"), PAPER)
def test_compute_table_within_one_percent(setup, expected):
    r = compute_report(*setup)
    got = (r.hr_gmacs, r.lr_gmacs, r.creff_gmacs, r.ar_gmacs, r.saving)
    for g, e in zip(got, expected, strict=True):
        if e is not None:
            assert g == pytest.approx(e, rel=0.01)


def test_resolution_sweep_matches_the_analytic_count():
    # PSPNet18-CamVid AR average at other LR scales (spec section 7.2).
    for scale, expected in [(0.3, 56.7), (0.4, 76.5), (0.6, 133.0), (0.7, 169.7), (0.8, 212.0), (0.9, 260.1)]:
        assert compute_report("pspnet18_camvid", 12, 960, 720, scale).ar_gmacs == pytest.approx(expected, abs=0.1)


def small_model(arch):
    torch.manual_seed(0)
    hr = build_network(arch, 7)
    return ARSeg(hr, build_network(arch, 7), CReFF(hr.feature_channels)).eval()


@pytest.mark.parametrize("arch", ["pspnet18_camvid", "pspnet18_cityscapes", "bisenet18"])
def test_conv_linear_count_agrees_with_torch_flop_counter(arch):
    """Torch's counter reports 2 FLOPs per multiply-accumulate of conv and matmul."""
    model = small_model(arch)
    frame = torch.randn(1, 3, 72, 104)
    with torch.no_grad():
        with count_macs() as ours, FlopCounterMode(display=False) as theirs:
            _, feature = model.forward_key(frame)
        assert ours.attention == 0
        assert theirs.get_total_flops() == 2 * ours.conv_linear
        with count_macs() as ours, FlopCounterMode(display=False) as theirs:
            model.forward_nonkey(model.downscale(frame), feature, torch.zeros(1, 2, 72, 104))
        assert theirs.get_total_flops() == 2 * ours.conv_linear
        c, h, w = feature.shape[1:]
        assert ours.attention == 2 * 49 * c * h * w


def test_aux_linear_layers_are_counted():
    net = build_network("pspnet18_camvid", 7).train()
    with count_macs() as ours, FlopCounterMode(display=False) as theirs:
        net.forward_train(torch.randn(2, 3, 64, 64))
    assert theirs.get_total_flops() == 2 * ours.conv_linear


def test_cli_json_prints_the_paper_table(capsys):
    assert main(["--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["arch"], r["num_classes"], r["width"], r["height"]) for r in rows] == [s for s, _ in PAPER]
    assert rows[0]["ar_gmacs"] == pytest.approx(101.9, rel=0.01)


def test_cli_single_setup_table(capsys):
    assert main(["--arch", "bisenet18", "--classes", "cityscapes", "--scale", "0.7"]) == 0
    out = capsys.readouterr().out
    assert "2048x1024" in out and "@0.7x" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--scale", "0"],
        ["--gop", "0"],
        ["--window", "4"],
        ["--arch", "bisenet18", "--classes", "mars"],
        ["--size", "12"],
    ],
)
def test_cli_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
