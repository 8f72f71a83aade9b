"""Training: recipes, datasets, augmentation consistency, FST gradients and both phases end to end."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from arseg_ros.data.datasets import CamVidSegNet, DatasetError, ImageFolder
from arseg_ros.data.pairs import Augmentation, MotionRange, synthetic_keyframe, to_unit_tensor
from arseg_ros.data.synthetic import panning_clip
from arseg_ros.labels import CAMVID, colorize
from arseg_ros.model import ARSeg, ModelConfig, build_model, load_checkpoint
from arseg_ros.model.checkpoint import CheckpointError
from arseg_ros.model.creff import warp
from arseg_ros.train import PhaseLoss, RecipeError, Trainer, load_recipe, main

SHARED_CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


def write_folder_dataset(root: Path, n: int = 4, size: tuple[int, int] = (64, 96)) -> Path:
    clip = panning_clip(size[1], size[0], n, velocity=(3.0, 0.0), seed=11)
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        classes = [{"name": c.name, "color": list(c.color)} for c in CAMVID.classes]
        (root / split / "classes.yaml").write_text(yaml.safe_dump({"name": "camvid", "classes": classes}))
        for i in range(n):
            Image.fromarray(clip.frames[i]).save(root / split / "images" / f"f{i}.png")
            Image.fromarray(clip.labels[i]).save(root / split / "labels" / f"f{i}.png")
    return root


def write_recipe(path: Path, data_root: Path, **phase) -> Path:
    spec = {"epochs": 1, "batch_size": 2, "optimizer": "adam", "lr": 0.001, "crop": [64, 96], "scale_range": [0.8, 1.2]}
    spec.update(phase)
    recipe = {
        "dataset": {"kind": "folder", "root": str(data_root), "train_split": "train", "val_split": "val"},
        "model": {"arch": "bisenet18"},
        "hr": spec,
        "ar": {**spec, "stage1_epochs": 0},
        "training": {"workers": 0, "device": "cpu"},
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return write_recipe(root / "recipe.yaml", write_folder_dataset(root / "data"))


def test_both_phases_train_save_and_reload(recipe_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["hr", "--recipe", str(recipe_file), "--out", str(out), "--max-iters", "2", "--quiet"]) == 0
    assert main(["ar", "--recipe", str(recipe_file), "--out", str(out), "--max-iters", "2", "--quiet"]) == 0
    assert "best validation mIoU" in capsys.readouterr().out
    hr, ckpt = load_checkpoint(out / "hr" / "best.pt")
    assert ckpt.config.kind == "single" and ckpt.metadata["phase"] == "hr"
    ar, ckpt = load_checkpoint(out / "ar" / "last.pt")
    assert isinstance(ar, ARSeg) and ckpt.metadata["epoch"] == 1
    torch.testing.assert_close(ar.hr.state_dict()["final_conv.weight"], hr.state_dict()["final_conv.weight"])
    torch.testing.assert_close(ar.lr.final_conv.weight, hr.final_conv.weight)
    rows = (out / "ar" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,seconds,val_miou,best_miou,train_loss,train_seg,train_fst") and len(rows) == 2
    frame = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        _, feature = ar.forward_key(frame)
        logits = ar.forward_nonkey(ar.downscale(frame), feature, torch.zeros(1, 2, 64, 96))
    assert torch.isfinite(logits).all()


def test_phase2_can_start_the_lr_network_from_the_hr_weights(recipe_file, tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe(recipe_file)
    Trainer("hr", recipe, out, max_iters=1, progress=False).run()
    hr = Trainer("ar", recipe, out, progress=False).model.hr.state_dict()
    fresh = Trainer("ar", recipe, out, progress=False).model.lr.state_dict()
    recipe.ar.init_from_hr = True
    started = Trainer("ar", recipe, out, progress=False).model.lr.state_dict()
    assert started.keys() == hr.keys()
    for key, value in hr.items():
        torch.testing.assert_close(started[key], value)
    assert not torch.equal(fresh["context_path.backbone.conv1.weight"], hr["context_path.backbone.conv1.weight"])


def test_constant_lr_baseline_trains_one_network_on_downscaled_frames(recipe_file, tmp_path):
    out = tmp_path / "run"
    assert main(["lr", "--recipe", str(recipe_file), "--out", str(out), "--max-iters", "2", "--quiet"]) == 0
    model, ckpt = load_checkpoint(out / "lr" / "last.pt")
    assert ckpt.config.kind == "single" and ckpt.metadata["phase"] == "lr" and ckpt.metadata["input_scale"] == 0.5
    recipe = load_recipe(recipe_file)
    assert recipe.lr == recipe.hr  # no lr section: the hr section's settings
    seen = []
    model.context_path.backbone.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-2:]))
    frame, labels, _, _ = fixed_batch()
    loss, _ = PhaseLoss(model.train(), "lr", "bisenet18", 1.0, lr_scale=0.5)(frame, labels)
    assert torch.isfinite(loss) and seen == [(32, 48)]


def test_constant_lr_baseline_can_start_from_the_hr_weights(recipe_file, tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe(recipe_file)
    Trainer("hr", recipe, out, max_iters=1, progress=False).run()
    hr, _ = load_checkpoint(out / "hr" / "best.pt")
    fresh = Trainer("lr", recipe, out, progress=False).model.state_dict()
    recipe.lr.init_from_hr = True
    started = Trainer("lr", recipe, out, progress=False).model.state_dict()
    for key, value in hr.state_dict().items():
        torch.testing.assert_close(started[key], value)
    key = "context_path.backbone.conv1.weight"
    assert not torch.equal(fresh[key], hr.state_dict()[key])
    Trainer("lr", recipe, out, max_iters=1, progress=False).run()
    with pytest.raises(CheckpointError, match="constant-LR network"):
        Trainer("lr", recipe, tmp_path / "other", hr_checkpoint=out / "lr" / "last.pt", progress=False)
    with pytest.raises(CheckpointError, match="constant-LR network"):
        Trainer("ar", recipe, tmp_path / "other", hr_checkpoint=out / "lr" / "last.pt", progress=False)


def test_resume_continues_from_the_last_epoch(recipe_file, tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe(recipe_file)
    recipe.hr.epochs = 2
    Trainer("hr", recipe, out, max_iters=1, progress=False).run()
    trainer = Trainer("hr", recipe, out, resume=True, progress=False)
    trainer.run()
    rows = (out / "hr" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


def fixed_batch(n=2):
    clip = panning_clip(96, 64, n, velocity=(2.0, 1.0), seed=12)
    frame = torch.stack([to_unit_tensor(f) for f in clip.frames])
    labels = torch.from_numpy(clip.labels.astype(np.int64))
    key = torch.stack([to_unit_tensor(f) for f in clip.frames[::-1]])
    displacement = torch.zeros(n, 2, 64, 96)
    return frame, labels, key, displacement


@pytest.mark.parametrize("phase", ["hr", "ar", "lr"])
def test_loss_is_finite_and_decreases_on_a_fixed_batch(phase):
    torch.manual_seed(0)
    kind = "arseg" if phase == "ar" else "single"
    model = build_model(ModelConfig(arch="bisenet18", labels=CAMVID, kind=kind))
    if phase == "ar":
        for p in model.hr.parameters():
            p.requires_grad_(False)
    objective = PhaseLoss(model, phase, "bisenet18", fst_weight=1.0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    frame, labels, key, displacement = fixed_batch()
    model.train()
    losses = []
    for _ in range(6):
        if phase == "ar":
            model.hr.eval()
        loss, _ = objective(frame, labels, key, displacement)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_fst_gradients_reach_only_the_lr_network_and_creff():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="bisenet18", labels=CAMVID))
    for p in model.hr.parameters():
        p.requires_grad_(False)
    hr_before = {k: v.clone() for k, v in model.hr.state_dict().items()}
    shared_before = model.lr.final_conv.weight.clone()
    model.train()
    model.hr.eval()
    loss, parts = PhaseLoss(model, "ar", "bisenet18", 1.0)(*fixed_batch())
    assert float(parts["fst"]) > 0
    loss.backward()
    assert all(p.grad is None for p in model.hr.parameters())
    assert all(p.grad is not None for p in model.creff.parameters())
    assert any(p.grad is not None for p in model.lr.parameters())
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    assert all(torch.equal(v, model.hr.state_dict()[k]) for k, v in hr_before.items())
    assert torch.equal(model.lr.final_conv.weight, shared_before)


def warp_back(key: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """Sample the keyframe at ``x + displacement(x)``: the frame as the keyframe predicts it."""
    return warp(key[None], displacement[None])[0]


def test_synthetic_keyframe_and_augmentation_keep_frame_label_and_motion_consistent():
    clip = panning_clip(160, 120, 1, seed=13)
    label_image = colorize(clip.labels[0], CAMVID)
    rng = np.random.default_rng(0)
    key, displacement = synthetic_keyframe(label_image, rng, MotionRange(zoom=0.1, shift=0.05, rotation=3.0))
    frame_t, key_t, disp_t = to_unit_tensor(label_image), to_unit_tensor(key), torch.from_numpy(displacement)
    labels_t = torch.from_numpy(clip.labels[0].astype(np.int64))

    def agreement(frame, key, labels, disp):
        predicted = warp_back(key, disp)
        inside = (predicted.sum(0) > 0) & (labels != 255)
        return float(((predicted - frame).abs().max(0).values < 0.1)[inside].float().mean())

    assert agreement(frame_t, key_t, labels_t, disp_t) > 0.95
    augment = Augmentation(crop=(96, 128), scale_range=(0.7, 1.3), flip=1.0, jitter=0.0)
    for seed in range(3):
        s = augment(frame_t, labels_t, np.random.default_rng(seed), key_t, disp_t)
        assert s.frame.shape == (3, 96, 128) and s.labels.shape == (96, 128) and s.displacement.shape == (2, 96, 128)
        assert agreement(s.frame, s.key, s.labels, s.displacement) > 0.9
    shuffled = augment(frame_t, labels_t, np.random.default_rng(5), key_t, disp_t)
    assert agreement(shuffled.frame, shuffled.key, shuffled.labels, -shuffled.displacement) < 0.8


def test_flip_negates_the_x_displacement():
    frame = torch.rand(3, 8, 8)
    labels = torch.zeros(8, 8, dtype=torch.long)
    disp = torch.stack([torch.full((8, 8), 2.0), torch.full((8, 8), -1.0)])
    s = Augmentation(crop=(8, 8), scale_range=(1.0, 1.0), flip=1.0, jitter=0.0)(
        frame, labels, np.random.default_rng(0), frame, disp
    )
    assert torch.all(s.displacement[0] == -2.0) and torch.all(s.displacement[1] == -1.0)
    torch.testing.assert_close(s.frame, frame.flip(-1))


def test_recipe_errors_name_the_key(tmp_path, recipe_file):
    bad = yaml.safe_load(recipe_file.read_text())
    bad["hr"]["learning_rate"] = 0.1
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(RecipeError, match=r"unknown recipe key hr.learning_rate"):
        load_recipe(tmp_path / "a.yaml")
    bad = yaml.safe_load(recipe_file.read_text())
    bad["hr"]["crop"] = [10]
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(RecipeError, match=r"hr.crop needs 2 numbers"):
        load_recipe(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("optimiser: {}\n")
    with pytest.raises(RecipeError, match="unknown recipe key 'optimiser'"):
        load_recipe(tmp_path / "c.yaml")
    bad = yaml.safe_load(recipe_file.read_text())
    bad["hr"]["init_from_hr"] = True
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(RecipeError, match="recipe hr: init_from_hr is for the ar and lr sections"):
        load_recipe(tmp_path / "d.yaml")


def test_shipped_recipes_load():
    root = Path(__file__).resolve().parents[1] / "config" / "train"
    names = sorted(p.name for p in root.glob("*.yaml"))
    assert names == [
        "camvid_cpu.yaml",
        "camvid_cpu_lr_control.yaml",
        "camvid_paper.yaml",
        "cityscapes_paper.yaml",
        "demo_synthetic.yaml",
        "synthetic_cpu.yaml",
        "synthetic_cpu_lr_control.yaml",
    ]
    for path in root.glob("*.yaml"):
        recipe = load_recipe(path)
        assert recipe.ar.fst_weight == 1.0
    for name in ("camvid_cpu", "synthetic_cpu"):
        control, recipe = load_recipe(root / f"{name}_lr_control.yaml"), load_recipe(root / f"{name}.yaml")
        # the control trains the LR network as phase 2 does, from the HR weights, without CReFF
        assert control.lr.init_from_hr and not recipe.lr.init_from_hr
        for key in ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "schedule", "crop", "scale_range"):
            assert getattr(control.lr, key) == getattr(recipe.ar, key), (name, key)
        assert (control.dataset, control.model, control.hr, control.ar) == (
            recipe.dataset,
            recipe.model,
            recipe.hr,
            recipe.ar,
        )


def test_dataset_errors_name_the_first_offending_file(tmp_path):
    root = write_folder_dataset(tmp_path / "d", n=3)
    (root / "train" / "labels" / "f1.png").unlink()
    with pytest.raises(DatasetError, match=r"no label for .*f1.png"):
        ImageFolder(root / "train")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "val" / "labels" / "f0.png")
    with pytest.raises(DatasetError, match=r"label .*f0.png is \(10, 10\)"):
        ImageFolder(root / "val")[0]
    Image.fromarray(np.full((64, 96), 40, np.uint8)).save(root / "val" / "labels" / "f2.png")
    with pytest.raises(DatasetError, match=r"f2.png has class id 40"):
        ImageFolder(root / "val")[2]


@pytest.mark.skipif(not SHARED_CAMVID.is_dir(), reason="../shared/data/camvid not present")
def test_camvid_segnet_layout():
    train, test = CamVidSegNet(SHARED_CAMVID, "train"), CamVidSegNet(SHARED_CAMVID, "test")
    assert (len(train), len(test)) == (367, 233)
    sample = train[0]
    assert sample.image.shape == (360, 480, 3) and sample.labels.shape == (360, 480)
    assert sample.labels.max() <= 11
    eleven = CamVidSegNet(SHARED_CAMVID, "train", void_as_class=False)[0]
    assert 11 not in np.unique(eleven.labels) and (eleven.labels == 255).sum() == (sample.labels == 11).sum()
    assert F.one_hot(torch.from_numpy(sample.labels.astype(np.int64)), 12).sum() > 0


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_both_phases_train_under_torchrun_with_two_processes(recipe_file, tmp_path):
    out = tmp_path / "ddp"
    # gloo on the loopback interface only
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}
    for phase in ("hr", "ar"):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2"]
        launcher += ["--master-addr", "127.0.0.1", "--master-port", str(_free_loopback_port())]
        command = [*launcher, "-m", "arseg_ros.train", phase, "--recipe", str(recipe_file), "--out", str(out)]
        run = subprocess.run([*command, "--quiet"], env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
    for phase in ("hr", "ar"):
        rows = (out / phase / "metrics.csv").read_text().splitlines()
        assert len(rows) == 2
        reported = float(rows[1].split(",")[2])
        # Each process validated half of the split; the figure rank 0 wrote is over the whole split, as one
        # process measures it on the saved weights.
        trainer = Trainer(phase, load_recipe(recipe_file), out, progress=False)
        trainer.model.load_state_dict(load_checkpoint(out / phase / "last.pt")[0].state_dict())
        assert trainer.validate(trainer._data()[2]) == pytest.approx(reported, abs=1e-9)
