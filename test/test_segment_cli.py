"""arseg-segment writes what it says, from files and bags, and fails in one line on bad input."""

import av
import numpy as np
import pytest
import torch
from PIL import Image
from rosbags.rosbag2 import StoragePlugin, Writer
from test_engine import encode

from arseg_ros.data.bags import typestore
from arseg_ros.data.synthetic import panning_clip
from arseg_ros.labels import CAMVID
from arseg_ros.model import ModelConfig, build_model, save_checkpoint
from arseg_ros.segment import main

W, H, N = 96, 64, 8


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("segment")
    torch.manual_seed(0)
    config = ModelConfig(arch="bisenet18", labels=CAMVID)
    save_checkpoint(root / "model.pt", build_model(config), config)
    single = ModelConfig(arch="bisenet18", labels=CAMVID, kind="single")
    save_checkpoint(root / "single.pt", build_model(single), single)
    clip = panning_clip(W, H, N, velocity=(1.5, 0.5), seed=7)
    packets = {codec: encode(clip.frames, codec=codec, params="keyint=12:bframes=0") for codec in ("h264", "hevc")}
    (root / "clip.h264").write_bytes(b"".join(p.data for p in packets["h264"]))
    (root / "clip.h265").write_bytes(b"".join(p.data for p in packets["hevc"]))
    store = typestore()
    image_t = store.types["sensor_msgs/msg/CompressedImage"]
    header_t = store.types["std_msgs/msg/Header"]
    time_t = store.types["builtin_interfaces/msg/Time"]
    with Writer(root / "bag", version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conn = writer.add_connection("/camera/h264", image_t.__msgtype__, typestore=store)
        gaps = writer.add_connection("/camera/h264_with_empty", image_t.__msgtype__, typestore=store)
        for i, p in enumerate(packets["h264"]):
            stamp = time_t(sec=p.stamp_ns // 10**9, nanosec=p.stamp_ns % 10**9)
            msg = image_t(
                header=header_t(stamp=stamp, frame_id="cam"), format="h264", data=np.frombuffer(p.data, np.uint8)
            )
            writer.write(conn, p.stamp_ns, store.serialize_cdr(msg, image_t.__msgtype__))
            if i == 3:  # an empty message between two pictures
                empty = image_t(header=msg.header, format="h264", data=np.zeros(0, np.uint8))
                writer.write(gaps, p.stamp_ns, store.serialize_cdr(empty, image_t.__msgtype__))
            writer.write(gaps, p.stamp_ns, store.serialize_cdr(msg, image_t.__msgtype__))
    (root / "notes.mp4").write_text("not a video")
    return root


def test_label_pngs_from_an_h264_file(files, tmp_path, capsys):
    out = tmp_path / "labels"
    assert main([str(files / "clip.h264"), "--model", str(files / "model.pt"), "--out", str(out), "--quiet"]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == N
    labels = np.asarray(Image.open(pngs[3]))
    assert labels.shape == (H, W) and labels.dtype == np.uint8 and labels.max() < CAMVID.num_classes
    assert f"{N} frames" in capsys.readouterr().out


@pytest.mark.parametrize("overlay", [False, True])
def test_colour_and_overlay_videos_from_hevc(files, tmp_path, overlay):
    out = tmp_path / "masks.mp4"
    argv = [str(files / "clip.h265"), "--model", str(files / "model.pt"), "--out", str(out), "--quiet"]
    assert main(argv + (["--overlay"] if overlay else [])) == 0
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == N and (frames[0].height, frames[0].width) == (H, W)


def test_bag_topic_input(files, tmp_path):
    out = tmp_path / "from_bag"
    argv = [str(files / "bag"), "--topic", "/camera/h264", "--model", str(files / "model.pt"), "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    assert len(list(out.glob("*.png"))) == N


def test_an_empty_message_in_a_bag_is_dropped_and_the_rest_segmented(files, tmp_path):
    out = {}
    for topic in ("/camera/h264", "/camera/h264_with_empty"):
        out[topic] = tmp_path / topic.rsplit("/", 1)[1]
        argv = [str(files / "bag"), "--topic", topic, "--model", str(files / "model.pt"), "--out", str(out[topic])]
        assert main([*argv, "--quiet"]) == 0
    clean, hostile = (sorted(folder.glob("*.png")) for folder in out.values())
    assert len(clean) == len(hostile) == N
    for a, b in zip(clean, hostile, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.h265"], "no such file"),
        (["notes.mp4"], "not a readable video file"),
        (["bag", "--topic", "/nope"], "topic '/nope' is not in"),
        (["bag"], "name the video topic with --topic"),
    ],
)
def test_user_errors_are_one_line(files, tmp_path, capsys, args, message):
    argv = [str(files / args[0]), *args[1:], "--model", str(files / "model.pt"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_single_network_checkpoint_is_refused(files, tmp_path, capsys):
    argv = [str(files / "clip.h264"), "--model", str(files / "single.pt"), "--out", str(tmp_path / "o"), "--quiet"]
    assert main(argv) == 2
    assert "single network" in capsys.readouterr().err


def test_max_frames_caps_the_output_of_a_stream_with_b_frames(files, tmp_path, capsys):
    clip = panning_clip(W, H, 24, velocity=(1.5, 0.5), seed=9)
    stream = tmp_path / "b_frames.h265"
    stream.write_bytes(b"".join(p.data for p in encode(clip.frames, codec="hevc", params="keyint=12:bframes=3")))
    out = tmp_path / "capped"
    argv = [str(stream), "--model", str(files / "model.pt"), "--out", str(out), "--max-frames", "10", "--quiet"]
    assert main(argv) == 0
    assert len(list(out.glob("*.png"))) == 10  # frames still in the decoder's reorder buffer are not written
    assert "10 frames" in capsys.readouterr().out
