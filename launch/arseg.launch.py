"""Launch the AR-Seg node on a compressed camera topic.

ros2 launch arseg_ros arseg.launch.py model:=/path/to/model.pt input_topic:=/camera/image_raw/ffmpeg

``transport:=dds`` runs the node on Cyclone DDS directly instead of rclpy (same topics, QoS and parameters).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument("model", description="AR-Seg checkpoint (.pt), a path or package://arseg_ros/models/..."),
        DeclareLaunchArgument("input_topic", default_value="/camera/image_raw/ffmpeg", description="compressed topic"),
        DeclareLaunchArgument(
            "input_type",
            default_value="ffmpeg_packet",
            description="compressed_image, ffmpeg_packet or compressed_video",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("arseg_ros"), "config", "arseg.yaml"]),
            description="node parameters (YAML)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("transport", default_value="auto", description="auto, rclpy or dds"),
    ]
    node = Node(
        package="arseg_ros",
        executable="arseg_node",
        name="arseg_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        arguments=["--transport", LaunchConfiguration("transport")],
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model": LaunchConfiguration("model"),
                "input_type": LaunchConfiguration("input_type"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
        remappings=[("packets", LaunchConfiguration("input_topic"))],
    )
    return LaunchDescription([*arguments, node])
