"""Live end to end on DDS, loopback only: publish to mask received, for the demo model on CPU.

    python bench/live.py [--frames 48] [--rates 120 90 60 45 30 20 10] [--domain 91]

``arseg_node --transport dds`` runs as a separate process (default parameters: ``lag_policy: latest``) with the
shipped demo model; this process publishes a procedural 320x240 HEVC stream (GOP 12) as ``CompressedImage`` at
each rate in turn and subscribes to ``~/mask``. Per rate: masks received per frame sent, frames whose inference
was skipped (the node's diagnostics), and latency from publishing a packet to receiving its mask, p50 and p99.
The highest sustained rate is the highest one at which every frame got its mask.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from machine import cpu_model

from arseg_ros.codec.encode import EncoderSettings, encode_frames
from arseg_ros.data.synthetic import driving_clip
from arseg_ros.demo import default_model
from arseg_ros.ros import dds_node as dds
from arseg_ros.ros import dds_types
from arseg_ros.ros.conventions import QosSpec, loopback_environment

TOPIC = "/camera/image_raw/compressed"


@dataclass
class Trial:
    """One rate: ``masks`` of ``frames``, ``skipped`` inference, latencies in ms."""

    rate: float
    frames: int
    masks: int
    skipped: int
    latency_ms: list[float]


def image(data: bytes, stamp_ns: int) -> dds_types.CompressedImage:
    stamp = dds_types.Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return dds_types.CompressedImage(header=dds_types.Header(stamp=stamp, frame_id="camera"), format="h265", data=data)


def skipped(diagnostics: dds.RawReader, last: int) -> int:
    """Return the node's latest ``skipped inference`` count (``last`` when no new diagnostics arrived)."""
    for msg in diagnostics.take(20):
        last = int({kv.key: kv.value for kv in msg.status[0].values}.get("skipped inference", last))
    return last


def trial(rate: float, packets: list, base_ns: int, writer, masks, diagnostics, before: int) -> Trial:
    sent: dict[int, float] = {}
    received: dict[int, float] = {}
    start = time.monotonic()
    for i, data in enumerate(packets):
        due = start + i / rate
        while time.monotonic() < due:
            for msg in masks.take(64):
                received[msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = time.monotonic()
            time.sleep(0.001)
        stamp = base_ns + round(i * 1e9 / 30)
        sent[stamp] = time.monotonic()
        writer.write(image(data, stamp))
    deadline = time.monotonic() + 10 + 2 * len(packets) / rate
    while len(received) < len(sent) and time.monotonic() < deadline:
        masks.wait(0.05)
        for msg in masks.take(64):
            received[msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = time.monotonic()
        if received and time.monotonic() - max(received.values()) > 3:
            break  # nothing new for 3 s: the rest was skipped
    time.sleep(1.5)  # one diagnostics period
    after = skipped(diagnostics, before)
    latency = [1e3 * (received[s] - sent[s]) for s in received if s in sent]
    return Trial(rate, len(sent), len(latency), after - before, latency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--rates", type=float, nargs="+", default=[120, 90, 60, 45, 30, 20, 10])
    parser.add_argument("--domain", type=int, default=91, help="DDS domain of this run (loopback only)")
    args = parser.parse_args()
    env = loopback_environment(args.domain)
    clip = driving_clip(320, 240, args.frames, seed=5)
    packets = [p.data for p in encode_frames(clip.frames, EncoderSettings(codec="hevc", keyint=12, bframes=0))]
    command = [
        sys.executable, "-m", "arseg_ros.ros.node", "--transport", "dds", "--max-seconds", "900", "--ros-args",
        "-p", f"model:={default_model()}", "-p", "input_type:=compressed_image", "-p", "device:=cpu",
        "-r", f"packets:={TOPIC}", "--log-level", "warning",
    ]  # fmt: skip
    node = subprocess.Popen(command, env=env)
    try:
        dp = dds.participant(args.domain, loopback=True)
        writer = dds.Writer(dp, TOPIC, "sensor_msgs/msg/CompressedImage", QosSpec("reliable", 100))
        masks = dds.RawReader(dp, "/arseg_node/mask", "sensor_msgs/msg/Image", QosSpec("reliable", 100))
        diagnostics = dds.RawReader(dp, "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", QosSpec("reliable", 10))
        deadline = time.monotonic() + 120
        while (writer.matched() == 0 or masks.matched() == 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        if writer.matched() == 0:
            raise SystemExit("the node did not come up within 120 s")
        # Warm-up: one GOP, not measured.
        trial(10, packets[:12], 10**12, writer, masks, diagnostics, 0)
        before = skipped(diagnostics, 0)
        load = os.getloadavg()[0]
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {load:.1f}, torch {torch.__version__}")
        print(f"stream: driving 320x240, {len(packets)} frames, HEVC GOP 12; model {default_model().name}, CPU\n")
        print("| input rate (fps) | masks / frames | skipped inference | latency p50 (ms) | latency p99 (ms) |")
        print("|---|---|---|---|---|")
        best = None
        for n, rate in enumerate(args.rates):
            result = trial(rate, packets, (n + 2) * 10**12, writer, masks, diagnostics, before)
            before += result.skipped
            p50, p99 = (np.percentile(result.latency_ms, q) for q in (50, 99)) if result.latency_ms else (0.0, 0.0)
            print(f"| {rate:g} | {result.masks} / {result.frames} | {result.skipped} | {p50:.0f} | {p99:.0f} |")
            if result.masks == result.frames and result.skipped == 0 and best is None:
                best = rate
        print(f"\nhighest sustained rate without skipped frames: {best if best is not None else 'none tried'} fps")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        node.terminate()
        node.wait(30)


if __name__ == "__main__":
    main()
