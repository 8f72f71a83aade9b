"""arseg_ros: AR-Seg semantic segmentation of compressed (HEVC/H.264) camera streams for ROS 2."""

__version__ = "0.1.0"
