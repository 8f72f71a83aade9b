"""The ROS edge: the node, its two transports, ROS conventions and message construction, and ``arseg-play``.

``core`` is the node without a transport; ``rclpy_node`` and ``dds_node`` adapt it to rclpy and to Cyclone
DDS and are the only modules that import rclpy (``rclpy_node``) or cyclonedds (``dds_node``, ``dds_types``).
``node`` is the ``arseg_node`` entry point that chooses between them. The other modules import neither, so
``arseg_ros`` installs, trains and evaluates without ROS.
"""
