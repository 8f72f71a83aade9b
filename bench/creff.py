"""Time CReFF's local attention: reference vs fused CPU kernel, forward and forward+backward.

Sizes: 64 x 360 x 480 (C x H x W), 64 x 720 x 960 (the reference runs once there: it takes seconds) and
256 x 90 x 120 (1/8 of 960 x 720), window 7, float32, batch 1; plus the HR PSPNet18-CamVid forward at
480 x 360 for the ratio target (attention forward <= 15 % of it). Prints the machine and a markdown table.

    python bench/creff.py --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from machine import cpu_model

from arseg_ros.model import build_network
from arseg_ros.model.attention_kernels import cpu_kernel_available, local_attention_cpu
from arseg_ros.model.creff import local_attention_reference

SIZES = [(64, 360, 480), (64, 720, 960), (256, 90, 120)]
LARGE = 64 * 720 * 960  # at or above this many elements, the reference is timed once without warm-up


def load_average() -> str:
    """Return the 1-minute load average (other processes competing for the cores skew every timing)."""
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            return f.read().split()[0]
    except OSError:
        return "unknown"


def timed(fn: Callable[[], object], repeat: int, warmup: int) -> tuple[float, float]:
    """Median wall time and median process CPU time (all threads) of ``fn()``, in milliseconds.

    Both medians are over ``repeat`` runs after ``warmup`` runs.
    """
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def forward_backward(
    attention: Callable[..., torch.Tensor], q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad: torch.Tensor
) -> Callable[[], None]:
    """Return a closure running forward and backward of ``attention`` (window 7) with respect to q, k and v."""
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]

    def run() -> None:
        for t in leaves:
            t.grad = None
        attention(*leaves, 7, 1.0).backward(grad)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before each measurement")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch (and kernel) threads")
    parser.add_argument("--no-backward", action="store_true", help="time the forward pass only")
    args = parser.parse_args()
    if not cpu_kernel_available():
        raise SystemExit("arseg_ros.model._local_attention is not built: run `pip install -e .` first")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, load average {load_average()}"
    )

    net = build_network("pspnet18_camvid", 12).eval()
    image = torch.randn(1, 3, 360, 480)
    with torch.no_grad():
        hr_ms, _ = timed(lambda: net(image), args.repeat, args.warmup)
    print(f"HR PSPNet18-CamVid forward 480x360: {hr_ms:.1f} ms")

    header = ["C x H x W", "ref fwd ms", "fused fwd ms", "fused fwd CPU ms", "speed-up", "fused GMAC/s"]
    header += ["fused fwd / HR fwd"]
    if not args.no_backward:
        header += ["ref fwd+bwd ms", "fused fwd+bwd ms", "speed-up"]
    rows = []
    for c, h, w in SIZES:
        q, k, v, grad = (torch.randn(1, c, h, w) for _ in range(4))
        large = c * h * w >= LARGE
        ref_repeat, ref_warmup = (1, 0) if large else (args.repeat, 1)
        with torch.no_grad():
            ref_ms, _ = timed(lambda q=q, k=k, v=v: local_attention_reference(q, k, v), ref_repeat, ref_warmup)
            fused_ms, fused_cpu = timed(lambda q=q, k=k, v=v: local_attention_cpu(q, k, v), args.repeat, args.warmup)
        gmacs = 2 * 7 * 7 * c * h * w / (fused_ms * 1e-3) / 1e9
        row = [
            f"{c} x {h} x {w}",
            f"{ref_ms:.1f}",
            f"{fused_ms:.1f}",
            f"{fused_cpu:.1f}",
            f"{ref_ms / fused_ms:.1f}x",
            f"{gmacs:.1f}",
            f"{100 * fused_ms / hr_ms:.1f} %",
        ]
        if not args.no_backward:
            ref_fb, _ = timed(forward_backward(local_attention_reference, q, k, v, grad), ref_repeat, ref_warmup)
            fused_fb, _ = timed(forward_backward(local_attention_cpu, q, k, v, grad), args.repeat, args.warmup)
            row += [f"{ref_fb:.1f}", f"{fused_fb:.1f}", f"{ref_fb / fused_fb:.1f}x"]
        rows.append(row)
        print(" | ".join(row), flush=True)

    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"\nHR PSPNet18-CamVid forward (1 x 3 x 360 x 480): {hr_ms:.1f} ms; attention MACs = 2 * 49 * C * H * W; "
        f"reference at {SIZES[1][0]} x {SIZES[1][1]} x {SIZES[1][2]} timed once; load average now {load_average()}."
    )


if __name__ == "__main__":
    main()
