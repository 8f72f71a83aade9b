"""The transport seam without a network: ROS names, ``--ros-args``, parameters, QoS and the command lines."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from arseg_ros.ros.conventions import (
    LOOPBACK_URI,
    Names,
    TransportError,
    dds_topic,
    dds_type_name,
    expand_name,
    load_parameters,
    loopback_environment,
    node_qos,
    parse_ros_args,
)
from arseg_ros.ros.node import choose_transport, split_ros_args
from arseg_ros.ros.parameters import NodeParameters
from arseg_ros.ros.play import main as play_main

ROOT = Path(__file__).resolve().parents[1]


def test_names_resolve_as_rcl_does():
    assert expand_name("~/mask") == "/arseg_node/mask"
    assert expand_name("~/mask", "/robot1", "seg") == "/robot1/seg/mask"
    assert expand_name("packets", "/robot1") == "/robot1/packets"
    assert expand_name("/diagnostics", "/robot1") == "/diagnostics"
    names = Names(namespace="/robot1", remaps={"packets": "/camera/image_raw/ffmpeg", "~/mask": "masks"})
    assert names.resolve("packets") == "/camera/image_raw/ffmpeg"
    assert names.resolve("~/mask") == "/robot1/masks"
    assert names.resolve("~/color_mask") == "/robot1/arseg_node/color_mask"
    with pytest.raises(ValueError, match="invalid ROS name"):
        expand_name("mask/")


def test_dds_names_follow_ros2():
    assert dds_topic("/arseg_node/mask") == "rt/arseg_node/mask"
    assert dds_type_name("sensor_msgs/msg/CompressedImage") == "sensor_msgs::msg::dds_::CompressedImage_"
    with pytest.raises(ValueError, match="not a resolved"):
        dds_topic("mask")
    with pytest.raises(ValueError, match="pkg/msg/Type"):
        dds_type_name("sensor_msgs/CompressedImage")


def test_ros_args_and_parameters(tmp_path):
    params_file = tmp_path / "p.yaml"
    params_file.write_text(
        yaml.safe_dump(
            {
                "/**": {"ros__parameters": {"device": "cpu", "use_sim_time": True}},
                "/robot1/seg": {"ros__parameters": {"input_type": "compressed_image", "input_depth": 30}},
                "other_node": {"ros__parameters": {"input_depth": 99}},
            }
        )
    )
    argv = ["--ros-args", "--params-file", str(params_file), "-p", "model:=m.pt", "-p", "input_depth:=40"]
    argv += ["-r", "__ns:=/robot1", "-r", "__node:=seg", "-r", "packets:=/cam/h265", "--log-level", "debug"]
    args = parse_ros_args(argv)
    assert (args.names.namespace, args.names.node, args.log_level) == ("/robot1", "seg", "debug")
    assert args.names.resolve("packets") == "/cam/h265"
    params = load_parameters(args)
    assert (params.model, params.device, params.input_type, params.input_depth) == (
        "m.pt",
        "cpu",
        "compressed_image",
        40,
    )
    with pytest.raises(TransportError, match="not supported by the DDS transport"):
        parse_ros_args(["--ros-args", "--enclave", "/x"])
    with pytest.raises(TransportError, match="expected name:=value"):
        parse_ros_args(["--ros-args", "-p", "model"])
    with pytest.raises(ValueError, match="unknown parameters"):
        load_parameters(parse_ros_args(["--ros-args", "-p", "modle:=m.pt"]))
    with pytest.raises(TransportError, match="no such file"):
        load_parameters(parse_ros_args(["--ros-args", "--params-file", str(tmp_path / "missing.yaml")]))
    broken = tmp_path / "broken.yaml"
    broken.write_text("arseg_node: {ros__parameters: [unclosed")
    with pytest.raises(TransportError, match=r"broken\.yaml is not valid YAML"):
        load_parameters(parse_ros_args(["--ros-args", "--params-file", str(broken)]))
    assert split_ros_args(["--transport", "dds", "--ros-args", "-p", "a:=1"]) == (
        ["--transport", "dds"],
        ["--ros-args", "-p", "a:=1"],
    )


def test_shipped_yaml_loads_through_the_dds_path():
    args = parse_ros_args(["--ros-args", "--params-file", str(ROOT / "config" / "arseg.yaml")])
    assert load_parameters(args) == NodeParameters()


def test_qos_is_shared_and_follows_the_parameters():
    qos = node_qos(NodeParameters(input_depth=30, output_reliability="best_effort"))
    assert (qos["input"].reliability, qos["input"].depth) == ("reliable", 30)
    assert qos["output"].reliability == "best_effort"
    assert (qos["label_info"].durability, qos["label_info"].depth) == ("transient_local", 1)


def test_transport_choice_and_loopback_environment():
    assert choose_transport("dds") == "dds"
    expected = "rclpy" if "rclpy" in sys.modules or _has("rclpy") else "dds"
    assert choose_transport("auto") == expected
    with pytest.raises(TransportError, match="unknown transport"):
        choose_transport("zenoh")
    env = loopback_environment(77, {"PATH": "/bin"})
    assert env == {
        "PATH": "/bin",
        "CYCLONEDDS_URI": LOOPBACK_URI,
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": "77",
    }
    assert '<NetworkInterface name="lo"/>' in LOOPBACK_URI and "<AllowMulticast>false" in LOOPBACK_URI
    with pytest.raises(ValueError, match="out of range"):
        loopback_environment(300)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_node_command_line_errors_are_one_line():
    env = loopback_environment(78)
    run = subprocess.run(
        [sys.executable, "-m", "arseg_ros.ros.node", "--transport", "dds", "--ros-args", "-p", "mode:=fast"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and "mode='fast'" in run.stdout + run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "arseg_ros.ros.node", "--transport", "dds"], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and "no model given" in run.stdout + run.stderr


def test_play_rejects_bad_arguments(tmp_path, capsys):
    assert play_main([str(tmp_path / "none.h265"), "--transport", "dds"]) == 2
    assert "no such file or bag" in capsys.readouterr().err
    assert play_main([str(tmp_path), "--rate", "-1"]) == 2
    assert "--rate" in capsys.readouterr().err
