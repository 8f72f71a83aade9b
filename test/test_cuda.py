"""The CUDA paths end to end: the engine under fp16 autocast in channels_last, and both training phases with AMP.

Each test compares against the same computation on the CPU in float32. fp16 changes logits slightly, so label
maps are compared by the share of equal pixels rather than exactly.
"""

import numpy as np
import pytest
import torch
from test_engine import encode
from test_train import write_folder_dataset, write_recipe

from arseg_ros.data.synthetic import panning_clip
from arseg_ros.engine import EngineConfig, StreamSegmenter
from arseg_ros.labels import CAMVID
from arseg_ros.model import ARSeg, ModelConfig, build_model, load_checkpoint
from arseg_ros.train import main as train_main

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available on this machine")

W, H = 320, 240


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="bisenet18", labels=CAMVID)).eval()


@pytest.fixture(scope="module")
def hevc_packets():
    clip = panning_clip(W, H, 14, velocity=(3.0, 1.0), seed=2)
    return encode(clip.frames, codec="hevc", params="keyint=12:bframes=0:ref=1")


def segment(model, packets, device: str, mode: str):
    engine = StreamSegmenter(model, EngineConfig(device=device, mode=mode))
    results = []
    for packet in packets:
        results += engine.process(packet)
    return results + engine.flush(), engine


@pytest.mark.parametrize("mode", ["hr", "ar"])
def test_engine_on_cuda_agrees_with_cpu(model, hevc_packets, mode):
    cpu, _ = segment(model, hevc_packets, "cpu", mode)
    gpu, engine = segment(model, hevc_packets, "cuda", mode)
    assert engine.device.type == "cuda"
    assert next(engine.model.parameters()).is_cuda
    assert [(r.kind, r.distance, r.stamp_ns) for r in gpu] == [(r.kind, r.distance, r.stamp_ns) for r in cpu]
    for a, b in zip(gpu, cpu, strict=True):
        assert a.labels.dtype == np.uint8 and a.labels.shape == (H, W)
        assert np.mean(a.labels == b.labels) > 0.98


def test_cuda_device_request_is_honoured_for_explicit_index(model, hevc_packets):
    results, engine = segment(model, hevc_packets[:2], "cuda:0", "ar")
    assert engine.device == torch.device("cuda", 0) and len(results) == 2


def test_both_training_phases_run_with_amp_on_cuda(tmp_path):
    data = write_folder_dataset(tmp_path / "data")
    recipe = write_recipe(tmp_path / "recipe.yaml", data)
    text = recipe.read_text().replace("device: cpu", "device: cuda")
    assert "device: cuda" in text
    recipe.write_text(text)
    out = tmp_path / "run"
    for phase in ("hr", "ar"):
        assert train_main([phase, "--recipe", str(recipe), "--out", str(out), "--max-iters", "2", "--quiet"]) == 0
    ar, ckpt = load_checkpoint(out / "ar" / "last.pt")
    assert isinstance(ar, ARSeg) and ckpt.metadata["phase"] == "ar"
    assert all(torch.isfinite(p).all() for p in ar.parameters())
    rows = (out / "ar" / "metrics.csv").read_text().splitlines()
    loss = float(rows[1].split(",")[rows[0].split(",").index("train_loss")])
    assert np.isfinite(loss)
