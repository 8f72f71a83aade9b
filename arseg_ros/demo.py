"""``arseg-demo``: the out-of-the-box demonstration.

1. Prints the compute table of the paper's four setups.
2. Makes the demo bag if it is not there yet: a procedural street clip (deterministic), encoded at camera rate
   with a 12-frame GOP, as a rosbag2 bag with a video topic and a label topic.
3. Replays the bag through ``arseg-eval --mode all`` with the demo model shipped in ``models/``: AR-Seg against
   the constant high- and low-resolution baselines. Prints the comparison and writes ``report.md``,
   ``metrics.json``, the plots and a colour-mask video of the AR run to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .bagtool import main as bag_main
from .evaluate import main as eval_main
from .model.flops import format_table, paper_reports

log = logging.getLogger(__name__)

MODELS = Path(__file__).resolve().parent.parent / "models"
DEMO_MODEL = "arseg_demo_bisenet18_small.pt"
VIDEO_TOPIC = "/camera/image_raw/compressed"
LABELS_TOPIC = "/camera/labels"


def default_model() -> Path:
    """Return the shipped demo checkpoint: ``models/`` of the source tree, else the installed ROS share folder."""
    candidates = [MODELS / DEMO_MODEL, Path(sys.prefix) / "share" / "arseg_ros" / "models" / DEMO_MODEL]
    return next((p for p in candidates if p.is_file()), candidates[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="arseg-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--model", type=Path, default=None, help="AR-Seg checkpoint (default: the shipped demo model)")
    parser.add_argument("--frames", type=int, default=48, help="frames in the demo clip")
    parser.add_argument("--size", default="320x240", help="demo clip WIDTHxHEIGHT")
    parser.add_argument("--codec", choices=["h264", "hevc"], default="hevc", help="codec of the demo bag")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    model = args.model or default_model()
    if not model.is_file():
        print(f"arseg-demo: error: no demo model at {model}; pass --model", file=sys.stderr)
        return 2

    print("Compute per frame (GMACs), the paper's setups:")
    print(format_table(paper_reports()))
    print()
    bag = args.out / f"bag_{args.codec}_{args.size}_{args.frames}"
    if not bag.exists():
        args.out.mkdir(parents=True, exist_ok=True)
        make = ["make", str(bag), "--synthetic", "--frames", str(args.frames), "--size", args.size]
        make += ["--codec", args.codec, "--topic", VIDEO_TOPIC, "--labels-topic", LABELS_TOPIC, "--keyint", "12"]
        if bag_main(make) != 0:
            return 2
    print(f"AR-Seg against constant-resolution baselines on {bag} ({model.name}):")
    return eval_main(
        [
            "--bag", str(bag), "--topic", VIDEO_TOPIC, "--labels-topic", LABELS_TOPIC, "--model", str(model),
            "--mode", "all", "--out", str(args.out), "--video", str(args.out / "masks_ar.mp4"), "--device", args.device,
        ]
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
