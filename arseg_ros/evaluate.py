"""``arseg-eval``: replay a rosbag, or prepared clips, through the engine and measure accuracy, compute and speed.

    arseg-eval --bag B --topic T --labels-topic L --model M [--mode ar|hr|lr|all] [--out DIR] [--write-bag OUT]
    arseg-eval --prepared PREPARED/SPLIT --model M [--mode ar|hr|lr|all] [--out DIR]

Every video message goes through the same ``StreamSegmenter`` as the ROS node. Per mode it reports mIoU and
per-class IoU over the frames that have a label image with the same stamp, mIoU_d for every distance d to the
keyframe (pictures since the last keyframe in presentation order), GMACs per frame from the frames that really
ran at HR and at LR, frames per second, and latency percentiles per stage. ``--mode all`` runs AR-Seg and both
constant-resolution baselines and compares them. Writes ``metrics.json``, ``report.md`` and plots (mIoU against
d, per-class IoU, latency histogram, mIoU against GMACs) to ``--out``; ``--video`` a colour-mask video of the first
mode; ``--write-bag`` a new bag with the input topics plus ``/arseg/mask`` and ``/arseg/color_mask``.

``--prepared`` takes a split folder of ``arseg-prepare`` instead of a bag: each clip's HEVC stream (keyframe to
labelled frame) is replayed through the engine, and only the labelled frame counts (the pictures between are
decoded and their motion accumulated, but their inference is skipped, so frames, GMACs and latency are those of
the labelled frames: AR-Seg's LR + CReFF at d > 0, the HR network at d = 0; in AR mode the keyframes' HR runs
are counted in the engine's HR frames). FPS there is labelled frames per second of the whole replay.

The constant-LR mode runs the AR-Seg model's LR network without CReFF, or with ``--lr-model`` a network trained
on its own at the LR scale (``arseg-train lr``), the baseline the paper compares against. ``--mode hr`` also takes
a phase-1 checkpoint (a single HR network, ``arseg-train hr``) as ``--model``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .codec.packets import Packet, PacketError
from .data.bags import BagError, BagWriter, packets_from_bag, read_images
from .data.datasets import DatasetError
from .data.prepared import PreparedClips
from .engine import EngineConfig, SegResult, StreamSegmenter
from .labels import LabelSet, colorize
from .metrics import ConfusionMatrix
from .model import ARSeg, CheckpointError, ModelConfig, load_arseg, load_checkpoint
from .model.flops import compute_report

log = logging.getLogger(__name__)
MODES = ("ar", "hr", "lr")
STAGES = ("decode", "motion", "accumulation", "inference", "total")


class EvaluationError(ValueError):
    """Labels that do not fit the video (no matching stamps, other sizes)."""


@dataclass
class ModeResult:
    """Accumulated measurements of one mode."""

    mode: str
    labels: LabelSet
    confusion: ConfusionMatrix
    by_distance: dict[int, ConfusionMatrix] = field(default_factory=dict)
    gmacs: list[float] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    frames: int = 0
    unlabelled: int = 0
    seconds: float = 0.0

    def add(self, r: SegResult, truth: np.ndarray | None, gmacs: float) -> None:
        """Count one segmented picture; with its ``truth`` label map, also its confusion (overall and at its d)."""
        self.frames += 1
        self.timings.append(r.timings)
        self.gmacs.append(gmacs)
        if truth is None:
            self.unlabelled += 1
            return
        if truth.shape != r.labels.shape:
            raise EvaluationError(
                f"label image at stamp {r.stamp_ns} is {truth.shape[::-1]}, the video {r.labels.shape[::-1]}"
            )
        self.confusion.update(truth, r.labels)
        self.by_distance.setdefault(r.gop_distance, ConfusionMatrix(self.labels.num_classes)).update(truth, r.labels)

    def summary(self) -> dict:
        per_class = self.confusion.iou()
        latency = {
            stage: {f"p{q}": float(np.percentile([t.get(stage, 0.0) for t in self.timings], q)) for q in (50, 95, 99)}
            for stage in STAGES
            if self.timings
        }
        return {
            "mode": self.mode,
            "frames": self.frames,
            "labelled_frames": self.frames - self.unlabelled,
            "miou": self.confusion.miou(),
            "pixel_accuracy": self.confusion.pixel_accuracy(),
            "per_class_iou": {
                c: (None if np.isnan(v) else float(v)) for c, v in zip(self.labels.names, per_class, strict=True)
            },
            "miou_d": {int(d): cm.miou() for d, cm in sorted(self.by_distance.items())},
            "miou_mean_d": _mean_over_distances(self.by_distance),
            "gmacs_per_frame": float(np.mean(self.gmacs)) if self.gmacs else float("nan"),
            "fps": self.frames / self.seconds if self.seconds > 0 else float("nan"),
            "latency_ms": latency,
            "engine": dict(self.counts),
        }


def _mean_over_distances(by_distance: dict[int, ConfusionMatrix]) -> float:
    """Return the plain mean of mIoU_d over the distances seen (the paper's reported mIoU, over d = 0..11)."""
    values = [cm.miou() for cm in by_distance.values()]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def _gmacs(model: ARSeg, arch: str, width: int, height: int) -> dict[str, float]:
    report = compute_report(arch, model.num_classes, width, height, model.lr_scale, window=model.creff.attention.window)
    return {"hr": report.hr_gmacs, "ar_lr": report.nonkey_gmacs, "lr": report.lr_gmacs}


def _frame_gmacs(cost: dict[str, float], mode: str, kind: str) -> float:
    return cost["hr"] if kind == "hr" else cost["ar_lr"] if mode == "ar" else cost["lr"]


def run_prepared_mode(
    args: argparse.Namespace, mode: str, model: ARSeg, arch: str, labels: LabelSet, clips: PreparedClips
) -> ModeResult:
    """Replay the prepared clips one after the other through one engine in one mode.

    Each clip starts with its own IRAP keyframe; only each clip's labelled frame counts. Packets are stamped
    ``clip << 16 | picture``.
    """
    result = ModeResult(mode, labels, ConfusionMatrix(labels.num_classes))
    engine = StreamSegmenter(model, EngineConfig(mode=mode, device=args.device, lag_policy="latest"))
    targets: dict[int, tuple[np.ndarray, str]] = {}
    costs: dict[tuple[int, int], dict[str, float]] = {}

    def consume(items: list[SegResult]) -> None:
        for r in items:
            target = targets.pop(r.stamp_ns, None)
            if target is None or r.labels is None:
                continue
            h, w = r.labels.shape
            cost = costs.setdefault((w, h), _gmacs(model, arch, w, h))
            result.add(r, target[0], _frame_gmacs(cost, mode, r.kind))

    count = min(args.max_frames or len(clips), len(clips))
    start = time.perf_counter()
    for i in tqdm(range(count), desc=f"{mode} mode", unit="clip", disable=args.quiet):
        clip = clips.clip(i)
        targets[i << 16 | clip.gap] = (clip.labels, clips.records[i].file)
        for p in clip.packets:
            packet = Packet("hevc", p.data, stamp_ns=i << 16 | p.index, frame_id=clips.records[i].name, key_hint=p.key)
            consume(engine.process(packet, stale=p.index != clip.gap))
    consume(engine.flush())
    result.seconds = time.perf_counter() - start
    result.counts = dict(engine.stats)
    if targets:
        missing = next(iter(targets.values()))[1]
        raise EvaluationError(f"the engine gave no label map for the labelled frame of {missing}")
    return result


def run_mode(args: argparse.Namespace, mode: str, model: ARSeg, arch: str, labels: LabelSet, truth: dict, sink=None):
    """Replay the bag in one mode; ``sink(result)`` sees every result (for videos and bags)."""
    engine = StreamSegmenter(model, EngineConfig(mode=mode, device=args.device, keep_images=sink is not None))
    result = ModeResult(mode, labels, ConfusionMatrix(labels.num_classes))
    cost: dict[str, float] | None = None

    def full() -> bool:
        return bool(args.max_frames) and result.frames >= args.max_frames

    def consume(items: list[SegResult]) -> None:
        nonlocal cost
        for r in items:
            if full():
                return
            if r.labels is None:
                continue
            if cost is None:
                cost = _gmacs(model, arch, r.labels.shape[1], r.labels.shape[0])
            result.add(r, truth.get(r.stamp_ns), _frame_gmacs(cost, mode, r.kind))
            if sink is not None:
                sink(r)

    start = time.perf_counter()
    for packet in tqdm(packets_from_bag(args.bag, args.topic), desc=f"{mode} mode", unit="frame", disable=args.quiet):
        consume(engine.process(packet))
        if full():
            break
    if not full():
        consume(engine.flush())
    result.seconds = time.perf_counter() - start
    result.counts = dict(engine.stats)
    if truth and result.frames and result.unlabelled == result.frames:
        raise EvaluationError(
            f"no frame of {args.topic} has a label image with the same stamp on {args.labels_topic} "
            f"(first label stamp {min(truth)})"
        )
    return result


def _plots(out: Path, summaries: list[dict], labels: LabelSet, results: list[ModeResult]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in summaries:
        d = sorted(s["miou_d"])
        ax.plot(d, [100 * s["miou_d"][k] for k in d], marker="o", label=s["mode"].upper())
    ax.set(xlabel="distance to keyframe d", ylabel="mIoU_d (%)", title="mIoU by distance to the keyframe")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "miou_vs_d.png", dpi=120)
    names.append("miou_vs_d.png")
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(summaries)
    for i, s in enumerate(summaries):
        values = [100 * (s["per_class_iou"][c] or 0.0) for c in labels.names]
        ax.bar(np.arange(len(labels.names)) + i * width, values, width, label=s["mode"].upper())
    ax.set_xticks(
        np.arange(len(labels.names)) + width * (len(summaries) - 1) / 2, labels.names, rotation=45, ha="right"
    )
    ax.set(ylabel="IoU (%)", title="Per-class IoU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "per_class_iou.png", dpi=120)
    names.append("per_class_iou.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        ax.hist([t["total"] for t in r.timings], bins=30, alpha=0.6, label=r.mode.upper())
    ax.set(xlabel="latency per frame (ms)", ylabel="frames", title="Latency (decode to labels)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency_hist.png", dpi=120)
    names.append("latency_hist.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in summaries:
        ax.scatter(s["gmacs_per_frame"], 100 * s["miou"], s=60, label=s["mode"].upper())
    ax.set(xlabel="GMACs per frame", ylabel="mIoU (%)", title="Accuracy against compute")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "miou_vs_gmacs.png", dpi=120)
    names.append("miou_vs_gmacs.png")
    plt.close("all")
    return names


def report_table(summaries: list[dict]) -> str:
    """Return a markdown table comparing the modes."""
    lines = [
        "| mode | mIoU (%) | mean of mIoU_d (%) | GMACs/frame | FPS | latency p50 / p95 / p99 (ms) | HR / LR frames |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lat = s["latency_ms"].get("total", {})
        counts = s["engine"]
        lines.append(
            f"| {s['mode'].upper()} | {100 * s['miou']:.2f} | {100 * s['miou_mean_d']:.2f} | "
            f"{s['gmacs_per_frame']:.2f} | {s['fps']:.1f} | "
            f"{lat.get('p50', 0):.0f} / {lat.get('p95', 0):.0f} / {lat.get('p99', 0):.0f} | "
            f"{counts.get('hr', 0)} / {counts.get('lr', 0)} |"
        )
    return "\n".join(lines)


def _write_report(out: Path, summaries: list[dict], plots: list[str], args: argparse.Namespace, arch: str) -> None:
    if args.prepared:
        title = f"# arseg-eval: prepared clips {args.prepared}"
        source = "labels of the clips' labelled frames"
    else:
        title = f"# arseg-eval: {Path(args.bag).name}, topic {args.topic}"
        source = f"labels {args.labels_topic}"
    lines = [
        title,
        "",
        f"Model {args.model} ({arch}); {source}. Constant LR: {_lr_network(args)}.",
        "",
        report_table(summaries),
        "",
        "mIoU_d (%), d = frames since the keyframe:",
        "",
    ]
    ds = sorted({d for s in summaries for d in s["miou_d"]})
    lines.append("| mode | " + " | ".join(f"d={d}" for d in ds) + " |")
    lines.append("|---" * (len(ds) + 1) + "|")
    for s in summaries:
        lines.append(
            f"| {s['mode'].upper()} | " + " | ".join(f"{100 * s['miou_d'].get(d, float('nan')):.2f}" for d in ds) + " |"
        )
    lines += ["", *[f"![{p}]({p})" for p in plots], ""]
    (out / "report.md").write_text("\n".join(lines))


def _lr_network(args: argparse.Namespace) -> str:
    """Return what the constant-LR mode runs: the ``--lr-model`` path, or the AR-Seg model's own LR branch."""
    return args.lr_model or "the LR branch of the AR-Seg model, without CReFF"


def with_lr_network(model: ARSeg, config: ModelConfig, path: str) -> ARSeg:
    """Return a copy of ``model`` whose LR branch is the separately trained constant-LR network at ``path``.

    ``path`` holds a single network of the same architecture and classes, trained by ``arseg-train lr`` at the
    model's LR scale.
    """
    single, ckpt = load_checkpoint(path, device="cpu")
    if isinstance(single, ARSeg) or ckpt.config.arch != config.arch or ckpt.config.labels.names != config.labels.names:
        raise CheckpointError(f"--lr-model {path} must be a single {config.arch} network for the model's classes")
    if abs(ckpt.input_scale - model.lr_scale) > 1e-6:
        raise CheckpointError(
            f"--lr-model {path} was trained at input scale {ckpt.input_scale:g}, the model runs LR at "
            f"{model.lr_scale}; train it with arseg-train lr and the model's lr_scale"
        )
    baseline = copy.deepcopy(model)
    baseline.lr.load_state_dict(single.state_dict(), strict=True)
    return baseline


def evaluate(args: argparse.Namespace) -> list[dict]:
    model, ckpt = load_arseg(args.model, accept_hr_network=args.mode == "hr")
    labels = ckpt.config.labels
    modes = MODES if args.mode == "all" else (args.mode,)
    models = dict.fromkeys(modes, model)
    if args.lr_model and "lr" in modes:
        models["lr"] = with_lr_network(model, ckpt.config, args.lr_model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.prepared:
        clips = PreparedClips(args.prepared)
        if clips.label_set.names != labels.names:
            raise EvaluationError(f"{args.prepared} has classes {clips.label_set.names}, the model {labels.names}")
        results = [run_prepared_mode(args, mode, models[mode], ckpt.config.arch, labels, clips) for mode in modes]
        return _finish(out, results, labels, args, ckpt.config.arch, plots=True)
    truth = read_images(args.bag, args.labels_topic) if args.labels_topic else {}
    results = []
    for mode in modes:
        sinks = []
        if args.video and mode == modes[0]:
            from .segment import Sink

            video = Sink(Path(args.video), labels, blend=False)
            sinks.append(video.write)
        bag = None
        if args.write_bag and mode == modes[0]:
            bag = BagWriter(args.write_bag, storage=args.storage)
            bag.copy_topics(args.bag, [t for t in (args.topic, args.labels_topic) if t])
            sinks.append(lambda r, b=bag: _write_masks(b, r, labels))
        try:
            results.append(run_mode(args, mode, models[mode], ckpt.config.arch, labels, truth, _fan_out(sinks)))
        finally:
            if sinks and args.video and mode == modes[0]:
                video.close()
            if bag is not None:
                bag.close()
    return _finish(out, results, labels, args, ckpt.config.arch, plots=bool(truth))


def _finish(
    out: Path, results: list[ModeResult], labels: LabelSet, args: argparse.Namespace, arch: str, plots: bool
) -> list[dict]:
    """Write ``metrics.json``, the plots and ``report.md``; returns the per-mode summaries."""
    summaries = [r.summary() for r in results]
    names = _plots(out, summaries, labels, results) if plots else []
    source = {"prepared": str(args.prepared)} if args.prepared else {"bag": str(args.bag)}
    metrics = {**source, "lr_network": _lr_network(args), "modes": summaries}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _write_report(out, summaries, names, args, arch)
    return summaries


def _fan_out(sinks: list):
    if not sinks:
        return None

    def call(result: SegResult) -> None:
        for s in sinks:
            s(result)

    return call


def _write_masks(bag: BagWriter, result: SegResult, labels: LabelSet) -> None:
    bag.write_image("/arseg/mask", result.labels, "mono8", result.stamp_ns, result.frame_id)
    bag.write_image("/arseg/color_mask", colorize(result.labels, labels), "rgb8", result.stamp_ns, result.frame_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="arseg-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bag", help="rosbag2 bag (folder, .db3 or .mcap)")
    source.add_argument("--prepared", help="a split folder of arseg-prepare (holding manifest.json) instead of a bag")
    parser.add_argument("--topic", help="video topic of --bag (CompressedImage, FFMPEGPacket, CompressedVideo)")
    parser.add_argument("--labels-topic", help="sensor_msgs/Image mono8 labels with the video's stamps")
    parser.add_argument("--model", required=True, help="AR-Seg checkpoint (with --mode hr also a phase-1 HR network)")
    parser.add_argument("--mode", choices=[*MODES, "all"], default="ar")
    parser.add_argument("--lr-model", help="constant-LR mode: a network trained at the LR scale (arseg-train lr)")
    parser.add_argument("--out", default="eval_out", help="folder for metrics.json, report.md and plots")
    parser.add_argument("--video", help="write a colour-mask video (.mp4) of the first mode")
    parser.add_argument("--write-bag", help="write the masks and colour masks of the first mode to this new bag")
    parser.add_argument("--storage", choices=["sqlite3", "mcap"], default="sqlite3", help="storage of --write-bag")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-frames", type=int, default=0, help="bag: stop after this many frames; prepared: clips")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.bag and not args.topic:
        parser.error("--bag needs --topic")
    if args.prepared and (args.video or args.write_bag or args.labels_topic):
        parser.error("--video, --write-bag and --labels-topic go with --bag, not --prepared")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        summaries = evaluate(args)
    except (BagError, PacketError, CheckpointError, EvaluationError, DatasetError, ValueError) as exc:
        print(f"arseg-eval: error: {exc}", file=sys.stderr)
        return 2
    print(report_table(summaries))
    print(f"wrote {Path(args.out) / 'report.md'} and {Path(args.out) / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
