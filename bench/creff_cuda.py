"""Time CReFF's local attention on CUDA: the fused Triton kernel against the PyTorch reference, in one run.

Sizes (C x H x W, batch 1, window 7): 64 x 360 x 480, 64 x 720 x 960, 256 x 90 x 120 and 256 x 128 x 256 (1/8 of
960 x 720 and of 2048 x 1024), in float16 and float32; plus the HR PSPNet18-CamVid forward at 480 x 360 under
fp16 autocast in channels_last, for the ratio. Times are CUDA-event medians of ``--repeat`` runs after
``--warmup`` runs; forward+backward uses the Triton forward and the reference's backward.

    python bench/creff_cuda.py [--repeat 50]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from creff import forward_backward

from arseg_ros.model import build_network
from arseg_ros.model.attention_kernels import local_attention_triton
from arseg_ros.model.creff import local_attention_reference

SIZES = [(64, 360, 480), (64, 720, 960), (256, 90, 120), (256, 128, 256)]
DTYPES = [torch.float16, torch.float32]


def cuda_ms(fn: Callable[[], object], repeat: int, warmup: int) -> float:
    """Median time of ``fn()`` on the current CUDA stream, in milliseconds, measured with CUDA events."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/creff_cuda.py needs a CUDA GPU; bench/creff.py times the CPU kernel")
    torch.manual_seed(0)
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")

    net = build_network("pspnet18_camvid", 12).eval().cuda().to(memory_format=torch.channels_last)
    image = torch.randn(1, 3, 360, 480, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
        hr_ms = cuda_ms(lambda: net(image), args.repeat, args.warmup)
    print(f"HR PSPNet18-CamVid forward 480x360, fp16 autocast: {hr_ms:.2f} ms\n")

    header = ["C x H x W", "dtype", "reference fwd ms", "Triton fwd ms", "speed-up", "Triton fwd GB/s"]
    header += ["Triton fwd / HR fwd", "fwd+bwd ms (Triton fwd)", "fwd+bwd ms (reference)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for c, h, w in SIZES:
        for dtype in DTYPES:
            qkv = [torch.randn(1, c, h, w, device="cuda", dtype=dtype) for _ in range(3)]
            with torch.inference_mode():
                ref = cuda_ms(lambda qkv=qkv: local_attention_reference(*qkv), args.repeat, args.warmup)
                fused = cuda_ms(lambda qkv=qkv: local_attention_triton(*qkv), args.repeat, args.warmup)
            moved = 4 * c * h * w * qkv[0].element_size()  # q, k, v read once, output written once
            grad = torch.randn_like(qkv[0])
            fb = cuda_ms(forward_backward(local_attention_triton, *qkv, grad), max(args.repeat // 5, 3), 2)
            fb_ref = cuda_ms(forward_backward(local_attention_reference, *qkv, grad), max(args.repeat // 5, 3), 2)
            row = [
                f"{c} x {h} x {w}",
                str(dtype).removeprefix("torch."),
                f"{ref:.3f}",
                f"{fused:.3f}",
                f"{ref / fused:.1f}x",
                f"{moved / (fused * 1e-3) / 1e9:.0f}",
                f"{100 * fused / hr_ms:.1f} %",
                f"{fb:.2f}",
                f"{fb_ref:.2f}",
            ]
            print("| " + " | ".join(row) + " |", flush=True)
            del qkv
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
