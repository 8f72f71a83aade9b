"""Rendering speed of the procedural driving clip (``arseg_ros.data.synthetic.driving_clip``).

    python bench/synthetic_speed.py [--frames 12] [--repeat 3]

Renders a ``--frames`` clip at 480 x 360 and at 960 x 720 (default ego-motion and traffic) ``--repeat`` times
and prints the median milliseconds per frame, whole clip included (scene generation, rendering, motion ground
truth), as wall time and as CPU time of this process. numpy runs on one core; the CPU time is the figure to
compare with the 50 ms per 480 x 360 frame target when the machine is shared.
"""

from __future__ import annotations

import argparse
import statistics
import time

from machine import cpu_model

from arseg_ros.data.synthetic import driving_clip

SIZES = [(480, 360), (960, 720)]


def per_frame_ms(width: int, height: int, frames: int, repeat: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds per frame of ``driving_clip(width, height, frames)``."""
    driving_clip(width, height, 2)
    wall, cpu = [], []
    for seed in range(repeat):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        driving_clip(width, height, frames, seed=seed)
        wall.append((time.perf_counter() - start_wall) / frames)
        cpu.append((time.process_time() - start_cpu) / frames)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{cpu_model()}; {args.frames}-frame clips, median of {args.repeat}")
    print("| size | wall ms/frame | CPU ms/frame |")
    print("|---|---|---|")
    for width, height in SIZES:
        wall, cpu = per_frame_ms(width, height, args.frames, args.repeat)
        print(f"| {width}x{height} | {wall:.1f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
