"""Compute accounting: multiply-accumulates (MACs) of the networks, CReFF and the AR-Seg GOP average.

Convention: one MAC per multiply-add of every convolution (grouped and depthwise included, bias ignored)
and linear layer, plus the local attention's Q.K and A.V products (``2 * window**2 * C * H * W``).
BatchNorm, activations, pooling, interpolation, softmax and grid sampling are not counted. The paper's
"GFLOPs" (counted with a profiler) are MACs in this sense. Counting runs the real modules on PyTorch's
``meta`` device, so it reads the architecture itself and costs no arithmetic.

``arseg-flops`` prints, per architecture and input size: the HR frame, the LR frame at the given scale, CReFF
alone, the AR-Seg average over a GOP of L frames ``(HR + (L - 1) * (LR body + CReFF + shared classifier at
the HR-feature size)) / L``, and the saving against HR on every frame.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook

from ..labels import LABEL_SETS
from .arseg import ARSeg, SharedClassifier
from .config import ARCHITECTURES, build_network
from .creff import CReFF, LocalAttention
from .creff_cpu import composition_only


@dataclass
class MacCount:
    """MACs counted while a ``count_macs`` block ran, split into conv/linear and attention."""

    conv_linear: int = 0
    attention: int = 0

    @property
    def total(self) -> int:
        return self.conv_linear + self.attention


def _conv_linear_macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, SharedClassifier):
        return output.numel() * module.in_channels
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


@contextmanager
def count_macs() -> Iterator[MacCount]:
    """Count the MACs of every module forward run inside the block (all batch elements together).

    CReFF runs as its separate modules meanwhile (``creff_cpu.composition_only``), not as the fused CPU pass.
    """
    count = MacCount()

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        if isinstance(module, LocalAttention):
            count.attention += module.macs(inputs[0].shape)
        elif isinstance(output, torch.Tensor):
            count.conv_linear += _conv_linear_macs(module, output)

    handle = register_module_forward_hook(hook)
    try:
        with composition_only():
            yield count
    finally:
        handle.remove()


@dataclass
class ComputeReport:
    """GMACs (10**9 MACs) per frame of one setup; ``saving`` is ``1 - ar_gmacs / hr_gmacs``."""

    arch: str
    num_classes: int
    width: int
    height: int
    scale: float
    gop: int
    window: int
    hr_gmacs: float
    lr_gmacs: float
    creff_gmacs: float
    nonkey_gmacs: float
    ar_gmacs: float
    saving: float


def compute_report(
    arch: str, num_classes: int, width: int, height: int, scale: float = 0.5, gop: int = 12, window: int = 7
) -> ComputeReport:
    """Count the MACs of one AR-Seg setup on a ``width x height`` input (batch 1)."""
    if gop < 1:
        raise ValueError(f"GOP length must be at least 1, got {gop}")
    with torch.device("meta"):
        hr = build_network(arch, num_classes)
        model = ARSeg(hr, build_network(arch, num_classes), CReFF(hr.feature_channels, window), scale).eval()
        frame = torch.empty(1, 3, height, width)
        displacement = torch.empty(1, 2, height, width)
    with torch.no_grad():
        with count_macs() as hr_count:
            _, key_feature = model.forward_key(frame)
        with count_macs() as lr_count:
            model.forward_constant(frame, scale)
        frame_lr = model.downscale(frame)
        with count_macs() as nonkey_count:
            model.forward_nonkey(frame_lr, key_feature, displacement)
        lr_feature = model.lr.features(frame_lr)
        with count_macs() as creff_count:
            model.creff(lr_feature, key_feature)
    g = 1e-9
    ar = (hr_count.total + (gop - 1) * nonkey_count.total) / gop
    return ComputeReport(
        arch=arch,
        num_classes=num_classes,
        width=width,
        height=height,
        scale=scale,
        gop=gop,
        window=window,
        hr_gmacs=hr_count.total * g,
        lr_gmacs=lr_count.total * g,
        creff_gmacs=creff_count.total * g,
        nonkey_gmacs=nonkey_count.total * g,
        ar_gmacs=ar * g,
        saving=1.0 - ar / hr_count.total,
    )


# The paper's four setups: (architecture, class list, width, height).
PAPER_SETUPS = [
    ("pspnet18_camvid", "camvid", 960, 720),
    ("bisenet18", "camvid", 960, 720),
    ("pspnet18_cityscapes", "cityscapes", 2048, 1024),
    ("bisenet18", "cityscapes", 2048, 1024),
]
DEFAULT_SIZES = {"camvid": (960, 720), "cityscapes": (2048, 1024)}


def paper_reports(scale: float = 0.5, gop: int = 12, window: int = 7) -> list[ComputeReport]:
    """Return the compute reports of ``PAPER_SETUPS``."""
    return [compute_report(a, LABEL_SETS[c].num_classes, w, h, scale, gop, window) for a, c, w, h in PAPER_SETUPS]


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 960x720 (width x height), got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def _parse_classes(text: str) -> int:
    if text in LABEL_SETS:
        return LABEL_SETS[text].num_classes
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"classes must be {sorted(LABEL_SETS)} or a number, got {text!r}") from None
    if n < 2:
        raise argparse.ArgumentTypeError(f"a model needs at least 2 classes, got {n}")
    return n


def format_table(reports: list[ComputeReport]) -> str:
    head = f"{'model':<22}{'K':>4} {'input':>10} {'HR':>8} {'LR':>14} {'CReFF':>7} {'AR avg':>14} {'saving':>7}"
    lines = [head, "-" * len(head)]
    for r in reports:
        lines.append(
            f"{r.arch:<22}{r.num_classes:>4} {f'{r.width}x{r.height}':>10} {r.hr_gmacs:>8.1f} "
            f"{f'{r.lr_gmacs:.1f} @{r.scale:g}x':>14} {r.creff_gmacs:>7.2f} "
            f"{f'{r.ar_gmacs:.1f} (L={r.gop})':>14} {100 * r.saving:>6.1f}%"
        )
    lines.append("GMACs per frame; conv + linear + attention Q.K and A.V (see arseg_ros.model.flops).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="arseg-flops",
        description="Multiply-accumulates of HR, LR, CReFF and the AR-Seg GOP average. "
        "Without --arch: the paper's four setups.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), help="one architecture instead of the paper's setups")
    parser.add_argument("--classes", default="camvid", help="class list name (camvid, cityscapes) or class count")
    parser.add_argument(
        "--size", type=_parse_size, help="input WIDTHxHEIGHT (default: 960x720, 2048x1024 for cityscapes)"
    )
    parser.add_argument("--scale", type=float, default=0.5, help="LR downscale factor, in (0, 1]")
    parser.add_argument("--gop", type=int, default=12, help="GOP length L (one HR frame per GOP)")
    parser.add_argument("--window", type=int, default=7, help="CReFF attention window (odd)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if not 0.0 < args.scale <= 1.0:
        parser.error(f"--scale must be in (0, 1], got {args.scale}")
    if args.gop < 1:
        parser.error(f"--gop must be at least 1, got {args.gop}")
    if args.window < 1 or args.window % 2 == 0:
        parser.error(f"--window must be odd and positive, got {args.window}")

    if args.arch is None and args.size is None:
        reports = paper_reports(args.scale, args.gop, args.window)
    elif args.arch is None:
        parser.error("--size needs --arch")
    else:
        try:
            classes = _parse_classes(args.classes)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
        size = args.size or DEFAULT_SIZES.get(args.classes, DEFAULT_SIZES["camvid"])
        reports = [compute_report(args.arch, classes, *size, args.scale, args.gop, args.window)]
    if args.json:
        print(json.dumps([asdict(r) for r in reports], indent=2))
    else:
        print(format_table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
