"""Checkpoints carry their config; a mismatching checkpoint is refused before anything is loaded."""

import pytest
import torch

from arseg_ros.labels import CAMVID, CITYSCAPES, ClassInfo, LabelSet
from arseg_ros.model import (
    CheckpointError,
    ModelConfig,
    build_model,
    load_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)

CONFIG = ModelConfig(arch="bisenet18", labels=CAMVID, lr_scale=0.5)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model(CONFIG).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, CONFIG, metadata={"epoch": 3, "miou": 0.5})
    return model, path


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model, before):
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_round_trip(saved):
    model, path = saved
    loaded, ckpt = load_checkpoint(path)
    assert ckpt.config == CONFIG
    assert ckpt.metadata == {"epoch": 3, "miou": 0.5}
    frame = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a_logits, a_feat = model.forward_key(frame)
        b_logits, b_feat = loaded.forward_key(frame)
        torch.testing.assert_close(a_logits, b_logits)
        d = torch.randn(1, 2, 64, 96)
        torch.testing.assert_close(
            model.forward_nonkey(model.downscale(frame), a_feat, d),
            loaded.forward_nonkey(loaded.downscale(frame), b_feat, d),
        )


def test_checkpoint_is_plain_data(saved):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "arseg_ros.checkpoint" and payload["format_version"] == 1
    assert payload["config"]["labels"]["classes"][0] == {"name": "Sky", "color": [128, 128, 128]}


def test_wrong_architecture_is_refused_and_nothing_loads(saved):
    _, path = saved
    other = ModelConfig(arch="pspnet18_cityscapes", labels=CAMVID)
    model = build_model(other)
    before = snapshot(model)
    with pytest.raises(CheckpointError, match="architecture arseg 'bisenet18'"):
        load_weights(model, other, path)
    assert_unchanged(model, before)


def test_wrong_class_set_is_refused_and_nothing_loads(saved):
    _, path = saved
    other = ModelConfig(arch="bisenet18", labels=CITYSCAPES)
    model = build_model(other)
    before = snapshot(model)
    with pytest.raises(CheckpointError, match="classes"):
        load_weights(model, other, path)
    assert_unchanged(model, before)


def test_renamed_class_is_refused(saved):
    _, path = saved
    renamed = LabelSet("camvid", (ClassInfo("Heaven", (1, 2, 3)), *CAMVID.classes[1:]))
    other = ModelConfig(arch="bisenet18", labels=renamed)
    with pytest.raises(CheckpointError, match="Heaven"):
        load_weights(build_model(other), other, path)


def test_tampered_shapes_are_refused_before_copying(saved, tmp_path):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    key = "creff.conv_q.weight"
    payload["state_dict"][key] = torch.zeros(3, 1, 3, 3)
    payload["state_dict"]["hr.final_conv.weight"] = torch.ones_like(payload["state_dict"]["hr.final_conv.weight"])
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    target = build_model(CONFIG)
    before = snapshot(target)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_weights(target, CONFIG, bad)
    assert_unchanged(target, before)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint at all", "not a readable"),
        (b"", "not a readable"),
    ],
)
def test_garbage_files(tmp_path, content, message):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_foreign_torch_file_and_missing_file(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not an arseg_ros checkpoint"):
        read_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pt")


def test_newer_format_version_and_broken_config(saved, tmp_path):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    newer = tmp_path / "newer.pt"
    torch.save(payload, newer)
    with pytest.raises(CheckpointError, match="version 99"):
        read_checkpoint(newer)
    payload["format_version"] = 1
    payload["config"]["frobnicate"] = True
    broken = tmp_path / "broken.pt"
    torch.save(payload, broken)
    with pytest.raises(CheckpointError, match="frobnicate"):
        read_checkpoint(broken)


def test_single_network_checkpoint(tmp_path):
    config = ModelConfig(arch="pspnet18_cityscapes", labels=CITYSCAPES, kind="single")
    torch.manual_seed(1)
    net = build_model(config).eval()
    save_checkpoint(tmp_path / "hr.pt", net, config)
    loaded, _ = load_checkpoint(tmp_path / "hr.pt")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), loaded(x))
