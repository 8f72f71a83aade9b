"""Motion fields and their accumulation to the keyframe, on hand-made fields and on real H.264 streams."""

import io

import av
import numpy as np
import pytest

from arseg_ros.codec.h264 import PICTURE_TYPES, motion_field_from_side_data
from arseg_ros.codec.motion import MotionAccumulator, MotionField, block_grid, fill_invalid
from arseg_ros.data.synthetic import panning_clip

W, H = 64, 48


def inter_field(poc: int, refs: dict[int, tuple[int, tuple[int, int]]], picture_type: str = "P") -> MotionField:
    """Build a field where every block predicts, per list, from one POC with one quarter-pel vector."""
    f = MotionField.empty(poc, picture_type, False, W, H)
    for lst, (ref, (mx, my)) in refs.items():
        f.pred_flag[lst] = True
        f.ref_poc[lst] = ref
        f.mv[lst, ..., 0] = mx
        f.mv[lst, ..., 1] = my
    f.intra[:] = False
    return f


def key_field(poc: int = 0) -> MotionField:
    return MotionField.empty(poc, "I", True, W, H)


def interior(a: np.ndarray) -> np.ndarray:
    return a[..., 3:-3, 3:-3]


def test_keyframe_is_zero_and_valid():
    acc = MotionAccumulator().push(key_field(), is_keyframe=True)
    assert acc.distance == 0 and acc.reaches_keyframe and acc.filled_fraction == 0.0
    assert np.all(acc.displacement == 0)


def test_chain_composes_with_subpixel_precision():
    m = MotionAccumulator()
    m.push(key_field(), True)
    a1 = m.push(inter_field(1, {0: (0, (5, -2))}), False)  # 1.25 px right, 0.5 px up
    a2 = m.push(inter_field(2, {0: (1, (5, -2))}), False)
    a3 = m.push(inter_field(3, {0: (1, (2, 0))}), False)  # refers two pictures back
    np.testing.assert_allclose(interior(a1.displacement[0]), 1.25)
    np.testing.assert_allclose(interior(a1.displacement[1]), -0.5)
    np.testing.assert_allclose(interior(a2.displacement[0]), 2.5, atol=1e-6)
    np.testing.assert_allclose(interior(a2.displacement[1]), -1.0, atol=1e-6)
    np.testing.assert_allclose(interior(a3.displacement[0]), 1.75, atol=1e-6)
    assert (a1.distance, a2.distance, a3.distance) == (1, 2, 3)


def test_bilinear_lookup_into_a_varying_reference():
    m = MotionAccumulator()
    m.push(key_field(), True)
    f1 = inter_field(1, {0: (0, (0, 0))})
    _hb, wb = block_grid(W, H)
    f1.mv[0, ..., 0] = (np.arange(wb) * 4).astype(np.int16)[None, :]  # block bx moves bx pixels
    a1 = m.push(f1, False)
    a2 = m.push(inter_field(2, {0: (1, (8, 0))}), False)  # 2 px right = half a block into frame 1's map
    expected = 2.0 + np.arange(wb, dtype=np.float32) + 0.5
    np.testing.assert_allclose(a2.displacement[0, 2, 2 : wb - 2], expected[2 : wb - 2], atol=1e-5)
    assert a1.valid.all()


def test_bi_prediction_averages_both_chains():
    m = MotionAccumulator()
    m.push(key_field(), True)
    m.push(inter_field(4, {0: (0, (16, 0))}), False)  # P at POC 4: +4 px
    a = m.push(inter_field(2, {0: (0, (4, 0)), 1: (4, (-4, 0))}, "B"), False)
    np.testing.assert_allclose(interior(a.displacement[0]), (1.0 + (-1.0 + 4.0)) / 2, atol=1e-6)


def test_intra_blocks_are_marked_and_filled_from_neighbours():
    m = MotionAccumulator()
    m.push(key_field(), True)
    f = inter_field(1, {0: (0, (8, 4))})
    f.intra[5:7, 5:7] = True
    f.pred_flag[:, 5:7, 5:7] = False
    a = m.push(f, False)
    assert not a.valid[5:7, 5:7].any() and a.valid.sum() == a.valid.size - 4
    assert a.filled_fraction == pytest.approx(4 / a.valid.size)
    np.testing.assert_allclose(a.displacement[:, 5:7, 5:7], np.broadcast_to([[[2.0]], [[1.0]]], (2, 2, 2)))


def test_reference_outside_the_gop_breaks_the_chain():
    m = MotionAccumulator()
    m.push(key_field(0), True)
    m.push(inter_field(1, {0: (0, (4, 0))}), False)
    m.push(key_field(8), True)
    a = m.push(inter_field(9, {0: (1, (4, 0))}), False)  # POC 1 belongs to the previous GOP
    assert not a.reaches_keyframe and a.filled_fraction == 1.0
    b = m.push(inter_field(10, {0: (8, (4, 0))}), False)
    assert b.reaches_keyframe and b.key_poc == 8


def test_stream_starting_mid_gop_cannot_reach_a_keyframe():
    a = MotionAccumulator().push(inter_field(5, {0: (4, (0, 0))}), False)
    assert not a.reaches_keyframe


def test_fill_invalid_with_nothing_valid_is_zero():
    d = np.ones((2, 3, 3), np.float32)
    assert np.all(fill_invalid(d, np.zeros((3, 3), bool)) == 0)


def test_validate_names_the_bad_array():
    f = key_field()
    f.mv = np.zeros((2, 3, 3, 2), np.int16)
    with pytest.raises(ValueError, match=r"MotionField.mv: expected int16 \(2, 12, 16, 2\)"):
        MotionAccumulator().push(f, True)


def test_to_pixels_crops_odd_sizes():
    f = MotionField.empty(0, "I", True, 30, 18)
    acc = MotionAccumulator().push(f, True)
    assert acc.displacement.shape == (2, 5, 8)
    assert acc.to_pixels().shape == (2, 18, 30)


def encode_h264(frames: np.ndarray, params: str) -> bytes:
    buf = io.BytesIO()
    out = av.open(buf, "w", format="h264")
    stream = out.add_stream("libx264", rate=30)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = "yuv420p"
    stream.options = {"x264-params": params, "preset": "medium"}
    for frame in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return buf.getvalue()


def decode_order(anchors: list[int], count: int) -> list[int]:
    """Output indices in decode order: each anchor (I/P), then the B-frames between it and the previous anchor."""
    order: list[int] = []
    for k, anchor in enumerate(anchors):
        order.append(anchor)
        if k > 0:
            order += list(range(anchors[k - 1] + 1, anchor))
    return order + list(range(anchors[-1] + 1, count))


def accumulate_h264(data: bytes) -> list:
    """Decode with motion export; POC = output index; list 0 = previous I/P, list 1 = next I/P picture."""
    container = av.open(io.BytesIO(data), format="h264")
    stream = container.streams.video[0]
    stream.codec_context.options = {"flags2": "+export_mvs"}
    decoded = []
    for frame in container.decode(stream):
        side = frame.side_data.get("MOTION_VECTORS")
        decoded.append((PICTURE_TYPES.get(int(frame.pict_type), "I"), frame.key_frame, side))
    anchors = [i for i, (t, _, _) in enumerate(decoded) if t != "B"]
    fields = []
    for i, (ptype, key, side) in enumerate(decoded):
        past = max((a for a in anchors if a < i), default=None)
        future = min((a for a in anchors if a > i), default=None) if ptype == "B" else None
        vectors = side.to_ndarray() if side is not None else None
        h, w = 4 * ((stream.height + 3) // 4), 4 * ((stream.width + 3) // 4)
        fields.append(motion_field_from_side_data(vectors, i, ptype, key, w, h, past, future, exact=True))
    acc = MotionAccumulator()
    out = {}
    for i in decode_order(anchors, len(fields)):
        out[i] = acc.push(fields[i], is_keyframe=fields[i].is_irap)
    return [out[i] for i in range(len(fields))]


@pytest.mark.parametrize(
    ("velocity", "params"),
    [
        ((3.0, -2.0), "keyint=12:bframes=0:ref=1"),
        ((2.5, 0.5), "keyint=12:bframes=0:ref=1"),
        ((-1.75, 1.25), "keyint=12:bframes=2:b-pyramid=none:ref=1"),
    ],
)
def test_h264_accumulation_matches_known_translation(velocity, params):
    clip = panning_clip(192, 144, 12, velocity=velocity, seed=4)
    accumulated = accumulate_h264(encode_h264(clip.frames, params))
    assert len(accumulated) == 12
    last = accumulated[11]
    assert last.distance > 0 and last.reaches_keyframe
    err = np.hypot(last.displacement[0] - 11 * velocity[0], last.displacement[1] - 11 * velocity[1])
    margin = int(np.ceil(11 * max(abs(velocity[0]), abs(velocity[1])) / 4)) + 1
    median = float(np.median(err[margin:-margin, margin:-margin]))
    assert median <= 0.5, f"median error {median:.2f} px at d=11 for velocity {velocity}"


def accumulate_hevc(frames: np.ndarray, settings) -> dict[int, object]:
    """Parse an x265 encode with the package's parser and accumulate in decode order; results by POC."""
    from arseg_ros.codec import HevcParser
    from arseg_ros.codec.encode import encode_frames
    from arseg_ros.codec.hevc import motion_field

    parser = HevcParser(motion=True)
    acc = MotionAccumulator()
    out = {}
    for packet in encode_frames(frames, settings):
        for picture in parser.feed_access_unit(packet.data):
            field = motion_field(picture)
            out[picture.poc] = acc.push(field, is_keyframe=field.is_irap)
    return out


@pytest.mark.parametrize(
    ("velocity", "bframes"), [((3.0, -2.0), 0), ((2.5, 0.5), 0), ((-1.75, 1.25), 3), ((1.5, 1.0), 3)]
)
def test_hevc_accumulation_matches_known_translation(velocity, bframes):
    from arseg_ros.codec.encode import EncoderSettings

    clip = panning_clip(192, 144, 12, velocity=velocity, seed=4)
    accumulated = accumulate_hevc(clip.frames, EncoderSettings(codec="hevc", keyint=12, bframes=bframes, crf=24))
    last = accumulated[11]
    assert last.key_poc == 0 and last.reaches_keyframe
    err = np.hypot(last.displacement[0] - 11 * velocity[0], last.displacement[1] - 11 * velocity[1])
    margin = int(np.ceil(11 * max(abs(velocity[0]), abs(velocity[1])) / 4)) + 1
    median = float(np.median(err[margin:-margin, margin:-margin]))
    assert median <= 0.5, f"median error {median:.2f} px at d=11 for velocity {velocity}, bframes {bframes}"


@pytest.mark.parametrize(
    ("case", "ego", "moving", "bframes", "bound"),
    [
        # Measured medians on this street: 0.48, 0.59, 0.50, 0.00, 0.00 px. The error is in the encoder's vectors
        # on the near-field road (bench/motion_accuracy.py and docs/benchmarks.md: other streets, and the split).
        ("forward (zoom)", (8.0, 0.0), False, 0, 0.75),
        ("forward (zoom), B-frames", (8.0, 0.0), False, 3, 0.75),
        ("gentle turn", (6.0, 0.1), False, 0, 0.75),
        ("traffic over a still background", (0.0, 0.0), True, 0, 0.5),
        ("traffic over a still background, B-frames", (0.0, 0.0), True, 3, 0.5),
    ],
)
def test_hevc_accumulation_on_driving_clips(case, ego, moving, bframes, bound):
    """Zoom, rotation and independently moving objects, against the renderer's exact displacement to frame 0.

    The error is measured on the textured half of the blocks whose scene point is visible in both frames.
    """
    from arseg_ros.codec.encode import EncoderSettings
    from arseg_ros.data.synthetic import EgoMotion, driving_clip

    clip = driving_clip(256, 192, 12, seed=2, ego=EgoMotion(speed=ego[0], yaw_rate=ego[1]), moving_objects=moving)
    accumulated = accumulate_hevc(clip.frames, EncoderSettings(codec="hevc", keyint=12, bframes=bframes, crf=22))
    hb, wb = accumulated[11].valid.shape
    truth = clip.displacement[11].reshape(2, hb, 4, wb, 4).mean(axis=(2, 4))  # mean over each 4x4 block
    valid = clip.valid[11].reshape(hb, 4, wb, 4).all(axis=(1, 3))
    gray = clip.frames[11].astype(np.float32).mean(-1)
    gradient = np.hypot(*np.gradient(gray)).reshape(hb, 4, wb, 4).mean(axis=(1, 3))
    textured = gradient > np.percentile(gradient, 50)
    got = accumulated[11].displacement
    err = np.hypot(got[0] - truth[0], got[1] - truth[1])[valid & textured & accumulated[11].valid]
    median = float(np.median(err))
    assert median <= bound, f"{case}: median error {median:.2f} px at d=11"


@pytest.mark.parametrize(("seed", "ego"), [(2, (8.0, 0.0)), (3, (6.0, 0.1))])
def test_exact_vectors_compose_to_the_true_displacement_of_a_drive(seed, ego):
    """The accumulation alone composes exact vectors to the true displacement, on zoom, rotation and moving traffic.

    Every block sends the renderer's exact vector, rounded to quarter-pel as a codec would, to one frame back or
    (on a checkerboard of 16x16 squares) three frames back; the displacement composed to the keyframe at d = 11
    matches the truth. The measured medians are 0.17 and 0.20 px; quarter-pel rounding over up to 11 hops accounts
    for them.
    """
    from arseg_ros.data.synthetic import EgoMotion, driving_clip

    width, height = 256, 192
    clip = driving_clip(width, height, 12, seed=seed, ego=EgoMotion(speed=ego[0], yaw_rate=ego[1]))
    hb, wb = block_grid(width, height)
    ys, xs = np.mgrid[0:hb, 0:wb].astype(np.float32) * 4 + 1.5
    step = np.where((np.arange(hb)[:, None] // 4 + np.arange(wb)[None] // 4) % 2 == 0, 1, 3)
    acc = MotionAccumulator()
    acc.push(MotionField.empty(0, "I", True, width, height), is_keyframe=True)
    for t in range(1, 12):
        field = MotionField.empty(t, "P", False, width, height)
        ref = np.maximum(t - step, 0)
        for r in np.unique(ref):
            vector = np.rint(4 * clip.motion_between(t, int(r), xs, ys)).astype(np.int16)
            field.mv[0][ref == r] = vector.transpose(1, 2, 0)[ref == r]
        field.ref_poc[0] = ref
        field.pred_flag[0] = True
        field.intra[:] = False
        last = acc.push(field, is_keyframe=False)
    assert last.distance == 11 and last.valid.all()
    truth = clip.displacement[11].reshape(2, hb, 4, wb, 4).mean(axis=(2, 4))
    visible = clip.valid[11].reshape(hb, 4, wb, 4).all(axis=(1, 3))
    err = np.hypot(*(last.displacement - truth))[visible]
    assert np.median(err) <= 0.3, f"median error {np.median(err):.2f} px"
    assert np.percentile(err, 90) <= 0.8, f"90th percentile {np.percentile(err, 90):.2f} px"
