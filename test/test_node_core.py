"""The node core without ROS: rosbags message classes in, Image messages out, with real CDR."""

import ast
import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_engine import encode

from arseg_ros.data.bags import typestore
from arseg_ros.data.synthetic import panning_clip
from arseg_ros.labels import CAMVID
from arseg_ros.model import CheckpointError, ModelConfig, build_model, load_arseg, resolve_model_path, save_checkpoint
from arseg_ros.ros.core import DiagnosticLevel, MessageTypes, NodeCore
from arseg_ros.ros.messages import image_array, image_message
from arseg_ros.ros.parameters import NodeParameters

ROOT = Path(__file__).resolve().parents[1]
STORE = typestore()
T = STORE.types
TYPES = MessageTypes(
    image=T["sensor_msgs/msg/Image"],
    header=T["std_msgs/msg/Header"],
    time=T["builtin_interfaces/msg/Time"],
    label_info=T["vision_msgs/msg/LabelInfo"],
    vision_class=T["vision_msgs/msg/VisionClass"],
)
W, H, N = 96, 64, 14


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """Return the path of a random-weight BiSeNet18 AR-Seg checkpoint for CamVid's classes."""
    torch.manual_seed(0)
    config = ModelConfig(arch="bisenet18", labels=CAMVID)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(path, build_model(config), config)
    return str(path)


@pytest.fixture(scope="module")
def streams():
    clip = panning_clip(W, H, N, velocity=(1.0, 1.0), seed=8)
    return {codec: encode(clip.frames, codec=codec, params="keyint=12:bframes=0") for codec in ("h264", "hevc")}


def ros_header(stamp_ns, frame_id="cam"):
    stamp = T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return T["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def compressed_image(packet, fmt):
    return T["sensor_msgs/msg/CompressedImage"](
        header=ros_header(packet.stamp_ns), format=fmt, data=np.frombuffer(packet.data, np.uint8)
    )


def ffmpeg_packet(packet, encoding, index):
    return T["ffmpeg_image_transport_msgs/msg/FFMPEGPacket"](
        header=ros_header(packet.stamp_ns),
        width=W,
        height=H,
        encoding=encoding,
        pts=index,
        flags=int(bool(packet.key_hint)),
        is_bigendian=False,
        data=np.frombuffer(packet.data, np.uint8),
    )


def cdr(msg):
    name = msg.__msgtype__
    return STORE.deserialize_cdr(STORE.serialize_cdr(msg, name), name)


def make(model, **params):
    published = []
    core = NodeCore(
        NodeParameters(model=model, device="cpu", lag_policy="all", **params),
        TYPES,
        lambda name, msg: published.append((name, msg)),
        "/camera/video",
    )
    return core, published


@pytest.mark.parametrize(("codec", "fmt"), [("h264", "h264"), ("hevc", "h265"), ("hevc", "hevc")])
def test_compressed_image_in_one_mask_per_frame_out(model, streams, codec, fmt):
    core, published = make(model)
    for packet in streams[codec]:
        assert core.submit(cdr(compressed_image(packet, fmt)))
    core.drain()
    masks = [m for name, m in published if name == "mask"]
    colors = [m for name, m in published if name == "color_mask"]
    assert len(masks) == len(colors) == N
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in masks] == [p.stamp_ns for p in streams[codec]]
    for m in masks[:2]:
        assert (m.height, m.width, m.encoding, m.step, m.is_bigendian) == (H, W, "mono8", W, 0)
        assert m.header.frame_id == "cam"
    assert (colors[0].encoding, colors[0].step) == ("rgb8", 3 * W)


@pytest.mark.parametrize("encoding", ["hevc;yuv420p;bgr8;bgr8", "hevc_nvenc", "h264;yuv420p;bgr8;bgr8", "libx264"])
def test_ffmpeg_packet_both_generations(model, streams, encoding):
    core, published = make(model, publish_color_mask=False)
    codec = "hevc" if "hevc" in encoding else "h264"
    for i, packet in enumerate(streams[codec][:5]):
        core.submit(cdr(ffmpeg_packet(packet, encoding, i)))
    core.drain()
    assert [name for name, _ in published] == ["mask"] * 5


def test_output_images_survive_cdr_round_trip(model, streams):
    core, published = make(model, publish_overlay=True)
    for packet in streams["h264"][:3]:
        core.submit(compressed_image(packet, "h264"))
    core.drain()
    assert {name for name, _ in published} == {"mask", "color_mask", "overlay"}
    for _, msg in published:
        back = cdr(msg)
        assert (back.height, back.width, back.encoding, back.step) == (msg.height, msg.width, msg.encoding, msg.step)
        np.testing.assert_array_equal(image_array(back), image_array(msg))


def test_image_message_checks_and_step():
    hdr = ros_header(5)
    with pytest.raises(ValueError, match=r"mono8 needs a uint8 array of shape \(H, W\)"):
        image_message(TYPES.image, hdr, np.zeros((4, 4, 3), np.uint8), "mono8")
    with pytest.raises(ValueError, match="unsupported encoding"):
        image_message(TYPES.image, hdr, np.zeros((4, 4), np.uint8), "bgr16")
    msg = image_message(TYPES.image, hdr, np.arange(12, dtype=np.uint8).reshape(3, 4), "mono8")
    padded = TYPES.image(
        header=hdr, height=3, width=4, encoding="mono8", is_bigendian=0, step=6, data=np.zeros(18, np.uint8)
    )
    padded.data.reshape(3, 6)[:, :4] = image_array(msg)
    np.testing.assert_array_equal(image_array(padded), image_array(msg))


def test_bad_messages_are_counted_not_fatal(model, streams):
    core, published = make(model)
    bad = compressed_image(streams["h264"][0], "jpeg")
    empty = T["sensor_msgs/msg/CompressedImage"](header=ros_header(1), format="h264", data=np.zeros(0, np.uint8))
    truncated = compressed_image(streams["h264"][1], "h264")
    truncated.data = truncated.data[: len(truncated.data) // 3]
    assert not core.submit(bad) and core.submit(empty)  # the engine drops the empty one
    for packet in streams["h264"][:6]:
        core.submit(compressed_image(packet, "h264"))
    core.submit(truncated)
    core.drain()
    assert core.counts["rejected_unsupported"] == 1 and core.engine.stats["rejected_no_nal_unit"] == 1
    assert len([1 for name, _ in published if name == "mask"]) >= 6
    report = core.diagnostic_status()
    assert report.level == DiagnosticLevel.WARN and report.level.as_byte() == b"\x01"
    assert "rejected" in report.message
    assert ("rejected_no_nal_unit", "1") in report.values


def test_codec_change_resets_the_engine(model, streams):
    core, published = make(model, publish_color_mask=False)
    for packet in streams["h264"][:3] + streams["hevc"][:3]:
        core.submit(compressed_image(packet, packet.codec))
    core.drain()
    assert len(published) == 6 and core.engine.stats["codec_change"] == 1


def test_worker_thread_publishes_everything(model, streams):
    core, published = make(model, publish_color_mask=False)
    core.start()
    try:
        for packet in streams["h264"]:
            core.submit(compressed_image(packet, "h264"))
        deadline = time.monotonic() + 60
        while len(published) < N - 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        core.stop()
    assert len(published) >= N - 1
    assert core.diagnostic_status().level == DiagnosticLevel.OK


def test_queue_overflow_drops_oldest_and_breaks_the_chain(model, streams):
    core, _ = make(model, max_queue=2)
    for packet in streams["h264"][:5]:
        core.submit(compressed_image(packet, "h264"))
    assert core.counts["queue_overflow"] == 3


def test_label_info(model):
    core, _ = make(model)
    msg = cdr(core.label_info(7, "cam"))
    assert [(c.class_id, c.class_name) for c in msg.class_map] == list(enumerate(CAMVID.names))


def test_parameters_validate_and_match_the_shipped_yaml():
    with pytest.raises(ValueError, match="unknown parameters"):
        NodeParameters.from_dict({"modle": "x.pt"})
    with pytest.raises(ValueError, match="input_type='mjpeg'"):
        NodeParameters(input_type="mjpeg")
    with pytest.raises(ValueError, match="lr_scale"):
        NodeParameters(lr_scale=2.0)
    with pytest.raises(ValueError, match="decoder_threads"):
        NodeParameters(decoder_threads=-2)
    assert NodeParameters(decoder_threads=3).engine_config().decoder_threads == 3
    shipped = yaml.safe_load((ROOT / "config" / "arseg.yaml").read_text())["arseg_node"]["ros__parameters"]
    assert NodeParameters.from_dict(shipped) == NodeParameters()


def test_launch_file_declares_its_arguments():
    tree = ast.parse((ROOT / "launch" / "arseg.launch.py").read_text())
    declared = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"
    }
    assert declared == {"model", "input_topic", "input_type", "params_file", "namespace", "use_sim_time", "transport"}


def test_every_parameter_has_a_description_and_only_some_change_at_run_time():
    for f in dataclasses.fields(NodeParameters):
        assert len(f.metadata["description"]) > 10, f.name
    assert NodeParameters.dynamic_names() == {"hr_every_n", "scene_cut_intra_share", "lag_policy", "overlay_alpha"}
    params = NodeParameters(model="m.pt")
    assert params.changed({"hr_every_n": 6}).hr_every_n == 6
    with pytest.raises(ValueError, match=r"\['model'\] are read-only"):
        params.changed({"model": "other.pt"})
    with pytest.raises(ValueError, match=r"overlay_alpha=2\.0"):
        params.changed({"overlay_alpha": 2.0})
    with pytest.raises(ValueError, match="expected type int, got str"):
        NodeParameters(hr_every_n="6")
    with pytest.raises(ValueError, match="expected type bool, got int"):
        NodeParameters(publish_overlay=1)


def test_set_parameters_reaches_the_engine(model, streams):
    core, _ = make(model)
    core.set_parameters({"hr_every_n": 3, "lag_policy": "latest"})
    assert (core.engine.config.hr_every_n, core.engine.config.lag_policy) == (3, "latest")
    for packet in streams["hevc"][:7]:
        core.submit(compressed_image(packet, "h265"))
    core.drain()
    assert (core.engine.stats["hr"], core.engine.stats["hr_hr_every_n"]) == (3, 2)
    with pytest.raises(ValueError, match="read-only"):
        core.set_parameters({"mode": "hr"})
    assert core.params.mode == "ar" and core.engine.config.hr_every_n == 3


def test_endpoints_follow_the_parameters(model):
    core, _ = make(model, publish_color_mask=False, publish_overlay=True, input_type="compressed_video")
    endpoints = {e.key: e for e in core.endpoints()}
    assert list(endpoints) == ["input", "mask", "overlay", "label_info", "diagnostics"]
    assert (endpoints["input"].name, endpoints["input"].msgtype) == ("packets", "foxglove_msgs/msg/CompressedVideo")
    assert endpoints["label_info"].qos.durability == "transient_local"
    assert {endpoints[k].name for k in ("mask", "overlay")} == {"~/mask", "~/overlay"}


def test_the_model_is_loaded_from_a_package_address(model, tmp_path, monkeypatch):
    prefix = tmp_path / "prefix"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "my_models").touch()
    (prefix / "share" / "my_models" / "models").mkdir(parents=True)
    shutil.copy(model, prefix / "share" / "my_models" / "models" / "street.pt")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    assert resolve_model_path("package://my_models/models/street.pt") == prefix / "share/my_models/models/street.pt"
    core, _ = make("package://my_models/models/street.pt")
    assert core.arch == "bisenet18"
    with pytest.raises(CheckpointError, match="package 'nowhere' is not installed"):
        make("package://nowhere/models/street.pt")
    with pytest.raises(CheckpointError, match="expected package://<package>/<path"):
        make("package://my_models")
    with pytest.raises(CheckpointError, match="no model given"):
        make("")


def test_a_single_network_is_refused_with_what_to_pass(tmp_path):
    config = ModelConfig(arch="bisenet18", labels=CAMVID, kind="single")
    save_checkpoint(tmp_path / "hr.pt", build_model(config), config)
    with pytest.raises(
        CheckpointError, match=r"single network \(bisenet18\) .*--mode hr in arseg-eval.*arseg-train ar"
    ):
        make(str(tmp_path / "hr.pt"))
    model, ckpt = load_arseg(tmp_path / "hr.pt", accept_hr_network=True)
    assert ckpt.config.kind == "arseg" and model.lr_scale == 0.5


def test_rviz_config_shows_what_the_default_launch_publishes(model):
    core, _ = make(model)
    defaults = {f"/arseg_node/{e.name[2:]}": e for e in core.endpoints() if e.msgtype == "sensor_msgs/msg/Image"}
    optional = {"/arseg_node/overlay", "/arseg_node/mask"}
    displays = yaml.safe_load((ROOT / "config" / "arseg.rviz").read_text())["Visualization Manager"]["Displays"]
    enabled = [d for d in displays if d["Enabled"]]
    assert enabled, "no display is enabled"
    for display in displays:
        topic = display["Topic"]["Value"]
        assert topic in defaults or topic in optional, f"{display['Name']}: nothing publishes {topic}"
        assert display["Topic"]["Reliability Policy"] == "Reliable"
        if display["Enabled"]:
            assert topic in defaults, f"{display['Name']} is enabled but {topic} is off by default"
        elif topic not in defaults:
            assert "publish_overlay" in display["Name"]
    assert {d["Topic"]["Value"] for d in enabled} == {"/arseg_node/color_mask"}
