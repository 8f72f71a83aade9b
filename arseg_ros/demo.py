"""``arseg-demo``: the compute table, then one GOP of a synthetic clip through AR-Seg.

The model has random weights, so the masks show the data path working (keyframe through the HR network, the
other frames through the LR network and CReFF with the clip's exact motion), not segmentation quality.
Writes ``masks.png`` (frames above, colour masks below) and ``timings.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .data.synthetic import panning_clip
from .labels import CAMVID, colorize
from .model import ModelConfig, build_model
from .model.base import normalize
from .model.config import ARCHITECTURES
from .model.flops import format_table, paper_reports

log = logging.getLogger(__name__)


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB -> ``(1, 3, H, W)`` float32 network input."""
    return normalize(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 255.0)


def run_gop(arch: str, width: int, height: int, frames: int, seed: int) -> tuple[list[dict], np.ndarray]:
    """Segment one synthetic GOP; returns per-frame timings and a contact sheet ``(2H, T*W, 3)`` uint8."""
    torch.manual_seed(seed)
    model = build_model(ModelConfig(arch=arch, labels=CAMVID)).eval()
    clip = panning_clip(width, height, frames, velocity=(2.5, 0.5), seed=seed)
    rows, masks = [], []
    key_feature = None
    with torch.inference_mode():
        for t in tqdm(range(frames), desc="frames", unit="frame"):
            frame = to_tensor(clip.frames[t])
            start = time.perf_counter()
            if t == 0:
                logits, key_feature = model.forward_key(frame)
            else:
                displacement = torch.from_numpy(clip.displacement[t])[None]
                logits = model.forward_nonkey(model.downscale(frame), key_feature, displacement)
            labels = logits.argmax(1)[0].to(torch.uint8).numpy()
            rows.append({"frame": t, "kind": "HR" if t == 0 else "LR+CReFF", "ms": 1e3 * (time.perf_counter() - start)})
            masks.append(colorize(labels, CAMVID))
    sheet = np.concatenate([np.concatenate(list(clip.frames), 1), np.concatenate(masks, 1)], 0)
    return rows, sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="arseg-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="bisenet18")
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=12, help="frames in the GOP (the first is the keyframe)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.frames < 1 or args.width < 32 or args.height < 32:
        parser.error("need --frames >= 1 and --width, --height >= 32")

    print("Compute per frame (GMACs), the paper's setups:")
    print(format_table(paper_reports()))
    print()
    rows, sheet = run_gop(args.arch, args.width, args.height, args.frames, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(args.out / "masks.png")
    (args.out / "timings.json").write_text(json.dumps(rows, indent=2))
    print(f"{args.arch} on a {args.width}x{args.height} synthetic GOP of {args.frames} frames (random weights, CPU):")
    for r in rows:
        print(f"  frame {r['frame']:>2}  {r['kind']:<9} {r['ms']:8.1f} ms")
    hr = rows[0]["ms"]
    lr = [r["ms"] for r in rows[1:]]
    if lr:
        print(f"  HR {hr:.1f} ms, LR+CReFF median {np.median(lr):.1f} ms, ratio {hr / np.median(lr):.2f}x")
    print(f"wrote {args.out / 'masks.png'} and {args.out / 'timings.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
