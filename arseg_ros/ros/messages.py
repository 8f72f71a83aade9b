"""ROS message construction for the node's outputs and the bags the package writes, duck-typed on classes.

Works with rclpy's generated classes, ``rosbags``' classes (the real ROS 2 definitions) and the DDS
transport's IDL structs, so it is tested without ROS. ``sensor_msgs/Image`` messages are built from numpy
arrays directly, never through ``cv_bridge``: the distributions' ``cv_bridge`` is compiled against numpy 1.x
and fails to import beside numpy 2, which PyTorch wheels bring along.
"""

from __future__ import annotations

import array
from collections.abc import Callable
from typing import Any

import numpy as np

from ..labels import LabelSet

ENCODINGS = {"mono8": 1, "rgb8": 3}


def header(header_type: type, time_type: type, stamp_ns: int, frame_id: str) -> Any:
    """Return a ``std_msgs/Header`` with the given stamp (nanoseconds) and frame id."""
    stamp = time_type(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))
    return header_type(stamp=stamp, frame_id=frame_id)


def numpy_data(arr: np.ndarray) -> np.ndarray:
    """Payload form for ``rosbags`` messages: a flat uint8 array."""
    return np.ascontiguousarray(arr).reshape(-1)


def array_data(arr: np.ndarray) -> array.array:
    """Payload form for rclpy messages: ``array('B')``, which rclpy takes without a per-element check."""
    return array.array("B", np.ascontiguousarray(arr).tobytes())


def bytes_data(arr: np.ndarray) -> bytes:
    """Payload form for the DDS transport's messages: the array's bytes in C order."""
    return np.ascontiguousarray(arr).tobytes()


def image_message(
    image_type: type, msg_header: Any, arr: np.ndarray, encoding: str, data: Callable[[np.ndarray], Any] = numpy_data
) -> Any:
    """Return a ``sensor_msgs/Image`` of ``arr``: ``(H, W)`` uint8 for ``mono8``, ``(H, W, 3)`` for ``rgb8``.

    ``step`` is ``W * channels`` bytes; ``is_bigendian`` is 0 (uint8 data has no byte order).
    """
    channels = ENCODINGS.get(encoding)
    if channels is None:
        raise ValueError(f"unsupported encoding {encoding!r}; expected one of {sorted(ENCODINGS)}")
    expected = (2,) if channels == 1 else (3,)
    if arr.dtype != np.uint8 or arr.ndim not in expected or (channels == 3 and arr.shape[2] != 3):
        shape = "(H, W)" if channels == 1 else "(H, W, 3)"
        raise ValueError(f"{encoding} needs a uint8 array of shape {shape}, got {arr.dtype} {arr.shape}")
    h, w = arr.shape[:2]
    return image_type(
        header=msg_header, height=h, width=w, encoding=encoding, is_bigendian=0, step=w * channels, data=data(arr)
    )


def image_array(msg: Any) -> np.ndarray:
    """Return the pixels of a mono8/rgb8 ``sensor_msgs/Image``: ``(H, W)`` or ``(H, W, 3)`` uint8, after ``step``."""
    channels = ENCODINGS.get(msg.encoding)
    if channels is None:
        raise ValueError(f"unsupported encoding {msg.encoding!r}; expected one of {sorted(ENCODINGS)}")
    raw = np.frombuffer(bytes(msg.data), np.uint8)
    if raw.size < msg.step * msg.height or msg.step < msg.width * channels:
        raise ValueError(f"image data of {raw.size} bytes does not fit {msg.height} rows of step {msg.step}")
    rows = raw[: msg.step * msg.height].reshape(msg.height, msg.step)[:, : msg.width * channels]
    return rows.reshape(msg.height, msg.width) if channels == 1 else rows.reshape(msg.height, msg.width, 3)


def label_info_message(label_info_type: type, vision_class_type: type, msg_header: Any, labels: LabelSet) -> Any:
    """Return a ``vision_msgs/LabelInfo`` listing the class ids and names of ``labels``."""
    class_map = [vision_class_type(class_id=i, class_name=c.name) for i, c in enumerate(labels.classes)]
    return label_info_type(header=msg_header, class_map=class_map, threshold=0.0)
