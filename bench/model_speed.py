"""Per-frame latency of the HR branch against the LR branch with CReFF, on CPU and on CUDA where present.

    python bench/model_speed.py [--arch pspnet18_camvid bisenet18] [--size 960x720] [--repeat 5]

Random weights (speed does not depend on them), batch 1, ``torch.inference_mode``, on the engine's inference
copy of the model (BatchNorm folded, channels-last, for HR and LR alike). On CUDA the networks run under fp16
autocast. Prints a markdown table with the median of ``--repeat`` runs after one warm-up, the LR-path breakdown
(LR network; warp + CReFF, one fused pass on CPU), the measured HR / LR+CReFF ratio and the ratio of
multiply-accumulates that the compute count predicts.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
from machine import cpu_model

from arseg_ros.labels import CAMVID
from arseg_ros.model import ModelConfig, build_model
from arseg_ros.model.flops import compute_report
from arseg_ros.model.inference import inference_copy


def machine() -> str:
    desc = f"{cpu_model()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    if torch.cuda.is_available():
        desc += f"; GPU {torch.cuda.get_device_name()}"
    return desc


def timed(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def bench(arch: str, width: int, height: int, scale: float, device: torch.device, repeat: int) -> dict:
    torch.manual_seed(0)
    model = inference_copy(build_model(ModelConfig(arch=arch, labels=CAMVID, lr_scale=scale)), device)
    frame = torch.randn(1, 3, height, width, device=device).contiguous(memory_format=torch.channels_last)
    displacement = torch.randn(1, 2, height, width, device=device) * 4
    cuda = device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.float16) if cuda else nullcontext()
    with torch.inference_mode(), autocast:
        _, key_feature = model.forward_key(frame)
        frame_lr = model.downscale(frame)
        lr_feature = model.lr.features(frame_lr)
        row = {
            "hr": timed(lambda: model.forward_key(frame), device, repeat),
            "lr_net": timed(lambda: model.lr.features(frame_lr), device, repeat),
            "creff": timed(lambda: model.creff.warp_and_fuse(lr_feature, key_feature, displacement), device, repeat),
            "nonkey": timed(
                lambda: model.forward_nonkey(model.downscale(frame), key_feature, displacement), device, repeat
            ),
        }
    report = compute_report(arch, CAMVID.num_classes, width, height, scale)
    row["mac_ratio"] = report.hr_gmacs / report.nonkey_gmacs
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=["pspnet18_camvid", "bisenet18"])
    parser.add_argument("--size", default="960x720", help="WIDTHxHEIGHT")
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all", help="all: CPU, and CUDA if present")
    args = parser.parse_args()
    cuda = [torch.device("cuda")] if torch.cuda.is_available() else []
    devices = {"all": [torch.device("cpu"), *cuda], "cpu": [torch.device("cpu")], "cuda": cuda}[args.device]
    if not devices:
        raise SystemExit("--device cuda: CUDA is not available on this machine")
    width, height = (int(v) for v in args.size.split("x"))

    print(f"machine: {machine()}")
    print(f"input {width}x{height}, LR scale {args.scale}, median of {args.repeat} runs, batch 1\n")
    print("| model | device | HR ms | LR net ms | warp + CReFF ms | LR+CReFF ms | HR / LR+CReFF | MAC ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in args.arch:
        for device in devices:
            r = bench(arch, width, height, args.scale, device, args.repeat)
            print(
                f"| {arch} | {device.type} | {r['hr']:.1f} | {r['lr_net']:.1f} | {r['creff']:.1f} "
                f"| {r['nonkey']:.1f} | {r['hr'] / r['nonkey']:.2f}x | {r['mac_ratio']:.2f}x |"
            )


if __name__ == "__main__":
    main()
