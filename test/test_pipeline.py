"""The node's logic without ROS: rosbags message classes in, Image messages out, with real CDR."""

import ast
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
from arseg_ros.messages import image_array, image_message
from arseg_ros.model import ModelConfig, build_model
from arseg_ros.pipeline import MessageTypes, NodeParameters, SegmentationPipeline

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
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="bisenet18", labels=CAMVID)).eval()


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
    pipeline = SegmentationPipeline(
        NodeParameters(device="cpu", lag_policy="all", **params),
        model,
        CAMVID,
        TYPES,
        lambda name, msg: published.append((name, msg)),
        "/camera/video",
    )
    return pipeline, published


@pytest.mark.parametrize(("codec", "fmt"), [("h264", "h264"), ("hevc", "h265"), ("hevc", "hevc")])
def test_compressed_image_in_one_mask_per_frame_out(model, streams, codec, fmt):
    pipeline, published = make(model)
    for packet in streams[codec]:
        assert pipeline.submit(cdr(compressed_image(packet, fmt)))
    pipeline.drain()
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
    pipeline, published = make(model, publish_color_mask=False)
    codec = "hevc" if "hevc" in encoding else "h264"
    for i, packet in enumerate(streams[codec][:5]):
        pipeline.submit(cdr(ffmpeg_packet(packet, encoding, i)))
    pipeline.drain()
    assert [name for name, _ in published] == ["mask"] * 5


def test_output_images_survive_cdr_round_trip(model, streams):
    pipeline, published = make(model, publish_overlay=True)
    for packet in streams["h264"][:3]:
        pipeline.submit(compressed_image(packet, "h264"))
    pipeline.drain()
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
    pipeline, published = make(model)
    bad = compressed_image(streams["h264"][0], "jpeg")
    empty = T["sensor_msgs/msg/CompressedImage"](header=ros_header(1), format="h264", data=np.zeros(0, np.uint8))
    truncated = compressed_image(streams["h264"][1], "h264")
    truncated.data = truncated.data[: len(truncated.data) // 3]
    assert not pipeline.submit(bad) and not pipeline.submit(empty)
    for packet in streams["h264"][:6]:
        pipeline.submit(compressed_image(packet, "h264"))
    pipeline.submit(truncated)
    pipeline.drain()
    assert pipeline.counts["rejected_unsupported"] == 1 and pipeline.counts["rejected_empty"] == 1
    assert len([1 for name, _ in published if name == "mask"]) >= 6
    level, message, values = pipeline.diagnostics()
    assert level == 1 and "rejected" in message
    assert ("rejected_empty", "1") in values


def test_codec_change_resets_the_engine(model, streams):
    pipeline, published = make(model, publish_color_mask=False)
    for packet in streams["h264"][:3] + streams["hevc"][:3]:
        pipeline.submit(compressed_image(packet, packet.codec))
    pipeline.drain()
    assert len(published) == 6 and pipeline.engine.stats["codec_change"] == 1


def test_worker_thread_publishes_everything(model, streams):
    pipeline, published = make(model, publish_color_mask=False)
    pipeline.start()
    try:
        for packet in streams["h264"]:
            pipeline.submit(compressed_image(packet, "h264"))
        deadline = time.monotonic() + 60
        while len(published) < N - 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pipeline.stop()
    assert len(published) >= N - 1
    assert pipeline.diagnostics()[0] == 0


def test_queue_overflow_drops_oldest_and_breaks_the_chain(model, streams):
    pipeline, _ = make(model, max_queue=2)
    for packet in streams["h264"][:5]:
        pipeline.submit(compressed_image(packet, "h264"))
    assert pipeline.counts["queue_overflow"] == 3


def test_label_info(model):
    pipeline, _ = make(model)
    msg = cdr(pipeline.label_info(7, "cam"))
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
