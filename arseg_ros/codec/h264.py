"""H.264 motion from FFmpeg's motion-vector side data (``flags2=+export_mvs``).

FFmpeg exports, per inter partition, its size, centre, vector and *direction* (``source`` -1: list 0, +1:
list 1), but not which reference picture of that list it uses. So a field is exact only when each list
holds a single picture: streams encoded with one reference frame, and B-frames that predict from the
nearest reference picture on each side. The caller names those pictures (``past_poc``, ``future_poc``)
and says whether the stream is single-reference (``exact``). Partitions without a vector are intra.
The side data does not say which partitions were skipped or merged: ``skip`` and ``merge`` stay False.
"""

from __future__ import annotations

import numpy as np

from .motion import BLOCK, MotionField

PICTURE_TYPES = {1: "I", 2: "P", 3: "B"}


def motion_field_from_side_data(
    vectors: np.ndarray | None,
    poc: int,
    picture_type: str,
    is_irap: bool,
    width: int,
    height: int,
    past_poc: int | None,
    future_poc: int | None,
    exact: bool,
) -> MotionField:
    """Build a ``MotionField`` from the structured array of PyAV's ``MOTION_VECTORS`` side data.

    ``vectors`` has the fields ``source, w, h, dst_x, dst_y, motion_x, motion_y, motion_scale`` (``None``
    or empty: an intra picture). Partition sizes and centres are in pixels; ``motion_x / motion_scale`` is
    the displacement in pixels from the partition to its reference.
    """
    field = MotionField.empty(poc, picture_type, is_irap, width, height)
    field.exact = exact
    if vectors is None or len(vectors) == 0:
        return field
    hb, wb = field.blocks
    for lst, source, ref in ((0, -1, past_poc), (1, 1, future_poc)):
        sel = vectors[vectors["source"] == source]
        if ref is None or len(sel) == 0:
            continue
        bw = np.maximum(sel["w"].astype(np.intp) // BLOCK, 1)
        bh = np.maximum(sel["h"].astype(np.intp) // BLOCK, 1)
        x0 = (sel["dst_x"].astype(np.intp) - sel["w"].astype(np.intp) // 2) // BLOCK
        y0 = (sel["dst_y"].astype(np.intp) - sel["h"].astype(np.intp) // 2) // BLOCK
        scale = np.maximum(sel["motion_scale"].astype(np.float64), 1.0)
        qx = np.rint(4.0 * sel["motion_x"] / scale).astype(np.int16)
        qy = np.rint(4.0 * sel["motion_y"] / scale).astype(np.int16)
        n = bw * bh
        entry = np.repeat(np.arange(len(sel)), n)
        offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        bx = x0[entry] + offset % bw[entry]
        by = y0[entry] + offset // bw[entry]
        inside = (bx >= 0) & (bx < wb) & (by >= 0) & (by < hb)
        bx, by, entry = bx[inside], by[inside], entry[inside]
        field.mv[lst, by, bx, 0] = qx[entry]
        field.mv[lst, by, bx, 1] = qy[entry]
        field.pred_flag[lst, by, bx] = True
        field.ref_poc[lst, by, bx] = ref
    field.intra = ~(field.pred_flag[0] | field.pred_flag[1])
    return field
