"""arseg-prepare: manifest, resume, parallel = serial, motion, video clips, training and evaluation, bad input.

The motion is the bitstream motion as the engine sees it and the stills' synthesised motion; training (phase 2)
and evaluation run on prepared clips.
"""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from arseg_ros.codec.bitstream_motion import HevcMotionStream
from arseg_ros.codec.packets import Packet
from arseg_ros.data.prepared import Manifest, PreparedClips, PreparedDataError, read_clip, sha256_of
from arseg_ros.data.synthetic import panning_clip
from arseg_ros.engine import EngineConfig, StreamSegmenter
from arseg_ros.evaluate import main as eval_main
from arseg_ros.labels import CAMVID
from arseg_ros.model import ModelConfig, build_model, save_checkpoint
from arseg_ros.model.base import normalize
from arseg_ros.model.creff import CReFF
from arseg_ros.prepare import PrepareConfig, load_config, main, prepare_split
from arseg_ros.train import Trainer, load_recipe

H, W = 64, 96
GAPS = [11, 4]
VELOCITY = (1.5, 0.5)


def write_dataset(root: Path, n: int = 3, sequences: bool = False) -> Path:
    """Write a folder dataset of ``n`` labelled 96x64 frames (named ``f0020``, ``f0040``, ...).

    With ``sequences``, it also holds the 11 frames before each, cut from one panning clip (a known translation of
    ``VELOCITY`` per frame).
    """
    clip = panning_clip(W, H, 20 * n + 1, velocity=VELOCITY, seed=21)
    for sub in ("images", "labels") + (("sequences",) if sequences else ()):
        (root / sub).mkdir(parents=True)
    classes = [{"name": c.name, "color": list(c.color)} for c in CAMVID.classes]
    (root / "classes.yaml").write_text(yaml.safe_dump({"name": "camvid", "classes": classes}))
    for i in range(1, n + 1):
        t = 20 * i
        Image.fromarray(clip.frames[t]).save(root / "images" / f"f{t:04d}.png")
        Image.fromarray(clip.labels[t]).save(root / "labels" / f"f{t:04d}.png")
        for k in range(1, 12) if sequences else ():
            Image.fromarray(clip.frames[t - k]).save(root / "sequences" / f"f{t - k:04d}.png")
    return root


def config(data: Path, out: Path, **changes) -> PrepareConfig:
    values = {"dataset": "folder", "root": str(data), "split": ["train"], "out": str(out), "gap": GAPS}
    return PrepareConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("stills") / "data")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, data) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare_split(config(data, out), "train", progress=False)
    return out / "train"


def test_manifest_lists_every_clip_with_its_settings(prepared):
    manifest = Manifest.read(prepared / "manifest.json")
    assert manifest.complete and manifest.version
    names = sorted(f"f{t:04d}_d{d:02d}" for t in (20, 40, 60) for d in GAPS)
    assert [c.name for c in manifest.clips] == names
    assert sorted(p.name for p in (prepared / "clips").iterdir()) == [f"{n}.zip" for n in names]
    for record in manifest.clips:
        assert sha256_of(prepared / record.file) == record.sha256
        assert record.origin == "still" and (record.width, record.height) == (W, H)
    encoder = manifest.settings["encoder"]
    assert (encoder["keyint"], encoder["bframes"], encoder["bitrate_kbps"], encoder["fps"]) == (12, 0, 3000, 30)
    assert encoder["preset"] == "medium" and encoder["extra"].startswith("rect=1:amp=1")
    clip = read_clip(prepared / manifest.clips[0].file)
    assert clip.key.shape == clip.frame.shape == (H, W, 3) and clip.labels.shape == (H, W)
    assert clip.motion.displacement.shape == (2, H // 4, W // 4) and clip.motion.distance == clip.gap


def assert_same_clip(a: Path, b: Path) -> None:
    """Check that two builds of one clip have the same labels and gap.

    Decoded frames and motion must be equal up to the encoder's run-to-run variation (libx265 does not always give
    the same bits for the same input).
    """
    x, y = read_clip(a), read_clip(b)
    assert x.gap == y.gap
    np.testing.assert_array_equal(x.labels, y.labels)
    np.testing.assert_array_equal(x.key_labels, y.key_labels)
    for u, v in ((x.key, y.key), (x.frame, y.frame)):
        mse = float(np.mean((u.astype(float) - v.astype(float)) ** 2))
        assert mse == 0 or 10 * np.log10(255**2 / mse) > 30
    close = np.abs(x.motion.displacement - y.motion.displacement).max(0) <= 1.0
    assert close.mean() > 0.8


def test_rerun_redoes_only_deleted_or_corrupt_clips(prepared, data, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(prepared, out / "train")
    (out / "train" / "clips" / "f0020_d11.zip").unlink()
    corrupt = out / "train" / "clips" / "f0040_d04.zip"
    corrupt.write_bytes(corrupt.read_bytes()[:-100] + bytes(100))
    untouched = out / "train" / "clips" / "f0060_d11.zip"
    mtime = untouched.stat().st_mtime_ns
    result = prepare_split(config(data, out), "train", progress=False)
    assert (result.built, result.reused) == (2, 4)
    assert untouched.stat().st_mtime_ns == mtime
    for record in Manifest.read(out / "train" / "manifest.json").clips:
        assert sha256_of(out / "train" / record.file) == record.sha256
    for name in ("f0020_d11", "f0040_d04"):
        assert_same_clip(prepared / "clips" / f"{name}.zip", out / "train" / "clips" / f"{name}.zip")


def test_interrupted_run_continues(prepared, data, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(prepared, out / "train")
    manifest = Manifest.read(out / "train" / "manifest.json")
    manifest.clips, manifest.complete = manifest.clips[:2], False  # as a run killed after two clips leaves it
    manifest.write(out / "train" / "manifest.json")
    (out / "train" / "clips" / "f0060_d04.zip.tmp").write_bytes(b"half a clip")
    with pytest.raises(PreparedDataError, match="unfinished preparation"):
        PreparedClips(out / "train")
    result = prepare_split(config(data, out), "train", progress=False)
    assert (result.built, result.reused) == (4, 2)
    assert not list((out / "train" / "clips").glob("*.tmp"))
    assert len(PreparedClips(out / "train")) == 6


def test_stride_keeps_every_nth_image_with_the_clips_of_a_full_run(prepared, data, tmp_path):
    prepare_split(config(data, tmp_path, gap=[11], stride=2), "train", progress=False)
    clips = Manifest.read(tmp_path / "train" / "manifest.json").clips
    assert [c.name for c in clips] == ["f0020_d11", "f0060_d11"]
    for name in ("f0020_d11", "f0060_d11"):
        assert_same_clip(prepared / "clips" / f"{name}.zip", tmp_path / "train" / "clips" / f"{name}.zip")


def test_parallel_gives_the_serial_result(prepared, data, tmp_path):
    prepare_split(config(data, tmp_path, workers=2), "train", progress=False)
    serial = Manifest.read(prepared / "manifest.json")
    parallel = Manifest.read(tmp_path / "train" / "manifest.json")
    assert parallel.complete and parallel.settings == serial.settings
    assert [c.name for c in parallel.clips] == [c.name for c in serial.clips]
    for record in parallel.clips:
        assert_same_clip(prepared / record.file, tmp_path / "train" / record.file)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="bisenet18_small", labels=CAMVID)).eval()


def test_stored_motion_and_frames_are_what_the_engine_uses(prepared, model):
    clip = read_clip(prepared / "clips" / "f0040_d11.zip")
    stream = HevcMotionStream()
    motions = {m.field.poc: m.motion for p in clip.packets for m in stream.feed(p.data)}
    np.testing.assert_array_equal(motions[clip.gap].displacement, clip.motion.displacement)
    np.testing.assert_array_equal(motions[clip.gap].valid, clip.motion.valid)
    engine = StreamSegmenter(model, EngineConfig(mode="ar", device="cpu", keep_images=True))
    results = [r for p in clip.packets for r in engine.process(Packet("hevc", p.data, p.index))] + engine.flush()
    assert [r.kind for r in results] == ["hr"] + ["lr"] * clip.gap
    np.testing.assert_array_equal(results[0].image, clip.key)
    np.testing.assert_array_equal(results[-1].image, clip.frame)
    with torch.inference_mode():
        frame = normalize(torch.from_numpy(clip.frame).permute(2, 0, 1)[None].float() / 255)
        key = normalize(torch.from_numpy(clip.key).permute(2, 0, 1)[None].float() / 255)
        _, feature = model.forward_key(key)
        displacement = torch.from_numpy(clip.displacement())[None]
        expected = model.forward_nonkey(model.downscale(frame), feature, displacement).argmax(1)[0].numpy()
    assert float((results[-1].labels == expected).mean()) > 0.99  # the engine may run a fused copy of the model


def test_stills_clip_motion_carries_the_keyframe_labels_onto_the_frame(prepared):
    bench = load_bench("still_clip_motion")
    for name in ("f0020_d11", "f0060_d04"):
        clip = read_clip(prepared / "clips" / f"{name}.zip")
        warped = bench.warp_labels(clip.key_labels, clip.displacement())
        assert float(((warped != 255) & (clip.labels != 255)).mean()) > 0.6, name
        moved = bench.agreement(clip.key_labels, clip.labels, clip.displacement())
        still = bench.agreement(clip.key_labels, clip.labels, np.zeros_like(clip.displacement()))
        assert moved > 0.85 and 1 - moved < 0.5 * (1 - still), (name, moved, still)


def test_still_clip_motion_bench_compares_the_stored_motion_with_the_exact_camera(prepared):
    bench = load_bench("still_clip_motion")
    clips = PreparedClips(prepared)
    figures = bench.measure(clips, stride=1, border=4)
    assert figures.clips == len(clips)
    assert figures.agreement > figures.agreement_without_motion
    assert figures.epe_median < 1.0 and figures.epe_median <= figures.epe_mean
    record = next(r for r in clips.records if r.gap == 11)
    clip = read_clip(prepared / record.file)
    exact = bench.exact_displacement(clips, record)
    assert exact.shape == clip.displacement().shape
    # the exact motion carries the keyframe labels at least as well as the bitstream's
    assert (
        bench.agreement(clip.key_labels, clip.labels, exact)
        >= bench.agreement(clip.key_labels, clip.labels, clip.displacement()) - 0.02
    )
    # a motion of the wrong sign is far from the exact one
    wrong = np.linalg.norm(-exact - exact, axis=0)[4:-4, 4:-4]
    assert float(np.median(wrong)) > 3 * figures.epe_median
    assert "label agreement" in bench.report(prepared, figures, 1, 4)


def test_video_clips_use_the_real_preceding_frames(tmp_path):
    data = write_dataset(tmp_path / "video", n=2, sequences=True)
    prepare_split(config(data, tmp_path / "out", gap=[11]), "train", progress=False)
    clips = PreparedClips(tmp_path / "out" / "train")
    assert {c.origin for c in clips.records} == {"video"}
    clip = clips.clip(0)
    assert clip.key_labels is None
    inner = clip.motion.displacement[:, 2:-2, 2:-2]
    np.testing.assert_allclose(inner.mean((1, 2)), [11 * v for v in VELOCITY], atol=0.6)
    (data / "sequences" / "f0035.png").unlink()
    with pytest.raises(Exception, match=r"missing frame .*f0035.png"):
        prepare_split(config(data, tmp_path / "out2", gap=[11]), "train", progress=False)


def test_phase2_trains_and_validates_on_prepared_pairs(prepared, data, tmp_path):
    hr_config = ModelConfig(arch="bisenet18", labels=CAMVID, kind="single")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "hr.pt", build_model(hr_config), hr_config)
    phase = {"epochs": 1, "batch_size": 2, "optimizer": "adam", "lr": 0.001, "crop": [H, W], "gap": 11}
    recipe = {
        "dataset": {"kind": "folder", "root": str(data), "prepared": str(prepared.parent), "val_split": "train"},
        "model": {"arch": "bisenet18"},
        "ar": {**phase, "scale_range": [0.8, 1.2], "stage1_epochs": 0},
        "training": {"workers": 0, "device": "cpu"},
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    trainer = Trainer("ar", load_recipe(tmp_path / "recipe.yaml"), tmp_path / "run", hr_checkpoint=tmp_path / "hr.pt")
    trainer.max_iters, trainer.progress = 2, False
    trainer.run()
    assert len(trainer.losses) == 1 and all(np.isfinite(v) for v in trainer.losses[0].values())
    row = (tmp_path / "run" / "ar" / "metrics.csv").read_text().splitlines()[1].split(",")
    assert 0.0 <= float(row[2]) <= 1.0  # validation mIoU through the AR path on the prepared clips


def test_evaluation_on_prepared_clips(prepared, tmp_path, capsys):
    config = ModelConfig(arch="bisenet18_small", labels=CAMVID)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", build_model(config), config)
    argv = ["--prepared", str(prepared), "--model", str(tmp_path / "m.pt"), "--mode", "all", "--quiet"]
    assert eval_main([*argv, "--out", str(tmp_path / "eval"), "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    modes = {m["mode"]: m for m in metrics["modes"]}
    assert set(modes) == {"ar", "hr", "lr"}
    for m in modes.values():
        assert m["labelled_frames"] == m["frames"] == 6 and 0.0 <= m["miou"] <= 1.0
        assert sorted(int(d) for d in m["miou_d"]) == sorted(GAPS)
    assert modes["ar"]["engine"]["lr"] == 6 and modes["ar"]["engine"]["hr"] == 6
    assert modes["hr"]["gmacs_per_frame"] > modes["ar"]["gmacs_per_frame"] > modes["lr"]["gmacs_per_frame"]
    assert "| AR |" in capsys.readouterr().out


def load_bench(name: str):
    """Load a script of ``bench/`` as a module (``bench/`` is not a package)."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_creff_fusion_bench_on_prepared_clips(prepared, model):
    bench = load_bench("creff_fusion")
    clips = PreparedClips(prepared)
    miou, distance, centre, key_scale = bench.measure(model, clips, limit=len(clips))
    assert list(miou) == list(bench.MODES) and all(0.0 <= v <= 100.0 for v in miou.values())
    assert list(distance) == list(bench.DISTANCES) and all(v > 0.0 for v in distance.values())
    assert list(centre) == list(bench.CENTRE_WEIGHTS) and all(0.0 < v < 1.0 for v in centre.values())
    assert list(key_scale) == list(bench.KEY_SCALE)
    assert 0.5 < key_scale["median ratio"] < 2.0 and key_scale["clips above 10x (%)"] == 0.0  # mirrored keyframes
    clip = clips.clip(0)
    with torch.inference_mode():
        frame = normalize(torch.from_numpy(clip.frame).permute(2, 0, 1)[None].float() / 255)
        still = torch.zeros(1, 2, *clip.labels.shape)
        # the frame's own HR feature through the shared classifier is the constant-HR result
        own = bench._classified(model, model.hr.features(frame), still)
        np.testing.assert_array_equal(own, model.forward_constant(frame, 1.0).argmax(1)[0].numpy())
    with pytest.raises(SystemExit, match="at least 2"):
        bench.measure(model, clips, limit=1)


def test_creff_fusion_bench_reads_the_attention_and_the_alignment():
    bench = load_bench("creff_fusion")
    creff = CReFF(32, window=7)
    with torch.no_grad():
        for conv in (creff.conv_q, creff.conv_k):
            conv.weight.zero_()
            conv.weight[:, :, 1, 1] = 1.0  # identity: Q and K are the features themselves
            conv.bias.zero_()
        torch.manual_seed(0)
        feature = 3.0 * torch.randn(1, 32, 9, 12)
        # a random feature matches itself far better than its neighbours: the weight sits on the centre
        assert bench._centre_weight(creff, feature, feature) > 0.9
        # a zero query gives every position of the window (in or out of the image) logit 0: uniform weights
        assert bench._centre_weight(creff, torch.zeros_like(feature), feature) == pytest.approx(1 / 49)
    # one cell off, a random feature of variance 9 is 18 away from itself; a copy shifted by one cell matches
    # exactly in one of the 8 directions
    spread = bench._one_cell_off(feature, feature)
    assert spread == pytest.approx(18.0, rel=0.1)
    assert bench._one_cell_off(torch.roll(feature, 1, dims=-1), feature) == pytest.approx(7 / 8 * spread, rel=0.05)
    assert bench._one_cell_off(torch.ones_like(feature), torch.ones_like(feature)) == 0.0


def test_bad_input_names_the_problem(data, tmp_path, capsys):
    def error(*argv) -> str:
        assert main([*argv, "--quiet"]) == 2
        return capsys.readouterr().err

    out = str(tmp_path / "out")
    missing = error("--dataset", "folder", "--root", str(tmp_path / "nowhere"), "--out", out)
    assert f"dataset folder {tmp_path / 'nowhere'} does not exist" in missing
    (tmp_path / "empty").mkdir()
    assert "missing class file" in error("--dataset", "folder", "--root", str(tmp_path / "empty"), "--out", out)
    broken = write_dataset(tmp_path / "broken", n=2)
    (broken / "labels" / "f0040.png").unlink()
    assert "no label for" in error("--dataset", "folder", "--root", str(broken), "--split", "x", "--out", out)
    (tmp_path / "file").write_text("")
    message = error("--dataset", "folder", "--root", str(data), "--out", str(tmp_path / "file" / "out"))
    assert "cannot write to output folder" in message
    assert "keyint" in error("--dataset", "folder", "--root", str(data), "--out", out, "--gap", "12")
    assert "stride must be >= 1" in error("--dataset", "folder", "--root", str(data), "--out", out, "--stride", "0")
    (tmp_path / "c.yaml").write_text("bitrate_kbps: 5000\n")
    assert "unknown option 'bitrate_kbps'" in error("--config", str(tmp_path / "c.yaml"), "--out", out)
    assert (
        main(["--dataset", "folder", "--root", str(data), "--split", "train", "--out", out, "--limit", "1", "--quiet"])
        == 0
    )
    changed = error("--dataset", "folder", "--root", str(data), "--split", "train", "--out", out, "--bitrate", "500")
    assert "prepared with other settings (encoder differ)" in changed
    with pytest.raises(PreparedDataError, match="no clip with gap 3"):
        PreparedClips(Path(out) / "train", gap=3)


def test_shipped_prepare_configs_hold_the_paper_settings():
    root = Path(__file__).resolve().parents[1] / "config" / "prepare"
    assert sorted(p.name for p in root.glob("*.yaml")) == ["camvid_paper.yaml", "cityscapes_paper.yaml"]
    camvid = PrepareConfig(**load_config(root / "camvid_paper.yaml"))
    cityscapes = PrepareConfig(**load_config(root / "cityscapes_paper.yaml"))
    for c in (camvid, cityscapes):
        assert (c.keyint, c.bframes, c.preset, c.x265_params, c.gap) == (12, 0, "medium", "rect=1:amp=1", [11])
    assert (camvid.bitrate, camvid.fps, cityscapes.bitrate, cityscapes.fps) == (3000, 30, 5000, 17)
