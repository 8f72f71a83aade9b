"""Bag tooling and rosbag evaluation: round trips, metrics, mIoU_d bins, output files and bad input."""

import json
import shutil
import sqlite3

import numpy as np
import pytest
import torch
import yaml

from arseg_ros.bagtool import main as bag_main
from arseg_ros.codec.encode import EncoderSettings, encode_frames
from arseg_ros.codec.packets import Packet
from arseg_ros.data.bags import BagError, BagWriter, packets_from_bag, read_images
from arseg_ros.data.synthetic import driving_clip, panning_clip
from arseg_ros.engine import EngineConfig, StreamSegmenter
from arseg_ros.evaluate import main as eval_main
from arseg_ros.evaluate import with_lr_network
from arseg_ros.labels import CAMVID
from arseg_ros.metrics import ConfusionMatrix
from arseg_ros.model import ModelConfig, build_model, load_checkpoint, save_checkpoint
from arseg_ros.model.base import resize

W, H, N = 96, 64, 12
VIDEO = "/camera/video"


def make_bag(path, *extra):
    assert bag_main(["make", str(path), "--synthetic", "--frames", str(N), "--size", f"{W}x{H}", *extra]) == 0
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.manual_seed(0)
    config = ModelConfig(arch="bisenet18", labels=CAMVID)
    save_checkpoint(path, build_model(config), config)
    return path


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    # H.264: its motion comes from FFmpeg's side data, so the AR mode runs LR frames.
    return make_bag(tmp_path_factory.mktemp("bags") / "demo", "--keyint", "6", "--codec", "h264", "--topic", VIDEO)


@pytest.mark.parametrize("fmt", ["compressed_image", "ffmpeg_packet", "compressed_video"])
@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_bag_round_trip(tmp_path, fmt, storage):
    path = make_bag(tmp_path / "b", "--format", fmt, "--storage", storage, "--topic", "/cam/video")
    packets = list(packets_from_bag(path, "/cam/video"))
    labels = read_images(path, "/camera/labels")
    assert len(packets) == N and all(p.codec == "hevc" and p.frame_id == "camera" for p in packets)
    assert sorted(p.stamp_ns for p in packets) == sorted(labels)
    clip = driving_clip(W, H, N, seed=0)
    np.testing.assert_array_equal(labels[min(labels)], clip.labels[0])
    if fmt == "ffmpeg_packet":
        assert packets[0].key_hint is True and packets[1].key_hint is False


def humble_style(bag, out):
    """Rewrite a rosbags sqlite3 bag the way ROS 2 Humble stores one.

    That is database schema 3 without message definitions or type hashes, and metadata version 5.
    """
    shutil.copytree(bag, out)
    meta = yaml.safe_load((out / "metadata.yaml").read_text())
    info = meta["rosbag2_bagfile_information"]
    info["version"] = 5
    for key in ("custom_data", "ros_distro"):
        info.pop(key, None)
    for topic in info["topics_with_message_count"]:
        topic["topic_metadata"].pop("type_description_hash", None)
    text = yaml.safe_dump(meta)
    (out / "metadata.yaml").write_text(text)
    with sqlite3.connect(next(out.glob("*.db3"))) as con:
        con.execute("DROP TABLE message_definitions")
        con.execute("ALTER TABLE topics DROP COLUMN type_description_hash")
        con.execute("UPDATE schema SET schema_version = 3, ros_distro = 'humble'")
        con.execute("UPDATE metadata SET metadata_version = 5, metadata = ?", (yaml.safe_dump(info),))
    return out


def test_humble_metadata_v5_bag_reads(tmp_path):
    path = humble_style(make_bag(tmp_path / "b", "--format", "ffmpeg_packet"), tmp_path / "humble")
    assert len(list(packets_from_bag(path, "/camera/image_raw/h265"))) == N


def test_evaluate_all_modes_writes_every_output(bag, model_file, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["--bag", str(bag), "--topic", VIDEO, "--labels-topic", "/camera/labels"]
    argv += ["--model", str(model_file), "--mode", "all", "--out", str(out), "--video", str(out / "masks.mp4")]
    argv += ["--write-bag", str(tmp_path / "masks_bag"), "--device", "cpu", "--quiet"]
    assert eval_main(argv) == 0
    printed = capsys.readouterr().out
    assert "| AR |" in printed and "| HR |" in printed and "| LR |" in printed
    for name in (
        "metrics.json",
        "report.md",
        "miou_vs_d.png",
        "per_class_iou.png",
        "latency_hist.png",
        "miou_vs_gmacs.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "masks.mp4").stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    modes = {m["mode"]: m for m in metrics["modes"]}
    assert set(modes) == {"ar", "hr", "lr"}
    assert modes["hr"]["gmacs_per_frame"] > modes["ar"]["gmacs_per_frame"] > modes["lr"]["gmacs_per_frame"]
    assert sorted(int(d) for d in modes["ar"]["miou_d"]) == list(range(6))
    for m in modes.values():
        assert m["miou_mean_d"] == pytest.approx(np.nanmean(list(m["miou_d"].values())))
    assert modes["ar"]["labelled_frames"] == N and 0.0 <= modes["ar"]["miou"] <= 1.0
    assert modes["ar"]["engine"]["hr"] == 2 and modes["ar"]["engine"]["lr"] == N - 2
    masks = read_images(tmp_path / "masks_bag", "/arseg/mask")
    assert sorted(masks) == sorted(read_images(bag, "/camera/labels"))
    assert len(list(packets_from_bag(tmp_path / "masks_bag", VIDEO))) == N


def test_confusion_matrix_against_hand_computed_values():
    labels = np.array([[0, 0, 1], [1, 2, 255]], np.uint8)
    preds = np.array([[0, 1, 1], [1, 2, 0]], np.uint8)
    cm = ConfusionMatrix(4)
    cm.update(labels, preds)
    assert cm.counts[0, 0] == 1 and cm.counts[0, 1] == 1 and cm.counts[1, 1] == 2 and cm.counts[2, 2] == 1
    iou = cm.iou()
    np.testing.assert_allclose(iou[:3], [1 / 2, 2 / 3, 1.0])
    assert np.isnan(iou[3])
    assert cm.miou() == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 5)


@pytest.mark.parametrize("bframes", [0, 2])
def test_distance_bins_follow_presentation_order(model_file, bframes):
    from arseg_ros.model import load_checkpoint

    model, _ = load_checkpoint(model_file)
    clip = panning_clip(W, H, 14, velocity=(1.0, 0.0), seed=3)
    packets = encode_frames(clip.frames, EncoderSettings(codec="hevc", keyint=6, bframes=bframes))
    engine = StreamSegmenter(model, EngineConfig(device="cpu", mode="hr"))
    results = []
    for p in packets:
        results += engine.process(Packet("hevc", p.data, p.index, "cam"))
    results += engine.flush()
    assert [r.stamp_ns for r in results] == list(range(14))
    assert [r.gop_distance for r in results] == [i % 6 for i in range(14)]


def test_constant_lr_mode_can_run_a_separately_trained_network(bag, model_file, tmp_path, capsys):
    torch.manual_seed(1)
    config = ModelConfig(arch="bisenet18", labels=CAMVID, kind="single")
    single = build_model(config).eval()
    lr_file = tmp_path / "lr.pt"
    save_checkpoint(lr_file, single, config, {"phase": "lr", "input_scale": 0.5})
    model, ckpt = load_checkpoint(model_file)
    baseline = with_lr_network(model, ckpt.config, str(lr_file)).eval()
    frame = torch.rand(1, 3, H, W)
    with torch.no_grad():
        logits = single.classify(single.features(model.downscale(frame)))
        expected = resize(logits, (H, W), single.logits_align_corners)
        torch.testing.assert_close(baseline.forward_constant(frame, 0.5), expected)
        assert not torch.allclose(model.forward_constant(frame, 0.5), expected)  # the model itself is unchanged
    base = ["--bag", str(bag), "--topic", VIDEO, "--labels-topic", "/camera/labels", "--model", str(model_file)]
    base += ["--mode", "lr", "--device", "cpu", "--quiet", "--out", str(tmp_path / "eval")]
    assert eval_main([*base, "--lr-model", str(lr_file)]) == 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["lr_network"] == str(lr_file)
    save_checkpoint(tmp_path / "quarter.pt", single, config, {"phase": "lr", "input_scale": 0.25})
    assert eval_main([*base, "--lr-model", str(tmp_path / "quarter.pt")]) == 2
    assert "trained at input scale 0.25, the model runs LR at 0.5" in capsys.readouterr().err
    assert eval_main([*base, "--lr-model", str(model_file)]) == 2
    assert "must be a single bisenet18 network" in capsys.readouterr().err


def test_hr_mode_takes_a_phase1_network(bag, model_file, tmp_path, capsys):
    model, _ = load_checkpoint(model_file)
    config = ModelConfig(arch="bisenet18", labels=CAMVID, kind="single")
    hr_file = tmp_path / "hr.pt"
    save_checkpoint(hr_file, model.hr, config, {"phase": "hr"})
    base = ["--bag", str(bag), "--topic", VIDEO, "--labels-topic", "/camera/labels", "--device", "cpu", "--quiet"]
    for name, path in (("from_ar", model_file), ("from_hr", hr_file)):
        assert eval_main([*base, "--model", str(path), "--mode", "hr", "--out", str(tmp_path / name)]) == 0
    from_ar, from_hr = (
        json.loads((tmp_path / n / "metrics.json").read_text())["modes"][0] for n in ("from_ar", "from_hr")
    )
    assert from_hr["mode"] == "hr" and from_hr["labelled_frames"] == N
    assert from_hr["miou_d"] == from_ar["miou_d"] and from_hr["gmacs_per_frame"] == from_ar["gmacs_per_frame"]
    assert eval_main([*base, "--model", str(hr_file), "--mode", "ar", "--out", str(tmp_path / "x")]) == 2
    assert "runs only as --mode hr" in capsys.readouterr().err
    save_checkpoint(tmp_path / "lr.pt", model.hr, config, {"phase": "lr", "input_scale": 0.5})
    assert eval_main([*base, "--model", str(tmp_path / "lr.pt"), "--mode", "hr", "--out", str(tmp_path / "y")]) == 2
    assert "only if it is an HR network" in capsys.readouterr().err


def test_bad_input_names_the_problem(bag, model_file, tmp_path, capsys):
    base = ["--model", str(model_file), "--out", str(tmp_path / "o"), "--quiet", "--device", "cpu"]
    assert eval_main(["--bag", str(bag), "--topic", "/nope", *base]) == 2
    err = capsys.readouterr().err
    assert "topic '/nope' is not in" in err and f"{VIDEO} (sensor_msgs/msg/CompressedImage)" in err
    with pytest.raises(BagError, match="not sensor_msgs/msg/Image"):
        read_images(bag, VIDEO)
    not_a_bag = tmp_path / "notabag"
    not_a_bag.mkdir()
    (not_a_bag / "metadata.yaml").write_text("hello: world\n")
    assert eval_main(["--bag", str(not_a_bag), "--topic", "/x", *base]) == 2
    assert "not a readable rosbag2 bag" in capsys.readouterr().err


def test_labels_with_other_stamps_are_refused(tmp_path, model_file, capsys):
    video = make_bag(tmp_path / "v")
    labels_bag = make_bag(tmp_path / "l", "--fps", "25")
    mixed = tmp_path / "mixed"
    from arseg_ros.data.bags import BagWriter

    with BagWriter(mixed) as writer:
        writer.copy_topics(video, ["/camera/image_raw/h265"])
        for stamp, image in read_images(labels_bag, "/camera/labels").items():
            writer.write_image("/camera/labels", image, "mono8", stamp + 1, "camera")
    argv = ["--bag", str(mixed), "--topic", "/camera/image_raw/h265", "--labels-topic", "/camera/labels"]
    argv += ["--model", str(model_file), "--out", str(tmp_path / "o"), "--quiet", "--device", "cpu"]
    assert eval_main(argv) == 2
    assert "has a label image with the same stamp" in capsys.readouterr().err


def test_max_frames_caps_the_frames_scored_on_a_stream_with_b_frames(model_file, tmp_path, capsys):
    bag = make_bag(tmp_path / "b", "--codec", "hevc", "--bframes", "2", "--keyint", "6", "--topic", VIDEO)
    argv = ["--bag", str(bag), "--topic", VIDEO, "--labels-topic", "/camera/labels", "--model", str(model_file)]
    argv += ["--mode", "hr", "--out", str(tmp_path / "eval"), "--device", "cpu", "--quiet", "--max-frames", "5"]
    assert eval_main(argv) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["modes"][0]["labelled_frames"] == 5  # not the frames the decoder still held when it stopped


def test_an_empty_message_in_the_video_topic_changes_nothing(bag, model_file, tmp_path):
    hostile = tmp_path / "with_empty"
    with BagWriter(hostile) as writer:
        for i, packet in enumerate(packets_from_bag(bag, VIDEO)):
            write = {
                "topic": VIDEO, "fmt": "compressed_image", "codec": packet.codec, "stamp_ns": packet.stamp_ns,
                "log_ns": packet.stamp_ns, "frame_id": "camera", "key": bool(packet.key_hint), "width": W,
                "height": H, "pts": i,
            }  # fmt: skip
            if i == 4:
                writer.write_packet(data=b"", **write)
            writer.write_packet(data=packet.data, **write)
        for stamp, image in read_images(bag, "/camera/labels").items():
            writer.write_image("/camera/labels", image, "mono8", stamp, "camera")
    reports = []
    for name, path in (("clean", bag), ("hostile", hostile)):
        argv = ["--bag", str(path), "--topic", VIDEO, "--labels-topic", "/camera/labels", "--model", str(model_file)]
        assert eval_main([*argv, "--mode", "ar", "--out", str(tmp_path / name), "--device", "cpu", "--quiet"]) == 0
        reports.append(json.loads((tmp_path / name / "metrics.json").read_text())["modes"][0])
    clean, with_empty = reports
    assert with_empty["labelled_frames"] == clean["labelled_frames"] == N
    assert with_empty["miou"] == clean["miou"] and with_empty["miou_d"] == clean["miou_d"]
