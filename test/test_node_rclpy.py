"""The rclpy node live, in its own process, with the real rclpy on Fast DDS (loopback discovery only).

For each input type a probe publishes a two-GOP stream at 30 fps and gets one mask per frame back with the
input's stamp and frame id, the colour mask and overlay, LabelInfo latched for a late subscriber and
``/diagnostics`` with level OK and the HR/LR counts. Then the parameters as ``ros2 param`` sees them, bad values
refused at start-up, and a publisher killed and restarted, a corrupt packet and a wrong format, all of which the
node survives and counts.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from ros_required import import_or_skip

rclpy = import_or_skip("rclpy")
ffmpeg_msgs = import_or_skip("ffmpeg_image_transport_msgs.msg")
foxglove_msgs = import_or_skip("foxglove_msgs.msg")
vision_msgs = import_or_skip("vision_msgs.msg")
import_or_skip("diagnostic_updater")

from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, SetParameters
from ros_live import (
    FRAMES,
    LATCHED,
    H,
    Probe,
    W,
    compressed_image,
    encode_street,
    node_command,
    set_stamp,
    stamp_ns,
    start_node,
    values,
)
from sensor_msgs.msg import CompressedImage

from arseg_ros.demo import default_model
from arseg_ros.labels import LabelSet
from arseg_ros.model import read_checkpoint
from arseg_ros.ros.conventions import loopback_environment
from arseg_ros.ros.parameters import NodeParameters

ROOT = Path(__file__).resolve().parents[1]
MODEL = str(default_model())
NODE_SECONDS = 120


@pytest.fixture(scope="module")
def streams():
    """Return the street as HEVC and H.264 packets."""
    return {codec: encode_street(codec) for codec in ("hevc", "h264")}


def labels() -> LabelSet:
    """Return the class list of the demo model."""
    return read_checkpoint(MODEL).config.labels


def ffmpeg_packet(packet, encoding, pts):
    msg = ffmpeg_msgs.FFMPEGPacket(
        width=W, height=H, encoding=encoding, pts=pts, flags=int(bool(packet.key_hint)), data=bytes(packet.data)
    )
    set_stamp(msg.header.stamp, packet.stamp_ns)
    msg.header.frame_id = "camera"
    return msg


def compressed_video(packet, fmt):
    msg = foxglove_msgs.CompressedVideo(frame_id="camera", format=fmt, data=bytes(packet.data))
    set_stamp(msg.timestamp, packet.stamp_ns)
    return msg


# (input_type, codec, message class, builder)
INPUTS = {
    "compressed_image-h265": ("compressed_image", "hevc", CompressedImage, lambda p, i: compressed_image(p, "h265")),
    "compressed_image-h264": ("compressed_image", "h264", CompressedImage, lambda p, i: compressed_image(p, "h264")),
    "ffmpeg_packet-hevc": (
        "ffmpeg_packet", "hevc", ffmpeg_msgs.FFMPEGPacket, lambda p, i: ffmpeg_packet(p, "hevc;yuv420p;bgr8;bgr8", i),
    ),
    "ffmpeg_packet-hevc_nvenc": (
        "ffmpeg_packet", "hevc", ffmpeg_msgs.FFMPEGPacket, lambda p, i: ffmpeg_packet(p, "hevc_nvenc", i),
    ),
    "compressed_video-h265": (
        "compressed_video", "hevc", foxglove_msgs.CompressedVideo, lambda p, i: compressed_video(p, "h265"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(INPUTS))
def test_each_input_type_one_mask_per_frame(case, streams, tmp_path):
    input_type, codec, msg_type, build = INPUTS[case]
    domain = 110 + sorted(INPUTS).index(case)
    node = start_node(
        node_command(
            "rclpy", NODE_SECONDS, "-p", f"model:={MODEL}", "-p", f"input_type:={input_type}", "-p", "device:=cpu",
            "-p", "lag_policy:=all", "-p", "publish_overlay:=true", "-r", "packets:=/camera/video",
        ),
        domain, tmp_path / "node.log",
    )  # fmt: skip
    probe = Probe(domain)
    try:
        publisher = probe.publisher(msg_type, "/camera/video")
        probe.wait_subscribed(publisher)
        probe.wait_for_node()
        assert probe.latest_status(lambda v: v.get("matched input publishers") == "1") is not None, node.output()
        packets = streams[codec]
        probe.play(publisher, [build(p, i) for i, p in enumerate(packets)])
        probe.spin_until(lambda: len(probe.masks) >= FRAMES and len(probe.overlays) >= FRAMES, 60)
        status = probe.latest_status(lambda v: v.get("published") == str(FRAMES))
        late = []
        probe.node.create_subscription(vision_msgs.LabelInfo, "/arseg_node/label_info", late.append, LATCHED)
        probe.spin_until(lambda: late, 20)
    finally:
        probe.close()
        assert node.stop() == 0, node.output()
    assert [stamp_ns(m.header.stamp) for m in probe.masks] == [p.stamp_ns for p in packets], node.output()
    assert {(m.encoding, m.height, m.width, m.header.frame_id) for m in probe.masks} == {("mono8", H, W, "camera")}
    for images in (probe.colour, probe.overlays):
        assert [stamp_ns(m.header.stamp) for m in images] == [p.stamp_ns for p in packets]
        assert {(m.encoding, m.step) for m in images} == {("rgb8", 3 * W)}
    assert len(late) == 1 and [c.class_name for c in late[0].class_map] == labels().names
    assert status is not None, "no diagnostics status counted every frame"
    counts = values(status)
    assert status.level == b"\x00" and status.message == "running" and status.hardware_id == "arseg_ros"
    assert int(counts["HR frames"]) + int(counts["LR frames"]) == FRAMES and int(counts["HR frames"]) >= 2


def parameter_value(value):
    """Return an ``rcl_interfaces/ParameterValue`` of a Python int, float, str or bool."""
    if isinstance(value, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    if isinstance(value, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    if isinstance(value, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)


def call(probe, client, request, timeout_s=20.0):
    assert client.wait_for_service(timeout_sec=timeout_s), f"{client.srv_name} is not offered"
    future = client.call_async(request)
    assert probe.spin_until(future.done, timeout_s), f"{client.srv_name} did not answer"
    return future.result()


def test_parameters_are_described_read_only_and_set_at_run_time(tmp_path):
    domain = 120
    node = start_node(
        node_command(
            "rclpy", NODE_SECONDS, "--params-file", str(ROOT / "config" / "arseg.yaml"), "-p", f"model:={MODEL}",
            "-p", "device:=cpu", "-p", "hr_every_n:=5",
        ),
        domain, tmp_path / "node.log",
    )  # fmt: skip
    probe = Probe(domain)
    try:
        describe = probe.node.create_client(DescribeParameters, "/arseg_node/describe_parameters")
        names = NodeParameters.names()
        described = call(probe, describe, DescribeParameters.Request(names=names)).descriptors
        set_client = probe.node.create_client(SetParameters, "/arseg_node/set_parameters")

        def set_one(name, value):
            request = SetParameters.Request(parameters=[Parameter(name=name, value=parameter_value(value))])
            return call(probe, set_client, request).results[0]

        alpha = set_one("overlay_alpha", 0.25)
        mode = set_one("mode", "hr")
        bad_alpha = set_one("overlay_alpha", 2.0)
        depth = set_one("input_depth", 3)
    finally:
        probe.close()
        assert node.stop() == 0, node.output()
    dynamic = NodeParameters.dynamic_names()
    assert [d.name for d in described] == names
    for d in described:
        assert d.description, d.name
        assert d.read_only == (d.name not in dynamic), d.name
    assert "one of ['ar', 'hr', 'lr']" in next(d for d in described if d.name == "mode").additional_constraints
    assert alpha.successful
    assert not mode.successful and not depth.successful
    assert not bad_alpha.successful and "overlay_alpha=2.0: must be in [0, 1]" in bad_alpha.reason


@pytest.mark.parametrize(
    ("ros_args", "message"),
    [
        (["-p", "mode:=fast"], "parameter mode='fast': choose one of ['ar', 'hr', 'lr']"),
        (["-p", "input_depth:=0"], "parameter input_depth=0: must be at least 1"),
        (["-p", "hr_every_n:=often"], "hr_every_n"),
        (["-p", "model:=/nowhere/model.pt"], "checkpoint not found: /nowhere/model.pt"),
        (["-p", "model:=package://arseg_ros_nowhere/m.pt"], "package 'arseg_ros_nowhere' is not installed"),
    ],
)
def test_a_bad_value_is_refused_at_start_up(ros_args, message):
    command = node_command("rclpy", 30, "-p", f"model:={MODEL}", "-p", "device:=cpu", *ros_args)
    run = subprocess.run(command, env=loopback_environment(121), capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_publisher_killed_and_restarted_corrupt_packet_and_wrong_format(streams, tmp_path):
    domain = 122
    stream = tmp_path / "street.h265"
    stream.write_bytes(b"".join(p.data for p in streams["hevc"]))
    node = start_node(
        node_command(
            "rclpy", NODE_SECONDS, "-p", f"model:={MODEL}", "-p", "input_type:=compressed_image", "-p", "device:=cpu",
            "-p", "lag_policy:=all", "-r", "packets:=/camera/video",
        ),
        domain, tmp_path / "node.log",
    )  # fmt: skip
    play = [
        sys.executable, "-m", "arseg_ros.ros.play", str(stream), "--transport", "rclpy", "--topic", "/camera/video",
        "--type", "compressed_image", "--fps", "30", "--wait-subscribers", "1", "--wait-timeout", "60",
        "--max-seconds", "30",
    ]  # fmt: skip
    probe = Probe(domain)
    try:
        probe.wait_for_node()
        killed = subprocess.Popen(play, env=loopback_environment(domain), stdout=subprocess.PIPE, text=True)
        assert probe.spin_until(lambda: len(probe.masks) >= 5, 90), node.output()
        killed.kill()
        killed.wait(10)
        probe.spin_until(lambda: False, 1.0)
        before_restart = len(probe.masks)
        restarted = subprocess.run(play, env=loopback_environment(domain), capture_output=True, text=True, timeout=120)
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert probe.spin_until(lambda: len(probe.masks) >= before_restart + FRAMES, 60), node.output()
        after_restart = probe.masks[before_restart:]

        publisher = probe.publisher(CompressedImage, "/camera/video")
        probe.wait_subscribed(publisher)
        probe.wait_for_node()
        packets = streams["hevc"]
        corrupt = compressed_image(packets[3], "h265")
        corrupt.data = bytes(packets[3].data[:6]) + bytes(range(256)) * 4
        wrong_format = compressed_image(packets[4], "jpeg")
        empty = compressed_image(packets[5], "h265")
        empty.data = b""
        shifted = []
        for p in packets:
            msg = compressed_image(p, "h265")
            set_stamp(msg.header.stamp, p.stamp_ns + 10**9)
            shifted.append(msg)
        last = packets[-1].stamp_ns + 10**9
        probe.play(publisher, [*shifted[:3], corrupt, wrong_format, empty, *shifted])
        assert probe.spin_until(lambda: stamp_ns(probe.masks[-1].header.stamp) == last, 60), node.output()
        status = probe.latest_status(lambda v: "rejected_unsupported" in v and "rejected_no_nal_unit" in v)
    finally:
        probe.close()
        assert node.stop() == 0, node.output()
    assert [stamp_ns(m.header.stamp) for m in after_restart[:FRAMES]] == [p.stamp_ns for p in packets]
    assert [stamp_ns(m.header.stamp) for m in probe.masks[-FRAMES:]] == [p.stamp_ns + 10**9 for p in packets]
    assert status is not None, node.output()
    counts = values(status)
    assert status.level == b"\x01" and "rejected" in status.message
    assert counts["rejected_unsupported"] == "1" and counts["rejected_no_nal_unit"] == "1"
    assert int(counts["stamp_regression"]) >= 2
    assert int(counts.get("decode_error", "0")) + int(counts.get("parse_error", "0")) >= 1, counts
    assert int(counts["received"]) >= 5 + FRAMES + 3 + 3 + FRAMES
